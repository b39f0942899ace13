//! Performs the work the town store claims: starts agent runs and runs merges in the town's
//! container, then reports each outcome back to the store. Only I/O lives here; what is due,
//! what an outcome means and when to retry are decided in `gastown_core::town::work`.

use std::collections::BTreeMap;

use gastown_core::auth::{sign_agent_token, AgentClaims};
use gastown_core::config::TownConfig;
use gastown_core::container::{container_call, merge_batch_request, merge_outcomes, start_request};
use gastown_core::town::{DispatchJob, MergeJob, MergeOutcome, StartOutcome};
use gastown_core::{CoreError, CoreResult};
use gastown_protocol::MergeBatchReply;
use serde::Serialize;
use serde_json::{json, Value};
use worker::{Env, Method, Request, RequestInit};

use crate::auth::{jwt_secret, var};
use crate::http::now_ms;

/// Agent tokens outlive a long session but not a day.
const AGENT_TOKEN_TTL_SECS: i64 = 8 * 3600;

/// The town's container, as the TownDO sees it. The town config it was made with goes in the
/// body of the requests that need it (see `gastown_core::container`), never in a header.
pub struct ContainerClient<'a> {
    env: &'a Env,
    town_id: String,
    config: TownConfig,
}

impl<'a> ContainerClient<'a> {
    pub fn new(env: &'a Env, town_id: &str, cfg: &TownConfig) -> Self {
        ContainerClient { env, town_id: town_id.to_string(), config: cfg.clone() }
    }

    /// For requests that need no town config (status, stop, sessions, typing a notice).
    pub fn bare(env: &'a Env, town_id: &str) -> Self {
        Self::new(env, town_id, &TownConfig::default())
    }

    /// `(status, data-or-error)`; a network failure is `Err`.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> CoreResult<(u16, Value)> {
        self.call(Method::Post, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> CoreResult<(u16, Value)> {
        self.call(Method::Get, path, None::<&()>).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> CoreResult<(u16, Value)> {
        let (status, v) = self.call_raw(method, path, body).await?;
        let payload = if status < 300 { v.get("data").cloned().unwrap_or(v) } else { v.get("error").cloned().unwrap_or(v) };
        Ok((status, payload))
    }

    /// `(status, whole reply)`: errors keep their `code` and `limit`.
    async fn call_raw(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> CoreResult<(u16, Value)> {
        let call = container_call(&self.town_id, body)?;
        let headers = worker::Headers::new();
        for (k, v) in &call.headers {
            headers.set(k, v).map_err(|e| CoreError::Internal(e.to_string()))?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(b) = call.body {
            init.with_body(Some(b.into()));
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
        let env = BTreeMap::from([("GASTOWN_API_URL".to_string(), api_url), ("GASTOWN_AGENT_TOKEN".to_string(), token)]);
        let body = start_request(job, env, &self.config);
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
        let Some(body) = merge_batch_request(jobs, &self.config) else { return vec![] };
        let all = |o: MergeOutcome| vec![o; jobs.len()];
        match self.post("/git/merge-batch", &body).await {
            Ok((s, data)) if s < 300 => {
                match serde_json::from_value::<MergeBatchReply>(data).map_err(|e| format!("unexpected merge reply: {e}")) {
                    Ok(reply) => merge_outcomes(reply, jobs.len()).unwrap_or_else(|error| all(MergeOutcome::Unreachable { error })),
                    Err(error) => all(MergeOutcome::Unreachable { error }),
                }
            }
            Ok((s, e)) if (400..500).contains(&s) || s == 501 => {
                all(MergeOutcome::Invalid { message: e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string()) })
            }
            Ok((s, e)) => all(MergeOutcome::Unreachable { error: format!("container answered {s}: {e}") }),
            Err(e) => all(MergeOutcome::Unreachable { error: e.to_string() }),
        }
    }
}
