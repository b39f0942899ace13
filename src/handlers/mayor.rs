//! `/api/mayor/:townId/tools/…`: the mayor's tools. Its token names no rig, so each tool names
//! the rig it acts on, and list results are filtered by that rig.

use gastown_core::town::{AgentFilter, SendMailInput, SlingInput, TownOp};
use serde::Deserialize;
use serde_json::Value;

use super::agents::MailQuery;
use super::beads::BeadQuery;
use super::{created, ok, Ctx, Reply};

/// `{rig_id, …sling fields}`: the rig is part of the body because the mayor's token has none.
/// Kept as JSON so the sling fields are checked as strictly as on the rig's own route.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct MayorSling(Value);

#[cfg(not(target_arch = "wasm32"))]
impl schemars::JsonSchema for MayorSling {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MayorSling".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut s = <SlingInput as schemars::JsonSchema>::json_schema(g);
        if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("rig_id".into(), serde_json::json!({"type": "string", "description": "The rig to sling to."}));
        }
        if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
            req.push("rig_id".into());
        } else {
            s.insert("required".into(), serde_json::json!(["rig_id"]));
        }
        s
    }
}

pub async fn sling(ctx: Ctx, MayorSling(body): MayorSling) -> Reply {
    let rig_id =
        body.get("rig_id").and_then(|v| v.as_str()).ok_or_else(|| gastown_core::CoreError::bad("rig_id", "is required"))?.to_string();
    let mut rest = body.clone();
    rest.as_object_mut().map(|o| o.remove("rig_id"));
    let input: SlingInput = gastown_core::json::from_value("", rest)?;
    created(ctx.town_reply(TownOp::Sling { rig_id, input }).await?)
}

pub async fn rigs(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::ListRigs).await?)
}

pub async fn rig_beads(ctx: Ctx, q: BeadQuery) -> Reply {
    ctx.town(TownOp::GetRig { rig_id: ctx.rig_id() }).await?;
    ok(ctx.town_reply(TownOp::ListBeads { rig_id: Some(ctx.rig_id()), filter: q.filter() }).await?)
}

pub async fn rig_agents(ctx: Ctx) -> Reply {
    ctx.town(TownOp::GetRig { rig_id: ctx.rig_id() }).await?;
    ok(ctx.town_reply(TownOp::ListAgents { filter: AgentFilter { rig_id: Some(ctx.rig_id()), role: None, status: None } }).await?)
}

pub async fn mail(ctx: Ctx, input: SendMailInput) -> Reply {
    created(ctx.town_reply(TownOp::SendMail { input }).await?)
}

async fn mayor_id(ctx: &Ctx) -> gastown_core::CoreResult<String> {
    let status = ctx.town(TownOp::MayorStatus).await?;
    status["agent"]["id"].as_str().map(str::to_string).ok_or_else(|| gastown_core::CoreError::NotFound("this town has no mayor yet".into()))
}

/// The mayor's mailbox, unread first (`?unread=true` for unread only).
pub async fn inbox(ctx: Ctx, q: MailQuery) -> Reply {
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town_reply(TownOp::ListMail { rig_id: None, agent_id, unread_only: q.unread }).await?)
}

pub async fn read_mail(ctx: Ctx) -> Reply {
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town_reply(TownOp::ReadMail { rig_id: None, agent_id, mail_id: ctx.param("mailId").into() }).await?)
}

pub async fn check_mail(ctx: Ctx) -> Reply {
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town_reply(TownOp::CheckMail { rig_id: None, agent_id }).await?)
}

/// The mayor's process started or exited (reported by the container with the mayor's token).
pub async fn lifecycle(ctx: Ctx, event: gastown_core::town::Lifecycle) -> Reply {
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town_reply(TownOp::Lifecycle { rig_id: None, agent_id, event }).await?)
}
