//! Route handlers, grouped by domain. Each one decodes its input, builds a typed op for a
//! Durable Object and returns `(status, data)`; authorization already happened in the router.

pub mod agents;
pub mod beads;
pub mod coordination;
pub mod mayor;
pub mod misc;
pub mod terminals;
pub mod towns;
pub mod users;
pub mod webhooks;

use gastown_core::agent_log::AgentLogOp;
use gastown_core::town::{Actor, TownOp};
use gastown_core::user::UserOp;
use gastown_core::CoreResult;
use serde_json::Value;
use worker::{Env, Request};

use crate::auth::Principal;
use crate::dos::{self, town::TownCall, user::UserCall};
use crate::http::Query;

pub type Reply = CoreResult<(u16, Value)>;

pub struct Ctx {
    pub req: Request,
    pub env: Env,
    pub params: Vec<(String, String)>,
    pub principal: Option<Principal>,
}

impl Ctx {
    pub fn opt_param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A path parameter the route pattern guarantees.
    pub fn param(&self, name: &str) -> &str {
        self.opt_param(name).unwrap_or_default()
    }

    pub fn town_id(&self) -> &str {
        self.param("townId")
    }

    pub fn rig_id(&self) -> String {
        self.param("rigId").to_string()
    }

    pub fn actor(&self) -> Actor {
        self.principal.as_ref().map_or(Actor::System, Principal::actor)
    }

    pub fn query(&self) -> CoreResult<Query> {
        Query::from(&self.req)
    }

    pub async fn body<T: serde::de::DeserializeOwned>(&mut self) -> CoreResult<T> {
        crate::http::body(&mut self.req).await
    }

    pub async fn town(&self, op: TownOp) -> CoreResult<Value> {
        town_call(&self.env, self.town_id(), self.actor(), op).await
    }
}

pub async fn town_call(env: &Env, town_id: &str, actor: Actor, op: TownOp) -> CoreResult<Value> {
    dos::call(&dos::stub(env, "TOWN", town_id)?, "/op", &TownCall { actor, op }).await
}

pub async fn town_destroy(env: &Env, town_id: &str) -> CoreResult<Value> {
    dos::call(&dos::stub(env, "TOWN", town_id)?, "/destroy", &Value::Null).await
}

pub async fn user_call(env: &Env, user_id: &str, op: UserOp) -> CoreResult<Value> {
    dos::call(&dos::stub(env, "GASTOWN_USER", user_id)?, "/op", &UserCall { user_id: user_id.to_string(), op }).await
}

/// Agent ids are unique within a town, so the AgentDO's name carries both.
pub async fn agent_log_call(env: &Env, town_id: &str, agent_id: &str, op: AgentLogOp) -> CoreResult<Value> {
    dos::call(&dos::stub(env, "AGENT", &format!("{town_id}:{agent_id}"))?, "/op", &op).await
}

/// Cleans up after agents that no longer exist: stops their processes in the town's container
/// (their tokens already stopped working) and destroys their event logs. Best effort: a failure
/// is logged, not surfaced, because the agents themselves are already gone.
pub async fn retire_agents(env: &Env, town_id: &str, agent_ids: &[String]) {
    let container = crate::dos::work::ContainerClient::bare(env, town_id);
    for a in agent_ids {
        match container.post(&format!("/agents/{a}/stop"), &serde_json::json!({})).await {
            Ok((s, _)) if s < 300 || s == 404 || s == 409 => {}
            Ok((s, e)) => worker::console_warn!("stopping {a}: container answered {s}: {e}"),
            Err(e) => worker::console_warn!("stopping {a}: {e}"),
        }
        if let Err(e) = agent_log_call(env, town_id, a, AgentLogOp::Destroy).await {
            worker::console_error!("destroying the event log of {a}: {e}");
        }
    }
}

pub fn created(v: Value) -> Reply {
    Ok((201, v))
}

pub fn ok(v: Value) -> Reply {
    Ok((200, v))
}
