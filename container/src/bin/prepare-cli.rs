//! `prepare-cli`: prepares a real agent CLI's HOME exactly as the container does before a start
//! (`gastown_container::runtime`), and prints how to start it as JSON `{argv, env}`. For people
//! who want to run a CLI by hand the way an agent gets it, and for `bench/agents.mjs`, which
//! times such a start against the same CLI slung through the town.
//!
//! Usage: `prepare-cli <runtime> <home> <workdir> [model] < prompt` with the endpoint and key in
//! `MODEL_BASE_URL` and `MODEL_API_KEY`.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use gastown_container::runtime::{prepare, RuntimeInputs};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runtime, home, workdir, rest @ ..] = args.as_slice() else {
        bail!("usage: prepare-cli <runtime> <home> <workdir> [model] < prompt");
    };
    let mut prompt = String::new();
    std::io::stdin().read_to_string(&mut prompt).context("reading the prompt")?;
    let key = std::env::var("MODEL_API_KEY").ok();
    let base = std::env::var("MODEL_BASE_URL").ok();
    let inputs = RuntimeInputs {
        runtime,
        model: rest.first().map(String::as_str),
        prompt: &prompt,
        home: Path::new(home),
        workdir: Path::new(workdir),
        api_key: key.as_deref(),
        base_url: base.as_deref(),
        as_root: false,
    };
    let p = prepare(&inputs)?;
    for d in &p.dirs {
        std::fs::create_dir_all(Path::new(home).join(d))?;
    }
    for (rel, contents) in &p.files {
        std::fs::write(Path::new(home).join(rel), contents)?;
    }
    println!("{}", serde_json::json!({"argv": p.argv, "env": p.env}));
    Ok(())
}
