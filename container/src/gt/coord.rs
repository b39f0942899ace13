//! `gt convoy …` (the mayor's batches of work) and `gt mol …` (walking a molecule's steps).

use serde_json::{json, Value};

use crate::gt::api::{encode, Api};
use crate::gt::cli::{ConvoyCommand, MolCommand};
use crate::gt::commands::{agent_path, mayor_path, Ctx};
use crate::gt::error::GtResult;
use crate::gt::output::{items, s};

fn render_convoy(c: &Value) -> String {
    let total = c["total"].as_i64().unwrap_or(0);
    let closed = c["closed"].as_i64().unwrap_or(0);
    let pct = if total == 0 { 0 } else { closed * 100 / total };
    let mut out = format!("{}  {:<6} {closed}/{total} ({pct}%)  {}\n", s(c, "id"), s(c, "status"), s(c, "title"));
    for b in c["beads"].as_array().into_iter().flatten() {
        out.push_str(&format!("    {}  {:<11} {}\n", s(b, "id"), s(b, "status"), s(b, "title")));
    }
    out
}

pub fn convoy(ctx: &Ctx, cmd: ConvoyCommand) -> GtResult<()> {
    let api = Api::from_env()?;
    let base = format!("{}/convoys", mayor_path()?);
    match cmd {
        ConvoyCommand::Create { title, beads } => {
            let data = api.post(&base, &json!({"title": title, "bead_ids": beads}))?;
            ctx.emit(&data, |d| format!("created convoy {}\n{}", s(d, "id"), render_convoy(d)));
        }
        ConvoyCommand::Status { id: Some(id) } => {
            let data = api.get(&format!("{base}/{}", encode(&id)))?;
            ctx.emit(&data, render_convoy);
        }
        ConvoyCommand::Status { id: None } => {
            let data = api.get(&base)?;
            ctx.emit(&data, |d| {
                let list = items(d);
                if list.is_empty() {
                    return "no convoys\n".into();
                }
                list.iter().map(render_convoy).collect()
            });
        }
        ConvoyCommand::Add { id, beads } => {
            let data = api.post(&format!("{base}/{}/beads", encode(&id)), &json!({"bead_ids": beads}))?;
            ctx.emit(&data, render_convoy);
        }
    }
    Ok(())
}

fn render_step(d: &Value) -> String {
    if d["complete"].as_bool() == Some(true) {
        return format!("molecule {} complete: {}\n", s(d, "molecule_id"), s(d, "message"));
    }
    let step = &d["step"];
    format!(
        "step {} ({}) of molecule {}: {}\n  bead {}\n\n{}\n\nWhen this step is done: gt mol advance --summary \"<what you did>\"\n",
        s(d, "position"),
        s(d, "step_id"),
        s(d, "molecule_id"),
        s(step, "title"),
        s(step, "id"),
        s(step, "body"),
    )
}

pub fn mol(ctx: &Ctx, cmd: MolCommand) -> GtResult<()> {
    let api = Api::from_env()?;
    let base = format!("{}/molecule", agent_path()?);
    let data = match cmd {
        MolCommand::Current => api.post(&format!("{base}/current"), &json!({}))?,
        MolCommand::Advance { summary } => api.post(&format!("{base}/advance"), &json!({"summary": summary}))?,
    };
    ctx.emit(&data, render_step);
    Ok(())
}
