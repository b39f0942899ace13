//! Rig-scoped beads: create, list, read, status, close, delete, dependencies, sling, events.
//! Every op names the route's rig, so a bead of another rig is simply not found.

use gastown_core::model::{BeadStatus, BeadType, DependencyType};
use gastown_core::town::{BeadFilter, CreateBeadInput, EventFilter, SlingInput, TownOp};
use serde::Deserialize;

use super::{created, ok, Ctx, Reply};
use crate::http::Query;

pub fn bead_filter(q: &Query) -> gastown_core::CoreResult<BeadFilter> {
    Ok(BeadFilter {
        status: q.parse("status", BeadStatus::parse)?,
        bead_type: q.parse("type", BeadType::parse)?,
        assignee_agent_id: q.str("assignee_agent_id").map(str::to_string),
        parent_id: q.str("parent_id").map(str::to_string),
        limit: q.u32("limit")?,
        offset: q.u32("offset")?,
    })
}

pub async fn create(mut ctx: Ctx) -> Reply {
    let input: CreateBeadInput = ctx.body().await?;
    created(ctx.town(TownOp::CreateBead { rig_id: Some(ctx.rig_id()), input }).await?)
}

pub async fn list(ctx: Ctx) -> Reply {
    let filter = bead_filter(&ctx.query()?)?;
    ok(ctx.town(TownOp::ListBeads { rig_id: Some(ctx.rig_id()), filter }).await?)
}

pub async fn get(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::GetBead { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

pub async fn delete(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::DeleteBead { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusInput {
    status: BeadStatus,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn set_status(mut ctx: Ctx) -> Reply {
    let input: StatusInput = ctx.body().await?;
    let op = TownOp::SetBeadStatus {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        status: input.status,
        reason: input.reason,
    };
    ok(ctx.town(op).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseInput {
    #[serde(default)]
    reason: Option<String>,
}

pub async fn close(mut ctx: Ctx) -> Reply {
    let input: CloseInput = ctx.body().await?;
    let op = TownOp::SetBeadStatus {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        status: BeadStatus::Closed,
        reason: input.reason,
    };
    ok(ctx.town(op).await?)
}

pub async fn list_deps(ctx: Ctx) -> Reply {
    ok(ctx.town(TownOp::ListDependencies { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepInput {
    depends_on_bead_id: String,
    #[serde(rename = "type", default = "blocks")]
    dependency_type: DependencyType,
}

fn blocks() -> DependencyType {
    DependencyType::Blocks
}

pub async fn add_dep(mut ctx: Ctx) -> Reply {
    let input: DepInput = ctx.body().await?;
    let op = TownOp::AddDependency {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        depends_on_bead_id: input.depends_on_bead_id,
        dependency_type: input.dependency_type,
    };
    created(ctx.town(op).await?)
}

pub async fn remove_dep(ctx: Ctx) -> Reply {
    let op = TownOp::RemoveDependency {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        depends_on_bead_id: ctx.param("dependsOn").into(),
    };
    ok(ctx.town(op).await?)
}

pub async fn sling(mut ctx: Ctx) -> Reply {
    let input: SlingInput = ctx.body().await?;
    created(ctx.town(TownOp::Sling { rig_id: ctx.rig_id(), input }).await?)
}

/// Events of this rig only.
pub async fn events(ctx: Ctx) -> Reply {
    let q = ctx.query()?;
    let filter = EventFilter {
        rig_id: Some(ctx.rig_id()),
        bead_id: q.str("bead_id").map(str::to_string),
        after_id: q.i64("after_id")?,
        since: q.str("since").map(str::to_string),
        limit: q.u32("limit")?,
    };
    ok(ctx.town(TownOp::ListEvents { filter }).await?)
}
