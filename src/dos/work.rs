//! Performs the work the town store claims: starts agent runs and runs merges in the town's
//! container, then reports each outcome back to the store. Only I/O lives here; what is due,
//! what an outcome means and when to retry are decided in `gastown_core::town::work`.

use gastown_core::auth::{sign_agent_token, AgentClaims};
use gastown_core::config::{MergeStrategy, TownConfig};
use gastown_core::town::{DispatchJob, MergeJob, MergeOutcome, StartOutcome};
use gastown_core::{CoreError, CoreResult};
use serde_json::{json, Value};
use worker::{Env, Method, Request, RequestInit};

use super::container::TOWN_HEADER;
use crate::auth::{jwt_secret, var};
use crate::http::now_ms;

/// Agent tokens outlive a long session but not a day.
const AGENT_TOKEN_TTL_SECS: i64 = 8 * 3600;

/// The town's container, as the TownDO sees it.
pub struct ContainerClient<'a> {
    env: &'a Env,
    town_id: String,
    config_header: String,
}

/// What the container receives as `X-Town-Config` on every request: the resolved, unmasked
/// config, so a change takes effect on the next request without a restart.
pub fn container_config(cfg: &TownConfig) -> Value {
    // The webhook secret stays in the town: the container has no use for it.
    let g = &cfg.git_auth;
    json!({
        "env_vars": cfg.env_vars,
        "git_auth": {
            "github_token": g.github_token, "gitlab_token": g.gitlab_token,
            "github_url": g.github_url, "gitlab_instance_url": g.gitlab_instance_url,
        },
        "agent": {"runtime": cfg.agent.runtime, "model": cfg.agent.model},
        "refinery": {
            "gates": cfg.refinery.gates,
            "gate_timeout_secs": cfg.refinery.gate_timeout_secs,
            "merge_strategy": match cfg.refinery.merge_strategy { MergeStrategy::Direct => "direct", MergeStrategy::Pr => "pull_request" },
        },
        "capacity": {"max_polecats_per_rig": cfg.capacity.max_polecats_per_rig},
    })
}

impl<'a> ContainerClient<'a> {
    pub fn new(env: &'a Env, town_id: &str, cfg: &TownConfig) -> Self {
        ContainerClient { env, town_id: town_id.to_string(), config_header: container_config(cfg).to_string() }
    }

    /// For requests that need no town config (status, stop, sessions, typing a notice).
    pub fn bare(env: &'a Env, town_id: &str) -> Self {
        Self::new(env, town_id, &TownConfig::default())
    }

    /// `(status, data-or-error)`; a network failure is `Err`.
    pub async fn post(&self, path: &str, body: &Value) -> CoreResult<(u16, Value)> {
        self.call(Method::Post, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> CoreResult<(u16, Value)> {
        self.call(Method::Get, path, None).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> CoreResult<(u16, Value)> {
        let (status, v) = self.call_raw(method, path, body).await?;
        let payload = if status < 300 { v.get("data").cloned().unwrap_or(v) } else { v.get("error").cloned().unwrap_or(v) };
        Ok((status, payload))
    }

    /// `(status, whole reply)`: errors keep their `code` and `limit`.
    async fn call_raw(&self, method: Method, path: &str, body: Option<&Value>) -> CoreResult<(u16, Value)> {
        let headers = worker::Headers::new();
        let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| CoreError::Internal(e.to_string()));
        set("content-type", "application/json")?;
        set("x-town-config", &self.config_header)?;
        set(TOWN_HEADER, &self.town_id)?;
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(b) = body {
            init.with_body(Some(b.to_string().into()));
        }
        let req = Request::new_with_init(&format!("https://container{path}"), &init).map_err(|e| CoreError::Internal(e.to_string()))?;
        let stub = super::stub(self.env, "TOWN_CONTAINER", &self.town_id)?;
        let mut resp = stub.fetch_with_request(req).await.map_err(|e| CoreError::Internal(format!("container unreachable: {e}")))?;
        let status = resp.status_code();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"error": text}));
        Ok((status, v))
    }

    /// Starts one run; what the answer means is read by [`StartOutcome::from_reply`].
    pub async fn start(&self, job: &DispatchJob) -> StartOutcome {
        let failed = |e: CoreError| StartOutcome::Failed { error: e.to_string(), permanent: false };
        let secret = match jwt_secret(self.env) {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let claims = AgentClaims {
            town_id: job.town_id.clone(),
            rig_id: job.agent.rig_id.clone(),
            agent_id: job.agent.id.clone(),
            role: job.agent.role,
        };
        let token = match sign_agent_token(&secret, &claims, now_ms(), AGENT_TOKEN_TTL_SECS) {
            Ok(t) => t,
            Err(e) => return failed(e),
        };
        let api_url = var(self.env, "GASTOWN_API_URL").unwrap_or_else(|| "http://127.0.0.1:8787".into());
        let body = json!({
            "agent_id": job.agent.id,
            "town_id": job.town_id,
            // The mayor has no rig; the container keys its working directory by agent.
            "rig_id": job.rig.as_ref().map_or("town", |r| r.id.as_str()),
            "role": job.agent.role,
            "name": job.agent.name,
            "bead_id": job.bead.as_ref().map(|b| &b.id),
            "git_url": job.rig.as_ref().map(|r| &r.git_url),
            "default_branch": job.rig.as_ref().map(|r| &r.default_branch),
            "epoch": job.epoch,
            "runtime": job.runtime.runtime,
            "model": job.runtime.model,
            "command_template": job.runtime.command,
            "prompt": job.prompt,
            "env": {"GASTOWN_API_URL": api_url, "GASTOWN_AGENT_TOKEN": token},
        });
        match self.call_raw(Method::Post, "/agents/start", Some(&body)).await {
            Ok((status, reply)) => StartOutcome::from_reply(status, &reply),
            Err(e) => StartOutcome::Unreachable { error: e.to_string() },
        }
    }

    /// Runs one merge train (jobs of one rig and target branch, in queue order) as one request;
    /// one outcome per job, in order. A request that fails as a whole gives every job the same
    /// outcome: 4xx (the request was understood and refused because of the work) is `Invalid`,
    /// anything else `Unreachable` (retried with backoff).
    pub async fn merge_batch(&self, jobs: &[MergeJob]) -> Vec<MergeOutcome> {
        let Some(first) = jobs.first() else { return vec![] };
        let body = json!({
            "rig_id": first.rig.id,
            "git_url": first.rig.git_url,
            "branches": jobs.iter().map(|j| &j.review.branch).collect::<Vec<_>>(),
            "target_branch": first.review.target_branch,
            "gates": first.gates,
            "timeout_secs": first.gate_timeout_secs,
            // Per job: a rig may override the town's strategy.
            "strategy": match first.strategy { MergeStrategy::Direct => "direct", MergeStrategy::Pr => "pull_request" },
        });
        let all = |o: MergeOutcome| vec![o; jobs.len()];
        match self.post("/git/merge-batch", &body).await {
            Ok((s, data)) if s < 300 => match serde_json::from_value::<Vec<MergeOutcome>>(data["results"].clone()) {
                Ok(results) if results.len() == jobs.len() => results,
                Ok(results) => all(MergeOutcome::Unreachable {
                    error: format!("the container answered {} results for {} branches", results.len(), jobs.len()),
                }),
                Err(e) => all(MergeOutcome::Unreachable { error: format!("unexpected merge reply: {e}") }),
            },
            Ok((s, e)) if (400..500).contains(&s) || s == 501 => {
                all(MergeOutcome::Invalid { message: e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string()) })
            }
            Ok((s, e)) => all(MergeOutcome::Unreachable { error: format!("container answered {s}: {e}") }),
            Err(e) => all(MergeOutcome::Unreachable { error: e.to_string() }),
        }
    }
}
