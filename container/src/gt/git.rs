//! The few git commands `gt` runs, always as an argv (never a shell string), in
//! the current directory. Credentials come from the inherited `GIT_CONFIG_*`
//! environment the container sets; `gt` adds none.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::gt::error::{GtError, GtResult};

/// Runs `git <args>` and returns its stdout; a failure is [`GtError::Git`] with git's stderr.
pub fn git(args: &[&str]) -> GtResult<String> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| GtError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().map(|c| c.to_string()).unwrap_or_else(|| "signal".into());
        return Err(GtError::Git(format!("git {} failed (exit {code}):\n{}", args.first().copied().unwrap_or(""), stderr.trim_end())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git add -- <path>`.
pub fn add(path: &Path) -> GtResult<()> {
    let p = path.to_string_lossy();
    git(&["add", "--", &p]).map(|_| ())
}

/// `git commit -m <message>`; returns the new commit's sha.
pub fn commit(message: &str) -> GtResult<String> {
    git(&["commit", "-q", "-m", message])?;
    Ok(git(&["rev-parse", "HEAD"])?.trim().to_string())
}
