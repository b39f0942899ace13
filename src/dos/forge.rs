//! Performs the refinery's calls to GitHub / GitLab for merge strategy `pr`: opening (or
//! finding) the pull request, labelling it, reporting the gates as a commit status, reading it
//! back for the fallback poll, and merging it (`refinery.auto_merge`). The requests and what
//! the answers mean come from `gastown_core::forge`; only the fetches live here. The token is
//! attached by `forge::auth_headers`, which refuses any URL off the configured API origin, and
//! never appears in an error or a log (errors carry the status and the forge's message).

use gastown_core::config::TownConfig;
use gastown_core::forge::{self, ForgeKind, ForgeRequest, ForgeTarget, PrObservation, PullRequest, StatusState};
use gastown_core::model::Rig;
use gastown_core::town::{MergeJob, MergeOutcome};
use serde_json::Value;
use worker::{Fetch, Headers, Method, Request, RequestInit};

/// A rig's forge with its token.
pub struct Forge {
    target: ForgeTarget,
    token: String,
}

/// A failed forge call: the status (0: unreachable) and a short message without the token.
#[derive(Debug)]
pub struct ForgeFailure {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ForgeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "the forge answered {}: {}", self.status, self.message)
        }
    }
}

fn fail(message: impl Into<String>) -> ForgeFailure {
    ForgeFailure { status: 0, message: message.into() }
}

impl Forge {
    pub fn for_rig(rig: &Rig, cfg: &TownConfig, development: bool) -> Result<Forge, ForgeFailure> {
        let target = forge::forge_target(&rig.git_url, rig.forge, rig.forge_repo.as_deref(), &cfg.git_auth, development)
            .map_err(|e| fail(e.to_string()))?;
        let token = forge::token_for(target.kind, &cfg.git_auth).map_err(|e| fail(e.to_string()))?.to_string();
        Ok(Forge { target, token })
    }

    pub fn kind(&self) -> ForgeKind {
        self.target.kind
    }

    async fn send(&self, req: &ForgeRequest) -> Result<Value, ForgeFailure> {
        let headers = Headers::new();
        for (k, v) in forge::auth_headers(&self.target, &req.url, &self.token).map_err(|e| fail(e.to_string()))? {
            headers.set(&k, &v).map_err(|e| fail(e.to_string()))?;
        }
        let method = match req.method.as_str() {
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            _ => Method::Get,
        };
        if req.body.is_some() {
            headers.set("content-type", "application/json").map_err(|e| fail(e.to_string()))?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(b) = &req.body {
            init.with_body(Some(b.to_string().into()));
        }
        let request = Request::new_with_init(&req.url, &init).map_err(|e| fail(format!("bad forge request: {e}")))?;
        let mut resp = Fetch::Request(request).send().await.map_err(|e| fail(format!("the forge is unreachable: {e}")))?;
        let status = resp.status_code();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            let message = v.get("message").or_else(|| v.get("error")).map(|m| m.to_string()).unwrap_or_else(|| v.to_string());
            Err(ForgeFailure { status, message: message.chars().take(500).collect() })
        }
    }

    /// After the gates passed: the pull request for `job` opened (or, on a rework, the one
    /// already open found again), labelled, and the gates reported on its head.
    pub async fn deliver(&self, job: &MergeJob, head_sha: &str, body: &str) -> MergeOutcome {
        match self.try_deliver(job, head_sha, body).await {
            Ok(pr) => MergeOutcome::PullRequest { pr },
            // The forge refusing or unreachable is not the work's fault: retried with backoff,
            // then failed and escalated (a bad token or repository needs a person).
            Err(e) => MergeOutcome::Unreachable { error: format!("opening the pull request failed: {e}") },
        }
    }

    async fn try_deliver(&self, job: &MergeJob, head_sha: &str, body: &str) -> Result<PullRequest, ForgeFailure> {
        let (branch, base) = (&job.review.branch, &job.review.target_branch);
        let existing = match &job.pr {
            Some(pr) => match self.send(&self.target.get_pr(pr.number)).await {
                Ok(v) => forge::parse_pr(self.kind(), &v).ok().filter(|p| p.state == "open"),
                Err(e) if e.status == 404 => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let snapshot = match existing {
            Some(s) => s,
            None => {
                let title = gastown_core::prompts::one_line(&job.source_title);
                let title = if title.trim().is_empty() { format!("Merge {branch}") } else { title };
                match self.send(&self.target.open_pr(branch, base, &title, body)).await {
                    Ok(v) => forge::parse_pr(self.kind(), &v).map_err(|e| fail(e.to_string()))?,
                    // GitHub 422 / GitLab 409: one is already open from this branch (e.g. an earlier
                    // attempt's answer was lost): deliver through it.
                    Err(e) if e.status == 422 || e.status == 409 => {
                        let list = self.send(&self.target.find_open_pr(branch)).await?;
                        let first = list.as_array().and_then(|a| a.first()).cloned().ok_or(e)?;
                        forge::parse_pr(self.kind(), &first).map_err(|e| fail(e.to_string()))?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if let Some(labels) = self.target.add_labels(snapshot.number) {
            if let Err(e) = self.send(&labels).await {
                worker::console_warn!("labelling pull request #{}: {e}", snapshot.number);
            }
        }
        let status = self.target.commit_status(head_sha, StatusState::Success, "quality gates passed on the branch merged with its target");
        if let Err(e) = self.send(&status).await {
            worker::console_warn!("reporting the gates on #{}: {e}", snapshot.number);
        }
        Ok(PullRequest {
            forge: self.kind(),
            repo: self.target.repo.clone(),
            number: snapshot.number,
            url: snapshot.url,
            head_sha: head_sha.to_string(),
            state: "open".into(),
        })
    }

    /// Reads an open pull request: its state, reviews / notes, checks (and GitLab approvals).
    pub async fn observe(&self, pr: &PullRequest) -> Result<PrObservation, ForgeFailure> {
        let kind = self.kind();
        let snapshot = forge::parse_pr(kind, &self.send(&self.target.get_pr(pr.number)).await?).map_err(|e| fail(e.to_string()))?;
        let mut o = PrObservation { pr: snapshot, ..Default::default() };
        if o.pr.state != "open" {
            return Ok(o);
        }
        o.reviews = forge::parse_reviews(kind, &self.send(&self.target.list_reviews(pr.number)).await?);
        if let Some(req) = self.target.list_review_comments(pr.number) {
            forge::attach_review_comments(&mut o.reviews, &self.send(&req).await?);
        }
        let head = if o.pr.head_sha.is_empty() { pr.head_sha.clone() } else { o.pr.head_sha.clone() };
        for req in self.target.checks(pr.number, &head) {
            o.checks.extend(forge::parse_checks(kind, &head, &self.send(&req).await?));
        }
        if let Some(req) = self.target.approvals(pr.number) {
            o.approved = self.send(&req).await.ok().and_then(|v| v["approved"].as_bool()).unwrap_or(false);
        }
        Ok(o)
    }

    pub async fn merge(&self, pr: &PullRequest) -> Result<(), ForgeFailure> {
        self.send(&self.target.merge(pr.number, &pr.head_sha)).await.map(|_| ())
    }
}
