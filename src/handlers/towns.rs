//! `/api/towns/:townId/…` owner routes: the town, its config, its event log, the mayor.

use gastown_core::town::{EventFilter, TownOp};
use gastown_core::user::UserOp;
use serde::Deserialize;
use serde_json::Value;

use super::{ok, user_call, Ctx, Reply};

pub async fn get(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetTown).await?)
}

pub async fn get_config(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetConfig).await?)
}

/// A config patch, kept as JSON so that the store can name every unknown or misplaced setting
/// (see `gastown_core::config`); documented as [`ConfigPatch`].
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ConfigPatchBody(Value);

#[cfg(not(target_arch = "wasm32"))]
impl schemars::JsonSchema for ConfigPatchBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigPatch".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <gastown_core::config::ConfigPatch as schemars::JsonSchema>::json_schema(g)
    }
}

pub async fn patch_config(ctx: Ctx, ConfigPatchBody(patch): ConfigPatchBody) -> Reply {
    ok(ctx.town_reply(TownOp::PatchConfig { patch }).await?)
}

/// `GET …/events?rig_id=&bead_id=&after_id=&since=&limit=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct TownEventQuery {
    rig_id: Option<String>,
    bead_id: Option<String>,
    after_id: Option<u64>,
    /// An ISO-8601 time: events at or after it.
    since: Option<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 1000)))]
    limit: Option<u32>,
}

/// Town-wide events; `rig_id`, `bead_id`, `after_id`, `since`, `limit` narrow them.
pub async fn events(ctx: Ctx, q: TownEventQuery) -> Reply {
    let filter =
        EventFilter { rig_id: q.rig_id, bead_id: q.bead_id, after_id: q.after_id.map(super::as_i64), since: q.since, limit: q.limit };
    ok(ctx.town_reply(TownOp::ListEvents { filter }).await?)
}

/// `/api/users/:userId/towns/:townId/events`: the same, for a town of that user's.
pub async fn user_events(mut ctx: Ctx, q: TownEventQuery) -> Reply {
    ctx.owner = Some(ctx.param("userId").to_string());
    if let Some(crate::auth::Principal::Dev { .. }) = ctx.principal {
        // The dev operator acts for any user, but the town must still be that user's.
        user_call(&ctx.env, ctx.param("userId"), UserOp::GetTown { town_id: ctx.town_id().into() }).await?;
    }
    events(ctx, q).await
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MayorMessage {
    message: String,
}

/// A person's message becomes mail to the mayor (starting the mayor on the first one); the
/// TownDO's drive types a short notice into the mayor's terminal if it is running.
pub async fn mayor_message(ctx: Ctx, m: MayorMessage) -> Reply {
    super::created(ctx.town_reply(TownOp::MayorMessage { message: m.message }).await?)
}

pub async fn mayor_ensure(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::EnsureMayor).await?)
}

pub async fn mayor_status(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::MayorStatus).await?)
}

/// `?acknowledged=true|false` narrows the list; `?limit=`: the newest n (1–500; 500 when not
/// given).
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct EscalationQuery {
    acknowledged: Option<bool>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 500)))]
    limit: Option<u32>,
}

/// Escalations, newest first.
pub async fn escalations(ctx: Ctx, q: EscalationQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListEscalations { acknowledged: q.acknowledged, limit: q.limit }).await?)
}

pub async fn acknowledge_escalation(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::AcknowledgeEscalation { escalation_id: ctx.param("escalationId").into() }).await?)
}
