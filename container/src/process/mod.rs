//! Agent processes: each agent is a real child process under its own PTY.
//!
//! Design points that are easy to break:
//! * The child's environment is built from nothing (a few basics plus what the
//!   caller passes). The server's own environment is never inherited and never
//!   modified, so one agent's secrets cannot leak into another agent.
//! * Each child is a session leader (portable-pty calls `setsid`), so its pid is
//!   also its process-group id; stop signals go to the whole group, catching the
//!   tools the agent started.
//! * The waiter thread observes the exit *without reaping* first, sweeps the
//!   group with SIGKILL while the zombie still pins the pgid, and only then
//!   reaps. Signals sent by `stop` take the same lock, so we never signal a
//!   recycled pid.
//! * Output readers never wait on subscribers (see [`output`]).
//! * Every start of an agent id bumps its `spawn_epoch`; lifecycle events carry
//!   it so that a late "exited" from an older run can be told apart upstream.

mod nudge;
mod output;
mod sys;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portable_pty::{CommandBuilder, MasterPty, PtySize};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

pub use nudge::{NudgeOutcome, NudgeTiming};
pub use output::{OutputEvent, OutputSubscription};
pub(crate) use sys::signal_group as sys_signal_group;
pub use sys::signal_name;

/// Tunables of the process manager. All have sensible defaults.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Scrollback kept per agent, in bytes.
    pub scrollback_bytes: usize,
    /// Live chunks buffered per subscriber before it starts skipping.
    pub live_channel_capacity: usize,
    /// Hard cap on agents running at once (a town config may only lower it).
    pub max_running: usize,
    /// Default time between SIGHUP and SIGKILL on stop.
    pub stop_grace: Duration,
    /// How long to wait for the exit after SIGKILL before giving up.
    pub kill_wait: Duration,
    /// `PATH` given to agents.
    pub path: String,
    /// `HOME` given to agents.
    pub home: PathBuf,
    /// `LANG` given to agents.
    pub lang: String,
    /// Initial terminal size (cols, rows).
    pub initial_size: (u16, u16),
    /// Exited session records kept for status queries.
    pub retained_exited: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            scrollback_bytes: 256 * 1024,
            live_channel_capacity: 256,
            max_running: 8,
            stop_grace: Duration::from_secs(10),
            kill_wait: Duration::from_secs(5),
            // Only these two values are read from the server's environment, as
            // defaults; nothing else is carried over.
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
            home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/")),
            lang: "C.UTF-8".to_string(),
            initial_size: (120, 40),
            retained_exited: 256,
        }
    }
}

/// Optional per-request limits (from the town config). They can only tighten
/// the manager's own cap.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub max_running: Option<usize>,
    /// Cap on running agents with the same role in the same rig.
    pub max_same_role_per_rig: Option<usize>,
}

/// Everything needed to start one agent run.
#[derive(Debug, Clone, Default)]
pub struct StartSpec {
    pub agent_id: String,
    pub name: String,
    pub role: String,
    pub town_id: String,
    pub rig_id: String,
    pub bead_id: Option<String>,
    /// Program and arguments; never passed through a shell.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Per-agent variables, applied over PATH/HOME/LANG/TERM.
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    /// (cols, rows); the manager default if absent.
    pub size: Option<(u16, u16)>,
    /// The town's spawn epoch for this run (authoritative); else one more than the last.
    pub epoch: Option<u64>,
    /// The uid/gid the agent runs as: its terminal is given to it. `argv` must already switch
    /// to it (see [`crate::isolation::Isolation::agent_argv`]).
    pub run_as: Option<crate::isolation::Ident>,
}

/// The run's state and snapshot are the contract's types: the town reads them as they are sent.
pub use gastown_protocol::container::{AgentSnapshot, AgentState, ExitInfo, ExitReason};

/// The name of the signal that ended a run (`SIGTERM`), if one did.
pub fn exit_signal_name(e: &ExitInfo) -> Option<&'static str> {
    e.signal.map(signal_name)
}

/// Lifecycle notifications, to be forwarded to the town.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LifecycleEvent {
    Started { agent_id: String, town_id: String, rig_id: String, role: String, spawn_epoch: u64, pid: i32, at_ms: u64 },
    Exited { agent_id: String, town_id: String, rig_id: String, role: String, spawn_epoch: u64, exit: ExitInfo, screen: String },
}

impl LifecycleEvent {
    pub fn agent_id(&self) -> &str {
        match self {
            Self::Started { agent_id, .. } | Self::Exited { agent_id, .. } => agent_id,
        }
    }
    pub fn spawn_epoch(&self) -> u64 {
        match self {
            Self::Started { spawn_epoch, .. } | Self::Exited { spawn_epoch, .. } => *spawn_epoch,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("invalid start request: {0}")]
    Invalid(String),
    #[error("agent {0} is already running")]
    AlreadyRunning(String),
    #[error("capacity reached: {running} agents running (limit {limit})")]
    CapacityExceeded { running: usize, limit: usize },
    #[error("rig capacity reached: {running} {role} agents running in rig {rig_id} (limit {limit})")]
    RigCapacityExceeded { rig_id: String, role: String, running: usize, limit: usize },
    #[error("unknown agent {0}")]
    NotFound(String),
    #[error("agent {0} is not running")]
    NotRunning(String),
    #[error("failed to open a pty: {0}")]
    Pty(String),
    #[error("failed to spawn {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("agent {0} did not exit after SIGKILL")]
    StopTimedOut(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// How much of the screen is quoted ("the last lines of its screen").
const SCREEN_LINES: usize = 12;
const SCREEN_CHARS: usize = 1500;

const STOP_NONE: u8 = 0;
const STOP_HUP: u8 = 1;
const STOP_KILL: u8 = 2;

struct Session {
    agent_id: String,
    name: String,
    role: String,
    town_id: String,
    rig_id: String,
    bead_id: Option<String>,
    cwd: PathBuf,
    spawn_epoch: u64,
    pid: i32,
    started_at_ms: u64,
    output: output::OutputBuffer,
    input: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    master: Mutex<Option<Box<dyn MasterPty + Send>>>,
    stop_phase: AtomicU8,
    /// True once the child has been reaped; guards every signal we send.
    reaped: Mutex<bool>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
    /// When this run started (the terminal's quiet time counts from here until it prints).
    started: std::time::Instant,
    /// When a person last typed into this terminal (nudges wait until they stop).
    last_typed: Mutex<Option<std::time::Instant>>,
    nudges: Mutex<nudge::NudgeState>,
    /// The terminal as a person would see it (fed by the output reader, resized with the PTY).
    vt: Mutex<vt100::Parser>,
    /// (digest of the screen's letters at the last look, changes counted so far).
    screen_seen: Mutex<(u64, u64)>,
}

impl Session {
    fn exit(&self) -> Option<ExitInfo> {
        self.exit_tx.borrow().clone()
    }

    fn state(&self) -> AgentState {
        if self.exit_tx.borrow().is_some() {
            AgentState::Exited
        } else if self.stop_phase.load(Ordering::SeqCst) != STOP_NONE {
            AgentState::Stopping
        } else {
            AgentState::Running
        }
    }

    /// What the terminal shows now, as plain text: the last non-blank rows of a real terminal
    /// emulator (vt100) fed with everything the agent printed, so TUIs that draw with cursor
    /// movements read the way a person sees them.
    fn screen(&self) -> String {
        let text = lock(&self.vt).screen().contents();
        let rows: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
        let mut out = rows[rows.len().saturating_sub(SCREEN_LINES)..].join("\n");
        if out.chars().count() > SCREEN_CHARS {
            out = out.chars().skip(out.chars().count() - SCREEN_CHARS).collect();
        }
        out
    }

    /// Counts a change when the screen's letters differ from the last look (digits, spinner
    /// glyphs and cursor blinks do not count).
    fn screen_changes(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for c in lock(&self.vt).screen().contents().chars().filter(|c| c.is_ascii_alphabetic()) {
            c.hash(&mut h);
        }
        let digest = h.finish();
        let mut seen = lock(&self.screen_seen);
        if seen.0 != digest {
            *seen = (digest, seen.1 + 1);
        }
        seen.1
    }

    fn is_live(&self) -> bool {
        self.exit_tx.borrow().is_none()
    }

    /// Signals the agent's process group unless the leader was already reaped.
    fn signal_group(&self, sig: i32) -> bool {
        let reaped = lock(&self.reaped);
        if *reaped {
            return false;
        }
        match sys::signal_group(self.pid, sig) {
            Ok(delivered) => delivered,
            Err(err) => {
                tracing::warn!(agent_id = %self.agent_id, %err, sig, "signalling agent failed");
                false
            }
        }
    }

    fn snapshot(&self) -> AgentSnapshot {
        AgentSnapshot {
            agent_id: self.agent_id.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            town_id: self.town_id.clone(),
            rig_id: self.rig_id.clone(),
            bead_id: self.bead_id.clone(),
            status: self.state(),
            spawn_epoch: self.spawn_epoch,
            pid: self.pid,
            cwd: self.cwd.display().to_string(),
            started_at_ms: self.started_at_ms,
            output_bytes: self.output.total(),
            exit: self.exit(),
            screen: self.is_live().then(|| self.screen()),
            screen_changes: self.screen_changes(),
        }
    }
}

#[derive(Default)]
struct Table {
    sessions: HashMap<String, Arc<Session>>,
    epochs: HashMap<String, u64>,
}

struct Inner {
    config: ProcessConfig,
    table: Mutex<Table>,
    events: broadcast::Sender<LifecycleEvent>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Whoever owns the manager is gone: take the agents down with it rather
        // than leaving orphans behind.
        let table = lock(&self.table);
        for s in table.sessions.values() {
            if s.is_live() {
                s.stop_phase.store(STOP_KILL, Ordering::SeqCst);
                s.signal_group(libc::SIGKILL);
            }
        }
    }
}

/// Starts, observes and stops agent processes. Cheap to clone.
#[derive(Clone)]
pub struct ProcessManager {
    inner: Arc<Inner>,
}

impl ProcessManager {
    pub fn new(config: ProcessConfig) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self { inner: Arc::new(Inner { config, table: Mutex::new(Table::default()), events }) }
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.inner.config
    }

    /// Lifecycle events from now on. A receiver that falls more than 1024 events
    /// behind loses the oldest ones.
    pub fn subscribe_events(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.inner.events.subscribe()
    }

    /// Checks the caps without starting anything, so that callers can refuse
    /// early before doing expensive preparation (cloning a repo).
    pub fn check_capacity(&self, agent_id: &str, rig_id: &str, role: &str, limits: &Limits) -> Result<(), ProcessError> {
        let table = lock(&self.inner.table);
        self.check_capacity_locked(&table, agent_id, rig_id, role, limits)
    }

    fn check_capacity_locked(&self, table: &Table, agent_id: &str, rig_id: &str, role: &str, limits: &Limits) -> Result<(), ProcessError> {
        if let Some(existing) = table.sessions.get(agent_id) {
            if existing.is_live() {
                return Err(ProcessError::AlreadyRunning(agent_id.to_string()));
            }
        }
        let limit = limits.max_running.map_or(self.inner.config.max_running, |l| l.min(self.inner.config.max_running));
        let live: Vec<&Arc<Session>> = table.sessions.values().filter(|s| s.is_live()).collect();
        if live.len() >= limit {
            return Err(ProcessError::CapacityExceeded { running: live.len(), limit });
        }
        if let Some(limit) = limits.max_same_role_per_rig {
            let running = live.iter().filter(|s| s.rig_id == rig_id && s.role == role).count();
            if running >= limit {
                return Err(ProcessError::RigCapacityExceeded { rig_id: rig_id.to_string(), role: role.to_string(), running, limit });
            }
        }
        Ok(())
    }

    /// Spawns the agent under a fresh PTY. Blocking (fork/exec); call it from a
    /// blocking context in async code.
    pub fn start(&self, spec: StartSpec) -> Result<AgentSnapshot, ProcessError> {
        validate_spec(&spec)?;
        let cfg = &self.inner.config;
        let (cols, rows) = spec.size.unwrap_or(cfg.initial_size);

        // The table lock is held across the spawn so that two concurrent starts
        // cannot both squeeze under the cap.
        let mut table = lock(&self.inner.table);
        self.check_capacity_locked(&table, &spec.agent_id, &spec.rig_id, &spec.role, &spec.limits)?;

        let pair = portable_pty::native_pty_system()
            .openpty(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 })
            .map_err(|e| ProcessError::Pty(format!("{e:#}")))?;

        // The terminal belongs to the agent, so that a CLI that opens /dev/tty (rather than using
        // the descriptors it inherited) can.
        if let (Some(id), Some(tty)) = (spec.run_as, pair.master.tty_name()) {
            std::os::unix::fs::chown(&tty, Some(id.uid), Some(id.gid))
                .map_err(|e| ProcessError::Pty(format!("chown {}: {e}", tty.display())))?;
        }
        let mut cmd = CommandBuilder::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..]);
        cmd.env_clear();
        cmd.env("PATH", &cfg.path);
        cmd.env("HOME", &cfg.home);
        cmd.env("LANG", &cfg.lang);
        cmd.env("TERM", "xterm-256color");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        cmd.cwd(&spec.cwd);

        let child =
            pair.slave.spawn_command(cmd).map_err(|e| ProcessError::Spawn { program: spec.argv[0].clone(), message: format!("{e:#}") })?;
        // Our copy of the slave must go, or the reader never sees EOF.
        drop(pair.slave);
        let pid = match child.process_id() {
            Some(pid) => pid as i32,
            None => return Err(ProcessError::Pty("spawned child has no pid".into())),
        };
        // The std child handle is not used: we wait on the pid ourselves.
        drop(child);

        let master = pair.master;
        let reader = master.try_clone_reader().map_err(|e| ProcessError::Pty(format!("{e:#}")));
        let writer = master.take_writer().map_err(|e| ProcessError::Pty(format!("{e:#}")));
        let (reader, writer) = match (reader, writer) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => {
                let _ = sys::signal_group(pid, libc::SIGKILL);
                let _ = sys::reap(pid);
                return Err(e);
            }
        };

        let epoch = {
            let e = table.epochs.entry(spec.agent_id.clone()).or_insert(0);
            *e = spec.epoch.unwrap_or(*e + 1);
            *e
        };
        let (input_tx, input_rx) = mpsc::channel::<Vec<u8>>(64);
        let (exit_tx, _) = watch::channel(None);
        let session = Arc::new(Session {
            agent_id: spec.agent_id.clone(),
            name: spec.name.clone(),
            role: spec.role.clone(),
            town_id: spec.town_id.clone(),
            rig_id: spec.rig_id.clone(),
            bead_id: spec.bead_id.clone(),
            cwd: spec.cwd.clone(),
            spawn_epoch: epoch,
            pid,
            started_at_ms: now_ms(),
            output: output::OutputBuffer::new(cfg.scrollback_bytes, cfg.live_channel_capacity),
            input: Mutex::new(Some(input_tx)),
            master: Mutex::new(Some(master)),
            stop_phase: AtomicU8::new(STOP_NONE),
            reaped: Mutex::new(false),
            exit_tx,
            started: std::time::Instant::now(),
            last_typed: Mutex::new(None),
            nudges: Mutex::new(nudge::NudgeState::default()),
            vt: Mutex::new(vt100::Parser::new(rows, cols, 0)),
            screen_seen: Mutex::new((0, 0)),
        });
        table.sessions.insert(spec.agent_id.clone(), session.clone());
        evict_old_exited(&mut table, cfg.retained_exited);
        drop(table);

        tracing::info!(agent_id = %spec.agent_id, pid, epoch, argv0 = %spec.argv[0], "agent started");
        // Sent before the waiter exists, so "started" always precedes "exited".
        let _ = self.inner.events.send(LifecycleEvent::Started {
            agent_id: spec.agent_id.clone(),
            town_id: spec.town_id.clone(),
            rig_id: spec.rig_id.clone(),
            role: spec.role.clone(),
            spawn_epoch: epoch,
            pid,
            at_ms: session.started_at_ms,
        });

        let snapshot = session.snapshot();
        if let Err(err) = spawn_io_threads(session.clone(), reader, writer, input_rx, self.inner.events.clone()) {
            // Without a waiter nobody would ever reap it or free its slot.
            abandon(&session, &self.inner.events);
            return Err(err);
        }
        Ok(snapshot)
    }

    fn get(&self, agent_id: &str) -> Result<Arc<Session>, ProcessError> {
        lock(&self.inner.table).sessions.get(agent_id).cloned().ok_or_else(|| ProcessError::NotFound(agent_id.to_string()))
    }

    pub fn status(&self, agent_id: &str) -> Result<AgentSnapshot, ProcessError> {
        Ok(self.get(agent_id)?.snapshot())
    }

    /// All known sessions (running and retained exited ones), oldest first.
    pub fn list(&self) -> Vec<AgentSnapshot> {
        let mut all: Vec<AgentSnapshot> = lock(&self.inner.table).sessions.values().map(|s| s.snapshot()).collect();
        all.sort_by(|a, b| (a.started_at_ms, &a.agent_id).cmp(&(b.started_at_ms, &b.agent_id)));
        all
    }

    /// The most agents this container runs at once (the town learns it and never asks for more).
    pub fn max_running(&self) -> usize {
        self.inner.config.max_running
    }

    /// Agents not yet exited (running or stopping).
    pub fn running_count(&self) -> usize {
        lock(&self.inner.table).sessions.values().filter(|s| s.is_live()).count()
    }

    pub fn session_count(&self) -> usize {
        lock(&self.inner.table).sessions.len()
    }

    /// Scrollback snapshot plus the live stream from exactly where it ends.
    pub fn subscribe_output(&self, agent_id: &str) -> Result<OutputSubscription, ProcessError> {
        Ok(self.get(agent_id)?.output.subscribe())
    }

    pub fn scrollback(&self, agent_id: &str) -> Result<Vec<u8>, ProcessError> {
        Ok(self.get(agent_id)?.output.scrollback())
    }

    /// Queues bytes for the agent's terminal. Waits only if this agent's input
    /// queue is full (the agent is not reading), never on other agents.
    pub async fn write_input(&self, agent_id: &str, data: Vec<u8>) -> Result<(), ProcessError> {
        let s = self.get(agent_id)?;
        let tx = lock(&s.input).clone().ok_or_else(|| ProcessError::NotRunning(agent_id.to_string()))?;
        tx.send(data).await.map_err(|_| ProcessError::NotRunning(agent_id.to_string()))
    }

    /// Keystrokes from a person at the terminal: sent on, and remembered so that notices wait
    /// until the person stops typing.
    pub async fn type_input(&self, agent_id: &str, data: Vec<u8>) -> Result<(), ProcessError> {
        *lock(&self.get(agent_id)?.last_typed) = Some(std::time::Instant::now());
        self.write_input(agent_id, data).await
    }

    pub fn resize(&self, agent_id: &str, cols: u16, rows: u16) -> Result<(), ProcessError> {
        if !(1..=4096).contains(&cols) || !(1..=4096).contains(&rows) {
            return Err(ProcessError::Invalid(format!("terminal size {cols}x{rows} out of range")));
        }
        let s = self.get(agent_id)?;
        let master = lock(&s.master);
        let master = master.as_ref().ok_or_else(|| ProcessError::NotRunning(agent_id.to_string()))?;
        master.resize(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 }).map_err(|e| ProcessError::Pty(format!("{e:#}")))?;
        lock(&s.vt).screen_mut().set_size(rows, cols);
        Ok(())
    }

    /// SIGHUP to the agent's process group, then SIGKILL after `grace` (the
    /// configured default if `None`). Returns how the run ended; stopping an
    /// agent that already exited just reports that exit.
    pub async fn stop(&self, agent_id: &str, grace: Option<Duration>) -> Result<ExitInfo, ProcessError> {
        let s = self.get(agent_id)?;
        let mut rx = s.exit_tx.subscribe();
        if let Some(exit) = rx.borrow().clone() {
            return Ok(exit);
        }
        let grace = grace.unwrap_or(self.inner.config.stop_grace);
        let _ = s.stop_phase.compare_exchange(STOP_NONE, STOP_HUP, Ordering::SeqCst, Ordering::SeqCst);
        tracing::info!(agent_id, pid = s.pid, ?grace, "stopping agent (SIGHUP)");
        s.signal_group(libc::SIGHUP);
        if let Ok(Some(exit)) = tokio::time::timeout(grace, wait_exit(&mut rx)).await {
            return Ok(exit);
        }
        tracing::warn!(agent_id, pid = s.pid, "agent ignored SIGHUP; sending SIGKILL");
        s.stop_phase.store(STOP_KILL, Ordering::SeqCst);
        s.signal_group(libc::SIGKILL);
        match tokio::time::timeout(self.inner.config.kill_wait, wait_exit(&mut rx)).await {
            Ok(Some(exit)) => Ok(exit),
            _ => Err(ProcessError::StopTimedOut(agent_id.to_string())),
        }
    }

    /// Stops every live agent concurrently (used on shutdown).
    pub async fn stop_all(&self, grace: Option<Duration>) {
        let ids: Vec<String> = lock(&self.inner.table).sessions.values().filter(|s| s.is_live()).map(|s| s.agent_id.clone()).collect();
        let mut tasks = Vec::new();
        for id in ids {
            let pm = self.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(err) = pm.stop(&id, grace).await {
                    tracing::warn!(agent_id = %id, %err, "stop on shutdown failed");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Resolves once the agent's current run has exited.
    pub async fn wait_exit(&self, agent_id: &str) -> Result<ExitInfo, ProcessError> {
        let s = self.get(agent_id)?;
        let mut rx = s.exit_tx.subscribe();
        wait_exit(&mut rx).await.ok_or_else(|| ProcessError::NotFound(agent_id.to_string()))
    }
}

async fn wait_exit(rx: &mut watch::Receiver<Option<ExitInfo>>) -> Option<ExitInfo> {
    rx.wait_for(|e| e.is_some()).await.ok().and_then(|e| e.clone())
}

fn spawn_io_threads(
    session: Arc<Session>,
    mut reader: Box<dyn Read + Send>,
    mut writer: Box<dyn Write + Send>,
    mut input_rx: mpsc::Receiver<Vec<u8>>,
    events: broadcast::Sender<LifecycleEvent>,
) -> Result<(), ProcessError> {
    let tag = short_tag(&session.agent_id);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();

    let s = session.clone();
    std::thread::Builder::new().name(format!("pty-out-{tag}")).spawn(move || {
        let mut buf = vec![0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    s.output.append(&buf[..n]);
                    lock(&s.vt).process(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EIO: every slave fd is closed.
                Err(_) => break,
            }
        }
        let _ = done_tx.send(());
    })?;

    std::thread::Builder::new().name(format!("pty-in-{tag}")).spawn(move || {
        while let Some(buf) = input_rx.blocking_recv() {
            if writer.write_all(&buf).and_then(|_| writer.flush()).is_err() {
                break;
            }
        }
    })?;

    let s = session;
    std::thread::Builder::new()
        .name(format!("pty-wait-{tag}"))
        .spawn(move || {
            let pid = s.pid;
            if let Err(err) = sys::wait_exit_no_reap(pid) {
                tracing::error!(agent_id = %s.agent_id, %err, "waitid failed");
            }
            let status = {
                let mut reaped = lock(&s.reaped);
                // Leftovers in the group (background jobs) go with their leader;
                // the zombie keeps the pgid from being recycled meanwhile.
                let _ = sys::signal_group(pid, libc::SIGKILL);
                let status = sys::reap(pid).unwrap_or(sys::WaitStatus {
                    code: None,
                    signal: None,
                });
                *reaped = true;
                status
            };
            // Let the reader drain what the child wrote before it died; do not
            // wait forever for a descendant that escaped the group.
            let _ = done_rx.recv_timeout(Duration::from_secs(2));
            lock(&s.input).take();
            lock(&s.master).take();
            let reason = match s.stop_phase.load(Ordering::SeqCst) {
                STOP_NONE => ExitReason::Exited,
                STOP_HUP => ExitReason::Stopped,
                _ => ExitReason::Killed,
            };
            let exit = ExitInfo {
                code: status.code,
                signal: status.signal,
                reason,
                spawn_epoch: s.spawn_epoch,
                exited_at_ms: now_ms(),
            };
            tracing::info!(agent_id = %s.agent_id, pid, epoch = s.spawn_epoch, code = ?exit.code, signal = ?exit.signal, ?reason, "agent exited");
            record_exit(&s, exit, &events);
        })?;
    Ok(())
}

/// Kills and reaps a run whose I/O threads could not be started, and records
/// it as killed.
fn abandon(s: &Session, events: &broadcast::Sender<LifecycleEvent>) {
    s.stop_phase.store(STOP_KILL, Ordering::SeqCst);
    let status = {
        let mut reaped = lock(&s.reaped);
        let _ = sys::signal_group(s.pid, libc::SIGKILL);
        let status = sys::reap(s.pid).ok();
        *reaped = true;
        status
    };
    lock(&s.input).take();
    lock(&s.master).take();
    let exit = ExitInfo {
        code: status.and_then(|st| st.code),
        signal: status.and_then(|st| st.signal),
        reason: ExitReason::Killed,
        spawn_epoch: s.spawn_epoch,
        exited_at_ms: now_ms(),
    };
    record_exit(s, exit, events);
}

/// Publishes a run's end: status first (whoever sees the exit on the output stream must also
/// see it in a status query), then the output stream, then the lifecycle event.
fn record_exit(s: &Session, exit: ExitInfo, events: &broadcast::Sender<LifecycleEvent>) {
    s.exit_tx.send_replace(Some(exit.clone()));
    s.output.close(exit.clone());
    let _ = events.send(LifecycleEvent::Exited {
        agent_id: s.agent_id.clone(),
        town_id: s.town_id.clone(),
        rig_id: s.rig_id.clone(),
        role: s.role.clone(),
        spawn_epoch: s.spawn_epoch,
        exit,
        screen: s.screen(),
    });
}

fn validate_spec(spec: &StartSpec) -> Result<(), ProcessError> {
    let bad = |m: String| Err(ProcessError::Invalid(m));
    if spec.agent_id.is_empty() || spec.agent_id.len() > 128 || spec.agent_id.chars().any(|c| c.is_control() || c == '/') {
        return bad("agent_id must be 1-128 printable characters without '/'".into());
    }
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return bad("command must not be empty".into());
    }
    if spec.argv.iter().any(|a| a.contains('\0')) {
        return bad("command arguments must not contain NUL".into());
    }
    if !spec.cwd.is_absolute() || !spec.cwd.is_dir() {
        // portable-pty would silently fall back to $HOME otherwise.
        return bad(format!("working directory {} is not an existing absolute directory", spec.cwd.display()));
    }
    for (k, v) in &spec.env {
        if !is_env_name(k) {
            return bad(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return bad(format!("environment variable {k} contains NUL"));
        }
    }
    Ok(())
}

/// POSIX-portable environment variable name.
pub fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic()) && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn evict_old_exited(table: &mut Table, keep: usize) {
    let mut exited: Vec<(u64, String)> =
        table.sessions.values().filter_map(|s| s.exit().map(|e| (e.exited_at_ms, s.agent_id.clone()))).collect();
    if exited.len() <= keep {
        return;
    }
    exited.sort();
    let excess = exited.len() - keep;
    for (_, id) in exited.into_iter().take(excess) {
        table.sessions.remove(&id);
    }
}

fn short_tag(agent_id: &str) -> String {
    agent_id.chars().take(8).collect()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
