//! Health and identity.

use serde_json::json;

use super::{ok, Ctx, Reply};

pub async fn health(_ctx: Ctx) -> Reply {
    ok(json!({"status": "ok", "service": "gastown", "version": env!("CARGO_PKG_VERSION")}))
}

pub async fn me(ctx: Ctx) -> Reply {
    let me = ctx.principal.as_ref().map(|p| p.me());
    ok(serde_json::to_value(me)?)
}
