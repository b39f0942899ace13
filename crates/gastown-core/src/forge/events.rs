//! What the forges tell the town about a pull request, from a webhook or a poll, as
//! [`PrSignal`]s: merged, closed, a review, a check, a conflict. Webhooks are verified here
//! (GitHub's `X-Hub-Signature-256` HMAC over the raw body, GitLab's `X-Gitlab-Token`), both with
//! constant-time comparisons, before a byte of the payload is read.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{ForgeError, ForgeKind, PrObservation, STATUS_CONTEXT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    Approved,
    ChangesRequested,
    /// A plain comment: a GitHub review in state `COMMENTED`, or any (non-system) GitLab note.
    Comment,
    /// Dismissed or pending reviews: nothing to act on.
    Other,
}

impl ReviewKind {
    pub fn from_github(state: &str) -> ReviewKind {
        match state.to_ascii_lowercase().as_str() {
            "approved" => ReviewKind::Approved,
            "changes_requested" => ReviewKind::ChangesRequested,
            "commented" => ReviewKind::Comment,
            _ => ReviewKind::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewNote {
    /// The forge's id of the review / note; the town acts on each at most once.
    pub id: i64,
    pub kind: ReviewKind,
    pub author: String,
    pub body: String,
    /// The head the review was given on (GitHub), when known.
    pub commit_sha: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Pending,
    Success,
    Failure,
}

impl CheckState {
    pub fn from_github_status(s: &str) -> CheckState {
        match s {
            "success" => CheckState::Success,
            "failure" | "error" => CheckState::Failure,
            _ => CheckState::Pending,
        }
    }

    pub fn from_github_check(status: &str, conclusion: Option<&str>) -> CheckState {
        match (status, conclusion) {
            ("completed", Some("success" | "neutral" | "skipped")) => CheckState::Success,
            ("completed", Some(_)) => CheckState::Failure,
            _ => CheckState::Pending,
        }
    }

    pub fn from_gitlab(s: &str) -> CheckState {
        match s {
            "success" => CheckState::Success,
            "failed" | "canceled" => CheckState::Failure,
            _ => CheckState::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CheckResult {
    pub name: String,
    pub state: CheckState,
    /// Where its log or details are.
    pub url: Option<String>,
    /// The commit it ran on.
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum PrSignal {
    Merged {
        merge_sha: Option<String>,
    },
    Closed,
    Review(ReviewNote),
    Check(CheckResult),
    /// The forge says the pull request conflicts with its base.
    Conflict,
    /// GitLab's approval (GitHub's arrives as a review).
    Approved,
}

/// Which pull request a webhook is about: by number, or (for checks and statuses) by the
/// commit they ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PrKey {
    pub forge: ForgeKind,
    pub repo: String,
    pub number: Option<i64>,
    pub sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookEvent {
    pub key: PrKey,
    pub signals: Vec<PrSignal>,
}

/// Checks a webhook's credential against the town's secret, in constant time: GitHub's
/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, GitLab's `X-Gitlab-Token`.
pub fn verify_webhook(kind: ForgeKind, secret: &str, credential: Option<&str>, body: &[u8]) -> bool {
    let Some(given) = credential.map(str::trim) else { return false };
    if secret.is_empty() {
        return false;
    }
    match kind {
        ForgeKind::Github => {
            let Some(hex) = given.strip_prefix("sha256=") else { return false };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
            mac.update(body);
            let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            expected.as_bytes().ct_eq(hex.to_ascii_lowercase().as_bytes()).into()
        }
        ForgeKind::Gitlab => secret.as_bytes().ct_eq(given.as_bytes()).into(),
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn failing_gitlab_jobs(v: &Value) -> Vec<String> {
    v["builds"].as_array().into_iter().flatten().filter(|b| b["status"].as_str() == Some("failed")).filter_map(|b| s(&b["name"])).collect()
}

/// Reads a verified webhook: `event` is `X-GitHub-Event` / `X-Gitlab-Event`. `Ok(None)` for
/// events the town does not act on (pings, pushes, other actions).
pub fn parse_webhook(kind: ForgeKind, event: &str, v: &Value) -> Result<Option<WebhookEvent>, ForgeError> {
    let bad = |what: &str| ForgeError::BadReply(format!("{event} webhook without {what}"));
    let key = |repo: Option<String>, number: Option<i64>, sha: Option<String>| -> Result<PrKey, ForgeError> {
        Ok(PrKey { forge: kind, repo: repo.ok_or_else(|| bad("a repository"))?, number, sha })
    };
    let one = |key: PrKey, sig: PrSignal| Ok(Some(WebhookEvent { key, signals: vec![sig] }));
    match kind {
        ForgeKind::Github => {
            let repo = s(&v["repository"]["full_name"]);
            let action = v["action"].as_str().unwrap_or_default();
            match event {
                "pull_request" if action == "closed" => {
                    let pr = &v["pull_request"];
                    let k = key(repo, pr["number"].as_i64(), None)?;
                    if pr["merged"].as_bool() == Some(true) {
                        one(k, PrSignal::Merged { merge_sha: s(&pr["merge_commit_sha"]) })
                    } else {
                        one(k, PrSignal::Closed)
                    }
                }
                "pull_request_review" if action == "submitted" => {
                    let r = &v["review"];
                    let note = ReviewNote {
                        id: r["id"].as_i64().ok_or_else(|| bad("a review id"))?,
                        kind: ReviewKind::from_github(r["state"].as_str().unwrap_or_default()),
                        author: s(&r["user"]["login"]).unwrap_or_default(),
                        body: s(&r["body"]).unwrap_or_default(),
                        commit_sha: s(&r["commit_id"]),
                        url: s(&r["html_url"]),
                    };
                    one(key(repo, v["pull_request"]["number"].as_i64(), None)?, PrSignal::Review(note))
                }
                "check_run" if action == "completed" => {
                    let c = &v["check_run"];
                    let sha = s(&c["head_sha"]).ok_or_else(|| bad("a head_sha"))?;
                    let check = CheckResult {
                        name: s(&c["name"]).unwrap_or_else(|| "check run".into()),
                        state: CheckState::from_github_check("completed", c["conclusion"].as_str()),
                        url: s(&c["details_url"]).or_else(|| s(&c["html_url"])),
                        sha: sha.clone(),
                    };
                    one(key(repo, c["pull_requests"][0]["number"].as_i64(), Some(sha))?, PrSignal::Check(check))
                }
                "check_suite" if action == "completed" => {
                    let c = &v["check_suite"];
                    let sha = s(&c["head_sha"]).ok_or_else(|| bad("a head_sha"))?;
                    let check = CheckResult {
                        name: s(&c["app"]["name"]).map(|a| format!("{a} check suite")).unwrap_or_else(|| "check suite".into()),
                        state: CheckState::from_github_check("completed", c["conclusion"].as_str()),
                        url: None,
                        sha: sha.clone(),
                    };
                    one(key(repo, c["pull_requests"][0]["number"].as_i64(), Some(sha))?, PrSignal::Check(check))
                }
                "status" => {
                    let sha = s(&v["sha"]).ok_or_else(|| bad("a sha"))?;
                    let check = CheckResult {
                        name: s(&v["context"]).unwrap_or_else(|| "status".into()),
                        state: CheckState::from_github_status(v["state"].as_str().unwrap_or_default()),
                        url: s(&v["target_url"]),
                        sha: sha.clone(),
                    };
                    one(key(repo, None, Some(sha))?, PrSignal::Check(check))
                }
                _ => Ok(None),
            }
        }
        ForgeKind::Gitlab => {
            let repo = s(&v["project"]["path_with_namespace"]);
            let attrs = &v["object_attributes"];
            match event {
                "Merge Request Hook" => {
                    let k = key(repo, attrs["iid"].as_i64(), None)?;
                    match attrs["action"].as_str().unwrap_or_default() {
                        "merge" => one(k, PrSignal::Merged { merge_sha: s(&attrs["merge_commit_sha"]) }),
                        "close" => one(k, PrSignal::Closed),
                        "approved" => one(k, PrSignal::Approved),
                        _ => Ok(None),
                    }
                }
                "Note Hook" if attrs["noteable_type"].as_str() == Some("MergeRequest") && attrs["system"].as_bool() != Some(true) => {
                    let note = ReviewNote {
                        id: attrs["id"].as_i64().ok_or_else(|| bad("a note id"))?,
                        kind: ReviewKind::Comment,
                        author: s(&v["user"]["username"]).unwrap_or_default(),
                        body: s(&attrs["note"]).unwrap_or_default(),
                        commit_sha: None,
                        url: s(&attrs["url"]),
                    };
                    one(key(repo, v["merge_request"]["iid"].as_i64(), None)?, PrSignal::Review(note))
                }
                "Pipeline Hook" => {
                    let sha = s(&attrs["sha"]).ok_or_else(|| bad("a sha"))?;
                    let id = attrs["id"].as_i64().unwrap_or_default();
                    let failed = failing_gitlab_jobs(v);
                    let name =
                        if failed.is_empty() { format!("pipeline #{id}") } else { format!("pipeline #{id} ({})", failed.join(", ")) };
                    let url = s(&attrs["url"]).or_else(|| s(&v["project"]["web_url"]).map(|w| format!("{w}/-/pipelines/{id}")));
                    let check = CheckResult {
                        name,
                        state: CheckState::from_gitlab(attrs["status"].as_str().unwrap_or_default()),
                        url,
                        sha: sha.clone(),
                    };
                    one(key(repo, v["merge_request"]["iid"].as_i64(), Some(sha))?, PrSignal::Check(check))
                }
                _ => Ok(None),
            }
        }
    }
}

/// What a poll's read of a pull request amounts to, in the same signals a webhook carries.
pub fn signals_from_observation(o: &PrObservation) -> Vec<PrSignal> {
    match o.pr.state.as_str() {
        "merged" => return vec![PrSignal::Merged { merge_sha: o.pr.merge_sha.clone() }],
        "closed" => return vec![PrSignal::Closed],
        _ => {}
    }
    let mut out: Vec<PrSignal> = o.reviews.iter().cloned().map(PrSignal::Review).collect();
    out.extend(o.checks.iter().chain(o.pr.pipeline.iter()).filter(|c| c.name != STATUS_CONTEXT).cloned().map(PrSignal::Check));
    if o.approved {
        out.push(PrSignal::Approved);
    }
    if o.pr.conflict == Some(true) {
        out.push(PrSignal::Conflict);
    }
    out
}

/// The fallback poll's interval: `base` while things change, doubling with each poll that
/// found nothing new, capped at 32 × base and at most 30 minutes (never below `base`).
pub fn pr_poll_delay_ms(base_secs: u32, unchanged_polls: i64) -> i64 {
    let base = base_secs.max(1) as i64 * 1000;
    let grown = base.saturating_mul(1 << unchanged_polls.clamp(0, 5));
    grown.min(30 * 60 * 1000).max(base)
}
