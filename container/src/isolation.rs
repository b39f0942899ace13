//! Who runs as whom: every agent under a uid of its own, the refinery's gates under another,
//! and the control server under none of them.
//!
//! The threat is a prompt-injected agent (it reads bead text, issues and repository content), so
//! an agent must not reach the server's secret, another agent's token or files, or the
//! credentials that push to the rig's remote. Kernel permissions do the containment:
//! * each agent id gets a uid (and gid) of its own from a range, remembered in
//!   `<workspace>/.uids` so a restarted container gives an agent back the files it owns;
//! * a process of another uid cannot read `/proc/<pid>/environ`, `maps` or `mem`, nor ptrace;
//! * an agent's worktree and HOME are `0700` and owned by it; the directories above them are
//!   `0711` (traversable, not listable); the server's rig clone is readable but not writable;
//!   credentials are `0600` and the server's;
//! * agents start through `setpriv` with no supplementary groups and `no_new_privs`, so no setuid
//!   program gives back what was dropped.
//!
//! Switching uid needs root (CAP_SETUID/CAP_SETGID/CAP_CHOWN). A server that is not root cannot
//! isolate: it then runs agents as itself and says so (`isolation: "none"` in `/health` and a
//! warning at start-up), which is only acceptable on a single-user machine with trusted agents.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A uid/gid pair an agent (or the gates) runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("no free agent uid left in {base}..{end}")]
    Exhausted { base: u32, end: u32 },
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IsolationError + '_ {
    move |source| IsolationError::Io { path: path.display().to_string(), source }
}

/// The uid allocator and the filesystem helpers that go with it. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Isolation {
    enabled: bool,
    /// Agents get a private `/proc` showing only their own processes (`hidepid=invisible`).
    hide_proc: bool,
    base: u32,
    count: u32,
    file: PathBuf,
    map: Mutex<BTreeMap<String, u32>>,
}

/// The gates run as `base - 1`: not an agent, not the server.
const REFINERY_OFFSET: u32 = 1;

impl Isolation {
    /// `enabled` is only honoured when the process can switch uids (euid 0).
    pub fn new(workspace: &Path, enabled: bool, base: u32, count: u32) -> Result<Self, IsolationError> {
        let file = workspace.join(".uids");
        let mut map = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Some((id, uid)) = line.split_once(' ') {
                    if let Ok(uid) = uid.trim().parse::<u32>() {
                        map.insert(id.to_string(), uid);
                    }
                }
            }
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let enabled = enabled && root;
        let hide_proc = enabled && probe_hide_proc();
        Ok(Self { enabled, hide_proc, base: base.max(1000 + REFINERY_OFFSET), count: count.max(1), file, map: Mutex::new(map) })
    }

    /// A manager that never switches uid (tests of unrelated parts, non-root servers).
    pub fn disabled() -> Self {
        Self { enabled: false, hide_proc: false, base: 0, count: 0, file: PathBuf::new(), map: Mutex::default() }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether agents see only their own processes in `/proc`.
    pub fn hides_proc(&self) -> bool {
        self.hide_proc
    }

    /// `"uid"` when agents run under their own uids, `"none"` otherwise.
    pub fn mode(&self) -> &'static str {
        if self.enabled {
            "uid"
        } else {
            "none"
        }
    }

    /// The agent's identity (allocated on first use and remembered), or `None` without isolation.
    pub fn for_agent(&self, agent_id: &str) -> Result<Option<Ident>, IsolationError> {
        if !self.enabled {
            return Ok(None);
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(uid) = map.get(agent_id) {
            return Ok(Some(Ident { uid: *uid, gid: *uid }));
        }
        let used: std::collections::BTreeSet<u32> = map.values().copied().collect();
        let end = self.base + self.count;
        let uid = (self.base..end).find(|u| !used.contains(u)).ok_or(IsolationError::Exhausted { base: self.base, end })?;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.file).map_err(io_err(&self.file))?;
        writeln!(f, "{agent_id} {uid}").and_then(|_| f.sync_all()).map_err(io_err(&self.file))?;
        map.insert(agent_id.to_string(), uid);
        Ok(Some(Ident { uid, gid: uid }))
    }

    /// The identity quality gates run as (they execute code from the polecat's branch).
    pub fn refinery(&self) -> Option<Ident> {
        self.enabled.then(|| Ident { uid: self.base - REFINERY_OFFSET, gid: self.base - REFINERY_OFFSET })
    }

    /// How an agent's program is started: as `ident` (see [`Isolation::wrap_argv`]) and, where
    /// the kernel allows, in a mount namespace of its own whose `/proc` hides every process that
    /// is not the agent's (the same pid, nothing forks: `unshare` and `sh` exec onwards).
    pub fn agent_argv(&self, ident: Option<Ident>, argv: Vec<String>) -> Vec<String> {
        let inner = Self::wrap_argv(ident, argv);
        if ident.is_none() || !self.hide_proc {
            return inner;
        }
        let mut out: Vec<String> = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", HIDE_PROC_THEN_EXEC, "sh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        out.extend(inner);
        out
    }

    /// `argv` prefixed so that it runs as `ident` with no supplementary groups and no way back
    /// to privileges (`no_new_privs`); unchanged without an identity.
    pub fn wrap_argv(ident: Option<Ident>, argv: Vec<String>) -> Vec<String> {
        let Some(id) = ident else { return argv };
        let mut out = vec![
            "setpriv".to_string(),
            format!("--reuid={}", id.uid),
            format!("--regid={}", id.gid),
            "--clear-groups".to_string(),
            "--no-new-privs".to_string(),
            "--".to_string(),
        ];
        out.extend(argv);
        out
    }
}

const HIDE_PROC_THEN_EXEC: &str = "mount -t proc -o hidepid=invisible proc /proc && exec \"$@\"";

/// Can this kernel (and our privileges) give a process a private `/proc` with `hidepid`?
fn probe_hide_proc() -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c", "mount -t proc -o hidepid=invisible proc /proc"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        tracing::warn!("cannot mount a private /proc for agents (needs CAP_SYS_ADMIN): agents see other processes' ids and command lines, though not their environment or memory");
    }
    ok
}

/// Creates `dir` (and missing parents with `0711`) and gives it to `owner` with `mode`. A file
/// or symlink in its place is removed, never followed, and the ownership and mode are set
/// through a descriptor opened with `O_NOFOLLOW` (a link swapped in meanwhile fails the call).
pub fn private_dir(dir: &Path, owner: Option<Ident>, mode: u32) -> Result<(), IsolationError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(parent).map_err(io_err(parent))?;
    }
    match std::fs::symlink_metadata(dir) {
        // Something an agent planted in place of the folder: a link is removed, never followed.
        Ok(m) if !m.is_dir() => {
            std::fs::remove_file(dir).map_err(io_err(dir))?;
            std::fs::DirBuilder::new().mode(mode).create(dir).map_err(io_err(dir))?;
        }
        Ok(_) => {}
        Err(_) => std::fs::DirBuilder::new().mode(mode).create(dir).map_err(io_err(dir))?,
    }
    let handle =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(dir).map_err(io_err(dir))?;
    if let Some(id) = owner {
        std::os::unix::fs::fchown(&handle, Some(id.uid), Some(id.gid)).map_err(io_err(dir))?;
    }
    handle.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io_err(dir))?;
    Ok(())
}

/// Every folder above `path` must let other uids pass through (`o+x`), or no agent could reach
/// its own worktree. Names the first one that does not.
pub fn check_traversable(path: &Path) -> Result<(), String> {
    for dir in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else { continue };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(format!(
                "{} (mode {:o}) does not let agent uids pass through to the workspace; run `chmod o+x {}` or choose a workspace elsewhere",
                dir.display(),
                meta.permissions().mode() & 0o777,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Sets `mode` on an existing directory the server owns (e.g. `0711` on a folder of worktrees).
pub fn set_mode(dir: &Path, mode: u32) -> Result<(), IsolationError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_err(dir))
}

/// Writes `contents` to `dir/name` without following a symlink at either step: `dir` and `name`
/// may have been planted by the agent that owns the folder. The file ends up owned by `owner`,
/// mode `0600`. `dir` is created (owned by `owner`, `0700`) when missing.
pub fn write_private_file(dir: &Path, name: &str, contents: &[u8], owner: Option<Ident>) -> Result<PathBuf, IsolationError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let bad = |why: &str| IsolationError::Io { path: dir.join(name).display().to_string(), source: std::io::Error::other(why.to_string()) };
    if name.contains('/') || name == ".." || name == "." || name.is_empty() {
        return Err(bad("invalid file name"));
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        _ => private_dir(dir, owner, 0o700)?,
    }
    let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| bad("NUL in path"))?;
    let cname = CString::new(name).map_err(|_| bad("NUL in name"))?;
    // SAFETY: valid C strings; the descriptors are closed below on every path.
    let dfd = unsafe { libc::open(cdir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if dfd < 0 {
        return Err(IsolationError::Io { path: dir.display().to_string(), source: std::io::Error::last_os_error() });
    }
    // Unlink first: an existing name may be a hard link to a file the agent wants overwritten.
    // SAFETY: dfd is a valid directory descriptor.
    unsafe { libc::unlinkat(dfd, cname.as_ptr(), 0) };
    // SAFETY: as above; O_EXCL|O_NOFOLLOW never writes through a link planted meanwhile.
    let fd = unsafe {
        libc::openat(dfd, cname.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0o600)
    };
    // SAFETY: dfd is ours.
    unsafe { libc::close(dfd) };
    if fd < 0 {
        return Err(IsolationError::Io { path: dir.join(name).display().to_string(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: fd is a fresh descriptor we own; File takes ownership and closes it.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let path = dir.join(name);
    file.write_all(contents).map_err(io_err(&path))?;
    if let Some(id) = owner {
        std::os::unix::fs::fchown(&file, Some(id.uid), Some(id.gid)).map_err(io_err(&path))?;
    }
    Ok(path)
}

/// Gives a whole tree to `owner` without following symlinks (used on the refinery's merge
/// checkout before the gates run in it).
pub fn chown_tree(root: &Path, owner: Ident) -> Result<(), IsolationError> {
    std::os::unix::fs::lchown(root, Some(owner.uid), Some(owner.gid)).map_err(io_err(root))?;
    let meta = std::fs::symlink_metadata(root).map_err(io_err(root))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).map_err(io_err(root))? {
            let entry = entry.map_err(io_err(root))?;
            chown_tree(&entry.path(), owner)?;
        }
    }
    Ok(())
}

/// Makes this process non-dumpable: no core dumps with the secret in them, and `/proc/self/*`
/// stays root's even for a process that shares our uid.
pub fn harden_server() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_only_with_an_identity() {
        assert_eq!(Isolation::wrap_argv(None, vec!["sh".into()]), vec!["sh"]);
        let w = Isolation::wrap_argv(Some(Ident { uid: 20001, gid: 20001 }), vec!["sh".into(), "-c".into(), "x".into()]);
        assert_eq!(w[..6], ["setpriv", "--reuid=20001", "--regid=20001", "--clear-groups", "--no-new-privs", "--"]);
        assert_eq!(w[6..], ["sh", "-c", "x"]);
    }

    #[test]
    fn uids_are_unique_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let iso = Isolation::new(dir.path(), true, 30000, 3).unwrap();
        if !iso.enabled() {
            return; // not root: nothing to allocate
        }
        let a = iso.for_agent("a").unwrap().unwrap();
        let b = iso.for_agent("b").unwrap().unwrap();
        assert_ne!(a, b);
        assert_eq!(iso.for_agent("a").unwrap().unwrap(), a);
        let again = Isolation::new(dir.path(), true, 30000, 3).unwrap();
        assert_eq!(again.for_agent("b").unwrap().unwrap(), b, "a restarted server gives b its uid back");
        again.for_agent("c").unwrap();
        assert!(matches!(again.for_agent("d"), Err(IsolationError::Exhausted { .. })));
        assert_ne!(iso.refinery().unwrap().uid, a.uid);
    }

    #[test]
    fn private_files_never_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "original").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink(&target, sub.join("prompt.md")).unwrap();
        write_private_file(&sub, "prompt.md", b"new", None).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "original", "the planted link was replaced, not followed");
        assert_eq!(std::fs::read_to_string(sub.join("prompt.md")).unwrap(), "new");
        // A symlinked folder is replaced by a real one, never written through.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked).unwrap();
        write_private_file(&linked, "x", b"y", None).unwrap();
        assert!(!dir.path().join("x").exists());
        assert!(std::fs::symlink_metadata(&linked).unwrap().is_dir());
    }
}
