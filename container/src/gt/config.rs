//! The environment the container sets for every agent.
//!
//! Values are read lazily: a command only requires the variables it uses, and a
//! missing one is a usage error (exit 2) naming the variable. The agent token is
//! never printed, never put in argv, and never included in an error message.

use crate::gt::error::{GtError, GtResult};

pub const API_URL: &str = "GASTOWN_API_URL";
pub const AGENT_TOKEN: &str = "GASTOWN_AGENT_TOKEN";
pub const TOWN_ID: &str = "GASTOWN_TOWN_ID";
pub const RIG_ID: &str = "GASTOWN_RIG_ID";
pub const AGENT_ID: &str = "GASTOWN_AGENT_ID";
pub const AGENT_ROLE: &str = "GASTOWN_AGENT_ROLE";
pub const AGENT_NAME: &str = "GASTOWN_AGENT_NAME";
pub const BEAD_ID: &str = "GASTOWN_BEAD_ID";
pub const BRANCH: &str = "GASTOWN_BRANCH";
pub const WORKDIR: &str = "GASTOWN_WORKDIR";
pub const DEMO_DELAY_MS: &str = "GASTOWN_DEMO_DELAY_MS";

/// Reads an optional variable; empty counts as unset.
pub fn opt(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => None,
    }
}

/// Reads a required variable.
pub fn required(name: &str) -> GtResult<String> {
    opt(name).ok_or_else(|| {
        GtError::usage(format!(
            "{name} is not set; gt reads its configuration from the environment the Gastown container sets for every agent"
        ))
    })
}

/// Everything needed to talk to the API.
pub struct ApiConfig {
    pub base_url: String,
    pub token: String,
}

impl ApiConfig {
    pub fn from_env() -> GtResult<Self> {
        let base = required(API_URL)?;
        let base_url = base.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(GtError::usage(format!("{API_URL} must start with http:// or https:// (got {base_url:?})")));
        }
        let token = required(AGENT_TOKEN)?;
        let token = token.trim().to_string();
        if token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            // Never echo the value.
            return Err(GtError::usage(format!("{AGENT_TOKEN} contains characters that are not allowed in an HTTP header")));
        }
        Ok(Self { base_url, token })
    }
}

/// The ids that scope routes.
pub fn town() -> GtResult<String> {
    required(TOWN_ID)
}

pub fn agent() -> GtResult<String> {
    required(AGENT_ID)
}

/// The agent's rig; empty for the mayor.
pub fn rig_opt() -> Option<String> {
    opt(RIG_ID)
}

pub fn rig() -> GtResult<String> {
    opt(RIG_ID).ok_or_else(|| {
        GtError::usage(format!(
            "{RIG_ID} is empty: this command works inside a rig (the mayor has no rig; use `gt rigs`, `gt beads --rig`, `gt agents --rig` and `gt sling --rig`)"
        ))
    })
}

pub fn branch() -> GtResult<String> {
    let b = required(BRANCH)?;
    let b = b.trim().to_string();
    if b.starts_with('-') || b.contains("..") || b.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(GtError::usage(format!("{BRANCH} is not a valid branch name: {b:?}")));
    }
    Ok(b)
}

/// How long `gt` keeps retrying a request that may be repeated safely while the town is
/// unreachable or answers 5xx (seconds; `0` turns retrying off).
pub const RETRY_SECS: &str = "GASTOWN_GT_RETRY_SECS";

pub fn retry_secs() -> GtResult<u64> {
    match opt(RETRY_SECS) {
        None => Ok(120),
        Some(v) => v.trim().parse().map_err(|_| GtError::usage(format!("{RETRY_SECS} must be a number of seconds (got {v:?})"))),
    }
}

pub fn demo_delay_ms() -> GtResult<u64> {
    match opt(DEMO_DELAY_MS) {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| GtError::usage(format!("{DEMO_DELAY_MS} must be a number of milliseconds (got {v:?})"))),
    }
}
