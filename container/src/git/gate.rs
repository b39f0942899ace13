//! Quality gates: town-configured shell commands run in the merge worktree.
//!
//! A shell is intended here (the town owner writes these lines). Each gate runs
//! in its own process group so a timeout kills everything it started, with one
//! pipe shared by stdout and stderr so the captured output keeps its real
//! interleaving. Only the tail of the output is kept. Under isolation they run as the
//! refinery's uid (see `crate::isolation`), since they execute code from the polecat's branch.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::signal_name;

#[derive(Debug, Clone)]
pub(crate) struct GateRun {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub output: String,
    pub duration: Duration,
}

impl GateRun {
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }
}

pub(crate) async fn run_gate(
    cwd: &Path,
    gate: &str,
    timeout: Duration,
    env: &[(String, String)],
    max_output: usize,
    run_as: Option<crate::isolation::Ident>,
) -> std::io::Result<GateRun> {
    let started = Instant::now();
    let (reader, writer) = std::io::pipe()?;
    let writer_err = writer.try_clone()?;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(gate)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer_err))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(id) = run_as {
        // The gates run the branch's own code: never as the server.
        cmd.uid(id.uid).gid(id.gid);
    }
    let spawned = cmd.spawn();
    // Drop our write ends (held by `cmd`) or the reader never sees EOF.
    drop(cmd);
    let mut child = spawned?;
    let pgid = child.id().map(|p| p as i32);

    let collector = tokio::task::spawn_blocking(move || read_tail(reader, max_output));

    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (Some(status?), false),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = crate::process::sys_signal_group(pgid, libc::SIGKILL);
            }
            (child.wait().await.ok(), true)
        }
    };
    // Background jobs the gate left behind would otherwise hold the pipe open.
    if let Some(pgid) = pgid {
        let _ = crate::process::sys_signal_group(pgid, libc::SIGKILL);
    }
    let (tail, total) = match tokio::time::timeout(Duration::from_secs(5), collector).await {
        Ok(Ok(r)) => r,
        _ => (Vec::new(), 0),
    };

    use std::os::unix::process::ExitStatusExt;
    let mut output = String::new();
    if total > tail.len() as u64 {
        output.push_str(&format!("[... {} earlier bytes omitted ...]\n", total - tail.len() as u64));
    }
    output.push_str(&String::from_utf8_lossy(&tail));
    if timed_out {
        output.push_str(&format!("\n[gate timed out after {}s and was killed]\n", timeout.as_secs()));
    } else if let Some(sig) = status.and_then(|s| s.signal()) {
        output.push_str(&format!("\n[gate killed by {}]\n", signal_name(sig)));
    }
    Ok(GateRun {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        output,
        duration: started.elapsed(),
    })
}

fn read_tail(mut reader: std::io::PipeReader, max: usize) -> (Vec<u8>, u64) {
    let mut ring: VecDeque<u8> = VecDeque::new();
    let mut total = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                ring.extend(&buf[..n]);
                let excess = ring.len().saturating_sub(max);
                ring.drain(..excess);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (ring.into_iter().collect(), total)
}
