//! Shared helpers for the integration tests: a terminal output collector, git
//! fixtures on local bare repositories, and a tiny HTTP/1.1 client (real
//! sockets, no mocks).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gastown_container::process::{ExitInfo, OutputEvent, OutputSubscription};

/// Accumulates an agent's terminal output (scrollback + live).
pub struct Collector {
    pub sub: OutputSubscription,
    pub buf: Vec<u8>,
    pub exit: Option<ExitInfo>,
    pub gaps: u64,
}

impl Collector {
    pub fn new(mut sub: OutputSubscription) -> Self {
        let buf = std::mem::take(&mut sub.scrollback);
        let exit = sub.exited.clone();
        Self { sub, buf, exit, gaps: 0 }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    async fn step(&mut self) -> bool {
        match self.sub.recv().await {
            Some(OutputEvent::Data { data, .. }) => {
                self.buf.extend_from_slice(&data);
                true
            }
            Some(OutputEvent::Gap { missed }) => {
                self.gaps += missed;
                true
            }
            Some(OutputEvent::Exit(e)) => {
                self.exit = Some(e);
                false
            }
            None => false,
        }
    }

    /// Waits until the output contains `needle`; panics with the output so far
    /// on timeout.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return self.text();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.step()).await {
                Ok(true) => {}
                Ok(false) => {
                    assert!(self.text().contains(needle), "stream ended without {needle:?}; output: {:?}", self.text());
                    return self.text();
                }
                Err(_) => panic!("timed out waiting for {needle:?}; output: {:?}", self.text()),
            }
        }
    }

    pub async fn until_exit(&mut self, timeout: Duration) -> ExitInfo {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.step()).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => panic!("timed out waiting for exit; output: {:?}", self.text()),
            }
        }
        self.exit.clone().expect("stream ended without an exit")
    }
}

/// Runs git with a fixed identity and no user/system config; panics on error.
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "Seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository `origin.git` whose `main` has one commit with README.md.
pub fn bare_repo(root: &Path) -> PathBuf {
    let bare = root.join("origin.git");
    git(root, &["init", "--bare", "-b", "main", bare.to_str().unwrap()]);
    let seed = root.join("seed");
    git(root, &["clone", "-q", bare.to_str().unwrap(), seed.to_str().unwrap()]);
    git(&seed, &["checkout", "-q", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "line one\nline two\n").unwrap();
    git(&seed, &["add", "README.md"]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    git(&seed, &["push", "-q", "origin", "main"]);
    bare
}

/// Commits `content` to `file` in `worktree` with the agent's identity env.
pub fn commit_file(worktree: &Path, file: &str, content: &str, msg: &str) -> String {
    std::fs::write(worktree.join(file), content).unwrap();
    git(worktree, &["add", file]);
    git(worktree, &["commit", "-q", "-m", msg]);
    git(worktree, &["rev-parse", "HEAD"])
}

/// Minimal HTTP/1.1 client: one request per connection.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw)).await.expect("http response timed out").unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("http head");
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    let json = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body))
    };
    (status, json)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// True if a live (non-zombie) process has this pid. Zombies are ignored
/// because reaping orphans is up to PID 1, which may be lazy in containers.
pub fn pid_alive(pid: i32) -> bool {
    proc_states().any(|(p, _, state)| p == pid && state != 'Z')
}

/// True if any live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    proc_states().any(|(_, pgrp, state)| pgrp == pgid && state != 'Z')
}

/// (pid, pgrp, state) of every process, from /proc.
fn proc_states() -> impl Iterator<Item = (i32, i32, char)> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // The command name may contain spaces; fields resume after ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut f = rest.split_whitespace();
        let state = f.next()?.chars().next()?;
        let _ppid = f.next()?;
        let pgrp: i32 = f.next()?.parse().ok()?;
        Some((pid, pgrp, state))
    })
}
