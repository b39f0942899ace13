//! Git for agents: one server-owned clone per rig, one private clone per polecat, and the
//! refinery's gated merge.
//!
//! Layout under the workspace root (modes when agents run under their own uids):
//! ```text
//! rigs/<rig_id>/repo                        the server's clone (no checkout; agents read, never write)
//! rigs/<rig_id>/worktrees/<agent>-<bead>    a polecat's own clone on gt/<agent>/<bead> (0700, its uid)
//! rigs/<rig_id>/merge-tmp/merge-<n>         temporary detached merge worktree of the server's clone
//! .credentials/<rig_id>                     token file (0600, the server's), see `credentials`
//! ```
//! A polecat's clone borrows the server clone's objects (`alternates`) and fetches from it, so
//! its `origin/<branch>` mirrors the real remote; it cannot push anywhere: it has no credential
//! and the server's clone is not writable for it. `gt done` asks the town, which asks this
//! server to [`GitManager::push_agent_branch`]: the server pulls exactly the agent's own branch
//! out of the agent's clone (the agent's side of that fetch runs under the agent's uid, so
//! nothing the agent planted in its `.git` ever runs as the server) and pushes it with the
//! rig's credentials. The refinery merges in the server's clone, whose hooks and config no
//! agent can write; the quality gates run under a uid of their own.
//!
//! Git is always run as a program with an argv (never through a shell), with a
//! minimal environment, prompts disabled and only the file/https/ssh transports
//! allowed. Every value that reaches an argv is validated first (`validate`).
//! Per-rig locks serialise operations on a rig's shared repository; merges
//! take an additional per-rig merge lock so the refinery runs one train at a time (`train`).

mod credentials;
mod gate;
mod train;
pub mod validate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::isolation::{self, Ident, Isolation, IsolationError};
pub use credentials::{GitAuth, SecretString};
pub use train::{BatchOutcome, GateRunReport, MergeBatchRequest, MAX_CONFLICT_FILES, MAX_TRAIN};
use validate::{ensure_inside, slug, validate_branch, validate_id, validate_url};
pub use validate::{GitUrl, UrlKind, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("git {args} failed (exit {code:?}): {stderr}")]
    Command { args: String, code: Option<i32>, stderr: String },
    #[error("branch {0} not found on origin")]
    BranchNotFound(String),
    #[error("rig {0} has no clone yet")]
    NotCloned(String),
    #[error("{0}")]
    NotSupported(String),
    /// The caller may not do this (e.g. push a branch that is not the agent's own).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Commit identity, exported to agents as `GIT_AUTHOR_*`/`GIT_COMMITTER_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    /// `<name> (gastown)`, with `email_template` (where `{name}` becomes the
    /// name's slug) or `<slug>@gastown.local`.
    pub fn for_agent(name: &str, email_template: Option<&str>) -> Result<Self, ValidationError> {
        let s = slug("agent name", name)?;
        let display: String = name.chars().filter(|c| !c.is_control() && !matches!(c, '<' | '>')).collect();
        let display = display.trim();
        let display = if display.is_empty() { s.as_str() } else { display };
        let email = match email_template.filter(|t| !t.is_empty()) {
            Some(t) => t.replace("{name}", &s),
            None => format!("{s}@gastown.local"),
        };
        if !email.contains('@') || email.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>')) {
            return Err(ValidationError { what: "author email", value: email, reason: "must look like an email address".into() });
        }
        Ok(Self { name: format!("{display} (gastown)"), email })
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GIT_AUTHOR_NAME".into(), self.name.clone()),
            ("GIT_AUTHOR_EMAIL".into(), self.email.clone()),
            ("GIT_COMMITTER_NAME".into(), self.name.clone()),
            ("GIT_COMMITTER_EMAIL".into(), self.email.clone()),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct GitSettings {
    pub workspace: PathBuf,
    pub git_program: PathBuf,
    pub path: String,
    pub home: PathBuf,
    /// Ignore `~/.gitconfig` of the server user (deterministic behaviour).
    pub isolate_global_config: bool,
    /// Extra `key=value` git config for every command and every agent (for
    /// example `url.<base>.insteadOf` rewrites or an http proxy).
    pub extra_config: Vec<(String, String)>,
    /// Variables copied from the server's environment at startup (for example
    /// `SSH_AUTH_SOCK`).
    pub passthrough_env: Vec<(String, String)>,
    pub refinery_identity: Identity,
    /// Tail of gate output kept, in bytes.
    pub max_gate_output: usize,
    /// Recent git argv kept for inspection.
    pub command_log_capacity: usize,
    /// Which uid each agent's clone and the refinery's gates belong to.
    pub isolation: Arc<Isolation>,
}

impl GitSettings {
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            workspace: workspace.into(),
            git_program: PathBuf::from("git"),
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/")),
            isolate_global_config: true,
            extra_config: Vec::new(),
            passthrough_env: Vec::new(),
            refinery_identity: Identity { name: "Refinery (gastown)".into(), email: "refinery@gastown.local".into() },
            max_gate_output: 64 * 1024,
            command_log_capacity: 512,
            isolation: Arc::new(Isolation::disabled()),
        }
    }
}

/// A polecat's worktree.
#[derive(Debug, Clone, Serialize)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    /// False when an existing worktree was reused.
    pub created: bool,
}

/// How the refinery lands a branch (shared with the Worker).
pub use gastown_protocol::MergeStrategy;

/// A gate's run and a branch's outcome, as the Worker reads them (shared with it).
pub use gastown_protocol::{BranchOutcome as MergeOutcome, GateReport};

struct GitRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl GitRun {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

type LockMap = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

struct GitInner {
    settings: GitSettings,
    repo_locks: LockMap,
    merge_locks: LockMap,
    log: Mutex<VecDeque<Vec<String>>>,
    counter: AtomicU64,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct GitManager {
    inner: Arc<GitInner>,
}

impl GitManager {
    /// Creates the workspace layout; the workspace path is canonicalised so
    /// that containment checks are meaningful.
    pub fn new(mut settings: GitSettings) -> std::io::Result<Self> {
        std::fs::create_dir_all(settings.workspace.join("rigs"))?;
        settings.workspace = settings.workspace.canonicalize()?;
        if settings.workspace.to_str().is_none() {
            return Err(std::io::Error::other("workspace path must be valid UTF-8"));
        }
        if settings.isolation.enabled() {
            // Agents may pass through to their own folders, never list or write the others.
            for dir in [settings.workspace.clone(), settings.workspace.join("rigs")] {
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
            }
        }
        Ok(Self {
            inner: Arc::new(GitInner {
                settings,
                repo_locks: Mutex::default(),
                merge_locks: Mutex::default(),
                log: Mutex::default(),
                counter: AtomicU64::new(0),
            }),
        })
    }

    pub fn workspace(&self) -> &Path {
        &self.inner.settings.workspace
    }

    pub fn settings(&self) -> &GitSettings {
        &self.inner.settings
    }

    pub fn rig_dir(&self, rig_id: &str) -> Result<PathBuf, GitError> {
        validate_id("rig id", rig_id)?;
        Ok(self.workspace().join("rigs").join(rig_id))
    }

    pub fn repo_dir(&self, rig_id: &str) -> Result<PathBuf, GitError> {
        Ok(self.rig_dir(rig_id)?.join("repo"))
    }

    pub fn credential_file(&self, rig_id: &str) -> Result<PathBuf, GitError> {
        validate_id("rig id", rig_id)?;
        Ok(self.workspace().join(".credentials").join(rig_id))
    }

    /// The most recent git argv lists (without environment), oldest first.
    pub fn command_log(&self) -> Vec<Vec<String>> {
        lock(&self.inner.log).iter().cloned().collect()
    }

    /// Git-related environment for an agent working in `rig_id`: the extra config, permission to
    /// fetch from the server's clone (owned by another uid), and no prompts. No credential: an
    /// agent cannot push anywhere by itself.
    pub fn agent_env(&self, rig_id: &str) -> Result<Vec<(String, String)>, GitError> {
        let mut pairs = self.inner.settings.extra_config.clone();
        let repo = self.repo_dir(rig_id)?;
        pairs.push(("safe.directory".into(), path_str(&repo)?.to_string()));
        let mut env = credentials::config_env(&pairs);
        env.push(("GIT_TERMINAL_PROMPT".into(), "0".into()));
        Ok(env)
    }

    /// Clones the rig's repository, or fetches if the clone exists. Refreshes
    /// the credential file from `auth` every time (config-on-request).
    pub async fn ensure_repo(&self, rig_id: &str, git_url: &str, auth: &GitAuth) -> Result<PathBuf, GitError> {
        let url = validate_url(git_url)?;
        let lock = self.repo_lock(rig_id)?;
        let _guard = lock.lock().await;
        self.ensure_repo_locked(rig_id, &url, auth).await
    }

    async fn ensure_repo_locked(&self, rig_id: &str, url: &GitUrl, auth: &GitAuth) -> Result<PathBuf, GitError> {
        let rig_dir = self.rig_dir(rig_id)?;
        let repo = rig_dir.join("repo");
        isolation::private_dir(&rig_dir, None, 0o711)?;
        let cred = self.sync_credentials(rig_id, url, auth)?;
        let cred = cred.as_deref();

        if self.is_repo(&repo).await {
            // Raw config value: `remote get-url` would expand insteadOf rules.
            let current = self.run(&repo, &["config", "--get", "remote.origin.url"], None, &[]).await?;
            if !current.ok() || current.stdout.trim() != url.as_str() {
                let verb = if current.ok() { "set-url" } else { "add" };
                self.run_ok(&repo, &["remote", verb, "origin", url.as_str()], cred, &[]).await?;
            }
            self.run_ok(&repo, &["fetch", "--prune", "--no-tags", "origin"], cred, &[]).await?;
            return Ok(repo);
        }

        if tokio::fs::symlink_metadata(&repo).await.is_ok() {
            tracing::warn!(rig_id, "rig repo directory is not a git repository; recloning");
            self.remove_tree(&repo).await?;
        }
        let repo_s = path_str(&repo)?.to_string();
        let cloned = self.run_ok(&rig_dir, &["clone", "--no-checkout", "--origin", "origin", "--", url.as_str(), &repo_s], cred, &[]).await;
        if let Err(err) = cloned {
            let _ = self.remove_tree(&repo).await;
            return Err(err);
        }
        Ok(repo)
    }

    /// Can the repository at `git_url` be reached, with the town's credentials exactly as a clone
    /// would present them (a credential file only for the configured host, never in argv)?
    /// `git ls-remote` in the workspace, bounded by `timeout`. The answer is a category, never
    /// git's own output: that can carry paths and, from a hostile remote, anything at all.
    pub async fn check_remote(&self, git_url: &str, auth: &GitAuth, timeout: Duration) -> Result<RemoteCheck, GitError> {
        let url = validate_url(git_url)?;
        static CHECKS: AtomicU64 = AtomicU64::new(0);
        let id = format!("check-{}-{}", std::process::id(), CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let cred = self.sync_credentials(&id, &url, auth)?;
        let ws = self.workspace().to_path_buf();
        tokio::fs::create_dir_all(&ws).await?;
        let run = tokio::time::timeout(timeout, self.run(&ws, &["ls-remote", "--heads", "--", url.as_str()], cred.as_deref(), &[])).await;
        if let Some(path) = &cred {
            let _ = std::fs::remove_file(path);
        }
        Ok(match run {
            Err(_) => RemoteCheck::Unreachable,
            Ok(r) => {
                let r = r?;
                if r.ok() {
                    RemoteCheck::Reachable
                } else {
                    tracing::debug!(code = ?r.code, "git ls-remote failed");
                    classify_remote_failure(&r.stderr)
                }
            }
        })
    }

    /// The branch and directory of `agent_name`'s clone for `bead_id`.
    pub fn worktree_of(&self, rig_id: &str, agent_name: &str, bead_id: &str) -> Result<(String, PathBuf), GitError> {
        validate_id("bead id", bead_id)?;
        let agent = slug("agent name", agent_name)?;
        let branch = format!("gt/{agent}/{bead_id}");
        validate_branch(&branch)?;
        Ok((branch, self.rig_dir(rig_id)?.join("worktrees").join(format!("{agent}-{bead_id}"))))
    }

    /// Creates (or reuses) the polecat's own clone `worktrees/<agent>-<bead>` on branch
    /// `gt/<agent>/<bead>`, owned by the agent's uid. A new branch starts from the pushed branch
    /// of the same name if one exists (rework), else `origin/<default_branch>`.
    pub async fn ensure_worktree(
        &self,
        rig_id: &str,
        agent_id: &str,
        agent_name: &str,
        bead_id: &str,
        default_branch: &str,
    ) -> Result<Worktree, GitError> {
        validate_branch(default_branch)?;
        let (branch, dir) = self.worktree_of(rig_id, agent_name, bead_id)?;
        let owner = self.inner.settings.isolation.for_agent(agent_id)?;
        let rig_dir = self.rig_dir(rig_id)?;
        let repo = rig_dir.join("repo");

        let lock = self.repo_lock(rig_id)?;
        let _guard = lock.lock().await;
        if !self.is_repo(&repo).await {
            return Err(GitError::NotCloned(rig_id.to_string()));
        }
        isolation::private_dir(&rig_dir.join("worktrees"), None, 0o711)?;
        let agent_git = AgentGit { owner, env: self.agent_env(rig_id)? };

        if tokio::fs::symlink_metadata(&dir).await.is_ok() {
            let head = self.run_agent(&agent_git, &dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await?;
            let top = self.run_agent(&agent_git, &dir, &["rev-parse", "--show-toplevel"]).await?;
            let same_top = top.ok() && Path::new(top.stdout.trim()).canonicalize().ok() == dir.canonicalize().ok();
            if head.ok() && head.stdout.trim() == branch && same_top {
                // Refresh origin/* so a rework sees the target branch as it is now.
                let _ = self.run_agent(&agent_git, &dir, &["fetch", "-q", "--no-tags", "origin"]).await;
                return Ok(Worktree { path: dir, branch, created: false });
            }
            tracing::warn!(rig_id, path = %dir.display(), "replacing broken worktree");
            self.remove_tree(&dir).await?;
        }
        isolation::private_dir(&dir, owner, 0o700)?;
        let made = self.init_agent_clone(&agent_git, &repo, &dir, &branch, default_branch).await;
        if let Err(err) = made {
            let _ = self.remove_tree(&dir).await;
            return Err(err);
        }
        self.ensure_excluded(&agent_git, &dir).await?;
        Ok(Worktree { path: dir, branch, created: true })
    }

    async fn init_agent_clone(&self, g: &AgentGit, repo: &Path, dir: &Path, branch: &str, default_branch: &str) -> Result<(), GitError> {
        let repo_s = path_str(repo)?.to_string();
        self.run_agent_ok(g, dir, &["init", "-q"]).await?;
        // Borrow the server clone's objects: a polecat clone costs only its own commits.
        let objects = format!("{}\n", path_str(&repo.join(".git").join("objects"))?);
        isolation::write_private_file(&dir.join(".git").join("objects").join("info"), "alternates", objects.as_bytes(), g.owner)?;
        self.run_agent_ok(g, dir, &["remote", "add", "origin", &repo_s]).await?;
        // The server clone's origin/* (the real remote as last fetched) becomes ours.
        self.run_agent_ok(g, dir, &["config", "remote.origin.fetch", "+refs/remotes/origin/*:refs/remotes/origin/*"]).await?;
        // The server clone belongs to another uid; git drops GIT_CONFIG_* for the local
        // upload-pack it spawns, so the exception travels on its command line.
        let safe = format!("safe.directory={}", path_str(&repo.join(".git"))?);
        let upload = format!("git -c {} upload-pack", crate::text::shell_quote(&safe));
        self.run_agent_ok(g, dir, &["config", "remote.origin.uploadpack", &upload]).await?;
        self.run_agent_ok(g, dir, &["fetch", "-q", "--no-tags", "origin"]).await?;
        let rework = format!("refs/remotes/origin/{branch}");
        let base = if self.run_agent(g, dir, &["rev-parse", "--verify", "--quiet", &rework]).await?.ok() {
            rework
        } else {
            let base = format!("refs/remotes/origin/{default_branch}");
            if !self.run_agent(g, dir, &["rev-parse", "--verify", "--quiet", &base]).await?.ok() {
                return Err(GitError::BranchNotFound(default_branch.to_string()));
            }
            base
        };
        self.run_agent_ok(g, dir, &["checkout", "-q", "--no-track", "-b", branch, &base]).await?;
        Ok(())
    }

    /// `gt done`: takes the agent's own branch `gt/<agent>/<bead>` out of its clone and pushes it
    /// to origin with the rig's credentials; returns the pushed commit. `claimed` must be that
    /// branch: an agent cannot have any other branch (let alone the default one) pushed.
    #[allow(clippy::too_many_arguments)]
    pub async fn push_agent_branch(
        &self,
        rig_id: &str,
        git_url: &str,
        agent_id: &str,
        agent_name: &str,
        bead_id: &str,
        claimed: &str,
        auth: &GitAuth,
    ) -> Result<(String, String), GitError> {
        let url = validate_url(git_url)?;
        let (branch, dir) = self.worktree_of(rig_id, agent_name, bead_id)?;
        if claimed != branch {
            return Err(GitError::Forbidden(format!("an agent may only submit its own branch {branch}, not {claimed:?}")));
        }
        let owner = self.inner.settings.isolation.for_agent(agent_id)?;
        let meta = tokio::fs::symlink_metadata(&dir).await;
        if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
            return Err(GitError::BranchNotFound(format!("{branch} (the agent has no clone for this bead)")));
        }
        let repo = self.repo_dir(rig_id)?;
        let lock = self.repo_lock(rig_id)?;
        let _guard = lock.lock().await;
        if !self.is_repo(&repo).await {
            return Err(GitError::NotCloned(rig_id.to_string()));
        }
        let cred = self.sync_credentials(rig_id, &url, auth)?;
        self.run_ok(&repo, &["remote", "set-url", "origin", url.as_str()], None, &[]).await?;
        // The agent's side of the fetch (upload-pack, which reads the agent's .git/config) runs
        // as the agent with an empty environment; our side checks every object it receives.
        let mut upload = vec!["env".to_string(), "-i".into(), format!("PATH={}", self.inner.settings.path), "HOME=/nonexistent".into()];
        upload.extend(["GIT_CONFIG_GLOBAL=/dev/null".to_string(), "git".into(), "upload-pack".into()]);
        let upload: Vec<String> = Isolation::wrap_argv(owner, upload).iter().map(|a| crate::text::shell_quote(a)).collect();
        let upload = upload.join(" ");
        let incoming = format!("refs/gastown/incoming/{branch}");
        let dir_s = path_str(&dir)?.to_string();
        let refspec = format!("+refs/heads/{branch}:{incoming}");
        let fetched = self
            .run(
                &repo,
                &["-c", "transfer.fsckObjects=true", "fetch", "-q", "--no-tags", "--upload-pack", &upload, "--", &dir_s, &refspec],
                None,
                &[],
            )
            .await?;
        if !fetched.ok() {
            return Err(GitError::BranchNotFound(format!(
                "{branch} in the agent's clone (commit your work on it first): {}",
                tail(fetched.stderr.trim(), 1024)
            )));
        }
        let sha = self.run_ok(&repo, &["rev-parse", "--verify", &format!("{incoming}^{{commit}}")], None, &[]).await?.trim().to_string();
        let push = format!("+{incoming}:refs/heads/{branch}");
        self.run_ok(&repo, &["push", "-q", "origin", &push], cred.as_deref(), &[]).await?;
        // Keep the remote-tracking ref in step, so a rework clone starts from what was pushed.
        self.run_ok(&repo, &["update-ref", &format!("refs/remotes/origin/{branch}"), &sha], None, &[]).await?;
        Ok((branch, sha))
    }

    /// The gates' environment: the town's variables, `CI=true`, and under isolation a HOME of
    /// the refinery's own and permission to read the server clone from the checkout.
    fn gate_env(&self, extra: &BTreeMap<String, String>, refinery: Option<Ident>) -> Result<Vec<(String, String)>, GitError> {
        let s = &self.inner.settings;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), s.path.clone());
        let home = match refinery {
            Some(id) => {
                let home = s.workspace.join("homes").join("refinery");
                isolation::private_dir(&home, Some(id), 0o700)?;
                for (k, v) in credentials::config_env(&[("safe.directory".into(), "*".into())]) {
                    env.insert(k, v);
                }
                home
            }
            None => s.home.clone(),
        };
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("CI".into(), "true".into());
        for (k, v) in extra {
            if crate::process::is_env_name(k) && !v.contains('\0') {
                env.insert(k.clone(), v.clone());
            }
        }
        Ok(env.into_iter().collect())
    }

    /// Keeps the prompt folder out of commits. Written without reading or following anything the
    /// agent could have planted: the file is replaced as a whole.
    async fn ensure_excluded(&self, g: &AgentGit, worktree: &Path) -> Result<(), GitError> {
        let info = worktree.join(".git").join("info");
        isolation::write_private_file(&info, "exclude", b"# gastown prompt and scratch files\n.gastown/\n", g.owner)?;
        Ok(())
    }

    fn sync_credentials(&self, rig_id: &str, url: &GitUrl, auth: &GitAuth) -> Result<Option<PathBuf>, GitError> {
        let path = self.credential_file(rig_id)?;
        Ok(credentials::sync_file(&path, auth, url)?.then_some(path))
    }

    fn config_pairs(&self, cred: Option<&Path>) -> Vec<(String, String)> {
        let mut pairs = self.inner.settings.extra_config.clone();
        if let Some(cred) = cred {
            pairs.extend(credentials::helper_config(cred));
        }
        pairs
    }

    async fn is_repo(&self, dir: &Path) -> bool {
        if !dir.join(".git").exists() {
            return false;
        }
        matches!(
            self.run(dir, &["rev-parse", "--git-dir"], None, &[]).await,
            Ok(r) if r.ok()
        )
    }

    async fn ref_exists(&self, repo: &Path, r: &str) -> Result<bool, GitError> {
        Ok(self.run(repo, &["rev-parse", "--verify", "--quiet", r], None, &[]).await?.ok())
    }

    /// Best effort: a leftover directory is worse than a failed prune. The directory goes first
    /// (without following links) and git only prunes its record: `git worktree remove` would
    /// read the checkout, which gates may have changed.
    async fn remove_worktree(&self, repo: &Path, dir: &Path) {
        if tokio::fs::symlink_metadata(dir).await.is_ok() {
            if let Err(err) = self.remove_tree(dir).await {
                tracing::warn!(path = %dir.display(), %err, "failed to remove worktree directory");
            }
        }
        let _ = self.run(repo, &["worktree", "prune"], None, &[]).await;
    }

    async fn remove_tree(&self, dir: &Path) -> Result<(), GitError> {
        ensure_inside(&self.workspace().join("rigs"), dir)?;
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn repo_lock(&self, rig_id: &str) -> Result<Arc<tokio::sync::Mutex<()>>, GitError> {
        validate_id("rig id", rig_id)?;
        Ok(self.lock_for(&self.inner.repo_locks, rig_id))
    }

    fn lock_for(&self, map: &LockMap, rig_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(map).entry(rig_id.to_string()).or_default().clone()
    }

    /// Git in an agent's clone runs as that agent: hooks or config it planted there run with
    /// no more rights than it already has.
    async fn run_agent(&self, g: &AgentGit, cwd: &Path, args: &[&str]) -> Result<GitRun, GitError> {
        self.exec(cwd, args, None, &g.env, g.owner).await
    }

    async fn run_agent_ok(&self, g: &AgentGit, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        let r = self.run_agent(g, cwd, args).await?;
        if r.ok() {
            Ok(r.stdout)
        } else {
            Err(GitError::Command { args: args.join(" "), code: r.code, stderr: tail(r.stderr.trim(), 4096) })
        }
    }

    async fn run_ok(&self, cwd: &Path, args: &[&str], cred: Option<&Path>, env: &[(String, String)]) -> Result<String, GitError> {
        let r = self.run(cwd, args, cred, env).await?;
        if r.ok() {
            Ok(r.stdout)
        } else {
            Err(GitError::Command { args: args.join(" "), code: r.code, stderr: tail(r.stderr.trim(), 4096) })
        }
    }

    async fn run(&self, cwd: &Path, args: &[&str], cred: Option<&Path>, env: &[(String, String)]) -> Result<GitRun, GitError> {
        self.exec(cwd, args, cred, env, None).await
    }

    async fn exec(
        &self,
        cwd: &Path,
        args: &[&str],
        cred: Option<&Path>,
        env: &[(String, String)],
        user: Option<Ident>,
    ) -> Result<GitRun, GitError> {
        let s = &self.inner.settings;
        let mut argv = vec!["git".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        tracing::debug!(cwd = %cwd.display(), ?argv, "git");
        {
            let mut log = lock(&self.inner.log);
            if log.len() >= s.command_log_capacity.max(1) {
                log.pop_front();
            }
            log.push_back(argv);
        }
        let mut cmd = tokio::process::Command::new(&s.git_program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", &s.path)
            .env("HOME", &s.home)
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("GIT_ALLOW_PROTOCOL", "file:https:ssh")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            // Never discover a repository above the rigs directory.
            .env("GIT_CEILING_DIRECTORIES", s.workspace.join("rigs"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if s.isolate_global_config {
            cmd.env("GIT_CONFIG_GLOBAL", "/dev/null");
        }
        if let Some(id) = user {
            // std drops the supplementary groups when root switches uid.
            cmd.uid(id.uid).gid(id.gid).env("HOME", "/nonexistent");
        } else {
            for (k, v) in &s.passthrough_env {
                cmd.env(k, v);
            }
            for (k, v) in credentials::config_env(&self.config_pairs(cred)) {
                cmd.env(k, v);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().await?;
        Ok(GitRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// What [`GitManager::check_remote`] found (the contract's type: the town reads it).
pub use gastown_protocol::RemoteCheck;

/// Sorts git's complaint into a category (never shown to anyone as it is).
fn classify_remote_failure(stderr: &str) -> RemoteCheck {
    let e = stderr.to_ascii_lowercase();
    const NETWORK: [&str; 7] = [
        "could not resolve host",
        "connection refused",
        "connection timed out",
        "network is unreachable",
        "no route to host",
        "timed out",
        "could not resolve hostname",
    ];
    if NETWORK.iter().any(|n| e.contains(n)) {
        RemoteCheck::Unreachable
    } else {
        RemoteCheck::NotFound
    }
}

/// How to run git in one agent's clone.
struct AgentGit {
    owner: Option<Ident>,
    env: Vec<(String, String)>,
}

fn path_str(p: &Path) -> Result<&str, GitError> {
    p.to_str().ok_or_else(|| GitError::Io(std::io::Error::other(format!("path {} is not valid UTF-8", p.display()))))
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", &s[start..])
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {

    #[test]
    fn remote_failures_are_sorted_without_their_text() {
        use super::{classify_remote_failure, RemoteCheck};
        assert_eq!(classify_remote_failure("fatal: unable to access 'https://x/': Could not resolve host: x"), RemoteCheck::Unreachable);
        assert_eq!(
            classify_remote_failure("remote: Repository not found.\nfatal: repository 'https://x/' not found"),
            RemoteCheck::NotFound
        );
        assert_eq!(classify_remote_failure("fatal: '/tmp/x.git' does not appear to be a git repository"), RemoteCheck::NotFound);
    }

    use super::*;

    #[test]
    fn identity() {
        let id = Identity::for_agent("Toast", None).unwrap();
        assert_eq!(id.name, "Toast (gastown)");
        assert_eq!(id.email, "toast@gastown.local");
        let id = Identity::for_agent("Max Power", Some("bots+{name}@example.com")).unwrap();
        assert_eq!(id.email, "bots+max-power@example.com");
        assert!(Identity::for_agent("x", Some("no-at-sign")).is_err());
        assert!(Identity::for_agent("x", Some("a@b\nInjected: y")).is_err());
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("aé", 1), "[...]");
        assert_eq!(tail("abcdef", 3), "[...]def");
    }
}
