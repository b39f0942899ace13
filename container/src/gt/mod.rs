//! The `gt` command-line tool (used only by `src/bin/gt.rs`).

mod api;
mod cli;
mod commands;
mod config;
mod coord;
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
    let code = match run(&ctx, cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gt: error: {}", redact(&e.to_string()));
            e.exit_code()
        }
    };
    report_call(code);
    code
}

/// The command words of this invocation (`mail send`, `done`, …) — never its arguments, which
/// may carry mail text or other things that do not belong in an event log.
fn command_words(args: &[String]) -> Option<String> {
    let words: Vec<&str> = args.iter().skip(1).map(String::as_str).filter(|a| !a.starts_with('-')).take(2).collect();
    let first = *words.first()?;
    let sub = |allowed: &[&str]| words.get(1).filter(|w| allowed.contains(w)).map(|w| format!("{first} {w}"));
    match first {
        "mail" => sub(&["inbox", "check", "read", "send"]),
        "bead" => sub(&["show", "list", "create", "close"]),
        "escalation" => sub(&["ack"]),
        "prime" | "hook" | "done" | "escalate" | "escalations" | "checkpoint" | "rigs" | "beads" | "agents" | "sling" | "demo" => {
            Some(first.to_string())
        }
        _ => None,
    }
}

/// Records the call in the agent's event log (best effort, short timeout: `gt`'s own result
/// never depends on it). Agents without a rig (the mayor) have no rig-scoped log route.
fn report_call(exit_code: i32) {
    let args: Vec<String> = std::env::args().collect();
    let (Some(command), Ok(api), Some(town), Some(rig), Some(agent)) = (
        command_words(&args),
        config::ApiConfig::from_env(),
        config::opt(config::TOWN_ID),
        config::rig_opt(),
        config::opt(config::AGENT_ID),
    ) else {
        return;
    };
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .build()
        .new_agent();
    let url = format!("{}/api/towns/{}/rigs/{}/agents/{}/events", api.base_url, api::encode(&town), api::encode(&rig), api::encode(&agent));
    let body = serde_json::json!({"event_type": "gt", "data": {"command": command, "exit_code": exit_code}});
    let _ = http.post(&url).header("Authorization", &format!("Bearer {}", api.token)).send_json(&body);
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
        Command::Escalations { all } => commands::escalations(ctx, all),
        Command::Escalation(cli::EscalationCommand::Ack { id }) => commands::escalation_ack(ctx, id),
        Command::Beads { rig, status } => commands::beads(ctx, rig, status),
        Command::Agents { rig } => commands::agents(ctx, rig),
        Command::Sling { rig, title, body, priority, convoy, formula } => {
            commands::sling(ctx, commands::SlingArgs { rig, title, body, priority, convoy, formula })
        }
        Command::Convoy(c) => coord::convoy(ctx, c),
        Command::Mol(m) => coord::mol(ctx, m),
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

#[cfg(test)]
mod call_tests {
    use super::command_words;

    fn words(a: &[&str]) -> Option<String> {
        command_words(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn only_command_words_are_reported() {
        assert_eq!(words(&["gt", "--json", "done", "--summary", "secret plan"]).as_deref(), Some("done"));
        assert_eq!(words(&["gt", "mail", "send", "mayor", "-s", "hi"]).as_deref(), Some("mail send"));
        assert_eq!(words(&["gt", "escalate", "the db password is hunter2"]).as_deref(), Some("escalate"));
        assert_eq!(words(&["gt", "mail", "private words"]), None);
        assert_eq!(words(&["gt", "--help"]), None);
    }
}
