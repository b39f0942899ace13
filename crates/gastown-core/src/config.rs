//! Town configuration: what the owner sets (agent runtime and model, env vars, git tokens,
//! refinery gates, capacity), how a PATCH merges into it, and how secrets are masked on the way
//! out. A masked value sent back unchanged keeps the stored secret, so a form can round-trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::model::AgentRole;
use crate::validate;

const MASK: &str = "****";
const MAX_ENV_VARS: usize = 100;
const MAX_ENV_VALUE: usize = 4 * 1024;
/// The resolved config travels to the container in the body of its requests.
const MAX_CONFIG_BYTES: usize = 32 * 1024;
const MAX_GATES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Built in, needs no LLM: makes a small real change, commits and calls `gt done`.
    #[default]
    Demo,
    Claude,
    Codex,
    Gemini,
    Opencode,
    Kilo,
    /// A command template from `agent.command`.
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MergeStrategy {
    #[default]
    Direct,
    /// Gate the branch merged with the target, then open a pull request (GitHub) / merge request
    /// (GitLab) for it and follow it to its end instead of pushing to the target.
    Pr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeChoice {
    pub runtime: Option<Runtime>,
    pub model: Option<String>,
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub runtime: Runtime,
    pub model: Option<String>,
    /// For `custom`: the command line; `{prompt_file}` and `{model}` are substituted.
    pub command: Option<String>,
    /// Keyed by rig id.
    pub rig_overrides: BTreeMap<String, RuntimeChoice>,
    /// Keyed by role name.
    pub role_overrides: BTreeMap<String, RuntimeChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct GitAuth {
    pub github_token: Option<String>,
    pub gitlab_token: Option<String>,
    pub gitlab_instance_url: Option<String>,
    /// GitHub Enterprise base URL. A token is only ever sent to its forge's configured host
    /// (`github.com` / `gitlab.com` unless set), never to any other.
    pub github_url: Option<String>,
    /// Verifies the forges' webhooks (GitHub's HMAC key, GitLab's token). Masked like the tokens;
    /// never sent to the container.
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RefineryConfig {
    /// Shell commands run in the merged tree; all must exit 0 before a push.
    pub gates: Vec<String>,
    pub gate_timeout_secs: u32,
    pub merge_strategy: MergeStrategy,
    /// Merge requests of one rig merged as one train with one gate run (1: one at a time).
    pub max_batch: u32,
    /// With `pr`: how often an open pull request is polled when no webhook arrives (backing off
    /// while nothing changes).
    pub pr_poll_secs: u32,
    /// With `pr`: merge an approved pull request whose checks are green.
    pub auto_merge: bool,
}

/// The shortest fallback poll interval a town may set.
pub const MIN_PR_POLL_SECS: u32 = 2;

/// The largest merge train a town may configure.
pub const MAX_MERGE_BATCH: u32 = 50;

impl RefineryConfig {
    /// How long a running merge may take before it is presumed stuck: every gate's timeout for
    /// each gate run a train may need (the whole train, then halving it to find a failing
    /// branch), plus the merge itself, with two minutes of slack.
    pub fn merge_timeout_ms(&self) -> i64 {
        let gates = self.gate_timeout_secs as i64 * self.gates.len() as i64 * self.max_gate_runs();
        (gates + self.gate_timeout_secs as i64 + 120) * 1000
    }

    /// Gate runs of one train at most: one for the whole train and one per halving.
    pub fn max_gate_runs(&self) -> i64 {
        let n = self.max_batch.max(1);
        1 + (32 - (n - 1).leading_zeros()) as i64
    }
}

impl Default for RefineryConfig {
    fn default() -> Self {
        RefineryConfig {
            gates: vec![],
            gate_timeout_secs: 600,
            merge_strategy: MergeStrategy::Direct,
            max_batch: 8,
            pr_poll_secs: 60,
            auto_merge: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    pub max_polecats_per_rig: u32,
    pub max_polecats_per_town: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { max_polecats_per_rig: 4, max_polecats_per_town: 8 }
    }
}

/// How unacknowledged escalations are chased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct EscalationConfig {
    /// An unacknowledged escalation is raised again (severity bumped) after this long.
    pub reescalate_after_secs: u32,
    /// At most this many times.
    pub max_reescalations: u32,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig { reescalate_after_secs: 4 * 3600, max_reescalations: 3 }
    }
}

/// The witness's thresholds (all in seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// How often the witness looks while work is active (an idle town is not looked at).
    pub tick_secs: u32,
    /// A working agent with no activity (no `gt` call, no terminal output) this long is stalled.
    pub stall_after_secs: u32,
    /// A stalled agent still silent this long after its nudge is escalated.
    pub escalate_stall_after_secs: u32,
    /// Work on a hook with nobody running it this long is a GUPP violation (re-dispatched).
    pub gupp_after_secs: u32,
    /// A run that has not reported starting this long after dispatch is started again.
    pub start_timeout_secs: u32,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            tick_secs: 30,
            stall_after_secs: 600,
            escalate_stall_after_secs: 600,
            gupp_after_secs: 1800,
            start_timeout_secs: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TownConfig {
    pub agent: AgentConfig,
    pub env_vars: BTreeMap<String, String>,
    pub git_auth: GitAuth,
    pub refinery: RefineryConfig,
    pub capacity: Capacity,
    pub escalations: EscalationConfig,
    pub witness: WitnessConfig,
}

/// `Some(None)` for an explicit JSON null (delete), `None` when the key is absent (keep).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AgentPatch {
    pub runtime: Option<Runtime>,
    #[serde(deserialize_with = "nullable")]
    pub model: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub command: Option<Option<String>>,
    pub rig_overrides: Option<BTreeMap<String, Option<RuntimeChoice>>>,
    pub role_overrides: Option<BTreeMap<String, Option<RuntimeChoice>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct GitAuthPatch {
    #[serde(deserialize_with = "nullable")]
    pub github_token: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub gitlab_token: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub gitlab_instance_url: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub github_url: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub webhook_secret: Option<Option<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RefineryPatch {
    pub gates: Option<Vec<String>>,
    pub gate_timeout_secs: Option<u32>,
    pub merge_strategy: Option<MergeStrategy>,
    pub max_batch: Option<u32>,
    pub pr_poll_secs: Option<u32>,
    pub auto_merge: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CapacityPatch {
    pub max_polecats_per_rig: Option<u32>,
    pub max_polecats_per_town: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct EscalationPatch {
    pub reescalate_after_secs: Option<u32>,
    pub max_reescalations: Option<u32>,
}

/// A partial update. Maps merge key by key; `null` deletes a key or clears a field.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ConfigPatch {
    pub agent: Option<AgentPatch>,
    pub env_vars: Option<BTreeMap<String, Option<String>>>,
    pub git_auth: Option<GitAuthPatch>,
    pub refinery: Option<RefineryPatch>,
    pub capacity: Option<CapacityPatch>,
    pub escalations: Option<EscalationPatch>,
    pub witness: Option<WitnessPatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct WitnessPatch {
    pub tick_secs: Option<u32>,
    pub stall_after_secs: Option<u32>,
    pub escalate_stall_after_secs: Option<u32>,
    pub gupp_after_secs: Option<u32>,
    pub start_timeout_secs: Option<u32>,
}

pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "key", "auth", "credential", "private"].iter().any(|w| k.contains(w))
}

/// `****` plus the last four characters — only when the secret is long enough that four
/// characters give nothing useful away.
pub fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n >= 12 {
        let tail: String = secret.chars().skip(n - 4).collect();
        format!("{MASK}{tail}")
    } else {
        MASK.to_string()
    }
}

/// Resolves an incoming secret against the stored one: the stored value's own mask keeps it;
/// any other masked-looking value is refused rather than stored as a literal `****…`.
fn incoming_secret(field: &str, incoming: String, stored: Option<&String>) -> CoreResult<String> {
    if incoming.starts_with(MASK) {
        return match stored {
            Some(s) if mask(s) == incoming => Ok(s.clone()),
            _ => Err(CoreError::bad(field, "looks like a masked value but does not match the stored secret; send the real value")),
        };
    }
    Ok(incoming)
}

fn merge_choices(target: &mut BTreeMap<String, RuntimeChoice>, patch: BTreeMap<String, Option<RuntimeChoice>>) {
    for (k, v) in patch {
        match v {
            Some(c) => {
                target.insert(k, c);
            }
            None => {
                target.remove(&k);
            }
        }
    }
}

impl TownConfig {
    pub fn apply_patch(&mut self, patch: ConfigPatch) -> CoreResult<()> {
        self.apply_patch_in(patch, false)
    }

    /// `allow_loopback`: a development deployment, where forge URLs may be `http://` to a
    /// loopback address (the tests' stand-in forges).
    pub fn apply_patch_in(&mut self, patch: ConfigPatch, allow_loopback: bool) -> CoreResult<()> {
        if let Some(a) = patch.agent {
            if let Some(r) = a.runtime {
                self.agent.runtime = r;
            }
            if let Some(m) = a.model {
                self.agent.model = m;
            }
            if let Some(c) = a.command {
                self.agent.command = c;
            }
            if let Some(o) = a.rig_overrides {
                merge_choices(&mut self.agent.rig_overrides, o);
            }
            if let Some(o) = a.role_overrides {
                for k in o.keys() {
                    AgentRole::parse(&format!("agent.role_overrides.{k}"), k)?;
                }
                merge_choices(&mut self.agent.role_overrides, o);
            }
        }
        if let Some(env) = patch.env_vars {
            for (k, v) in env {
                match v {
                    None => {
                        self.env_vars.remove(&k);
                    }
                    Some(v) => {
                        validate::env_key(&k)?;
                        let field = format!("env_vars.{k}");
                        let v = if is_secret_key(&k) { incoming_secret(&field, v, self.env_vars.get(&k))? } else { v };
                        self.env_vars.insert(k, v);
                    }
                }
            }
        }
        if let Some(g) = patch.git_auth {
            if let Some(t) = g.github_token {
                self.git_auth.github_token = match t {
                    Some(t) => Some(incoming_secret("git_auth.github_token", t, self.git_auth.github_token.as_ref())?),
                    None => None,
                };
            }
            if let Some(t) = g.gitlab_token {
                self.git_auth.gitlab_token = match t {
                    Some(t) => Some(incoming_secret("git_auth.gitlab_token", t, self.git_auth.gitlab_token.as_ref())?),
                    None => None,
                };
            }
            if let Some(u) = g.gitlab_instance_url {
                self.git_auth.gitlab_instance_url = u;
            }
            if let Some(u) = g.github_url {
                self.git_auth.github_url = u;
            }
            if let Some(t) = g.webhook_secret {
                self.git_auth.webhook_secret = match t {
                    Some(t) => Some(incoming_secret("git_auth.webhook_secret", t, self.git_auth.webhook_secret.as_ref())?),
                    None => None,
                };
            }
        }
        if let Some(r) = patch.refinery {
            if let Some(g) = r.gates {
                self.refinery.gates = g;
            }
            if let Some(t) = r.gate_timeout_secs {
                self.refinery.gate_timeout_secs = t;
            }
            if let Some(m) = r.merge_strategy {
                self.refinery.merge_strategy = m;
            }
            if let Some(n) = r.max_batch {
                self.refinery.max_batch = n;
            }
            if let Some(n) = r.pr_poll_secs {
                self.refinery.pr_poll_secs = n;
            }
            if let Some(b) = r.auto_merge {
                self.refinery.auto_merge = b;
            }
        }
        if let Some(c) = patch.capacity {
            if let Some(n) = c.max_polecats_per_rig {
                self.capacity.max_polecats_per_rig = n;
            }
            if let Some(n) = c.max_polecats_per_town {
                self.capacity.max_polecats_per_town = n;
            }
        }
        if let Some(e) = patch.escalations {
            if let Some(n) = e.reescalate_after_secs {
                self.escalations.reescalate_after_secs = n;
            }
            if let Some(n) = e.max_reescalations {
                self.escalations.max_reescalations = n;
            }
        }
        if let Some(w) = patch.witness {
            let t = &mut self.witness;
            for (field, v) in [
                (&mut t.tick_secs, w.tick_secs),
                (&mut t.stall_after_secs, w.stall_after_secs),
                (&mut t.escalate_stall_after_secs, w.escalate_stall_after_secs),
                (&mut t.gupp_after_secs, w.gupp_after_secs),
                (&mut t.start_timeout_secs, w.start_timeout_secs),
            ] {
                if let Some(v) = v {
                    *field = v;
                }
            }
        }
        self.validate_in(allow_loopback)
    }

    pub fn validate(&self) -> CoreResult<()> {
        self.validate_in(false)
    }

    pub fn validate_in(&self, allow_loopback: bool) -> CoreResult<()> {
        if self.env_vars.len() > MAX_ENV_VARS {
            return Err(CoreError::bad("env_vars", format!("at most {MAX_ENV_VARS} variables")));
        }
        for (k, v) in &self.env_vars {
            validate::env_key(k)?;
            validate::optional_text(&format!("env_vars.{k}"), Some(v), MAX_ENV_VALUE)?;
        }
        for (f, t) in [("git_auth.github_token", &self.git_auth.github_token), ("git_auth.gitlab_token", &self.git_auth.gitlab_token)] {
            if let Some(t) = t {
                validate::text(f, t, 4096)?;
                if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(CoreError::bad(f, "must not contain whitespace"));
                }
            }
        }
        for (field, url) in
            [("git_auth.gitlab_instance_url", &self.git_auth.gitlab_instance_url), ("git_auth.github_url", &self.git_auth.github_url)]
        {
            if let Some(u) = url {
                crate::forge::check_base_url(field, u, allow_loopback).map_err(|e| CoreError::bad_request(e.to_string()))?;
            }
        }
        if let Some(s) = &self.git_auth.webhook_secret {
            if s.len() < 16 || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CoreError::bad("git_auth.webhook_secret", "must be 16-256 characters without whitespace"));
            }
        }
        if !(MIN_PR_POLL_SECS..=3600).contains(&self.refinery.pr_poll_secs) {
            return Err(CoreError::bad("refinery.pr_poll_secs", format!("must be between {MIN_PR_POLL_SECS} and 3600")));
        }
        validate::optional_text("agent.model", self.agent.model.as_deref(), 200)?;
        validate::optional_text("agent.command", self.agent.command.as_deref(), 4096)?;
        if self.agent.runtime == Runtime::Custom && self.agent.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(CoreError::bad("agent.command", "is required when agent.runtime is \"custom\""));
        }
        if self.refinery.gates.len() > MAX_GATES {
            return Err(CoreError::bad("refinery.gates", format!("at most {MAX_GATES} gates")));
        }
        for g in &self.refinery.gates {
            validate::text("refinery.gates", g, 4096)?;
        }
        if !(10..=7200).contains(&self.refinery.gate_timeout_secs) {
            return Err(CoreError::bad("refinery.gate_timeout_secs", "must be between 10 and 7200"));
        }
        if !(1..=MAX_MERGE_BATCH).contains(&self.refinery.max_batch) {
            return Err(CoreError::bad("refinery.max_batch", format!("must be between 1 and {MAX_MERGE_BATCH}")));
        }
        if !(1..=50).contains(&self.capacity.max_polecats_per_rig) {
            return Err(CoreError::bad("capacity.max_polecats_per_rig", "must be between 1 and 50"));
        }
        if !(1..=200).contains(&self.capacity.max_polecats_per_town) {
            return Err(CoreError::bad("capacity.max_polecats_per_town", "must be between 1 and 200"));
        }
        if !(1..=7 * 86_400).contains(&self.escalations.reescalate_after_secs) {
            return Err(CoreError::bad("escalations.reescalate_after_secs", "must be between 1 and 604800"));
        }
        if self.escalations.max_reescalations > 10 {
            return Err(CoreError::bad("escalations.max_reescalations", "must be at most 10"));
        }
        let w = &self.witness;
        for (name, v) in [
            ("witness.tick_secs", w.tick_secs),
            ("witness.stall_after_secs", w.stall_after_secs),
            ("witness.escalate_stall_after_secs", w.escalate_stall_after_secs),
            ("witness.gupp_after_secs", w.gupp_after_secs),
            ("witness.start_timeout_secs", w.start_timeout_secs),
        ] {
            if !(1..=7 * 86_400).contains(&v) {
                return Err(CoreError::bad(name, "must be between 1 and 604800 seconds"));
            }
        }
        let size = serde_json::to_string(self).map(|s| s.len()).unwrap_or(0);
        if size > MAX_CONFIG_BYTES {
            return Err(CoreError::bad("config", format!("is {size} bytes; the limit is {MAX_CONFIG_BYTES}")));
        }
        Ok(())
    }

    /// The view the API returns: every secret masked.
    pub fn masked(&self) -> TownConfig {
        let mut c = self.clone();
        for (k, v) in c.env_vars.iter_mut() {
            if is_secret_key(k) {
                *v = mask(v);
            }
        }
        c.git_auth.github_token = c.git_auth.github_token.as_deref().map(mask);
        c.git_auth.gitlab_token = c.git_auth.gitlab_token.as_deref().map(mask);
        c.git_auth.webhook_secret = c.git_auth.webhook_secret.as_deref().map(mask);
        c
    }

    /// Runtime, model and command for an agent: role override, then rig override, then the town
    /// default; each field falls through independently.
    pub fn resolve_runtime(&self, rig_id: Option<&str>, role: AgentRole) -> RuntimeChoice {
        let role_o = self.agent.role_overrides.get(role.as_str());
        let rig_o = rig_id.and_then(|r| self.agent.rig_overrides.get(r));
        let pick = |f: fn(&RuntimeChoice) -> Option<String>| role_o.and_then(f).or_else(|| rig_o.and_then(f));
        RuntimeChoice {
            runtime: Some(role_o.and_then(|c| c.runtime).or_else(|| rig_o.and_then(|c| c.runtime)).unwrap_or(self.agent.runtime)),
            model: pick(|c| c.model.clone()).or_else(|| self.agent.model.clone()),
            command: pick(|c| c.command.clone()).or_else(|| self.agent.command.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: serde_json::Value) -> ConfigPatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn masks_secrets_and_keeps_them_on_round_trip() {
        let mut c = TownConfig::default();
        c.apply_patch(patch(json!({
            "env_vars": {"OPENAI_API_KEY": "sk-abcdefghijklmnop", "LOG_LEVEL": "debug", "SHORT_TOKEN": "abc"},
            "git_auth": {"github_token": "ghp_0123456789abcdefWXYZ"}
        })))
        .unwrap();
        let m = c.masked();
        assert_eq!(m.env_vars["OPENAI_API_KEY"], "****mnop");
        assert_eq!(m.env_vars["LOG_LEVEL"], "debug");
        assert_eq!(m.env_vars["SHORT_TOKEN"], "****");
        assert_eq!(m.git_auth.github_token.as_deref(), Some("****WXYZ"));
        // The masked view sent back as-is changes nothing.
        let round = serde_json::to_value(&m).unwrap();
        let mut c2 = c.clone();
        c2.apply_patch(patch(json!({"env_vars": round["env_vars"], "git_auth": {"github_token": "****WXYZ"}}))).unwrap();
        assert_eq!(c2, c);
        // A mask that does not match the stored secret is refused, not stored.
        let err = c2.apply_patch(patch(json!({"git_auth": {"github_token": "****ZZZZ"}}))).unwrap_err();
        assert!(err.to_string().starts_with("git_auth.github_token"), "{err}");
    }

    #[test]
    fn patch_merges_and_null_deletes() {
        let mut c = TownConfig::default();
        c.apply_patch(patch(json!({"env_vars": {"A": "1", "B": "2"}, "agent": {"model": "m1"}}))).unwrap();
        c.apply_patch(patch(json!({"env_vars": {"A": null, "C": "3"}, "agent": {"model": null, "runtime": "claude"}}))).unwrap();
        assert_eq!(c.env_vars.keys().collect::<Vec<_>>(), vec!["B", "C"]);
        assert_eq!(c.agent.model, None);
        assert_eq!(c.agent.runtime, Runtime::Claude);
    }

    #[test]
    fn a_merge_train_may_take_a_gate_run_per_halving() {
        let r = |max_batch| RefineryConfig { gates: vec!["a".into(), "b".into()], gate_timeout_secs: 100, max_batch, ..Default::default() };
        assert_eq!(r(1).max_gate_runs(), 1);
        assert_eq!(r(1).merge_timeout_ms(), (100 * 3 + 120) * 1000, "one at a time: as before trains");
        assert_eq!((r(2).max_gate_runs(), r(8).max_gate_runs(), r(9).max_gate_runs(), r(50).max_gate_runs()), (2, 4, 5, 7));
        assert_eq!(r(8).merge_timeout_ms(), (100 * 2 * 4 + 100 + 120) * 1000);
    }

    #[test]
    fn validation_names_fields() {
        let cases = [
            (json!({"env_vars": {"GASTOWN_X": "1"}}), "env_vars.GASTOWN_X"),
            (json!({"env_vars": {"1BAD": "1"}}), "env_vars.1BAD"),
            (json!({"capacity": {"max_polecats_per_rig": 0}}), "capacity.max_polecats_per_rig"),
            (json!({"refinery": {"gate_timeout_secs": 1}}), "refinery.gate_timeout_secs"),
            (json!({"refinery": {"max_batch": 0}}), "refinery.max_batch"),
            (json!({"refinery": {"max_batch": 51}}), "refinery.max_batch"),
            (json!({"agent": {"runtime": "custom"}}), "agent.command"),
            (json!({"agent": {"role_overrides": {"janitor": {"model": "x"}}}}), "agent.role_overrides.janitor"),
            (json!({"git_auth": {"gitlab_instance_url": "http://x"}}), "git_auth.gitlab_instance_url"),
        ];
        for (p, field) in cases {
            let mut c = TownConfig::default();
            let err = c.apply_patch(patch(p.clone())).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().starts_with(field), "{p}: {err}");
        }
        assert!(serde_json::from_value::<ConfigPatch>(json!({"bogus": 1})).is_err());
        assert!(serde_json::from_value::<ConfigPatch>(json!({"agent": {"runtime": "gpt"}})).is_err());
    }

    #[test]
    fn runtime_resolution_prefers_role_then_rig_then_town() {
        let mut c = TownConfig::default();
        c.apply_patch(patch(json!({"agent": {
            "runtime": "claude", "model": "town-model",
            "rig_overrides": {"rig1": {"runtime": "codex", "model": "rig-model"}},
            "role_overrides": {"refinery": {"model": "refinery-model"}}
        }})))
        .unwrap();
        let r = c.resolve_runtime(Some("rig1"), AgentRole::Polecat);
        assert_eq!((r.runtime, r.model.as_deref()), (Some(Runtime::Codex), Some("rig-model")));
        let r = c.resolve_runtime(Some("rig1"), AgentRole::Refinery);
        assert_eq!((r.runtime, r.model.as_deref()), (Some(Runtime::Codex), Some("refinery-model")));
        let r = c.resolve_runtime(Some("other"), AgentRole::Polecat);
        assert_eq!((r.runtime, r.model.as_deref()), (Some(Runtime::Claude), Some("town-model")));
        assert_eq!(TownConfig::default().resolve_runtime(None, AgentRole::Mayor).runtime, Some(Runtime::Demo));
    }
}
