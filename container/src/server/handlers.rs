//! Request handlers of the control API (except the PTY WebSocket).
//!
//! Long operations (start, merge, push) run in their own task: if the caller
//! hangs up, the operation still finishes and cleans up after itself instead
//! of being dropped halfway through a git command.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use gastown_protocol::{
    CheckReply, CheckRequest as CheckBody, MergeBatchRequest as MergeBatchBody, NudgeRequest, PushReply, PushRequest as PushBody, Role,
    StartAgentRequest, StartReply, StopRequest,
};

use super::{ok, ApiError, ApiJson, AppState, TownConfig};
use crate::git::validate::validate_id;
use crate::git::{GitAuth, GitError, Identity, MergeBatchRequest};
use crate::isolation;
use crate::process::{is_env_name, Limits, StartSpec};

const MAX_GATE_TIMEOUT_SECS: u64 = 6 * 3600;
const MAX_STOP_GRACE_SECS: u64 = 300;

pub(super) async fn health(State(state): State<AppState>) -> Response {
    let pm = state.process_manager();
    ok(
        StatusCode::OK,
        serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": state.inner.started.elapsed().as_secs(),
            "running_agents": pm.running_count(),
            "max_agents": pm.max_running(),
            "sessions": pm.session_count(),
            "requests_served": state.inner.requests.load(std::sync::atomic::Ordering::Relaxed),
            "isolation": state.git().settings().isolation.mode(),
            "private_proc": state.git().settings().isolation.hides_proc(),
        }),
    )
}

pub(super) async fn start_agent(State(state): State<AppState>, ApiJson(mut req): ApiJson<StartAgentRequest>) -> Result<Response, ApiError> {
    let cfg = req.config.take().unwrap_or_default();
    let task = tokio::spawn(async move { start_agent_inner(state, cfg, req).await });
    match task.await {
        Ok(r) => r,
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("start task failed: {e}"))),
    }
}

async fn start_agent_inner(state: AppState, cfg: TownConfig, req: StartAgentRequest) -> Result<Response, ApiError> {
    validate_id("agent id", &req.agent_id).map_err(GitError::from)?;
    validate_id("town id", &req.town_id).map_err(GitError::from)?;
    validate_id("rig id", &req.rig_id).map_err(GitError::from)?;
    // The same rule the API applied when the agent was created: the name becomes a slug in
    // branch names and paths.
    gastown_protocol::validate::name("name", &req.name).map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    if let Some(b) = &req.bead_id {
        validate_id("bead id", b).map_err(GitError::from)?;
    }
    for (k, v) in cfg.env_vars.iter().chain(req.env.iter()) {
        if !is_env_name(k) || v.contains('\0') {
            return Err(ApiError::bad_request("invalid_request", format!("invalid environment variable {k:?}")));
        }
    }
    let runtime = req.runtime.clone().or_else(|| cfg.agent.runtime.clone());
    let model = req.model.clone().or_else(|| cfg.agent.model.clone());
    if req.prompt.as_ref().is_some_and(|p| p.len() > 256 * 1024 || p.contains('\0')) {
        return Err(ApiError::bad_request("invalid_request", "prompt must be at most 256 KiB of text"));
    }
    let identity = Identity::for_agent(&req.name, None).map_err(GitError::from)?;

    let role = req.role.as_str();
    let limits = Limits {
        max_running: cfg.capacity.max_agents.map(|n| n as usize),
        max_same_role_per_rig: if req.role == Role::Polecat { cfg.capacity.max_polecats_per_rig.map(|n| n as usize) } else { None },
    };
    let pm = state.process_manager().clone();
    // The town's epoch is authoritative: a run of this agent from an older epoch is over (an
    // interactive CLI stays open after `gt done`), so it makes way for the new one. A repeat of
    // the start of the run that is already live (a retried request) is a success, not a refusal.
    if let (Some(epoch), Ok(old)) = (req.epoch, pm.status(&req.agent_id)) {
        if old.exit.is_none() && old.spawn_epoch == epoch {
            let branch = (req.role == Role::Polecat)
                .then_some(req.bead_id.as_deref())
                .flatten()
                .and_then(|b| state.git().worktree_of(&req.rig_id, &req.name, b).ok().map(|(branch, _)| branch));
            let max_agents = pm.max_running() as u64;
            return Ok(ok(StatusCode::OK, StartReply { agent: old, branch, max_agents, already_running: true }));
        }
        if old.exit.is_none() && old.spawn_epoch < epoch {
            tracing::info!(agent_id = %req.agent_id, old = old.spawn_epoch, new = epoch, "stopping the previous run for a newer epoch");
            pm.stop(&req.agent_id, Some(Duration::from_secs(2))).await?;
        }
    }
    // Refuse before cloning anything if there is no room anyway, or no CLI to run.
    pm.check_capacity(&req.agent_id, &req.rig_id, role, &limits)?;
    let real_cli = req.command.is_none() && runtime.as_deref().is_some_and(|r| crate::runtime::RUNTIMES.contains(&r));
    if let Some(r) = runtime.as_deref().filter(|_| real_cli) {
        // Each real runtime's program is named after it.
        require_cli(r, r, &state.options().agent_path_var())?;
    }

    let git = state.git().clone();
    // The agent's own uid (see `isolation`): its worktree, HOME and terminal belong to it alone.
    let owner = git.settings().isolation.for_agent(&req.agent_id).map_err(GitError::from)?;
    let home = git.workspace().join("homes").join(&req.agent_id);
    isolation::private_dir(&home, owner, 0o700).map_err(GitError::from)?;
    let mut env: BTreeMap<String, String> = cfg.env_vars.clone();
    env.extend(req.env.clone());
    let (cwd, branch) = if req.role == Role::Polecat {
        let (Some(url), Some(bead)) = (req.git_url.as_deref(), req.bead_id.as_deref()) else {
            return Err(ApiError::bad_request("invalid_request", "a polecat needs git_url and bead_id"));
        };
        let default_branch = req.default_branch.as_deref().unwrap_or("main");
        git.ensure_repo(&req.rig_id, url, &GitAuth::from(&cfg.git_auth)).await?;
        let wt = git.ensure_worktree(&req.rig_id, &req.agent_id, &req.name, bead, default_branch).await?;
        env.extend(git.agent_env(&req.rig_id)?);
        (wt.path, Some(wt.branch))
    } else {
        let dir = state.options().agents_dir.join(&req.agent_id);
        isolation::private_dir(&dir, owner, 0o700).map_err(GitError::from)?;
        (dir, None)
    };

    // Written without following links: `.gastown` is in a folder the agent owns.
    let prompt_file = match &req.prompt {
        Some(p) => Some(isolation::write_private_file(&cwd.join(".gastown"), "prompt.md", p.as_bytes(), owner).map_err(GitError::from)?),
        None => None,
    };
    // `gt` is installed where every agent uid can run it; agents find it first on their PATH.
    env.insert("PATH".into(), state.options().agent_path_var());
    env.insert("HOME".into(), home.display().to_string());
    let argv = if real_cli {
        // A real agent CLI: its HOME prepared so that no first-run dialog waits for a person.
        let prepared =
            prepare_cli(runtime.as_deref().unwrap_or_default(), model.as_deref(), req.prompt.as_deref(), &home, &cwd, &env, owner)?;
        env.extend(prepared.env);
        prepared.argv
    } else {
        resolve_command(
            req.command.clone(),
            runtime.as_deref(),
            &BuiltinInputs {
                model: model.as_deref(),
                prompt_file: prompt_file.as_deref(),
                template: req.command_template.as_deref(),
                gt: &state.options().bin_dir.join("gt"),
            },
        )?
    };
    if let (Some(url), Some(token)) = (env.get("GASTOWN_API_URL"), env.get("GASTOWN_AGENT_TOKEN")) {
        state.reporter().register(&req.agent_id, url, token);
    }

    // Set last so neither the town config nor the request can impersonate
    // another agent.
    env.insert("GASTOWN_AGENT_ID".into(), req.agent_id.clone());
    env.insert("GASTOWN_TOWN_ID".into(), req.town_id.clone());
    // The mayor belongs to the town, not a rig: `gt` uses the mayor's routes when this is empty.
    env.insert("GASTOWN_RIG_ID".into(), if req.role == Role::Mayor { String::new() } else { req.rig_id.clone() });
    env.insert("GASTOWN_AGENT_ROLE".into(), role.into());
    env.insert("GASTOWN_AGENT_NAME".into(), req.name.clone());
    env.insert("GASTOWN_WORKDIR".into(), cwd.display().to_string());
    if let Some(b) = &req.bead_id {
        env.insert("GASTOWN_BEAD_ID".into(), b.clone());
    }
    if let Some(b) = &branch {
        env.insert("GASTOWN_BRANCH".into(), b.clone());
    }
    if let Some(r) = &runtime {
        env.insert("GASTOWN_AGENT_RUNTIME".into(), r.clone());
    }
    if let Some(m) = &model {
        env.insert("GASTOWN_AGENT_MODEL".into(), m.clone());
    }
    env.extend(identity.env());

    let size = match (req.cols, req.rows) {
        (Some(c), Some(r)) => Some((c, r)),
        _ => None,
    };
    let argv = git.settings().isolation.agent_argv(owner, argv);
    let spec = StartSpec {
        agent_id: req.agent_id.clone(),
        name: req.name.clone(),
        role: role.into(),
        town_id: req.town_id.clone(),
        rig_id: req.rig_id.clone(),
        bead_id: req.bead_id.clone(),
        argv,
        cwd,
        env,
        limits,
        size,
        epoch: req.epoch,
        run_as: owner,
    };
    let agent = tokio::task::spawn_blocking(move || pm.start(spec))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("spawn task failed: {e}")))??;
    let max_agents = state.process_manager().max_running() as u64;
    Ok(ok(StatusCode::CREATED, StartReply { agent, branch, max_agents, already_running: false }))
}

/// A real agent CLI must be on the agents' PATH, or no run could ever start: refused with the
/// fix (a 4xx, so the town gives up at once and escalates this text).
fn require_cli(runtime: &str, bin: &str, path: &str) -> Result<(), ApiError> {
    use std::os::unix::fs::PermissionsExt;
    let found = path
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .any(|p| std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o001 != 0));
    if found {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "runtime_not_installed",
        format!(
            "agent runtime {runtime}: the `{bin}` CLI is not installed in this container (not on the agents' PATH {path}). \
             Build the image with --build-arg INSTALL_{}=1 (or start the container program with --agent-path pointing at it), \
             or choose another runtime in the town's agent settings",
            runtime.to_ascii_uppercase()
        ),
    ))
}

/// What the built-in runtimes (`demo`, `custom`) need to build their command line.
struct BuiltinInputs<'a> {
    model: Option<&'a str>,
    prompt_file: Option<&'a std::path::Path>,
    /// `custom`: a shell command line with `{prompt_file}` and `{model}` placeholders.
    template: Option<&'a str>,
    /// The `gt` the agents run.
    gt: &'a std::path::Path,
}

/// The model endpoint and key for a real CLI, from the town's variables: `MODEL_BASE_URL`
/// and `MODEL_API_KEY` for every runtime, else each provider's own names.
fn model_access<'a>(runtime: &str, env: &'a BTreeMap<String, String>) -> (Option<&'a str>, Option<&'a str>) {
    let (key, base) = match runtime {
        "claude" => ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
        "codex" => ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
        "gemini" => ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
        _ => ("", ""),
    };
    let get =
        |names: [&str; 2]| names.iter().filter(|n| !n.is_empty()).find_map(|n| env.get(*n).map(String::as_str).filter(|v| !v.is_empty()));
    (get(["MODEL_API_KEY", key]), get(["MODEL_BASE_URL", base]))
}

/// Prepares a real CLI's HOME (files owned by the agent, written without following links) and
/// returns how to start it.
fn prepare_cli(
    runtime: &str,
    model: Option<&str>,
    prompt: Option<&str>,
    home: &std::path::Path,
    cwd: &std::path::Path,
    env: &BTreeMap<String, String>,
    owner: Option<isolation::Ident>,
) -> Result<crate::runtime::Prepared, ApiError> {
    let (api_key, base_url) = model_access(runtime, env);
    // SAFETY: geteuid has no preconditions.
    let as_root = owner.is_none() && unsafe { libc::geteuid() } == 0;
    let inputs = crate::runtime::RuntimeInputs {
        runtime,
        model,
        prompt: prompt.unwrap_or_default(),
        home,
        workdir: cwd,
        api_key,
        base_url,
        as_root,
    };
    let prepared = crate::runtime::prepare(&inputs).map_err(|e| ApiError::bad_request("invalid_runtime_config", e.to_string()))?;
    for dir in &prepared.dirs {
        // Each component is made (or replaced, if a link was planted) one at a time.
        let mut at = home.to_path_buf();
        for part in dir.components() {
            at.push(part);
            isolation::private_dir(&at, owner, 0o700).map_err(GitError::from)?;
        }
    }
    for (rel, contents) in &prepared.files {
        let path = home.join(rel);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { continue };
        isolation::write_private_file(dir, name, contents.as_bytes(), owner).map_err(GitError::from)?;
    }
    Ok(prepared)
}

/// The command line for the built-in runtimes (`demo`, `custom`) or an explicit argv.
fn resolve_command(command: Option<Vec<String>>, runtime: Option<&str>, r: &BuiltinInputs) -> Result<Vec<String>, ApiError> {
    if let Some(cmd) = command {
        if cmd.is_empty() {
            return Err(ApiError::bad_request("invalid_request", "command must not be empty"));
        }
        return Ok(cmd);
    }
    let s = |x: &str| x.to_string();
    Ok(match runtime.unwrap_or("demo") {
        // Built in, needs no LLM: a small real change, a commit and `gt done`.
        "demo" => vec![r.gt.display().to_string(), s("demo")],
        "custom" => match r.template {
            Some(t) => {
                let file = r.prompt_file.map(|p| p.display().to_string()).unwrap_or_default();
                let line = t
                    .replace("{prompt_file}", &crate::text::shell_quote(&file))
                    .replace("{model}", &crate::text::shell_quote(r.model.unwrap_or("")));
                vec![s("sh"), s("-c"), line]
            }
            None => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "runtime custom needs a command line (command_template; the town's agent.command)",
                ))
            }
        },
        other => {
            return Err(ApiError::bad_request(
                "unsupported_runtime",
                format!("unknown runtime {other:?}; use demo, claude, codex, gemini, opencode, kilo or custom"),
            ))
        }
    })
}

pub(super) async fn stop_agent(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let req: StopRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StopRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    let grace = req.grace_secs.map(|s| Duration::from_secs(s.min(MAX_STOP_GRACE_SECS)));
    let pm = state.process_manager().clone();
    if let Some(after) = req.after_secs {
        let current = pm.status(&id)?;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(after.min(60))).await;
            let same_run = pm.status(&id).is_ok_and(|s| s.exit.is_none() && req.epoch.is_none_or(|e| e == s.spawn_epoch));
            if same_run {
                let _ = pm.stop(&id, grace).await;
            }
        });
        return Ok(ok(StatusCode::ACCEPTED, current));
    }
    let task = tokio::spawn(async move {
        pm.stop(&id, grace).await?;
        Ok::<_, ApiError>(pm.status(&id)?)
    });
    let snapshot =
        task.await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("stop task failed: {e}")))??;
    Ok(ok(StatusCode::OK, snapshot))
}

pub(super) async fn agent_status(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, state.process_manager().status(&id)?))
}

/// A notice for the agent's terminal, typed at a safe moment (see `process::nudge`).
pub(super) async fn nudge_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NudgeRequest>,
) -> Result<Response, ApiError> {
    if req.key.is_empty() || req.key.len() > 200 || req.text.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "key (1-200 bytes) and a non-empty text are required"));
    }
    let timing = crate::process::NudgeTiming { enter_delay: state.options().enter_delay, ..Default::default() };
    let outcome = state.process_manager().nudge(&id, &req.key, &req.text, timing)?;
    Ok(ok(StatusCode::OK, serde_json::json!({ "outcome": outcome })))
}

pub(super) async fn sessions(State(state): State<AppState>) -> Response {
    ok(StatusCode::OK, state.process_manager().list())
}

/// The one merge path: a train of one or more branches merged in order, gated once (halved on failure to find the
/// branch that broke the gates), the passing result pushed (see `git::train`).
pub(super) async fn merge_batch(State(state): State<AppState>, ApiJson(mut body): ApiJson<MergeBatchBody>) -> Result<Response, ApiError> {
    let cfg = body.config.take().unwrap_or_default();
    let timeout = body
        .timeout_secs
        .or(cfg.refinery.gate_timeout_secs)
        .map(|s| Duration::from_secs(s.clamp(1, MAX_GATE_TIMEOUT_SECS)))
        .unwrap_or(state.options().default_gate_timeout);
    let req = MergeBatchRequest {
        rig_id: body.rig_id,
        git_url: body.git_url,
        branches: body.branches,
        target_branch: body.target_branch,
        gates: body.gates.unwrap_or_else(|| cfg.refinery.gates.clone()),
        gate_timeout: timeout,
        strategy: body.strategy.unwrap_or(cfg.refinery.merge_strategy),
        auth: GitAuth::from(&cfg.git_auth),
        env: cfg.env_vars.clone(),
    };
    let git = state.git().clone();
    let outcome = tokio::spawn(async move { git.merge_batch(req).await })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("merge task failed: {e}")))??;
    Ok(ok(StatusCode::OK, outcome))
}

/// `gt done`, relayed by the town: push the agent's own branch for its hooked bead.
pub(super) async fn push(State(state): State<AppState>, ApiJson(b): ApiJson<PushBody>) -> Result<Response, ApiError> {
    let auth = GitAuth::from(&b.config.clone().unwrap_or_default().git_auth);
    validate_id("agent id", &b.agent_id).map_err(GitError::from)?;
    let git = state.git().clone();
    let (branch, sha) = tokio::spawn(async move {
        git.push_agent_branch(&b.rig_id, &b.git_url, &b.agent_id, &b.agent_name, &b.bead_id, &b.branch, &auth).await
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("push task failed: {e}")))??;
    Ok(ok(StatusCode::OK, PushReply { pushed: true, branch, commit_sha: sha }))
}

/// `POST /git/check {git_url, config?}`: can the repository be reached with the town's
/// credentials? (`git ls-remote`, as a clone would authenticate.) Answers a category, never
/// git's output.
pub(super) async fn check_remote(State(state): State<AppState>, ApiJson(b): ApiJson<CheckBody>) -> Result<Response, ApiError> {
    let auth = GitAuth::from(&b.config.unwrap_or_default().git_auth);
    let git = state.git().clone();
    let found = tokio::spawn(async move { git.check_remote(&b.git_url, &auth, Duration::from_secs(20)).await })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("check task failed: {e}")))??;
    Ok(ok(StatusCode::OK, CheckReply { reachable: found == crate::git::RemoteCheck::Reachable, result: found }))
}
