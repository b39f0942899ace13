//! The `gt` command-line tool (used only by `src/bin/gt.rs`).

mod api;
mod cli;
mod commands;
mod config;
mod demo;
mod error;
mod git;
mod output;

use clap::Parser;

use cli::{Cli, Command};
use commands::Ctx;
use error::GtResult;

/// Runs `gt` and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; everything else clap reports is usage (2).
            return if e.use_stderr() { error::EXIT_USAGE } else { 0 };
        }
    };
    let ctx = Ctx { json: cli.json };
    match run(&ctx, cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gt: error: {}", redact(&e.to_string()));
            e.exit_code()
        }
    }
}

fn run(ctx: &Ctx, cmd: Command) -> GtResult<()> {
    match cmd {
        Command::Prime => commands::prime(ctx),
        Command::Hook => commands::hook(ctx),
        Command::Done { summary } => commands::done(ctx, summary),
        Command::Mail(m) => commands::mail(ctx, m),
        Command::Escalate { message, severity, category } => commands::escalate(ctx, message, severity, category),
        Command::Checkpoint { data } => commands::checkpoint(ctx, data),
        Command::Bead(b) => commands::bead(ctx, b),
        Command::Rigs => commands::rigs(ctx),
        Command::Beads { rig, status } => commands::beads(ctx, rig, status),
        Command::Agents { rig } => commands::agents(ctx, rig),
        Command::Sling { rig, title, body, priority } => commands::sling(ctx, rig, title, body, priority),
        Command::Demo => demo::run(),
    }
}

/// Belt and braces: the agent token must never reach the terminal, whatever a server
/// or git echoes back.
fn redact(msg: &str) -> String {
    match config::opt(config::AGENT_TOKEN) {
        Some(t) if t.trim().len() >= 4 => msg.replace(t.trim(), "[redacted]"),
        _ => msg.to_string(),
    }
}
