//! The town configuration, as it travels in the body (`config`) of each request that needs it
//! (start, merge, merge-batch, push) — "config-on-request". The type is the shared
//! `gastown_protocol::ContainerTownConfig`: the Worker builds the very struct read here.
//!
//! It is parsed per request and handed down explicitly; nothing here is cached in global
//! state, so a config change in the Worker takes effect on the next request and two towns'
//! settings can never mix. Every field is optional so that older and newer Workers
//! interoperate, and a request without a config gets the defaults.

pub use gastown_protocol::ContainerTownConfig as TownConfig;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::MergeStrategy;

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
