//! The Gastown Worker: the HTTP API in front of the town's Durable Objects. `router` lists every
//! route; `authz` decides who may call it; `handlers` holds them by domain; `openapi` derives the
//! API document and the dashboard's types from the route table; `dos` holds the Durable Object
//! classes; the rules themselves live in the `gastown-core` crate.

mod auth;
mod authz;
mod dos;
mod handlers;
mod http;
#[cfg(not(target_arch = "wasm32"))]
pub mod openapi;
mod router;

pub use dos::agent::AgentDO;
pub use dos::container::TownContainerDO;
pub use dos::town::TownDO;
pub use dos::user::GastownUserDO;

use worker::worker_sys::web_sys;
use worker::{event, Context, Env, Result};

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    Ok(router::handle(http::Incoming::new(req), env).await)
}
