//! Gastown container program: runs a town's agents next to its git repos.
//!
//! * [`process`] — agents as real processes under PTYs, with scrollback, live
//!   output, graceful stop and lifecycle events.
//! * [`git`] — per-rig clones, per-polecat worktrees, credentials kept out of
//!   argv and repo config, and the refinery's gated merge.
//! * [`isolation`] — a uid per agent (and one for the gates), private folders,
//!   files written without following links.
//! * [`runtime`] — how each real agent CLI is prepared (HOME files, env, argv)
//!   so no first-run dialog waits for a person.
//! * [`report`] — lifecycle reports to the town, authenticated as each agent.
//! * [`server`] — the authenticated HTTP/WebSocket control API used by the
//!   town's container Durable Object.

pub mod git;
pub mod isolation;
pub mod process;
pub mod report;
pub mod runtime;
pub mod server;
pub mod text;
