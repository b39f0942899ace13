//! The command surface (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};

const LONG_ABOUT: &str = "\
gt — the Gastown command-line tool for agents (and people) inside a Gastown container.

Gastown tracks work as beads (issues with an id such as gt-4k2x9). The bead an agent is
working on sits on its hook: one bead per agent, assigned by the mayor or the rig's queue.

The polecat workflow:
  1. gt prime                  see who you are, your rig, the bead on your hook and your mail
  2. work in your git worktree (on branch $GASTOWN_BRANCH) and commit as you go
  3. gt done --summary \"...\"   push your branch and hand it to the refinery for review and merge

Along the way:
  gt mail check                read all unread mail (gt mail inbox, gt mail read <id>, gt mail send <to> --subject ...)
  gt checkpoint '<notes>'      save progress notes (text or JSON) on your agent
  gt escalate \"<why>\"          when you are blocked and need a person or the mayor
  gt bead show|list|create|close   look at and manage the rig's beads
  gt mol current|advance       walk the steps when the work on your hook is a molecule

The mayor plans work and hands it out: gt rigs, gt beads --rig <rig>, gt agents --rig <rig>,
gt sling --rig <rig> \"<title>\" [--convoy <id>] [--formula <name>], gt convoy create|status|add.";

const AFTER_HELP: &str = "\
Configuration (set by the container for every agent):
  GASTOWN_API_URL      the Gastown API, e.g. http://127.0.0.1:8787
  GASTOWN_AGENT_TOKEN  the agent's token (sent as a bearer token; never printed)
  GASTOWN_TOWN_ID, GASTOWN_RIG_ID (empty for the mayor), GASTOWN_AGENT_ID,
  GASTOWN_AGENT_ROLE, GASTOWN_AGENT_NAME, GASTOWN_BEAD_ID, GASTOWN_BRANCH, GASTOWN_WORKDIR
  GASTOWN_DEMO_DELAY_MS  pause between the steps of `gt demo` (default 0)

Exit codes: 0 ok; 1 the API refused (4xx) or nothing to do; 2 usage or configuration
error; 3 server, network or git failure.";

#[derive(Parser, Debug)]
#[command(
    name = "gt",
    version,
    about = "Gastown command-line tool: your hook, your mail, and handing in work",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// Print the raw `data` JSON of the API's answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Who you are, your rig, the bead on your hook, your unread mail and what to do next.
    ///
    /// Run this first in every session, and again whenever you lose track.
    Prime,
    /// Show only the bead on your hook (or "nothing on your hook").
    Hook,
    /// Hand in your work: push your branch, then submit it for review.
    ///
    /// Commit first. Runs `git push origin HEAD:refs/heads/$GASTOWN_BRANCH` in the current
    /// directory, then tells Gastown the branch is ready; the refinery reviews and merges it.
    Done {
        /// What you did, for the reviewer.
        #[arg(long, short)]
        summary: Option<String>,
    },
    /// Read and send mail.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Ask for help when you are blocked (creates an escalation bead).
    Escalate {
        /// What is wrong and what you need.
        message: String,
        #[arg(long, value_enum, default_value_t = Level::Medium)]
        severity: Level,
        /// Free-form category, e.g. "access", "unclear-spec", "tests".
        #[arg(long)]
        category: Option<String>,
    },
    /// Save progress notes on your agent (JSON is sent as is, anything else as a string).
    Checkpoint {
        /// The notes: JSON, or plain text.
        data: String,
    },
    /// Look at and manage the beads of your rig.
    #[command(subcommand)]
    Bead(BeadCommand),
    /// (mayor) List the town's rigs.
    Rigs,
    /// (mayor) List escalations (open ones by default).
    Escalations {
        /// Include acknowledged escalations too.
        #[arg(long)]
        all: bool,
    },
    /// (mayor) Act on an escalation.
    #[command(subcommand)]
    Escalation(EscalationCommand),
    /// (mayor) List a rig's beads.
    Beads {
        /// Rig name or id.
        #[arg(long)]
        rig: String,
        /// Only beads with this status (open, in_progress, in_review, closed, failed).
        #[arg(long)]
        status: Option<String>,
    },
    /// (mayor) List a rig's agents.
    Agents {
        /// Rig name or id.
        #[arg(long)]
        rig: String,
    },
    /// (mayor) Create a bead on a rig and hook it on a free polecat (or queue it).
    Sling {
        /// Rig name or id.
        #[arg(long)]
        rig: String,
        /// Title of the new bead.
        title: String,
        /// Description of the work.
        #[arg(long)]
        body: Option<String>,
        #[arg(long, value_enum)]
        priority: Option<Level>,
        /// Track the new bead in this convoy (hq-…).
        #[arg(long)]
        convoy: Option<String>,
        /// Make the work a molecule of this built-in formula's steps (review-fix, feature, bugfix).
        #[arg(long)]
        formula: Option<String>,
    },
    /// (mayor) Batches of work tracked until every bead has landed.
    #[command(subcommand)]
    Convoy(ConvoyCommand),
    /// Walk the steps of the molecule on your hook.
    #[command(subcommand)]
    Mol(MolCommand),
    /// The built-in demo agent: no LLM.
    ///
    /// Primes, takes the hooked bead, writes a small real change to
    /// gastown-demo/<bead-id>.md, commits it, pushes and submits it for review — printing
    /// each step. The container runs this when a town has no agent CLI configured.
    Demo,
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List your mail, unread first (marked *).
    Inbox {
        /// Only unread mail.
        #[arg(long)]
        unread: bool,
    },
    /// Show all unread mail in full and mark it read (one call; for hooks and session start).
    Check,
    /// Show a mail and mark it read.
    Read {
        /// The mail id.
        id: String,
    },
    /// Send mail to an agent.
    Send(MailSend),
}

#[derive(Args, Debug)]
pub struct MailSend {
    /// An agent id, or an address: `mayor`, `<rig>/refinery`, `<rig>/witness`,
    /// `<rig>/polecats/<name>`.
    pub to: String,
    /// The subject line.
    #[arg(long, short)]
    pub subject: String,
    /// The message; read from stdin when absent and stdin is not a terminal.
    #[arg(long, short)]
    pub body: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BeadCommand {
    /// Show one bead.
    Show { id: String },
    /// List the rig's beads.
    List {
        /// open, in_progress, in_review, closed or failed.
        #[arg(long)]
        status: Option<String>,
        /// issue, message, escalation, merge_request, convoy, molecule or agent.
        #[arg(long = "type")]
        bead_type: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Create a bead in the rig.
    Create {
        title: String,
        #[arg(long)]
        body: Option<String>,
        #[arg(long, value_enum)]
        priority: Option<Level>,
    },
    /// Close a bead.
    Close {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Priority and severity levels.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConvoyCommand {
    /// Create a convoy tracking these beads (more can be added later).
    Create {
        title: String,
        /// Bead ids to track.
        beads: Vec<String>,
    },
    /// Progress of one convoy, or of every convoy.
    Status { id: Option<String> },
    /// Track more beads in a convoy (a landed convoy opens again).
    Add {
        id: String,
        #[arg(required = true)]
        beads: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MolCommand {
    /// The step to work on now (starts the next ready step if none is in progress).
    Current,
    /// The step in progress is done: close it and show the next one.
    Advance {
        /// What the step produced.
        #[arg(long, short)]
        summary: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EscalationCommand {
    /// Mark an escalation as handled (it stops being re-escalated).
    Ack {
        /// The escalation's id (hq-…).
        id: String,
    },
}
