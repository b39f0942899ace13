//! `gt demo`: the built-in demo agent (no LLM).
//!
//! The container runs it under a PTY as the agent process when a town has no real
//! agent CLI configured. It does a tiny but real piece of work for the hooked bead —
//! a markdown file under `gastown-demo/` — commits it, and submits it (the town pushes it) for
//! review exactly like `gt done`, printing every step for whoever watches the terminal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::gt::api::Api;
use crate::gt::commands::{fetch_prime, render_review, submit};
use crate::gt::config;
use crate::gt::error::{GtError, GtResult};
use crate::gt::git;
use crate::gt::output::s;

const STEPS: usize = 5;

struct Demo {
    delay: Duration,
    step: usize,
}

impl Demo {
    fn say(&self, line: &str) {
        println!("[gastown demo] {line}");
        let _ = std::io::stdout().flush();
    }

    fn step(&mut self, what: &str) {
        if self.step > 0 && !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.step += 1;
        println!();
        self.say(&format!("step {}/{STEPS}: {what}", self.step));
    }
}

pub fn run() -> GtResult<()> {
    if config::opt(config::AGENT_ROLE).as_deref() == Some("mayor") {
        return mayor();
    }
    let delay = Duration::from_millis(config::demo_delay_ms()?);
    // Check the whole configuration before doing anything.
    let api = Api::from_env()?;
    let branch = config::branch()?;
    let mut d = Demo { delay, step: 0 };
    println!("==============================================================");
    println!(" GASTOWN DEMO AGENT — built in, no LLM. This is a demo run:");
    println!(" it makes a small placeholder change for the hooked bead.");
    println!("==============================================================");
    let _ = std::io::stdout().flush();

    d.step("gt prime — who am I and what is on my hook?");
    let prime = fetch_prime(&api)?;
    let agent = &prime["agent"];
    let rig = &prime["rig"];
    d.say(&format!(
        "I am {} ({}) in rig {}",
        non_empty(s(agent, "name"), config::AGENT_NAME),
        non_empty(s(agent, "role"), config::AGENT_ROLE),
        s(rig, "name")
    ));

    d.step("take the hooked bead");
    let hook = &prime["hook"];
    if !hook.is_object() || s(hook, "id").is_empty() {
        d.say("nothing on my hook — nothing to do");
        return Err(GtError::Nothing("demo agent: nothing on the hook; sling a bead to this agent first".into()));
    }
    let bead_id = s(hook, "id").to_string();
    let title = s(hook, "title").to_string();
    let body = s(hook, "body").to_string();
    d.say(&format!("hooked bead {bead_id}: {title}"));

    // A run that finds its work already committed (an earlier run's `gt done` never reached
    // the town) submits that commit instead of making the change a second time.
    let base = match s(rig, "default_branch") {
        "" => "origin/main".to_string(),
        b => format!("origin/{b}"),
    };
    let earlier = git::git(&["log", "--format=%H", "--fixed-strings", &format!("--grep=({bead_id})"), &format!("{base}..HEAD")])
        .map(|out| out.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    if earlier.is_empty() {
        let rel = demo_file(&bead_id);
        d.step(&format!("make a change: write {}", rel.display()));
        write_change(&rel, &bead_id, &title, &body)?;
        d.say(&format!("wrote {}", rel.display()));

        d.step("commit it");
        git::add(&rel)?;
        let message = format!("{title} ({bead_id}) [gastown demo]");
        let sha = git::commit(&message)?;
        d.say(&format!("committed {} \"{message}\"", short(&sha)));
    } else {
        d.say(&format!("already committed in an earlier run: {} — submitting that", short(&earlier)));
    }

    d.step(&format!("gt done — push {branch} and submit it for review"));
    let summary = format!("demo change for {bead_id}");
    let entry = submit(&api, &branch, Some(&summary), &mut |line| d.say(line))?;
    d.say(render_review(&entry, &branch).trim_end());

    println!();
    d.say("demo agent finished");
    Ok(())
}

fn non_empty(v: &str, env: &str) -> String {
    if v.is_empty() {
        config::opt(env).unwrap_or_default()
    } else {
        v.to_string()
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `gastown-demo/<bead-id>.md`, with the id reduced to safe file-name characters.
fn demo_file(bead_id: &str) -> PathBuf {
    let mut name: String =
        bead_id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with('.') {
        name = format!("bead-{name}");
    }
    Path::new("gastown-demo").join(format!("{name}.md"))
}

fn write_change(rel: &Path, bead_id: &str, title: &str, body: &str) -> GtResult<()> {
    let io = |e: std::io::Error| GtError::Io(format!("cannot write {}: {e}", rel.display()));
    if let Some(dir) = rel.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut text = String::new();
    if !rel.exists() {
        text.push_str(&format!("# {title}\n\nDemo changes made by the Gastown demo agent (no LLM) for bead `{bead_id}`.\n"));
    }
    text.push_str(&format!("\n## Demo change at {}\n\n", now_rfc3339()));
    text.push_str(&format!("- bead: `{bead_id}`\n- title: {title}\n"));
    if !body.trim().is_empty() {
        text.push('\n');
        for line in body.trim_end().lines() {
            text.push_str(&format!("> {line}\n"));
        }
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(rel).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The demo mayor (no LLM): delegates every request — a line typed into its terminal, or mail from
/// the overseer — by slinging it as a bead to the town's first rig. It never codes, like a mayor.
fn mayor() -> GtResult<()> {
    use std::io::BufRead;
    let api = Api::from_env()?;
    println!("==============================================================");
    println!(" GASTOWN DEMO MAYOR — built in, no LLM. Each request typed here");
    println!(" or mailed to the mayor becomes a bead slung to the first rig.");
    println!("==============================================================");
    let report = |r: GtResult<()>| {
        if let Err(e) = r {
            println!("[gastown demo mayor] could not delegate: {e}");
        }
    };
    report(mayor_inbox(&api));
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| GtError::Io(e.to_string()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.contains("gt mail inbox") {
            report(mayor_inbox(&api));
        } else {
            report(delegate(&api, line, None));
        }
    }
    Ok(())
}

/// Slings each unread message from the overseer, then marks it read.
fn mayor_inbox(api: &Api) -> GtResult<()> {
    let base = crate::gt::commands::mailbox_path()?;
    let mail = api.get(&format!("{base}?unread=true"))?;
    for m in crate::gt::output::items(&mail) {
        if s(m, "from") == "overseer" {
            delegate(api, s(m, "subject"), Some(s(m, "body")))?;
        }
        api.post(&format!("{base}/{}/read", crate::gt::api::encode(s(m, "id"))), &serde_json::json!({}))?;
    }
    Ok(())
}

fn delegate(api: &Api, title: &str, body: Option<&str>) -> GtResult<()> {
    let tools = crate::gt::commands::mayor_path()?;
    let rigs = api.get(&format!("{tools}/rigs"))?;
    let Some(rig) = crate::gt::output::items(&rigs).first() else {
        println!("[gastown demo mayor] no rig yet: add one, then ask again");
        return Ok(());
    };
    let mut req = serde_json::json!({"rig_id": s(rig, "id"), "title": title});
    if let Some(b) = body.filter(|b| !b.is_empty()) {
        req["body"] = serde_json::Value::String(b.to_string());
    }
    let r = api.post(&format!("{tools}/sling"), &req)?;
    println!("[gastown demo mayor] slung {} to {}: {title}", s(&r["bead"], "id"), s(rig, "name"));
    Ok(())
}
