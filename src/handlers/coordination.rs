//! Town coordination: convoys, molecules and formulas, the merge queue, the town's mail, the
//! agents of the whole town, and the witness (run it now; see when it next looks).

use gastown_core::town::{AddToConvoyInput, AgentFilter, CreateConvoyInput, MoleculeInput, TownOp};
use serde::Deserialize;
use serde_json::Value;

use super::{created, ok, Ctx, Reply};

/// `?limit=`: at most n, the newest (1–500; 500 when not given).
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct NewestQuery {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 500)))]
    limit: Option<u32>,
}

pub async fn list_convoys(ctx: Ctx, q: NewestQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListConvoys { limit: q.limit }).await?)
}

pub async fn create_convoy(ctx: Ctx, input: CreateConvoyInput) -> Reply {
    created(ctx.town_reply(TownOp::CreateConvoy { input }).await?)
}

pub async fn get_convoy(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetConvoy { convoy_id: ctx.param("convoyId").into() }).await?)
}

pub async fn add_to_convoy(ctx: Ctx, input: AddToConvoyInput) -> Reply {
    ok(ctx.town_reply(TownOp::AddToConvoy { convoy_id: ctx.param("convoyId").into(), input }).await?)
}

pub async fn list_formulas(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::ListFormulas).await?)
}

pub async fn create_molecule(ctx: Ctx, input: MoleculeInput) -> Reply {
    created(ctx.town_reply(TownOp::CreateMolecule { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into(), input }).await?)
}

pub async fn get_molecule(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetMolecule { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

pub async fn mol_current(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::MolCurrent { rig_id: ctx.rig_id(), agent_id: ctx.param("agentId").into() }).await?)
}

#[derive(Deserialize, Default)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AdvanceInput {
    #[serde(default)]
    summary: Option<String>,
}

pub async fn mol_advance(ctx: Ctx, input: AdvanceInput) -> Reply {
    ok(ctx.town_reply(TownOp::MolAdvance { rig_id: ctx.rig_id(), agent_id: ctx.param("agentId").into(), summary: input.summary }).await?)
}

pub async fn merge_queue(ctx: Ctx, q: NewestQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListMergeQueue { limit: q.limit }).await?)
}

pub async fn retry_merge(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::RetryMerge { mr_id: ctx.param("mrId").into() }).await?)
}

pub async fn town_mail(ctx: Ctx, q: NewestQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListTownMail { limit: q.limit }).await?)
}

pub async fn town_agents(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::ListAgents { filter: AgentFilter::default() }).await?)
}

/// `POST /api/towns/:townId/witness/tick`: runs the witness now (what the alarm does while work
/// is active) and answers with the actions it took.
pub async fn witness_tick(ctx: Ctx) -> Reply {
    ctx.check_owner().await?;
    ok(crate::dos::call(&ctx.env, "TOWN", ctx.town_id(), "/witness", &Value::Null).await?)
}

/// `GET /api/towns/:townId/witness`: when the town's alarm is next due (`null`: not armed, the
/// town is idle) and whether the witness is watching running agents.
pub async fn witness_status(ctx: Ctx) -> Reply {
    ctx.check_owner().await?;
    ok(crate::dos::call(&ctx.env, "TOWN", ctx.town_id(), "/alarm", &Value::Null).await?)
}
