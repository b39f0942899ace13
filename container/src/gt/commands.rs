//! One function per command. Each returns the text to print (or prints as it goes).

use std::io::{IsTerminal, Read};

use serde_json::{json, Map, Value};

use crate::gt::api::{encode, query, Api};
use crate::gt::cli::{BeadCommand, Level, MailCommand, MailSend};
use crate::gt::config;
use crate::gt::error::{GtError, GtResult};
use crate::gt::git;
use crate::gt::output::{self, items, s, text};

/// Global options every command sees.
pub struct Ctx {
    pub json: bool,
}

impl Ctx {
    /// Prints `data` as JSON with `--json`, otherwise the human rendering.
    pub fn emit(&self, data: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(data).unwrap_or_else(|_| data.to_string()));
        } else {
            let out = human(data);
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
        }
    }
}

/// `/api/towns/{town}/rigs/{rig}`
pub fn rig_path() -> GtResult<String> {
    Ok(format!("/api/towns/{}/rigs/{}", encode(&config::town()?), encode(&config::rig()?)))
}

/// `/api/towns/{town}/rigs/{rig}/agents/{agent}`
pub fn agent_path() -> GtResult<String> {
    Ok(format!("{}/agents/{}", rig_path()?, encode(&config::agent()?)))
}

/// `/api/mayor/{town}/tools`
pub fn mayor_path() -> GtResult<String> {
    Ok(format!("/api/mayor/{}/tools", encode(&config::town()?)))
}

/// A JSON object from pairs, leaving out absent values.
fn obj(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

fn sv(s: &str) -> Option<Value> {
    Some(Value::String(s.to_string()))
}

fn osv(s: &Option<String>) -> Option<Value> {
    s.as_ref().map(|s| Value::String(s.clone()))
}

fn lv(l: Option<Level>) -> Option<Value> {
    l.map(|l| Value::String(l.as_str().into()))
}

// ---------------------------------------------------------------------------------------
// prime / hook

/// `GET A/prime`.
pub fn fetch_prime(api: &Api) -> GtResult<Value> {
    api.get(&format!("{}/prime", agent_path()?))
}

pub fn prime(ctx: &Ctx) -> GtResult<()> {
    let api = Api::from_env()?;
    if config::rig_opt().is_none() {
        return mayor_prime(ctx, &api);
    }
    let data = fetch_prime(&api)?;
    ctx.emit(&data, render_prime);
    Ok(())
}

fn render_prime(d: &Value) -> String {
    let null = Value::Null;
    let agent = d.get("agent").unwrap_or(&null);
    let town = d.get("town").unwrap_or(&null);
    let rig = d.get("rig").unwrap_or(&null);
    let mut out = String::new();
    let name = non_empty(s(agent, "name"), config::opt(config::AGENT_NAME));
    let role = non_empty(s(agent, "role"), config::opt(config::AGENT_ROLE));
    out.push_str(&format!("You are {name} ({role}), agent {}, status {}.\n", s(agent, "id"), s(agent, "status")));
    out.push_str(&format!("Town: {} ({})\n", s(town, "name"), s(town, "id")));
    if rig.is_object() {
        out.push_str(&format!(
            "Rig:  {} ({})  repo {}  default branch {}  bead prefix {}\n",
            s(rig, "name"),
            s(rig, "id"),
            s(rig, "git_url"),
            s(rig, "default_branch"),
            s(rig, "bead_prefix")
        ));
    }
    if let Some(b) = config::opt(config::BRANCH) {
        out.push_str(&format!("Branch: {b}\n"));
    }
    if let Some(w) = config::opt(config::WORKDIR) {
        out.push_str(&format!("Workdir: {w}\n"));
    }
    out.push('\n');
    let hook = d.get("hook").unwrap_or(&null);
    if hook.is_object() {
        out.push_str("On your hook:\n");
        out.push_str(&output::indent(&output::bead_detail(hook), "  "));
        out.push('\n');
    } else {
        out.push_str(&nothing_on_hook());
    }
    out.push('\n');
    let mail = items(d.get("unread_mail").unwrap_or(&null));
    if mail.is_empty() {
        out.push_str("Mail: no unread mail.\n");
    } else {
        out.push_str(&format!("Mail: {} unread\n", mail.len()));
        for m in mail {
            out.push_str(&format!("  * {}  from {}: {}\n", s(m, "id"), s(m, "from"), s(m, "subject")));
        }
        out.push_str("  read one with `gt mail read <id>`\n");
    }
    let open = items(d.get("open_beads").unwrap_or(&null));
    if !open.is_empty() {
        out.push_str(&format!("\nOpen beads in the rig: {}\n", open.len()));
        out.push_str(&output::indent(&output::bead_table(open), "  "));
        out.push('\n');
    }
    out.push('\n');
    if hook.is_object() {
        out.push_str(&format!(
            "Next: do the work for {} in this worktree and commit it; when done: commit, then \
             `gt done --summary \"<what you did>\"`.\nBlocked? `gt escalate \"<why>\"`. Notes: \
             `gt checkpoint \"<progress>\"`.\n",
            s(hook, "id")
        ));
    } else {
        out.push_str(
            "Next: check `gt mail inbox`; wait for work to be slung to you, or \
             `gt escalate \"<why>\"` if you expected some.\n",
        );
    }
    out
}

fn nothing_on_hook() -> String {
    match config::opt(config::BEAD_ID) {
        Some(b) => format!("nothing on your hook (this session started with {b}; it is no longer hooked to you)\n"),
        None => "nothing on your hook\n".into(),
    }
}

fn non_empty(a: &str, fallback: Option<String>) -> String {
    if a.is_empty() {
        fallback.unwrap_or_default()
    } else {
        a.to_string()
    }
}

/// The mayor has no rig: show the town's rigs and the mayor's tools.
fn mayor_prime(ctx: &Ctx, api: &Api) -> GtResult<()> {
    let rigs = api.get(&format!("{}/rigs", mayor_path()?))?;
    let data = json!({
        "agent": {
            "id": config::opt(config::AGENT_ID),
            "name": config::opt(config::AGENT_NAME),
            "role": config::opt(config::AGENT_ROLE).unwrap_or_else(|| "mayor".into()),
        },
        "town": {"id": config::town()?},
        "rigs": rigs,
    });
    ctx.emit(&data, |d| {
        let mut out = format!("You are {} (mayor) of town {}.\n\n", non_empty(s(&d["agent"], "name"), None), s(&d["town"], "id"));
        out.push_str(&render_rigs(&d["rigs"]));
        out.push_str(
            "\nYou plan and hand out work: `gt sling --rig <rig> \"<title>\" --body ...`.\n\
             Check on it with `gt beads --rig <rig>` and `gt agents --rig <rig>`; talk to \
             agents with `gt mail send <to> --subject ...`.\n",
        );
        out
    });
    Ok(())
}

pub fn hook(ctx: &Ctx) -> GtResult<()> {
    let api = Api::from_env()?;
    if config::rig_opt().is_none() {
        ctx.emit(&Value::Null, |_| "nothing on your hook (the mayor has no hook)\n".into());
        return Ok(());
    }
    let data = fetch_prime(&api)?;
    let hook = data.get("hook").cloned().unwrap_or(Value::Null);
    ctx.emit(&hook, |h| if h.is_object() { output::bead_detail(h) } else { nothing_on_hook() });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// done

/// Submits `$GASTOWN_BRANCH` for review; returns the ReviewEntry. The agent holds no push
/// credential: the town has the container push exactly this branch out of the agent's clone, so
/// the work must be committed on it. `progress` receives human progress lines.
pub fn submit(api: &Api, branch: &str, summary: Option<&str>, progress: &mut dyn FnMut(&str)) -> GtResult<Value> {
    let path = format!("{}/done", agent_path()?);
    let head = git::git(&["symbolic-ref", "--quiet", "--short", "HEAD"]).map(|h| h.trim().to_string()).unwrap_or_default();
    if head != branch {
        return Err(GtError::usage(format!(
            "HEAD is {} but your work must be committed on {branch}: run `git checkout {branch}` (bring your commits along) and try again",
            if head.is_empty() { "detached".to_string() } else { format!("on {head}") }
        )));
    }
    if git::git(&["status", "--porcelain", "--untracked-files=no"]).is_ok_and(|s| !s.trim().is_empty()) {
        progress("note: uncommitted changes stay behind; only commits on the branch are submitted");
    }
    progress(&format!("submitting {branch} for review (the town pushes it)"));
    // Retried while the town is down: a repeat that arrives after a lost answer gets the same
    // merge request back, so the work is submitted once and never committed again.
    api.post_idempotent(&path, &obj(vec![("branch", sv(branch)), ("summary", summary.and_then(sv))]))
}

pub fn done(ctx: &Ctx, summary: Option<String>) -> GtResult<()> {
    let api = Api::from_env()?;
    let branch = config::branch()?;
    let entry = submit(&api, &branch, summary.as_deref(), &mut |line| {
        if !ctx.json {
            eprintln!("{line}");
        }
    })?;
    ctx.emit(&entry, |e| render_review(e, &branch));
    Ok(())
}

pub fn render_review(e: &Value, branch: &str) -> String {
    let b = non_empty(s(e, "branch"), Some(branch.to_string()));
    let mut out = format!("submitted {b} for review as {}\n", s(e, "id"));
    if !s(e, "target_branch").is_empty() {
        out.push_str(&format!("  target {}  status {}  source bead {}\n", s(e, "target_branch"), s(e, "status"), s(e, "source_bead_id")));
    }
    out
}

// ---------------------------------------------------------------------------------------
// mail

pub fn mail(ctx: &Ctx, cmd: MailCommand) -> GtResult<()> {
    let api = Api::from_env()?;
    match cmd {
        MailCommand::Inbox { unread } => {
            let q = query(&[("unread", unread.then(|| "true".to_string()))]);
            let data = api.get(&format!("{}{q}", mailbox_path()?))?;
            ctx.emit(&data, |d| output::mail_table(items(d)));
        }
        MailCommand::Check => {
            let data = api.post(&format!("{}/check", mailbox_path()?), &json!({}))?;
            ctx.emit(&data, |d| output::mail_check(items(d)));
        }
        MailCommand::Read { id } => {
            let data = api.post(&format!("{}/{}/read", mailbox_path()?, encode(&id)), &json!({}))?;
            ctx.emit(&data, output::mail_detail);
        }
        MailCommand::Send(send) => mail_send(ctx, &api, send)?,
    }
    Ok(())
}

/// The caller's mailbox: an agent's own, or for the mayor (no rig) the mayor's tools inbox.
pub fn mailbox_path() -> GtResult<String> {
    match config::rig_opt() {
        Some(_) => Ok(format!("{}/mail", agent_path()?)),
        None => Ok(format!("{}/inbox", mayor_path()?)),
    }
}

fn mail_send(ctx: &Ctx, api: &Api, m: MailSend) -> GtResult<()> {
    let body = match m.body {
        Some(b) => b,
        None if !std::io::stdin().is_terminal() => {
            let mut buf = String::new();
            std::io::stdin().read_to_string(&mut buf).map_err(|e| GtError::Io(format!("cannot read the mail body from stdin: {e}")))?;
            buf
        }
        None => String::new(),
    };
    let path = match config::rig_opt() {
        Some(_) => format!("{}/mail", rig_path()?),
        None => format!("{}/mail", mayor_path()?),
    };
    let payload = json!({"to": m.to, "subject": m.subject, "body": body});
    let data = api.post(&path, &payload)?;
    ctx.emit(&data, |d| {
        let id = s(d, "id");
        if id.is_empty() {
            format!("sent mail to {}\n", m.to)
        } else {
            format!("sent mail {id} to {}\n", m.to)
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// escalate / checkpoint

pub fn escalate(ctx: &Ctx, message: String, severity: Level, category: Option<String>) -> GtResult<()> {
    let api = Api::from_env()?;
    let path = format!("{}/escalations", rig_path()?);
    let body = obj(vec![("message", sv(&message)), ("severity", lv(Some(severity))), ("category", osv(&category))]);
    let data = api.post(&path, &body)?;
    ctx.emit(&data, |d| format!("escalated as {} (severity {})\n", s(d, "id"), severity.as_str()));
    Ok(())
}

/// JSON is sent as is; anything else as a JSON string.
pub fn checkpoint_value(data: &str) -> Value {
    serde_json::from_str::<Value>(data).unwrap_or_else(|_| Value::String(data.to_string()))
}

pub fn checkpoint(ctx: &Ctx, data: String) -> GtResult<()> {
    let api = Api::from_env()?;
    let path = format!("{}/checkpoint", agent_path()?);
    let res = api.post(&path, &json!({"data": checkpoint_value(&data)}))?;
    ctx.emit(&res, |_| "checkpoint saved\n".into());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// beads

pub fn bead(ctx: &Ctx, cmd: BeadCommand) -> GtResult<()> {
    let api = Api::from_env()?;
    let base = rig_path()?;
    match cmd {
        BeadCommand::Show { id } => {
            let data = api.get(&format!("{base}/beads/{}", encode(&id)))?;
            ctx.emit(&data, output::bead_detail);
        }
        BeadCommand::List { status, bead_type, limit } => {
            let q = query(&[("status", status), ("type", bead_type), ("limit", limit.map(|l| l.to_string()))]);
            let data = api.get(&format!("{base}/beads{q}"))?;
            ctx.emit(&data, |d| output::bead_table(items(d)));
        }
        BeadCommand::Create { title, body, priority } => {
            let payload = obj(vec![("title", sv(&title)), ("body", osv(&body)), ("priority", lv(priority))]);
            let data = api.post(&format!("{base}/beads"), &payload)?;
            ctx.emit(&data, |d| format!("created {}: {}\n", s(d, "id"), s(d, "title")));
        }
        BeadCommand::Close { id, reason } => {
            let payload = obj(vec![("reason", osv(&reason))]);
            let data = api.post(&format!("{base}/beads/{}/close", encode(&id)), &payload)?;
            ctx.emit(&data, |d| format!("closed {} ({})\n", non_empty(s(d, "id"), Some(id.clone())), s(d, "status")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// mayor tools

fn render_rigs(rigs: &Value) -> String {
    let list = items(rigs);
    if list.is_empty() {
        return "no rigs\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![s(r, "id").into(), s(r, "name").into(), s(r, "default_branch").into(), s(r, "bead_prefix").into(), s(r, "git_url").into()]
        })
        .collect();
    output::table(&["ID", "NAME", "BRANCH", "PREFIX", "GIT URL"], &rows)
}

/// A rig name or id → `(id, name)`, through `GET M/rigs`.
fn resolve_rig(api: &Api, rig: &str) -> GtResult<(String, String)> {
    let rigs = api.get(&format!("{}/rigs", mayor_path()?))?;
    let list = items(&rigs);
    let found = list
        .iter()
        .find(|r| s(r, "id") == rig)
        .or_else(|| list.iter().find(|r| s(r, "name") == rig))
        .or_else(|| list.iter().find(|r| s(r, "name").eq_ignore_ascii_case(rig)));
    match found {
        Some(r) => Ok((s(r, "id").to_string(), s(r, "name").to_string())),
        None => {
            let names: Vec<String> = list.iter().map(|r| format!("{} ({})", s(r, "name"), s(r, "id"))).collect();
            Err(GtError::Nothing(format!(
                "no rig named or with id {rig:?} in this town; rigs: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )))
        }
    }
}

pub fn rigs(ctx: &Ctx) -> GtResult<()> {
    let api = Api::from_env()?;
    let data = api.get(&format!("{}/rigs", mayor_path()?))?;
    ctx.emit(&data, render_rigs);
    Ok(())
}

pub fn escalations(ctx: &Ctx, all: bool) -> GtResult<()> {
    let api = Api::from_env()?;
    let q = if all { String::new() } else { "?acknowledged=false".to_string() };
    let data = api.get(&format!("{}/escalations{q}", mayor_path()?))?;
    ctx.emit(&data, |d| {
        let rows = items(d);
        if rows.is_empty() {
            return "no escalations\n".into();
        }
        rows.iter()
            .map(|e| {
                let ack = if e["acknowledged"].as_bool() == Some(true) { "acked" } else { "OPEN" };
                format!("{}  {:<8} {:<5} {}\n", s(e, "id"), s(e, "severity"), ack, s(e, "message").lines().next().unwrap_or(""))
            })
            .collect()
    });
    Ok(())
}

pub fn escalation_ack(ctx: &Ctx, id: String) -> GtResult<()> {
    let api = Api::from_env()?;
    let data = api.post(&format!("{}/escalations/{}/acknowledge", mayor_path()?, encode(&id)), &json!({}))?;
    ctx.emit(&data, |d| format!("acknowledged {}\n", s(d, "id")));
    Ok(())
}

pub fn beads(ctx: &Ctx, rig: String, status: Option<String>) -> GtResult<()> {
    let api = Api::from_env()?;
    let (rig_id, _) = resolve_rig(&api, &rig)?;
    let q = query(&[("status", status)]);
    let data = api.get(&format!("{}/rigs/{}/beads{q}", mayor_path()?, encode(&rig_id)))?;
    ctx.emit(&data, |d| output::bead_table(items(d)));
    Ok(())
}

pub fn agents(ctx: &Ctx, rig: String) -> GtResult<()> {
    let api = Api::from_env()?;
    let (rig_id, _) = resolve_rig(&api, &rig)?;
    let data = api.get(&format!("{}/rigs/{}/agents", mayor_path()?, encode(&rig_id)))?;
    ctx.emit(&data, |d| {
        let list = items(d);
        if list.is_empty() {
            return "no agents\n".into();
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|a| vec![s(a, "id").into(), s(a, "role").into(), s(a, "name").into(), s(a, "status").into(), text(a, "hook_bead_id")])
            .collect();
        output::table(&["ID", "ROLE", "NAME", "STATUS", "HOOK"], &rows)
    });
    Ok(())
}

pub struct SlingArgs {
    pub rig: String,
    pub title: String,
    pub body: Option<String>,
    pub priority: Option<Level>,
    pub convoy: Option<String>,
    pub formula: Option<String>,
}

pub fn sling(ctx: &Ctx, a: SlingArgs) -> GtResult<()> {
    let api = Api::from_env()?;
    let (rig_id, rig_name) = resolve_rig(&api, &a.rig)?;
    let payload = obj(vec![
        ("rig_id", sv(&rig_id)),
        ("title", sv(&a.title)),
        ("body", osv(&a.body)),
        ("priority", lv(a.priority)),
        ("convoy_id", osv(&a.convoy)),
        ("formula", osv(&a.formula)),
    ]);
    let data = api.post(&format!("{}/sling", mayor_path()?), &payload)?;
    ctx.emit(&data, |d| {
        let bead = &d["bead"];
        let mut out = format!("slung {} \"{}\" to rig {rig_name}\n", s(bead, "id"), s(bead, "title"));
        let agent = &d["agent"];
        if agent.is_object() {
            out.push_str(&format!("  hooked on polecat {} ({})\n", s(agent, "name"), s(agent, "id")));
        } else {
            out.push_str("  queued: no polecat is free right now; the bead waits for the next free polecat\n");
        }
        out
    });
    Ok(())
}
