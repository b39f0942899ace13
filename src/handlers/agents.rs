//! Rig-scoped agents: register, list, read, delete, the hook, prime, checkpoint, done, mail,
//! and the agent's own event log (AgentDO).

use gastown_core::agent_log::AgentLogOp;
use gastown_core::model::{AgentRole, AgentStatus};
use gastown_core::town::{AgentFilter, DoneInput, EscalateInput, Lifecycle, RegisterAgentInput, SendMailInput, TownOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{agent_log_call, created, ok, retire_agents, Ctx, Reply};

fn agent(ctx: &Ctx) -> String {
    ctx.param("agentId").to_string()
}

/// `GET …/agents?role=&status=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct AgentQuery {
    role: Option<AgentRole>,
    status: Option<AgentStatus>,
}

/// `?unread=true`: unread mail only.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct MailQuery {
    #[serde(default)]
    pub unread: bool,
}

/// An event log's cursor: `?after_id=&limit=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct LogQuery {
    pub after_id: Option<u64>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 1000)))]
    pub limit: Option<u32>,
}

pub async fn register(ctx: Ctx, input: RegisterAgentInput) -> Reply {
    created(ctx.town_reply(TownOp::RegisterAgent { rig_id: ctx.rig_id(), input }).await?)
}

pub async fn list(ctx: Ctx, q: AgentQuery) -> Reply {
    let filter = AgentFilter { rig_id: Some(ctx.rig_id()), role: q.role, status: q.status };
    ok(ctx.town_reply(TownOp::ListAgents { filter }).await?)
}

pub async fn get(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetAgent { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx) }).await?)
}

pub async fn delete(ctx: Ctx) -> Reply {
    let id = agent(&ctx);
    let r = ctx.town(TownOp::DeleteAgent { rig_id: Some(ctx.rig_id()), agent_id: id.clone() }).await?;
    retire_agents(&ctx.env, ctx.town_id(), &[id]).await;
    ok(r)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    bead_id: String,
}

pub async fn hook(ctx: Ctx, input: HookInput) -> Reply {
    ok(ctx.town_reply(TownOp::Hook { rig_id: ctx.rig_id(), agent_id: agent(&ctx), bead_id: input.bead_id }).await?)
}

pub async fn unhook(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::Unhook { rig_id: ctx.rig_id(), agent_id: agent(&ctx) }).await?)
}

pub async fn prime(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::Prime { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx) }).await?)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckpointInput {
    data: Value,
}

pub async fn checkpoint(ctx: Ctx, input: CheckpointInput) -> Reply {
    ok(ctx.town_reply(TownOp::Checkpoint { rig_id: ctx.rig_id(), agent_id: agent(&ctx), data: input.data }).await?)
}

pub async fn done(ctx: Ctx, input: DoneInput) -> Reply {
    created(ctx.town_reply(TownOp::Done { rig_id: ctx.rig_id(), agent_id: agent(&ctx), input }).await?)
}

pub async fn list_mail(ctx: Ctx, q: MailQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListMail { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx), unread_only: q.unread }).await?)
}

pub async fn read_mail(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::ReadMail { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx), mail_id: ctx.param("mailId").into() }).await?)
}

pub async fn check_mail(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::CheckMail { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx) }).await?)
}

/// Mail from the caller: an agent signs as itself, a person as the overseer.
pub async fn send_mail(ctx: Ctx, input: SendMailInput) -> Reply {
    created(ctx.town_reply(TownOp::SendMail { input }).await?)
}

pub async fn list_events(ctx: Ctx, q: LogQuery) -> Reply {
    let (after_id, limit) = (q.after_id.map(super::as_i64), q.limit);
    ctx.town(TownOp::GetAgent { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx) }).await?;
    ok(agent_log_call(&ctx.env, ctx.town_id(), &agent(&ctx), AgentLogOp::List { after_id, limit }).await?)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    event_type: String,
    #[serde(default)]
    data: Value,
}

/// What appending to an agent's log answers: the new event's id (its cursor for `?after=`).
#[derive(Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct EventAppended {
    id: i64,
}

pub async fn append_event(ctx: Ctx, input: EventInput) -> Reply {
    gastown_core::validate::text("event_type", &input.event_type, 100)?;
    // Only agents that exist get a log: no storage for made-up ids.
    ctx.town(TownOp::GetAgent { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx) }).await?;
    let op = AgentLogOp::Append { event_type: input.event_type, data: input.data };
    let appended: EventAppended = serde_json::from_value(agent_log_call(&ctx.env, ctx.town_id(), &agent(&ctx), op).await?)?;
    created(serde_json::to_value(appended)?)
}

/// A process start or exit, reported by the container with the agent's own token.
pub async fn lifecycle(ctx: Ctx, event: Lifecycle) -> Reply {
    let op = TownOp::Lifecycle { rig_id: Some(ctx.rig_id()), agent_id: agent(&ctx), event: event.clone() };
    let r = ctx.town(op).await?;
    // Mirror it into the agent's own event log.
    let data = serde_json::to_value(&event).unwrap_or_default();
    let kind = match event {
        Lifecycle::Started { .. } => "started",
        Lifecycle::Exited { .. } => "exited",
    };
    if let Err(e) = agent_log_call(&ctx.env, ctx.town_id(), &agent(&ctx), AgentLogOp::Append { event_type: kind.into(), data }).await {
        worker::console_warn!("agent log: {e}");
    }
    ok(r)
}

/// `gt escalate`: records an escalation from the caller (agent or person) about this rig.
pub async fn escalate(ctx: Ctx, input: EscalateInput) -> Reply {
    created(ctx.town_reply(TownOp::Escalate { rig_id: Some(ctx.rig_id()), input }).await?)
}
