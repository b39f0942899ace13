//! Pull requests on GitHub and merge requests on GitLab, as pure functions: which forge and
//! repository a rig's work goes to and at which API base (`ForgeTarget`), the REST requests the
//! refinery makes (built here, performed by the Worker), the only headers that ever carry a
//! token (and only to the configured API origin), and what the forges' answers mean
//! (`PrSnapshot`, `PrObservation`). Webhooks and the signals they carry are in [`events`].
//!
//! Why the token check lives here: the request URL is built from a rig's settings and a forge's
//! replies (e.g. a `details_url`), so the one function that adds `Authorization` /
//! `PRIVATE-TOKEN` compares the URL's origin with the configured API base every time.

pub mod events;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use gastown_protocol::percent_encode as encode;

use crate::config::GitAuth;
use crate::error::CoreError;
use crate::web::origin_of;

pub use events::{
    parse_webhook, pr_poll_delay_ms, signals_from_observation, verify_webhook, CheckResult, CheckState, PrKey, PrSignal, ReviewKind,
    ReviewNote, WebhookEvent,
};

/// The commit-status context the refinery reports its gates under (and ignores when it reads
/// the checks back).
pub const STATUS_CONTEXT: &str = "gastown/refinery";
/// The label put on every pull request the refinery opens.
pub const PR_LABEL: &str = "gastown";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }

    pub fn parse(s: &str) -> Option<ForgeKind> {
        match s {
            "github" => Some(ForgeKind::Github),
            "gitlab" => Some(ForgeKind::Gitlab),
            _ => None,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ForgeError {
    /// The rig's forge or repository cannot be told from its settings.
    #[error("{0}")]
    Unknown(String),
    /// A configured URL the refinery will not send a token to.
    #[error("{0}")]
    BadUrl(String),
    /// No token is configured for the forge.
    #[error("no {0} is configured in git_auth")]
    NoToken(&'static str),
    /// A request would have taken the token somewhere other than the configured API.
    #[error("refused to send the forge token to {0}: not the configured API origin")]
    WrongHost(String),
    /// The forge answered something the refinery cannot read.
    #[error("unexpected answer from the forge: {0}")]
    BadReply(String),
}

impl From<ForgeError> for CoreError {
    fn from(e: ForgeError) -> Self {
        CoreError::bad_request(e.to_string())
    }
}

/// Where a rig's pull requests go: the forge, its REST API base and the repository on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ForgeTarget {
    pub kind: ForgeKind,
    /// `https://api.github.com`, `https://<ghe>/api/v3`, `https://<gitlab>/api/v4`.
    pub api_base: String,
    /// `owner/name` (GitHub) or `group/…/project` (GitLab).
    pub repo: String,
}

/// One REST call, without credentials (see [`auth_headers`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ForgeRequest {
    pub method: String,
    pub url: String,
    pub body: Option<Value>,
}

/// The host (lower-cased, port dropped) and path of a git remote URL: `https://host/p`,
/// `ssh://git@host:22/p`, or scp-like `git@host:p`. `None` for local paths.
pub fn git_host_and_path(git_url: &str) -> Option<(String, String)> {
    let u = git_url.trim();
    let (authority, path) = if let Some((scheme, rest)) = u.split_once("://") {
        if !matches!(scheme.to_ascii_lowercase().as_str(), "https" | "http" | "ssh" | "git") {
            return None;
        }
        let (a, p) = rest.split_once('/').unwrap_or((rest, ""));
        (a.to_string(), p.to_string())
    } else if !u.starts_with('/') && u.contains(':') {
        let (a, p) = u.split_once(':')?;
        (a.to_string(), p.to_string())
    } else {
        return None;
    };
    let host = authority.rsplit('@').next()?.split(':').next()?.to_ascii_lowercase();
    let path = path.trim_matches('/').trim_end_matches(".git").trim_matches('/').to_string();
    (!host.is_empty()).then_some((host, path))
}

fn host_of_base(url: &str) -> Option<String> {
    let o = origin_of(url)?;
    let authority = o.split_once("://")?.1;
    let host =
        if authority.starts_with('[') { authority.split(']').next()?.to_string() + "]" } else { authority.split(':').next()?.into() };
    Some(host)
}

fn is_loopback(url: &str) -> bool {
    host_of_base(url).is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
}

/// A configured forge base URL is usable: `https://` without credentials, or — only in a
/// development deployment — `http://` to a loopback address (the tests' stand-in forges).
pub fn check_base_url(field: &str, url: &str, allow_loopback: bool) -> Result<(), ForgeError> {
    let plain = !url.contains('@') && !url.chars().any(|c| c.is_whitespace() || c.is_control()) && !url.contains(['?', '#']);
    let ok = plain && (url.starts_with("https://") || (allow_loopback && url.starts_with("http://") && is_loopback(url)));
    if ok && origin_of(url).is_some() {
        Ok(())
    } else if allow_loopback {
        Err(ForgeError::BadUrl(format!(
            "{field}: must be an https:// URL without credentials (or http:// to a loopback address in development)"
        )))
    } else {
        Err(ForgeError::BadUrl(format!("{field}: must be an https:// URL without credentials")))
    }
}

/// A repository path on a forge: `owner/name` on GitHub, `group/…/project` on GitLab; each
/// segment letters, digits, `.`, `_`, `-`, never `.`/`..`, so it can be put in a URL as is.
pub fn check_repo(kind: ForgeKind, repo: &str) -> Result<(), ForgeError> {
    let segs: Vec<&str> = repo.split('/').collect();
    let count_ok = match kind {
        ForgeKind::Github => segs.len() == 2,
        ForgeKind::Gitlab => (2..=20).contains(&segs.len()),
    };
    let segs_ok = segs.iter().all(|s| {
        !s.is_empty()
            && s.len() <= 100
            && *s != "."
            && *s != ".."
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if count_ok && segs_ok {
        Ok(())
    } else {
        let shape = if kind == ForgeKind::Github { "owner/name" } else { "group/project" };
        Err(ForgeError::Unknown(format!("forge_repo: {repo:?} is not a repository path like {shape}")))
    }
}

fn trim_base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Works out where a rig's pull requests go. The forge is the rig's `forge` setting, else the
/// one whose configured host (`git_auth.github_url` / `gitlab_instance_url`, default
/// `github.com` / `gitlab.com`) serves the rig's git URL; the repository is the rig's
/// `forge_repo`, else the git URL's path. The API base only ever comes from the town's
/// settings, never from the rig, so a rig cannot send the token to a host of its choosing.
pub fn forge_target(
    git_url: &str,
    forge: Option<ForgeKind>,
    forge_repo: Option<&str>,
    auth: &GitAuth,
    allow_loopback: bool,
) -> Result<ForgeTarget, ForgeError> {
    let github_base = auth.github_url.as_deref().unwrap_or("https://github.com");
    let gitlab_base = auth.gitlab_instance_url.as_deref().unwrap_or("https://gitlab.com");
    check_base_url("git_auth.github_url", github_base, allow_loopback)?;
    check_base_url("git_auth.gitlab_instance_url", gitlab_base, allow_loopback)?;
    let remote = git_host_and_path(git_url);
    let kind = match forge {
        Some(k) => k,
        None => match &remote {
            Some((host, _)) if Some(host.clone()) == host_of_base(github_base) => ForgeKind::Github,
            Some((host, _)) if Some(host.clone()) == host_of_base(gitlab_base) => ForgeKind::Gitlab,
            _ => {
                return Err(ForgeError::Unknown(format!(
                    "cannot tell which forge hosts {git_url:?}: set the rig's forge (github or gitlab) and forge_repo"
                )))
            }
        },
    };
    let repo = match (forge_repo, &remote) {
        (Some(r), _) => r.to_string(),
        (None, Some((_, path))) => path.clone(),
        (None, None) => return Err(ForgeError::Unknown(format!("{git_url:?} names no repository on a forge: set the rig's forge_repo"))),
    };
    check_repo(kind, &repo)?;
    let api_base = match kind {
        ForgeKind::Github if host_of_base(github_base).as_deref() == Some("github.com") => "https://api.github.com".to_string(),
        ForgeKind::Github => {
            let b = trim_base(github_base);
            if b.ends_with("/api/v3") {
                b.to_string()
            } else {
                format!("{b}/api/v3")
            }
        }
        ForgeKind::Gitlab => {
            let b = trim_base(gitlab_base);
            if b.ends_with("/api/v4") {
                b.to_string()
            } else {
                format!("{b}/api/v4")
            }
        }
    };
    Ok(ForgeTarget { kind, api_base, repo })
}

/// The headers that authenticate a request to the forge — only when `url` is on the target's
/// API base (same origin, under its path); anything else is refused and gets no token.
pub fn auth_headers(target: &ForgeTarget, url: &str, token: &str) -> Result<Vec<(String, String)>, ForgeError> {
    let base = format!("{}/", trim_base(&target.api_base));
    if origin_of(url).is_none() || origin_of(url) != origin_of(&target.api_base) || !url.starts_with(&base) || url.contains('@') {
        return Err(ForgeError::WrongHost(origin_of(url).unwrap_or_else(|| "an unparseable URL".into())));
    }
    let mut h = vec![("user-agent".to_string(), "gastown-refinery".to_string())];
    match target.kind {
        ForgeKind::Github => {
            h.push(("authorization".into(), format!("Bearer {token}")));
            h.push(("accept".into(), "application/vnd.github+json".into()));
            h.push(("x-github-api-version".into(), "2022-11-28".into()));
        }
        ForgeKind::Gitlab => h.push(("private-token".into(), token.to_string())),
    }
    Ok(h)
}

/// The token for the target's forge.
pub fn token_for(kind: ForgeKind, auth: &GitAuth) -> Result<&str, ForgeError> {
    let (t, name) = match kind {
        ForgeKind::Github => (auth.github_token.as_deref(), "git_auth.github_token"),
        ForgeKind::Gitlab => (auth.gitlab_token.as_deref(), "git_auth.gitlab_token"),
    };
    t.filter(|t| !t.is_empty()).ok_or(ForgeError::NoToken(name))
}

/// A commit status as the refinery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
}

impl ForgeTarget {
    fn project(&self) -> String {
        match self.kind {
            ForgeKind::Github => format!("{}/repos/{}", self.api_base, self.repo),
            ForgeKind::Gitlab => format!("{}/projects/{}", self.api_base, encode(&self.repo)),
        }
    }

    fn req(&self, method: &str, path: &str, body: Option<Value>) -> ForgeRequest {
        ForgeRequest { method: method.into(), url: format!("{}{path}", self.project()), body }
    }

    /// Opens a pull request (GitHub) / merge request (GitLab) from `head` into `base`.
    pub fn open_pr(&self, head: &str, base: &str, title: &str, body: &str) -> ForgeRequest {
        match self.kind {
            ForgeKind::Github => self.req(
                "POST",
                "/pulls",
                Some(json!({"title": title, "head": head, "base": base, "body": body, "maintainer_can_modify": false})),
            ),
            ForgeKind::Gitlab => self.req(
                "POST",
                "/merge_requests",
                Some(json!({"source_branch": head, "target_branch": base, "title": title, "description": body, "labels": PR_LABEL})),
            ),
        }
    }

    /// The open pull request from `head`, for when opening one says it already exists.
    pub fn find_open_pr(&self, head: &str) -> ForgeRequest {
        match self.kind {
            ForgeKind::Github => {
                let owner = self.repo.split('/').next().unwrap_or_default();
                self.req("GET", &format!("/pulls?state=open&head={}", encode(&format!("{owner}:{head}"))), None)
            }
            ForgeKind::Gitlab => self.req("GET", &format!("/merge_requests?state=opened&source_branch={}", encode(head)), None),
        }
    }

    /// Labels (GitHub sets them on the issue side of the PR; GitLab took them on creation).
    pub fn add_labels(&self, number: i64) -> Option<ForgeRequest> {
        match self.kind {
            ForgeKind::Github => Some(self.req("POST", &format!("/issues/{number}/labels"), Some(json!({"labels": [PR_LABEL]})))),
            ForgeKind::Gitlab => None,
        }
    }

    pub fn commit_status(&self, sha: &str, state: StatusState, description: &str) -> ForgeRequest {
        let description: String = description.chars().take(140).collect();
        match self.kind {
            ForgeKind::Github => {
                let s = match state {
                    StatusState::Pending => "pending",
                    StatusState::Success => "success",
                    StatusState::Failure => "failure",
                };
                self.req(
                    "POST",
                    &format!("/statuses/{sha}"),
                    Some(json!({"state": s, "context": STATUS_CONTEXT, "description": description})),
                )
            }
            ForgeKind::Gitlab => {
                let s = match state {
                    StatusState::Pending => "pending",
                    StatusState::Success => "success",
                    StatusState::Failure => "failed",
                };
                self.req("POST", &format!("/statuses/{sha}"), Some(json!({"state": s, "name": STATUS_CONTEXT, "description": description})))
            }
        }
    }

    pub fn get_pr(&self, number: i64) -> ForgeRequest {
        match self.kind {
            ForgeKind::Github => self.req("GET", &format!("/pulls/{number}"), None),
            ForgeKind::Gitlab => self.req("GET", &format!("/merge_requests/{number}"), None),
        }
    }

    /// Reviews (GitHub) / notes (GitLab), oldest first.
    pub fn list_reviews(&self, number: i64) -> ForgeRequest {
        match self.kind {
            ForgeKind::Github => self.req("GET", &format!("/pulls/{number}/reviews?per_page=100"), None),
            ForgeKind::Gitlab => {
                self.req("GET", &format!("/merge_requests/{number}/notes?sort=asc&order_by=created_at&per_page=100"), None)
            }
        }
    }

    /// GitHub's inline review comments (each names the review it belongs to); GitLab's diff
    /// notes are among the notes already.
    pub fn list_review_comments(&self, number: i64) -> Option<ForgeRequest> {
        match self.kind {
            ForgeKind::Github => Some(self.req("GET", &format!("/pulls/{number}/comments?per_page=100"), None)),
            ForgeKind::Gitlab => None,
        }
    }

    /// GitLab's approvals of a merge request (GitHub's are among the reviews).
    pub fn approvals(&self, number: i64) -> Option<ForgeRequest> {
        match self.kind {
            ForgeKind::Github => None,
            ForgeKind::Gitlab => Some(self.req("GET", &format!("/merge_requests/{number}/approvals"), None)),
        }
    }

    /// The checks on a commit: GitHub's combined status and its check runs; GitLab's pipelines
    /// of the merge request.
    pub fn checks(&self, number: i64, sha: &str) -> Vec<ForgeRequest> {
        match self.kind {
            ForgeKind::Github => {
                vec![
                    self.req("GET", &format!("/commits/{sha}/status"), None),
                    self.req("GET", &format!("/commits/{sha}/check-runs?per_page=100"), None),
                ]
            }
            ForgeKind::Gitlab => vec![self.req("GET", &format!("/merge_requests/{number}/pipelines"), None)],
        }
    }

    /// Merges the pull request (auto-merge): GitHub merges now; GitLab merges when its pipeline
    /// succeeds.
    pub fn merge(&self, number: i64, head_sha: &str) -> ForgeRequest {
        match self.kind {
            ForgeKind::Github => {
                self.req("PUT", &format!("/pulls/{number}/merge"), Some(json!({"sha": head_sha, "merge_method": "merge"})))
            }
            ForgeKind::Gitlab => self.req(
                "PUT",
                &format!("/merge_requests/{number}/merge"),
                Some(json!({"sha": head_sha, "merge_when_pipeline_succeeds": true})),
            ),
        }
    }
}

/// A pull request as the town records it on its merge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PullRequest {
    pub forge: ForgeKind,
    pub repo: String,
    pub number: i64,
    pub url: String,
    pub head_sha: String,
    /// open | merged | closed
    pub state: String,
}

/// What one read of a pull request says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PrSnapshot {
    pub number: i64,
    pub url: String,
    /// open | merged | closed
    pub state: String,
    pub head_sha: String,
    pub merge_sha: Option<String>,
    /// `Some(true)` when the forge says it conflicts with its base.
    pub conflict: Option<bool>,
    /// GitLab's pipeline on the head, when the merge request carries it.
    #[serde(default)]
    pub pipeline: Option<CheckResult>,
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Reads a pull request (GitHub `GET /pulls/:n`, `POST /pulls`) or merge request (GitLab).
pub fn parse_pr(kind: ForgeKind, v: &Value) -> Result<PrSnapshot, ForgeError> {
    let bad = || ForgeError::BadReply(crate::bounded::head(&v.to_string(), 300));
    match kind {
        ForgeKind::Github => {
            let number = v["number"].as_i64().ok_or_else(bad)?;
            let merged = v["merged"].as_bool().unwrap_or(false) || !v["merged_at"].is_null() && v.get("merged_at").is_some();
            let state = match (v["state"].as_str(), merged) {
                (_, true) => "merged",
                (Some("closed"), _) => "closed",
                _ => "open",
            };
            let conflict = match (v["mergeable"].as_bool(), v["mergeable_state"].as_str()) {
                (_, Some("dirty")) | (Some(false), _) => Some(true),
                (Some(true), _) => Some(false),
                _ => None,
            };
            Ok(PrSnapshot {
                number,
                url: s(&v["html_url"]).unwrap_or_default(),
                state: state.into(),
                head_sha: s(&v["head"]["sha"]).unwrap_or_default(),
                merge_sha: if merged { s(&v["merge_commit_sha"]) } else { None },
                conflict,
                pipeline: None,
            })
        }
        ForgeKind::Gitlab => {
            let number = v["iid"].as_i64().ok_or_else(bad)?;
            let state = match v["state"].as_str() {
                Some("merged") => "merged",
                Some("closed") => "closed",
                _ => "open",
            };
            let pipeline = v.get("head_pipeline").filter(|p| p.is_object()).map(|p| CheckResult {
                name: format!("pipeline #{}", p["id"].as_i64().unwrap_or_default()),
                state: CheckState::from_gitlab(p["status"].as_str().unwrap_or("")),
                url: s(&p["web_url"]),
                sha: s(&p["sha"]).unwrap_or_else(|| s(&v["sha"]).unwrap_or_default()),
            });
            Ok(PrSnapshot {
                number,
                url: s(&v["web_url"]).unwrap_or_default(),
                state: state.into(),
                head_sha: s(&v["sha"]).unwrap_or_default(),
                merge_sha: if state == "merged" { s(&v["merge_commit_sha"]).or_else(|| s(&v["squash_commit_sha"])) } else { None },
                conflict: v["has_conflicts"].as_bool(),
                pipeline,
            })
        }
    }
}

/// Everything one poll read about a pull request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PrObservation {
    pub pr: PrSnapshot,
    pub reviews: Vec<ReviewNote>,
    pub checks: Vec<CheckResult>,
    /// GitLab: the merge request is approved.
    #[serde(default)]
    pub approved: bool,
}

/// Reads GitHub reviews / GitLab notes (system notes skipped).
/// Appends each GitHub inline comment (`GET /pulls/{n}/comments`) to the review it belongs to
/// (`pull_request_review_id`), as `path:line` and its text, so a rework mail carries what the
/// reviewer wrote on the lines as well as the review's summary.
pub fn attach_review_comments(reviews: &mut [ReviewNote], comments: &Value) {
    for c in comments.as_array().into_iter().flatten() {
        let (Some(review_id), Some(body)) = (c["pull_request_review_id"].as_i64(), c["body"].as_str()) else { continue };
        let Some(r) = reviews.iter_mut().find(|r| r.id == review_id) else { continue };
        let path = c["path"].as_str().unwrap_or("?");
        let line = c["line"].as_i64().or_else(|| c["original_line"].as_i64()).map(|l| format!(":{l}")).unwrap_or_default();
        if !r.body.is_empty() {
            r.body.push_str("\n\n");
        }
        r.body.push_str(&format!("On {path}{line}:\n{body}"));
    }
}

pub fn parse_reviews(kind: ForgeKind, v: &Value) -> Vec<ReviewNote> {
    let items = v.as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|r| match kind {
            ForgeKind::Github => Some(ReviewNote {
                id: r["id"].as_i64()?,
                kind: ReviewKind::from_github(r["state"].as_str()?),
                author: s(&r["user"]["login"]).unwrap_or_default(),
                body: s(&r["body"]).unwrap_or_default(),
                commit_sha: s(&r["commit_id"]),
                url: s(&r["html_url"]),
            }),
            ForgeKind::Gitlab => {
                if r["system"].as_bool() == Some(true) {
                    return None;
                }
                Some(ReviewNote {
                    id: r["id"].as_i64()?,
                    kind: ReviewKind::Comment,
                    author: s(&r["author"]["username"]).unwrap_or_default(),
                    body: s(&r["body"]).unwrap_or_default(),
                    commit_sha: None,
                    url: None,
                })
            }
        })
        .collect()
}

/// Reads GitHub's combined status (`statuses`) or check runs (`check_runs`) of `sha`, or
/// GitLab's pipelines of a merge request (the newest only).
pub fn parse_checks(kind: ForgeKind, sha: &str, v: &Value) -> Vec<CheckResult> {
    let mut out = vec![];
    match kind {
        ForgeKind::Github => {
            for st in v["statuses"].as_array().into_iter().flatten() {
                out.push(CheckResult {
                    name: s(&st["context"]).unwrap_or_default(),
                    state: CheckState::from_github_status(st["state"].as_str().unwrap_or("")),
                    url: s(&st["target_url"]),
                    sha: sha.into(),
                });
            }
            for run in v["check_runs"].as_array().into_iter().flatten() {
                out.push(CheckResult {
                    name: s(&run["name"]).unwrap_or_default(),
                    state: CheckState::from_github_check(run["status"].as_str().unwrap_or(""), run["conclusion"].as_str()),
                    url: s(&run["details_url"]).or_else(|| s(&run["html_url"])),
                    sha: sha.into(),
                });
            }
        }
        ForgeKind::Gitlab => {
            if let Some(p) = v.as_array().and_then(|a| a.iter().max_by_key(|p| p["id"].as_i64().unwrap_or_default())) {
                out.push(CheckResult {
                    name: format!("pipeline #{}", p["id"].as_i64().unwrap_or_default()),
                    state: CheckState::from_gitlab(p["status"].as_str().unwrap_or("")),
                    url: s(&p["web_url"]),
                    sha: s(&p["sha"]).unwrap_or_else(|| sha.into()),
                });
            }
        }
    }
    out
}

/// Replaces every configured secret (forge tokens, the webhook secret, secret-looking env vars)
/// found in `text` with `[redacted]`: a polecat's summary goes on a public pull request.
pub fn redact(text: &str, cfg: &crate::config::TownConfig) -> String {
    let mut secrets: Vec<&str> = vec![];
    for t in [&cfg.git_auth.github_token, &cfg.git_auth.gitlab_token, &cfg.git_auth.webhook_secret].into_iter().flatten() {
        secrets.push(t);
    }
    for (k, v) in &cfg.env_vars {
        if crate::config::is_secret_key(k) {
            secrets.push(v);
        }
    }
    let mut out = text.to_string();
    for s in secrets.into_iter().filter(|s| s.len() >= 6) {
        out = out.replace(s, "[redacted]");
    }
    out
}

/// The pull request's description: the bead it delivers and the polecat's summary.
pub fn pr_body(bead_id: &str, title: &str, summary: Option<&str>, agent: &str, bead_link: Option<&str>) -> String {
    let summary = summary.map(|s| crate::bounded::head(s, 8000)).unwrap_or_else(|| "(no summary)".into());
    let bead = match bead_link {
        Some(l) => format!("[{bead_id}]({l})"),
        None => format!("`{bead_id}`"),
    };
    format!(
        "Delivers Gastown bead {bead}: {}\n\n### Summary\n\n{summary}\n\n---\nOpened by the Gastown refinery for polecat {agent} after the town's quality gates passed (status `{STATUS_CONTEXT}`).",
        crate::prompts::one_line(title)
    )
}

#[cfg(test)]
mod tests;
