//! Rig-scoped beads: create, list, read, status, close, delete, dependencies, sling, events.
//! Every op names the route's rig, so a bead of another rig is simply not found.

use gastown_core::model::{BeadStatus, BeadType, DependencyType};
use gastown_core::town::{BeadFilter, CreateBeadInput, EventFilter, SlingInput, TownOp};
use serde::Deserialize;

use super::{created, ok, Ctx, Reply};

/// `GET …/beads?status=&type=&assignee_agent_id=&parent_id=&limit=&offset=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct BeadQuery {
    status: Option<BeadStatus>,
    #[serde(rename = "type")]
    bead_type: Option<BeadType>,
    assignee_agent_id: Option<String>,
    parent_id: Option<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 500)))]
    limit: Option<u32>,
    offset: Option<u32>,
}

impl BeadQuery {
    pub fn filter(self) -> BeadFilter {
        BeadFilter {
            status: self.status,
            bead_type: self.bead_type,
            assignee_agent_id: self.assignee_agent_id,
            parent_id: self.parent_id,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

/// `GET …/rigs/:rigId/events?bead_id=&after_id=&since=&limit=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct EventQuery {
    bead_id: Option<String>,
    after_id: Option<u64>,
    /// An ISO-8601 time: events at or after it.
    since: Option<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = 1000)))]
    limit: Option<u32>,
}

pub async fn create(ctx: Ctx, input: CreateBeadInput) -> Reply {
    created(ctx.town_reply(TownOp::CreateBead { rig_id: Some(ctx.rig_id()), input }).await?)
}

pub async fn list(ctx: Ctx, q: BeadQuery) -> Reply {
    ok(ctx.town_reply(TownOp::ListBeads { rig_id: Some(ctx.rig_id()), filter: q.filter() }).await?)
}

pub async fn get(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetBead { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

pub async fn delete(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::DeleteBead { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    status: BeadStatus,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn set_status(ctx: Ctx, input: StatusInput) -> Reply {
    let op = TownOp::SetBeadStatus {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        status: input.status,
        reason: input.reason,
    };
    ok(ctx.town_reply(op).await?)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CloseInput {
    #[serde(default)]
    reason: Option<String>,
}

pub async fn close(ctx: Ctx, input: CloseInput) -> Reply {
    let op = TownOp::SetBeadStatus {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        status: BeadStatus::Closed,
        reason: input.reason,
    };
    ok(ctx.town_reply(op).await?)
}

pub async fn list_deps(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::ListDependencies { rig_id: Some(ctx.rig_id()), bead_id: ctx.param("beadId").into() }).await?)
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DepInput {
    depends_on_bead_id: String,
    #[serde(rename = "type", default = "blocks")]
    dependency_type: DependencyType,
}

fn blocks() -> DependencyType {
    DependencyType::Blocks
}

pub async fn add_dep(ctx: Ctx, input: DepInput) -> Reply {
    let op = TownOp::AddDependency {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        depends_on_bead_id: input.depends_on_bead_id,
        dependency_type: input.dependency_type,
    };
    created(ctx.town_reply(op).await?)
}

pub async fn remove_dep(ctx: Ctx) -> Reply {
    let op = TownOp::RemoveDependency {
        rig_id: Some(ctx.rig_id()),
        bead_id: ctx.param("beadId").into(),
        depends_on_bead_id: ctx.param("dependsOn").into(),
    };
    ok(ctx.town_reply(op).await?)
}

pub async fn sling(ctx: Ctx, input: SlingInput) -> Reply {
    created(ctx.town_reply(TownOp::Sling { rig_id: ctx.rig_id(), input }).await?)
}

/// Events of this rig only.
pub async fn events(ctx: Ctx, q: EventQuery) -> Reply {
    let filter = EventFilter {
        rig_id: Some(ctx.rig_id()),
        bead_id: q.bead_id,
        after_id: q.after_id.map(super::as_i64),
        since: q.since,
        limit: q.limit,
    };
    ok(ctx.town_reply(TownOp::ListEvents { filter }).await?)
}
