//! `/api/towns/:townId/…` owner routes: the town, its config, its event log, the mayor.

use gastown_core::town::{EventFilter, TownOp};
use gastown_core::user::UserOp;
use serde::Deserialize;
use serde_json::Value;

use super::{ok, user_call, Ctx, Reply};

pub async fn get(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::GetTown).await?)
}

pub async fn get_config(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::GetConfig).await?)
}

pub async fn patch_config(mut ctx: Ctx) -> Reply {
    let patch: Value = ctx.body().await?;
    if !patch.is_object() {
        return Err(gastown_core::CoreError::bad_request("the body must be a JSON object of config fields"));
    }
    ok(ctx.town(TownOp::PatchConfig { patch }).await?)
}

/// Town-wide events; `rig_id`, `bead_id`, `after_id`, `since`, `limit` narrow them.
pub async fn events(ctx: Ctx) -> Reply {
    if let Some(user) = ctx.opt_param("userId") {
        // Reached through /api/users/:userId/towns/:townId/events: the town must be that user's.
        user_call(&ctx.env, user, UserOp::GetTown { town_id: ctx.town_id().into() }).await?;
    }
    let q = ctx.query()?;
    let filter = EventFilter {
        rig_id: q.str("rig_id").map(str::to_string),
        bead_id: q.str("bead_id").map(str::to_string),
        after_id: q.i64("after_id")?,
        since: q.str("since").map(str::to_string),
        limit: q.u32("limit")?,
    };
    ok(ctx.town(TownOp::ListEvents { filter }).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MayorMessage {
    message: String,
}

/// A person's message becomes mail to the mayor (starting the mayor on the first one); the
/// TownDO's drive types a short notice into the mayor's terminal if it is running.
pub async fn mayor_message(mut ctx: Ctx) -> Reply {
    let m: MayorMessage = ctx.body().await?;
    super::created(ctx.town(TownOp::MayorMessage { message: m.message }).await?)
}

pub async fn mayor_ensure(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::EnsureMayor).await?)
}

pub async fn mayor_status(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::MayorStatus).await?)
}

/// `?acknowledged=true|false` narrows the list; newest first.
pub async fn escalations(ctx: Ctx) -> Reply {
    let q = ctx.query()?;
    let acknowledged = match q.str("acknowledged") {
        None => None,
        Some(_) => Some(q.bool("acknowledged")?),
    };
    ok(ctx.town(TownOp::ListEscalations { acknowledged }).await?)
}

pub async fn acknowledge_escalation(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::AcknowledgeEscalation { escalation_id: ctx.param("escalationId").into() }).await?)
}
