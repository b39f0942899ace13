//! Thin, audited wrappers over the few POSIX calls the process manager needs
//! that neither std nor portable-pty expose: signalling a whole process group
//! and waiting for a child without reaping it yet.

use std::io;

/// Exit status decoded from `waitpid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Sends `sig` to every process in group `pgid`. `Ok(false)` if the group no
/// longer exists.
pub(crate) fn signal_group(pgid: i32, sig: i32) -> io::Result<bool> {
    if pgid <= 1 {
        // killpg(0 or 1) would hit our own group or everything; never do that.
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to signal process group <= 1"));
    }
    // SAFETY: killpg has no memory-safety preconditions.
    let rc = unsafe { libc::killpg(pgid, sig) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Blocks until `pid` has terminated but leaves it as a zombie, so its pid (and
/// therefore its process-group id) cannot be recycled until [`reap`] runs.
pub(crate) fn wait_exit_no_reap(pid: i32) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a live siginfo_t.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps `pid` and decodes how it ended.
pub(crate) fn reap(pid: i32) -> io::Result<WaitStatus> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: valid pointer to a c_int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(if libc::WIFEXITED(status) {
                WaitStatus { code: Some(libc::WEXITSTATUS(status)), signal: None }
            } else if libc::WIFSIGNALED(status) {
                WaitStatus { code: None, signal: Some(libc::WTERMSIG(status)) }
            } else {
                WaitStatus { code: None, signal: None }
            });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Conventional name of a signal number, for humans reading status output.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "unknown",
    }
}
