//! Builds the requests the town sends to its container, as the shared `gastown_protocol` types
//! (the container deserialises the very same structs). Kept here, out of the Worker's I/O glue,
//! so what is sent can be tested natively.
//!
//! It also reads the container's replies as the same crate's types (`StartReply`,
//! `AgentSnapshot`, `PushReply`, `CheckReply`), which the container serialises.
//!
//! The town config goes in the body of the requests that need it (start, merge-batch, push,
//! check); the only header besides `content-type` is the town id. Header values must be ASCII, and a
//! non-ASCII value in a config header once made the runtime log that header — tokens included.

use std::collections::BTreeMap;

use gastown_protocol::container::{AgentConfig, CapacityConfig, GitAuth, RefineryConfig};
use gastown_protocol::{
    AgentSnapshot, BranchOutcome, CheckRequest, ContainerTownConfig, MergeBatchReply, MergeBatchRequest, MergeStrategy, NudgeRequest,
    PushRequest, Role, StartAgentRequest, StopRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{self, TownConfig};
use crate::error::CoreResult;
use crate::model::AgentRole;
use crate::town::{DispatchJob, DonePushJob, MergeJob, MergeOutcome, NudgeJob};
use crate::witness::RunView;

/// Names the town a container request is for (routing to its container instance).
pub const TOWN_HEADER: &str = "x-gastown-town";

/// One request to the container, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerCall {
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

/// The headers and JSON body of a request to the container for `town_id`. Nothing but the town
/// id (a validated ASCII id) goes in a header.
pub fn container_call(town_id: &str, body: Option<&impl Serialize>) -> CoreResult<ContainerCall> {
    let body = body.map(serde_json::to_string).transpose()?;
    Ok(ContainerCall { headers: vec![("content-type", "application/json".into()), (TOWN_HEADER, town_id.to_string())], body })
}

pub fn role(r: AgentRole) -> Role {
    match r {
        AgentRole::Mayor => Role::Mayor,
        AgentRole::Polecat => Role::Polecat,
        AgentRole::Refinery => Role::Refinery,
        AgentRole::Witness => Role::Witness,
    }
}

pub fn merge_strategy(s: config::MergeStrategy) -> MergeStrategy {
    match s {
        config::MergeStrategy::Direct => MergeStrategy::Direct,
        config::MergeStrategy::Pr => MergeStrategy::PullRequest,
    }
}

fn runtime_name(r: config::Runtime) -> Option<String> {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_string))
}

/// The part of the resolved, unmasked config the container acts on. The webhook secret stays
/// in the town: the container has no use for it.
pub fn container_config(cfg: &TownConfig) -> ContainerTownConfig {
    let g = &cfg.git_auth;
    ContainerTownConfig {
        env_vars: cfg.env_vars.clone(),
        git_auth: GitAuth {
            github_token: g.github_token.clone(),
            gitlab_token: g.gitlab_token.clone(),
            gitlab_instance_url: g.gitlab_instance_url.clone(),
            github_url: g.github_url.clone(),
        },
        agent: AgentConfig { runtime: runtime_name(cfg.agent.runtime), model: cfg.agent.model.clone() },
        refinery: RefineryConfig {
            gates: cfg.refinery.gates.clone(),
            gate_timeout_secs: Some(u64::from(cfg.refinery.gate_timeout_secs)),
            merge_strategy: merge_strategy(cfg.refinery.merge_strategy),
        },
        capacity: CapacityConfig { max_agents: None, max_polecats_per_rig: Some(cfg.capacity.max_polecats_per_rig) },
    }
}

/// `POST /agents/start` for one dispatch; `env` carries the API URL and the agent's token.
pub fn start_request(job: &DispatchJob, env: BTreeMap<String, String>, cfg: &TownConfig) -> StartAgentRequest {
    StartAgentRequest {
        agent_id: job.agent.id.clone(),
        town_id: job.town_id.clone(),
        // The mayor has no rig; the container keys its working directory by agent.
        rig_id: job.rig.as_ref().map_or("town", |r| r.id.as_str()).to_string(),
        role: role(job.agent.role),
        name: job.agent.name.clone(),
        bead_id: job.bead.as_ref().map(|b| b.id.clone()),
        git_url: job.rig.as_ref().map(|r| r.git_url.clone()),
        default_branch: job.rig.as_ref().map(|r| r.default_branch.clone()),
        env,
        command: None,
        runtime: job.runtime.runtime.and_then(runtime_name),
        model: job.runtime.model.clone(),
        cols: None,
        rows: None,
        // Epochs count up from zero; a negative one would be a bug upstream, sent as none.
        epoch: u64::try_from(job.epoch).ok(),
        prompt: Some(job.prompt.clone()),
        command_template: job.runtime.command.clone(),
        config: Some(container_config(cfg)),
    }
}

/// `POST /git/merge-batch` for a train (jobs of one rig and target branch, in queue order);
/// none for no jobs.
pub fn merge_batch_request(jobs: &[MergeJob], cfg: &TownConfig) -> Option<MergeBatchRequest> {
    let first = jobs.first()?;
    Some(MergeBatchRequest {
        rig_id: first.rig.id.clone(),
        git_url: first.rig.git_url.clone(),
        branches: jobs.iter().map(|j| j.review.branch.clone()).collect(),
        target_branch: first.review.target_branch.clone(),
        gates: Some(first.gates.clone()),
        timeout_secs: Some(u64::from(first.gate_timeout_secs)),
        // Per job: a rig may override the town's strategy.
        strategy: Some(merge_strategy(first.strategy)),
        config: Some(container_config(cfg)),
    })
}

/// What the town makes of one branch's outcome in the container's merge-batch reply.
pub fn merge_outcome(o: BranchOutcome) -> MergeOutcome {
    match o {
        BranchOutcome::Merged { commit_sha, .. } => MergeOutcome::Merged { commit_sha },
        BranchOutcome::Conflict { files, files_total, message, .. } => {
            MergeOutcome::Conflict { files, message, files_total: Some(files_total) }
        }
        BranchOutcome::GateFailed { gate, exit_code, output, .. } => MergeOutcome::GateFailed { gate, exit_code, output },
        BranchOutcome::PushRejected { message, .. } => MergeOutcome::PushRejected { message },
        BranchOutcome::Invalid { message, .. } => MergeOutcome::Invalid { message },
        BranchOutcome::Deferred { message, .. } => MergeOutcome::Deferred { message },
        BranchOutcome::Gated { head_sha, .. } => MergeOutcome::Gated { head_sha },
    }
}

/// The outcomes of a train, one per job in order, from the container's reply; a reply with a
/// different number of results than branches asked for is refused.
pub fn merge_outcomes(reply: MergeBatchReply, jobs: usize) -> Result<Vec<MergeOutcome>, String> {
    if reply.results.len() != jobs {
        return Err(format!("the container answered {} results for {jobs} branches", reply.results.len()));
    }
    Ok(reply.results.into_iter().map(merge_outcome).collect())
}

/// `POST /git/push` for `gt done`: the agent's branch as it claimed it.
pub fn push_request(job: &DonePushJob, branch: &str, cfg: &TownConfig) -> PushRequest {
    PushRequest {
        rig_id: job.rig_id.clone(),
        git_url: job.git_url.clone(),
        agent_id: job.agent_id.clone(),
        agent_name: job.agent_name.clone(),
        bead_id: job.bead_id.clone(),
        branch: branch.to_string(),
        config: Some(container_config(cfg)),
    }
}

/// `POST /git/check`: is `git_url` reachable with the town's credentials?
pub fn check_request(git_url: &str, cfg: &TownConfig) -> CheckRequest {
    CheckRequest { git_url: git_url.to_string(), config: Some(container_config(cfg)) }
}

/// `POST /agents/{id}/stop` now (an agent that no longer exists).
pub fn stop_request() -> StopRequest {
    StopRequest::default()
}

/// `POST /agents/{id}/stop` for the run of `epoch` once it called `gt done`: in 10 s, leaving an
/// interactive CLI its turn, with 5 s between SIGHUP and SIGKILL. A newer run is left alone.
pub fn stop_after_done_request(epoch: Option<i64>) -> StopRequest {
    StopRequest { grace_secs: Some(5), after_secs: Some(10), epoch: epoch.and_then(|e| u64::try_from(e).ok()) }
}

/// `POST /agents/{id}/nudge`: a notice typed into the agent's terminal.
pub fn nudge_request(n: &NudgeJob) -> NudgeRequest {
    NudgeRequest { key: n.key.clone(), text: n.text.clone() }
}

/// The `data` of a container reply as the contract's type `T`.
pub fn reply<T: DeserializeOwned>(data: serde_json::Value) -> CoreResult<T> {
    serde_json::from_value(data).map_err(|e| crate::CoreError::Upstream(format!("unexpected reply from the container: {e}")))
}

/// `GET /sessions` as the witness judges it.
pub fn run_views(sessions: &[AgentSnapshot]) -> Vec<RunView> {
    sessions
        .iter()
        .map(|s| RunView {
            agent_id: s.agent_id.clone(),
            epoch: i64::try_from(s.spawn_epoch).unwrap_or(i64::MAX),
            running: s.is_live(),
            activity: i64::try_from(s.screen_changes).unwrap_or(i64::MAX),
            screen: s.screen.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    const TOWN: &str = "0f3e2a9c-1b2c-4d5e-8f90-123456789abc";

    /// A train's reply as the container writes it (the same `gastown_protocol` types it builds)
    /// becomes the town's outcomes, one per branch in order; a short reply is refused.
    #[test]
    fn merge_batch_replies_become_town_outcomes() {
        let reply = MergeBatchReply {
            target_branch: "main".into(),
            pushed: Some("abc".into()),
            gate_runs: vec![],
            results: vec![
                BranchOutcome::Merged {
                    branch: "a".into(),
                    target_branch: "main".into(),
                    commit_sha: "abc".into(),
                    up_to_date: false,
                    gates: vec![],
                },
                BranchOutcome::Conflict {
                    branch: "b".into(),
                    target_branch: "main".into(),
                    files: vec!["x".into()],
                    files_total: 3000,
                    message: "m".into(),
                },
                BranchOutcome::Gated {
                    branch: "c".into(),
                    target_branch: "main".into(),
                    head_sha: "h".into(),
                    commit_sha: "c".into(),
                    gates: vec![],
                },
            ],
        };
        let wire: MergeBatchReply = serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
        assert_eq!(wire, reply);
        let outcomes = merge_outcomes(wire.clone(), 3).unwrap();
        assert_eq!(outcomes[0], MergeOutcome::Merged { commit_sha: "abc".into() });
        assert_eq!(outcomes[1], MergeOutcome::Conflict { files: vec!["x".into()], message: "m".into(), files_total: Some(3000) });
        assert_eq!(outcomes[2], MergeOutcome::Gated { head_sha: "h".into() });
        assert!(merge_outcomes(wire, 4).unwrap_err().contains("3 results for 4 branches"));
    }

    fn rig() -> serde_json::Value {
        json!({"id": "r1", "name": "web", "git_url": "https://github.com/o/web.git", "default_branch": "main",
               "bead_prefix": "gt", "created_at": "2026-01-01T00:00:00Z"})
    }

    fn dispatch() -> DispatchJob {
        serde_json::from_value(json!({
            "town_id": TOWN,
            "agent": {"id": "a1", "rig_id": "r1", "role": "polecat", "name": "toast", "status": "working",
                      "hook_bead_id": null, "dispatch_attempts": 0, "spawn_epoch": 7, "last_activity_at": null,
                      "checkpoint": null, "created_at": "2026-01-01T00:00:00Z"},
            "bead": null,
            "rig": rig(),
            "epoch": 7,
            "runtime": {"runtime": "custom", "model": "m1", "command": "run {prompt_file}"},
            "prompt": "Fix the bug",
        }))
        .unwrap()
    }

    fn merge_jobs() -> Vec<MergeJob> {
        ["gt/toast/gt-1", "gt/toast/gt-2"]
            .iter()
            .map(|b| {
                serde_json::from_value(json!({
                    "review": {"id": "mr1", "rig_id": "r1", "source_bead_id": "gt-1", "agent_id": "a1", "branch": b,
                               "target_branch": "main", "status": "pending", "summary": null, "merge_commit": null,
                               "output": null, "attempts": 0, "created_at": "2026-01-01T00:00:00Z"},
                    "rig": rig(), "gates": ["cargo test"], "gate_timeout_secs": 600, "strategy": "pr", "agent_id": "a1",
                }))
                .unwrap()
            })
            .collect()
    }

    fn town_config() -> TownConfig {
        let mut cfg = TownConfig::default();
        cfg.env_vars.insert("GREETING".into(), "grüß Gott 🚂".into());
        cfg.git_auth.github_token = Some("ghp_s3cret".into());
        cfg.git_auth.webhook_secret = Some("whsec_s3cret".into());
        cfg.refinery.merge_strategy = config::MergeStrategy::Pr;
        cfg
    }

    /// What the town sends, as the container reads it: the body of `call`, parsed as the type
    /// the container's handler deserialises.
    fn as_received<T: DeserializeOwned>(call: &ContainerCall) -> T {
        serde_json::from_str(call.body.as_deref().expect("a body")).unwrap()
    }

    #[test]
    fn every_request_the_town_sends_is_what_the_container_reads() {
        let cfg = town_config();
        let env = BTreeMap::from([("GASTOWN_AGENT_TOKEN".to_string(), "tok".to_string())]);
        let start = start_request(&dispatch(), env, &cfg);
        let got: StartAgentRequest = as_received(&container_call(TOWN, Some(&start)).unwrap());
        assert_eq!(got, start);
        assert_eq!((got.role, got.epoch, got.rig_id.as_str()), (Role::Polecat, Some(7), "r1"));
        assert_eq!(got.runtime.as_deref(), Some("custom"));
        assert_eq!(got.command_template.as_deref(), Some("run {prompt_file}"));
        let sent = got.config.expect("config in the body");
        assert_eq!(sent.refinery.merge_strategy, MergeStrategy::PullRequest);
        // The container never gets the webhook secret.
        assert!(!container_call(TOWN, Some(&start)).unwrap().body.unwrap().contains("whsec_s3cret"));

        let batch = merge_batch_request(&merge_jobs(), &cfg).unwrap();
        let got: MergeBatchRequest = as_received(&container_call(TOWN, Some(&batch)).unwrap());
        assert_eq!(got, batch);
        assert_eq!(got.branches, ["gt/toast/gt-1", "gt/toast/gt-2"]);
        assert_eq!(got.strategy, Some(MergeStrategy::PullRequest));
        assert!(merge_batch_request(&[], &cfg).is_none());

        let job = DonePushJob {
            rig_id: "r1".into(),
            git_url: "https://github.com/o/web.git".into(),
            agent_id: "a1".into(),
            agent_name: "toast".into(),
            bead_id: "gt-1".into(),
            already_submitted: false,
        };
        let push = push_request(&job, "gt/toast/gt-1", &cfg);
        let got: PushRequest = as_received(&container_call(TOWN, Some(&push)).unwrap());
        assert_eq!(got, push);

        let check = check_request("https://github.com/o/web.git", &cfg);
        let got: CheckRequest = as_received(&container_call(TOWN, Some(&check)).unwrap());
        assert_eq!(got, check);
        assert_eq!(got.config.unwrap().git_auth.github_token.as_deref(), Some("ghp_s3cret"));

        // Stop and nudge: the bodies the town posts, as the container's handlers read them.
        let stop = stop_after_done_request(Some(7));
        let got: StopRequest = as_received(&container_call(TOWN, Some(&stop)).unwrap());
        assert_eq!(got, stop);
        assert_eq!((got.after_secs, got.grace_secs, got.epoch), (Some(10), Some(5), Some(7)));
        let got: StopRequest = as_received(&container_call(TOWN, Some(&stop_request())).unwrap());
        assert_eq!(got, StopRequest::default(), "stop now");
        assert_eq!(stop_after_done_request(Some(-1)).epoch, None, "a negative epoch is a bug upstream, sent as none");
        let nudge = nudge_request(&NudgeJob { agent_id: "a1".into(), key: "mail:m1".into(), text: "You have mail ✉".into() });
        let got: NudgeRequest = as_received(&container_call(TOWN, Some(&nudge)).unwrap());
        assert_eq!((got.key.as_str(), got.text.as_str()), ("mail:m1", "You have mail ✉"));

        // The mayor: no rig, no bead.
        let mut mayor = dispatch();
        mayor.agent.role = AgentRole::Mayor;
        mayor.rig = None;
        let got: StartAgentRequest = as_received(&container_call(TOWN, Some(&start_request(&mayor, BTreeMap::new(), &cfg))).unwrap());
        assert_eq!((got.role, got.rig_id.as_str(), got.git_url), (Role::Mayor, "town", None));
    }

    /// The container's replies, as it serialises them (the same types), read by the town.
    #[test]
    fn the_container_s_replies_are_what_the_town_reads() {
        let snapshot = |id: &str, status: &str, epoch: u64| {
            json!({"agent_id": id, "name": "toast", "role": "polecat", "town_id": TOWN, "rig_id": "r1", "bead_id": "gt-1",
                   "status": status, "spawn_epoch": epoch, "pid": 42, "cwd": "/w", "started_at_ms": 1, "output_bytes": 10,
                   "exit": null, "screen": "$ ", "screen_changes": 4})
        };
        let sessions: Vec<AgentSnapshot> =
            reply(json!([snapshot("a1", "running", 7), snapshot("a2", "stopping", 2), snapshot("a3", "exited", 1)])).unwrap();
        let views = run_views(&sessions);
        let seen: Vec<(&str, i64, bool, i64)> = views.iter().map(|v| (v.agent_id.as_str(), v.epoch, v.running, v.activity)).collect();
        assert_eq!(seen, [("a1", 7, true, 4), ("a2", 2, true, 4), ("a3", 1, false, 4)]);
        assert_eq!(views[0].screen, "$ ");
        // A reply that is not the contract's is an error, not a list of defaults.
        assert!(reply::<Vec<AgentSnapshot>>(json!([{"agent_id": "a1"}])).is_err());

        let mut start = snapshot("a1", "running", 7);
        start["branch"] = json!("gt/toast/gt-1");
        start["max_agents"] = json!(8);
        start["already_running"] = json!(false);
        let got: gastown_protocol::StartReply = reply(start).unwrap();
        assert_eq!((got.agent.spawn_epoch, got.max_agents, got.branch.as_deref()), (7, 8, Some("gt/toast/gt-1")));

        let push: gastown_protocol::PushReply = reply(json!({"pushed": true, "branch": "gt/toast/gt-1", "commit_sha": "abc"})).unwrap();
        assert_eq!(push.branch, "gt/toast/gt-1");
        let check: gastown_protocol::CheckReply = reply(json!({"reachable": false, "result": "not_found"})).unwrap();
        assert_eq!(check.result, gastown_protocol::RemoteCheck::NotFound);
    }

    #[test]
    fn a_non_ascii_config_travels_in_the_body_and_never_in_a_header() {
        let cfg = town_config();
        let start = start_request(&dispatch(), BTreeMap::new(), &cfg);
        let call = container_call(TOWN, Some(&start)).unwrap();
        let names: Vec<&str> = call.headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["content-type", TOWN_HEADER]);
        for (k, v) in &call.headers {
            assert!(v.is_ascii(), "{k}: {v}");
            assert!(!v.contains("ghp_s3cret") && !v.contains("GREETING") && !v.contains('{'), "{k}: {v}");
        }
        let got: StartAgentRequest = as_received(&call);
        let sent = got.config.unwrap();
        assert_eq!(sent.env_vars["GREETING"], "grüß Gott 🚂");
        assert_eq!(sent.git_auth.github_token.as_deref(), Some("ghp_s3cret"));

        // A request that needs no config has none, and no body when it sends none.
        let bare = container_call(TOWN, None::<&()>).unwrap();
        assert_eq!(bare.body, None);
        assert_eq!(bare.headers.len(), 2);
    }
}
