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
    let mut settings = GitSettings::new(&args.workspace);
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
    std::fs::create_dir_all(&agents_dir).context("creating the agents directory")?;

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
