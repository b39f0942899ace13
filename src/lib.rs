//! The Gastown Worker: the HTTP API in front of the town's Durable Objects. `router` lists every
//! route; `handlers` holds them by domain; `dos` holds the Durable Object classes; the rules
//! themselves live in the `gastown-core` crate.

mod auth;
mod dos;
mod handlers;
mod http;
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
