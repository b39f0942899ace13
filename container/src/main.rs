//! `gastown-container`: the control server binary.
//!
//! The container secret comes from `GASTOWN_CONTAINER_SECRET` only (argv is
//! visible to every process on the machine), and the server refuses to start
//! without it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use gastown_container::git::{GitManager, GitSettings};
use gastown_container::isolation::{self, Isolation};
use gastown_container::process::{ProcessConfig, ProcessManager};
use gastown_container::server::{self, AppState, ControlSecret, ServerOptions};

#[derive(Parser, Debug)]
#[command(version, about = "Gastown container control server")]
struct Args {
    /// Address to listen on (use 0.0.0.0 inside a container image).
    #[arg(long, env = "GASTOWN_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Root of rigs, worktrees, credentials and agent directories.
    #[arg(long, env = "GASTOWN_WORKSPACE", default_value = "workspace")]
    workspace: PathBuf,
    /// Hard cap on concurrently running agents.
    #[arg(long, env = "GASTOWN_MAX_AGENTS", default_value_t = 8)]
    max_agents: usize,
    /// Scrollback kept per agent, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    scrollback_bytes: usize,
    /// Seconds between SIGHUP and SIGKILL when stopping an agent.
    #[arg(long, default_value_t = 10)]
    stop_grace_secs: u64,
    /// Default per-gate timeout for merges, in seconds.
    #[arg(long, default_value_t = 1800)]
    gate_timeout_secs: u64,
    /// Extra git config for every git command and agent, as key=value.
    #[arg(long = "git-config", value_name = "KEY=VALUE")]
    git_config: Vec<String>,
    #[arg(long, env = "GASTOWN_LOG", default_value = "info")]
    log_level: tracing::Level,
    /// Run each agent under a uid of its own (needs root; see README "Security"). `off` runs
    /// agents as the server itself: only for a single-user machine with trusted agents.
    #[arg(long, env = "GASTOWN_ISOLATION", default_value = "uid", value_parser = ["uid", "off"])]
    isolation: String,
    /// First uid handed to agents (the quality gates run as the one below it).
    #[arg(long, env = "GASTOWN_AGENT_UID_BASE", default_value_t = 40000)]
    agent_uid_base: u32,
    /// Folders (colon-separated) with agent CLIs, put on every agent's PATH.
    #[arg(long, env = "GASTOWN_AGENT_PATH", default_value = "")]
    agent_path: String,
    /// How many agent uids there are.
    #[arg(long, default_value_t = 20000)]
    agent_uid_count: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_max_level(args.log_level).with_target(false).init();

    let secret = match std::env::var("GASTOWN_CONTAINER_SECRET") {
        Ok(s) if !s.is_empty() => s,
        _ => bail!("GASTOWN_CONTAINER_SECRET is not set; refusing to start without it"),
    };
    let secret = ControlSecret::new(&secret).map_err(anyhow::Error::msg)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?;
    runtime.block_on(run(args, secret))
}

async fn run(args: Args, secret: ControlSecret) -> anyhow::Result<()> {
    // Agents read the server's rig clones: what it creates must be readable, never writable.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    isolation::harden_server();
    std::fs::create_dir_all(&args.workspace).with_context(|| format!("creating workspace {}", args.workspace.display()))?;
    let isolation = Isolation::new(&args.workspace, args.isolation == "uid", args.agent_uid_base, args.agent_uid_count)?;
    if isolation.enabled() {
        let ws = args.workspace.canonicalize().context("resolving the workspace")?;
        isolation::check_traversable(&ws).map_err(anyhow::Error::msg)?;
    } else {
        tracing::warn!("agents run as the server's own uid (isolation off or not root): any agent can read the server's secret and the other agents' tokens");
    }
    let mut settings = GitSettings::new(&args.workspace);
    settings.isolation = std::sync::Arc::new(isolation);
    for kv in &args.git_config {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--git-config expects KEY=VALUE, got {kv:?}");
        };
        settings.extra_config.push((k.to_string(), v.to_string()));
    }
    if let Ok(sock) = std::env::var("SSH_AUTH_SOCK") {
        settings.passthrough_env.push(("SSH_AUTH_SOCK".into(), sock));
    }
    let git = GitManager::new(settings).with_context(|| format!("preparing workspace {}", args.workspace.display()))?;
    let agents_dir = git.workspace().join("agents");
    isolation::private_dir(&agents_dir, None, 0o711)?;
    isolation::private_dir(&git.workspace().join("homes"), None, 0o711)?;
    let bin_dir = install_gt(git.workspace())?;

    let pm = ProcessManager::new(ProcessConfig {
        max_running: args.max_agents,
        scrollback_bytes: args.scrollback_bytes,
        stop_grace: Duration::from_secs(args.stop_grace_secs),
        ..ProcessConfig::default()
    });

    let events = pm.subscribe_events();
    let state = AppState::new(
        secret,
        pm,
        git,
        ServerOptions {
            enter_delay: Duration::from_millis(150),
            default_gate_timeout: Duration::from_secs(args.gate_timeout_secs),
            agents_dir,
            bin_dir,
            agent_path: args.agent_path.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
        },
    );
    tokio::spawn(state.reporter().clone().forward(events));
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, workspace = %args.workspace.display(), "control server listening");
    server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Copies `gt` (built next to this binary) to `<workspace>/bin`, where every agent uid can run
/// it wherever the build tree lives.
fn install_gt(workspace: &std::path::Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let bin = workspace.join("bin");
    isolation::private_dir(&bin, None, 0o755)?;
    let exe = std::env::current_exe().context("locating this program")?;
    let src = exe.parent().map(|d| d.join("gt")).filter(|p| p.exists());
    let Some(src) = src else {
        tracing::warn!("no gt next to {}; agents will look for gt on their PATH", exe.display());
        return Ok(bin);
    };
    let tmp = bin.join(".gt.tmp");
    std::fs::copy(&src, &tmp).with_context(|| format!("copying {}", src.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, bin.join("gt"))?;
    Ok(bin)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: stopping agents");
}
