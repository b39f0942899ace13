//! The requests the Worker sends to the container and the replies it reads back, as the one
//! type both sides use: the Worker serialises the requests and the container deserialises the
//! same structs (and the other way round for the replies), so a renamed or retyped field breaks
//! the build instead of a dispatch.
//!
//! The town config travels in the body (`config`) of each request that needs it — never in a
//! header: header values must be ASCII, and a non-ASCII value (an env var, say) once made the
//! runtime log the whole header, tokens unmasked. Requests that need no config omit it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An agent's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Mayor,
    Polecat,
    Refinery,
    Witness,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mayor => "mayor",
            Role::Polecat => "polecat",
            Role::Refinery => "refinery",
            Role::Witness => "witness",
        }
    }
}

/// How the refinery lands a branch: `Direct` pushes the gated merge to the target;
/// `PullRequest` only gates the branch merged with the target and reports it `gated`, and the
/// town opens the pull request on the forge. On the wire: `direct` / `pull_request` (`pr` is
/// read too: the town's own config spells it so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    #[default]
    Direct,
    #[serde(alias = "pr")]
    PullRequest,
}

/// The part of the town config the container acts on — nothing else crosses (the webhook
/// secret, witness timings, … stay in the town). Every field is optional so that a request
/// without a config, or from an older Worker, still parses.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct ContainerTownConfig {
    /// Extra environment for every agent and every quality gate.
    pub env_vars: BTreeMap<String, String>,
    pub git_auth: GitAuth,
    pub agent: AgentConfig,
    pub refinery: RefineryConfig,
    pub capacity: CapacityConfig,
}

// Env vars often hold secrets: show their names only.
impl fmt::Debug for ContainerTownConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerTownConfig")
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("git_auth", &self.git_auth)
            .field("agent", &self.agent)
            .field("refinery", &self.refinery)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Git hosting tokens. A token goes only to its forge's host (see the container's credential
/// helper); the base URLs say which host that is.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct GitAuth {
    pub github_token: Option<String>,
    pub gitlab_token: Option<String>,
    /// Self-hosted GitLab base URL. Default `https://gitlab.com`.
    pub gitlab_instance_url: Option<String>,
    /// GitHub Enterprise base URL. Default `https://github.com`.
    pub github_url: Option<String>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |t: &Option<String>| t.as_ref().map(|_| "[redacted]");
        f.debug_struct("GitAuth")
            .field("github_token", &shown(&self.github_token))
            .field("gitlab_token", &shown(&self.gitlab_token))
            .field("gitlab_instance_url", &self.gitlab_instance_url)
            .field("github_url", &self.github_url)
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct AgentConfig {
    /// Runtime name (`demo`, `claude`, …, `custom`); a start request's own `runtime` wins.
    pub runtime: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct RefineryConfig {
    /// Quality gates (shell command lines) run before a merge is pushed.
    pub gates: Vec<String>,
    pub gate_timeout_secs: Option<u64>,
    pub merge_strategy: MergeStrategy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct CapacityConfig {
    /// Agents running at once in this container (capped by the server flag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_agents: Option<u32>,
    pub max_polecats_per_rig: Option<u32>,
}

/// `POST /agents/start`: start one agent run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StartAgentRequest {
    pub agent_id: String,
    pub town_id: String,
    /// The mayor has no rig: the town sends `town`, the container keys its directory by agent.
    pub rig_id: String,
    pub role: Role,
    pub name: String,
    #[serde(default)]
    pub bead_id: Option<String>,
    #[serde(default)]
    pub git_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    /// GASTOWN_API_URL, GASTOWN_AGENT_TOKEN (the agent JWT), …
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Argv to run; wins over `runtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    /// The town's spawn epoch for this run; lifecycle reports carry it back. Never negative.
    #[serde(default)]
    pub epoch: Option<u64>,
    /// The initial prompt: written to `.gastown/prompt.md` and handed to the CLI.
    #[serde(default)]
    pub prompt: Option<String>,
    /// For runtime `custom`: a command line with `{prompt_file}` and `{model}` placeholders.
    #[serde(default)]
    pub command_template: Option<String>,
    /// The town config for this run (absent: defaults).
    #[serde(default)]
    pub config: Option<ContainerTownConfig>,
}

/// `POST /git/merge-batch`: a merge train of one rig and target branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeBatchRequest {
    pub rig_id: String,
    pub git_url: String,
    /// In queue order: each is merged on top of the ones before it.
    pub branches: Vec<String>,
    pub target_branch: String,
    /// Defaults to the config's refinery gates.
    #[serde(default)]
    pub gates: Option<Vec<String>>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Defaults to the config's strategy (a rig may override the town's).
    #[serde(default)]
    pub strategy: Option<MergeStrategy>,
    #[serde(default)]
    pub config: Option<ContainerTownConfig>,
}

/// `POST /git/push`: `gt done`, relayed by the town after it checked the agent's token and
/// hook — push the agent's own branch for its hooked bead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushRequest {
    pub rig_id: String,
    pub git_url: String,
    pub agent_id: String,
    pub agent_name: String,
    pub bead_id: String,
    pub branch: String,
    #[serde(default)]
    pub config: Option<ContainerTownConfig>,
}

/// `POST /git/check`: can the repository be reached with the town's credentials?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CheckRequest {
    pub git_url: String,
    #[serde(default)]
    pub config: Option<ContainerTownConfig>,
}

/// `POST /agents/{id}/stop` (an empty body is read as the default: stop now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct StopRequest {
    /// How long the process has between SIGHUP and SIGKILL (capped by the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_secs: Option<u64>,
    /// Stop only after this long (at most a minute), and only the run of `epoch`: the town ends
    /// an agent's run after `gt done`, leaving an interactive CLI a moment to finish its turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// `POST /agents/{id}/nudge`: a one-line notice typed into the agent's terminal at a safe
/// moment; a repeated `key` is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NudgeRequest {
    pub key: String,
    pub text: String,
}

// The replies the Worker reads, as the `data` of the container's `{"success":true,"data":…}`.

/// Where an agent run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Running,
    /// A stop was requested and the process has not exited yet.
    Stopping,
    Exited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The process ended on its own.
    Exited,
    /// It ended within the grace period after a stop request (SIGHUP).
    Stopped,
    /// It had to be killed (SIGKILL) after the grace period.
    Killed,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: ExitReason,
    pub spawn_epoch: u64,
    pub exited_at_ms: u64,
}

/// One agent run: `GET /sessions` lists them, `/agents/{id}/status` and `/stop` answer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentSnapshot {
    pub agent_id: String,
    pub name: String,
    pub role: String,
    pub town_id: String,
    pub rig_id: String,
    pub bead_id: Option<String>,
    pub status: AgentState,
    pub spawn_epoch: u64,
    pub pid: i32,
    pub cwd: String,
    pub started_at_ms: u64,
    pub output_bytes: u64,
    pub exit: Option<ExitInfo>,
    /// The last lines its terminal shows, as plain text, while it runs (the witness quotes them
    /// when an agent sits silent, e.g. at a prompt nobody answers).
    pub screen: Option<String>,
    /// How many times the screen was seen to change, counters and spinners aside: an agent
    /// whose TUI only ticks a clock or a spinner (retrying, waiting at a prompt) is not working.
    pub screen_changes: u64,
}

impl AgentSnapshot {
    /// Its process runs (a stop may have been asked for).
    pub fn is_live(&self) -> bool {
        matches!(self.status, AgentState::Running | AgentState::Stopping)
    }
}

/// `POST /agents/start` (201, or 200 for a repeat of the live run's start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StartReply {
    #[serde(flatten)]
    pub agent: AgentSnapshot,
    /// A polecat's branch (`gt/<agent>/<bead>`).
    pub branch: Option<String>,
    /// The container's limit on agents running at once: the town keeps its dispatches within it.
    pub max_agents: u64,
    /// This very run (same epoch) was already running: the start is a repeat, nothing was done.
    pub already_running: bool,
}

/// `POST /git/push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushReply {
    pub pushed: bool,
    pub branch: String,
    pub commit_sha: String,
}

/// What `git ls-remote` found for `POST /git/check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RemoteCheck {
    Reachable,
    /// The remote (or the path) answered: no such repository, or no access with these credentials.
    NotFound,
    /// The host could not be reached at all (name resolution, connection, timeout): unknown.
    Unreachable,
}

/// `POST /git/check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CheckReply {
    pub reachable: bool,
    pub result: RemoteCheck,
}

/// An error answer: `{"success":false,"error":…,"code":…}`, with `limit` when a cap refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorReply {
    pub error: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// One gate's run in a merge: which, how it ended, how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReport {
    pub gate: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

/// What became of one branch of a merge train (`POST /git/merge-batch`). Conflicts and failed
/// gates are outcomes, not errors: nothing of the branch was pushed and the town decides what
/// happens next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BranchOutcome {
    Merged {
        branch: String,
        target_branch: String,
        commit_sha: String,
        /// The branch was already contained in the target; nothing was pushed.
        up_to_date: bool,
        gates: Vec<GateReport>,
    },
    Conflict {
        branch: String,
        target_branch: String,
        /// A bounded number of names (see `files_total`).
        files: Vec<String>,
        /// How many files conflicted.
        files_total: u64,
        message: String,
    },
    GateFailed {
        branch: String,
        target_branch: String,
        gate: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
        output: String,
    },
    /// Merged and gated locally, but the push was refused (the target moved).
    PushRejected { branch: String, target_branch: String, commit_sha: String, message: String },
    /// The branch is not on origin (the others went ahead).
    Invalid { branch: String, target_branch: String, message: String },
    /// Not tested: a branch ahead of it failed the gates, and what it would have been tested on
    /// does not land. Nothing of it was pushed.
    Deferred { branch: String, target_branch: String, message: String },
    /// Strategy `pull_request`: the branch merged with the target (`commit_sha`, never pushed)
    /// passed the gates; `head_sha` is the branch's head on origin.
    Gated { branch: String, target_branch: String, head_sha: String, commit_sha: String, gates: Vec<GateReport> },
}

/// One run of the gates on one commit of a train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRunReport {
    pub commit_sha: String,
    /// How many of the train's merged branches that commit contains.
    pub branches: usize,
    pub passed: bool,
    pub gates: Vec<GateReport>,
}

/// The container's answer to `POST /git/merge-batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeBatchReply {
    pub target_branch: String,
    /// The commit pushed to the target; none when nothing new landed.
    pub pushed: Option<String>,
    pub gate_runs: Vec<GateRunReport>,
    /// One per requested branch, in request order.
    pub results: Vec<BranchOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_spellings() {
        let s: MergeStrategy = serde_json::from_str("\"pr\"").unwrap();
        assert_eq!(s, MergeStrategy::PullRequest);
        assert_eq!(serde_json::to_string(&MergeStrategy::PullRequest).unwrap(), "\"pull_request\"");
        assert!(serde_json::from_str::<MergeStrategy>("\"squash\"").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let mut c = ContainerTownConfig::default();
        c.env_vars.insert("API_KEY".into(), "s3cret-env".into());
        c.git_auth.github_token = Some("ghp_s3cret".into());
        let shown = format!("{c:?}");
        assert!(shown.contains("API_KEY") && !shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn a_stop_without_fields_is_a_stop_now() {
        let r: StopRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, StopRequest::default());
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
        assert!(serde_json::from_str::<StopRequest>(r#"{"grace":1}"#).is_err());
    }

    #[test]
    fn a_request_without_config_parses() {
        let r: PushRequest =
            serde_json::from_str(r#"{"rig_id":"r","git_url":"/x","agent_id":"a","agent_name":"n","bead_id":"b","branch":"gt/n/b"}"#)
                .unwrap();
        assert_eq!(r.config, None);
        let c: ContainerTownConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ContainerTownConfig::default());
    }
}
