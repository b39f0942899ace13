//! Route handlers, grouped by domain. Each one gets its decoded query and body from the router
//! (the types its route row names), builds a typed op for a Durable Object and returns
//! `(status, data)`; authorization already happened in the router. The types only handlers use
//! (query strings, small bodies, replies built here) live beside them and derive their JSON
//! Schema natively for the OpenAPI document.

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
use worker::Env;

use crate::auth::Principal;
use crate::dos::{self, town::TownCall, user::UserCall};
use crate::http::{Body, Incoming, Query};

pub type Reply = CoreResult<(u16, Body)>;

pub struct Ctx {
    pub req: Incoming,
    /// The request's URL, parsed once (parsing runs IDNA processing: not free in wasm).
    pub url: worker::Url,
    pub env: Env,
    pub params: crate::router::Params,
    pub principal: Option<Principal>,
    /// Set when the caller is a person who may act only if the town is theirs: every TownDO call
    /// made through [`Ctx::town`] carries it, and the TownDO refuses (404) if it is not the owner.
    pub owner: Option<String>,
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

    /// The query string as the route's query type (a 400 naming what is wrong).
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> CoreResult<T> {
        Query::from(&self.url).decode()
    }

    pub async fn body<T: serde::de::DeserializeOwned>(&self) -> CoreResult<T> {
        crate::http::body(&self.req).await
    }

    /// For the few handlers that reach the town other than by [`Ctx::town`] (its witness, its
    /// live stream): the owner check on its own, before anything else happens. A person's call
    /// also gives a town nobody has used yet its storage (see `TownDO::materialize`).
    pub async fn check_owner(&self) -> CoreResult<()> {
        if self.owner.is_some() || self.person().is_some() {
            self.town(TownOp::GetTown).await?;
        }
        Ok(())
    }

    /// The person behind the request (a user, or the dev operator acting as one): whose
    /// registry a town with no storage yet is looked up in.
    pub fn person(&self) -> Option<String> {
        match &self.principal {
            Some(Principal::User(u)) => Some(u.user_id.clone()),
            Some(Principal::Dev { user_id }) => Some(user_id.clone()),
            _ => None,
        }
    }

    fn town_call(&self, op: TownOp) -> TownCall {
        let registry = self.owner.clone().or_else(|| self.person());
        TownCall { actor: self.actor(), op, owner: self.owner.clone(), town_id: Some(self.town_id().into()), registry }
    }

    /// Runs a town op and reads its reply.
    pub async fn town(&self, op: TownOp) -> CoreResult<Value> {
        dos::call(&self.env, "TOWN", self.town_id(), "/op", &self.town_call(op)).await
    }

    /// Runs a town op whose reply goes to the client as it is (never parsed in the Worker).
    pub async fn town_reply(&self, op: TownOp) -> CoreResult<Body> {
        dos::call_json(&self.env, "TOWN", self.town_id(), "/op", &self.town_call(op)).await.map(Body::Raw)
    }
}

/// A TownDO call made by the Worker itself (no owner to check: the caller was checked already).
pub async fn town_call(env: &Env, town_id: &str, actor: Actor, op: TownOp) -> CoreResult<Value> {
    dos::call(env, "TOWN", town_id, "/op", &TownCall { actor, op, owner: None, town_id: None, registry: None }).await
}

/// [`town_call`] for a town the Worker has just found in `user`'s registry: one nobody has
/// used yet gets its storage from that entry (see `TownDO::materialize`).
pub async fn registered_town_call(env: &Env, town_id: &str, user: &str, actor: Actor, op: TownOp) -> CoreResult<Value> {
    let call = TownCall { actor, op, owner: None, town_id: Some(town_id.into()), registry: Some(user.into()) };
    dos::call(env, "TOWN", town_id, "/op", &call).await
}

pub async fn town_destroy(env: &Env, town_id: &str) -> CoreResult<Value> {
    dos::call(env, "TOWN", town_id, "/destroy", &Value::Null).await
}

pub async fn user_call(env: &Env, user_id: &str, op: UserOp) -> CoreResult<Value> {
    dos::call(env, "GASTOWN_USER", user_id, "/op", &UserCall { user_id: user_id.to_string(), op }).await
}

/// Agent ids are unique within a town, so the AgentDO's name carries both.
pub async fn agent_log_call(env: &Env, town_id: &str, agent_id: &str, op: AgentLogOp) -> CoreResult<Value> {
    dos::call(env, "AGENT", &format!("{town_id}:{agent_id}"), "/op", &op).await
}

/// Cleans up after agents that no longer exist: stops their processes in the town's container
/// (their tokens already stopped working) and destroys their event logs. Best effort: a failure
/// is logged, not surfaced, because the agents themselves are already gone.
pub async fn retire_agents(env: &Env, town_id: &str, agent_ids: &[String]) {
    let container = crate::dos::work::ContainerClient::bare(env, town_id);
    for a in agent_ids {
        match container.post(&format!("/agents/{a}/stop"), &gastown_core::container::stop_request()).await {
            Ok((s, _)) if s < 300 || s == 404 || s == 409 => {}
            Ok((s, e)) => worker::console_warn!("stopping {a}: container answered {s}: {e}"),
            Err(e) => worker::console_warn!("stopping {a}: {e}"),
        }
        if let Err(e) = agent_log_call(env, town_id, a, AgentLogOp::Destroy).await {
            worker::console_error!("destroying the event log of {a}: {e}");
        }
    }
}

/// A cursor from a query string (`u64` there, so negative ones are refused with the field named).
pub fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn created(v: impl Into<Body>) -> Reply {
    Ok((201, v.into()))
}

pub fn ok(v: impl Into<Body>) -> Reply {
    Ok((200, v.into()))
}
