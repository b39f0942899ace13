//! `/api/mayor/:townId/tools/…`: the mayor's tools. Its token names no rig, so each tool names
//! the rig it acts on, and list results are filtered by that rig.

use gastown_core::town::{AgentFilter, SendMailInput, SlingInput, TownOp};

use super::beads::bead_filter;
use super::{created, ok, Ctx, Reply};

/// `{rig_id, …sling fields}`: the rig is part of the body because the mayor's token has none.
pub async fn sling(mut ctx: Ctx) -> Reply {
    let body: serde_json::Value = ctx.body().await?;
    let rig_id =
        body.get("rig_id").and_then(|v| v.as_str()).ok_or_else(|| gastown_core::CoreError::bad("rig_id", "is required"))?.to_string();
    let mut rest = body.clone();
    rest.as_object_mut().map(|o| o.remove("rig_id"));
    let input: SlingInput = gastown_core::json::from_value("", rest)?;
    created(ctx.town(TownOp::Sling { rig_id, input }).await?)
}

pub async fn rigs(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::ListRigs).await?)
}

pub async fn rig_beads(ctx: Ctx) -> Reply {
    let filter = bead_filter(&ctx.query()?)?;
    ctx.town(TownOp::GetRig { rig_id: ctx.rig_id() }).await?;
    ok(ctx.town(TownOp::ListBeads { rig_id: Some(ctx.rig_id()), filter }).await?)
}

pub async fn rig_agents(ctx: Ctx) -> Reply {
    ctx.town(TownOp::GetRig { rig_id: ctx.rig_id() }).await?;
    ok(ctx.town(TownOp::ListAgents { filter: AgentFilter { rig_id: Some(ctx.rig_id()), role: None, status: None } }).await?)
}

pub async fn mail(mut ctx: Ctx) -> Reply {
    let input: SendMailInput = ctx.body().await?;
    created(ctx.town(TownOp::SendMail { input }).await?)
}

async fn mayor_id(ctx: &Ctx) -> gastown_core::CoreResult<String> {
    let status = ctx.town(TownOp::MayorStatus).await?;
    status["agent"]["id"].as_str().map(str::to_string).ok_or_else(|| gastown_core::CoreError::NotFound("this town has no mayor yet".into()))
}

/// The mayor's mailbox, unread first (`?unread=true` for unread only).
pub async fn inbox(ctx: Ctx) -> Reply {
    let unread_only = ctx.query()?.bool("unread")?;
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town(TownOp::ListMail { agent_id, unread_only }).await?)
}

pub async fn read_mail(ctx: Ctx) -> Reply {
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town(TownOp::ReadMail { agent_id, mail_id: ctx.param("mailId").into() }).await?)
}

/// The mayor's process started or exited (reported by the container with the mayor's token).
pub async fn lifecycle(mut ctx: Ctx) -> Reply {
    let event: gastown_core::town::Lifecycle = ctx.body().await?;
    let agent_id = mayor_id(&ctx).await?;
    ok(ctx.town(TownOp::Lifecycle { rig_id: None, agent_id, event }).await?)
}
