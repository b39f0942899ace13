//! The town configuration that travels with every request in the
//! `X-Town-Config` header ("config-on-request").
//!
//! It is parsed per request and handed down explicitly; nothing here is cached
//! in global state, so a config change in the Worker takes effect on the next
//! request and two towns' settings can never mix. Every field is optional so
//! that older and newer Workers interoperate.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::git::{GitAuth, MergeStrategy};

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct TownConfig {
    /// Extra environment for every agent and every quality gate.
    pub env_vars: BTreeMap<String, String>,
    pub git_auth: GitAuth,
    pub agent: AgentConfig,
    pub refinery: RefineryConfig,
    pub capacity: CapacityConfig,
    /// Commit email template for agents; `{name}` becomes the agent's slug.
    /// Default `<slug>@gastown.local`.
    pub git_author_email: Option<String>,
}

// Env vars often hold secrets: show their names only.
impl fmt::Debug for TownConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownConfig")
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("git_auth", &self.git_auth)
            .field("agent", &self.agent)
            .field("refinery", &self.refinery)
            .field("capacity", &self.capacity)
            .field("git_author_email", &self.git_author_email)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Runtime name (`custom` uses `command`).
    pub runtime: Option<String>,
    pub model: Option<String>,
    /// Argv for the `custom` runtime.
    pub command: Option<Vec<String>>,
    /// Command line for the `custom` runtime (`{prompt_file}`, `{model}` placeholders).
    pub command_template: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RefineryConfig {
    /// Quality gates (shell command lines) run before a merge is pushed.
    pub gates: Vec<String>,
    pub gate_timeout_secs: Option<u64>,
    pub merge_strategy: MergeStrategy,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CapacityConfig {
    /// Agents running at once in this container (capped by the server flag).
    pub max_agents: Option<usize>,
    pub max_polecats_per_rig: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_optional() {
        let c: TownConfig = serde_json::from_str("{}").unwrap();
        assert!(c.env_vars.is_empty());
        let c: TownConfig = serde_json::from_str(
            r#"{"env_vars":{"A":"1"},"git_auth":{"github_token":"tok"},
                "agent":{"runtime":"custom","command":["sh"]},
                "refinery":{"gates":["true"],"merge_strategy":"pr"},
                "capacity":{"max_agents":2},"unknown_future_field":true}"#,
        )
        .unwrap();
        assert_eq!(c.refinery.merge_strategy, MergeStrategy::PullRequest);
        assert_eq!(c.capacity.max_agents, Some(2));
        let shown = format!("{c:?}");
        assert!(!shown.contains("tok\""), "{shown}");
        assert!(!shown.contains("\"1\""), "{shown}");
    }
}
