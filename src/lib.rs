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

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    router::handle(req, env).await
}
