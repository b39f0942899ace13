//! `gt`: the command-line tool agents (and people) use inside a Gastown container.
//!
//! Everything lives in `src/gt/` (a module tree used only by this binary); see
//! `gt --help` for the workflow and the command surface.

#[path = "../gt/mod.rs"]
mod gt;

fn main() {
    std::process::exit(gt::main());
}
