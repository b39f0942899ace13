//! Health, identity and the API's own description.

use serde::Serialize;

use super::{ok, Ctx, Reply};

#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct Health {
    status: &'static str,
    service: &'static str,
    version: &'static str,
    /// The isolate's wasm heap (null outside wasm).
    wasm_memory_bytes: Option<usize>,
}

/// Liveness, with the size of this isolate's wasm heap: it grows to the largest working set a
/// request needed and stays there (wasm memory never shrinks), so a figure that keeps climbing
/// under a steady load is a leak. The reliability suite samples it.
pub async fn health(_ctx: Ctx) -> Reply {
    ok(serde_json::to_value(Health {
        status: "ok",
        service: "gastown",
        version: env!("CARGO_PKG_VERSION"),
        wasm_memory_bytes: wasm_memory_bytes(),
    })?)
}

/// `GET /api/openapi.json`: generated from the route table (see `crate::openapi`), checked in,
/// and kept current by a test.
pub async fn openapi(_ctx: Ctx) -> Reply {
    ok(crate::http::Body::Raw(include_str!("../../api/openapi.json").to_string()))
}

fn wasm_memory_bytes() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return Some(core::arch::wasm32::memory_size(0) * 65536);
    #[cfg(not(target_arch = "wasm32"))]
    None
}

pub async fn me(ctx: Ctx) -> Reply {
    let me = ctx.principal.as_ref().map(|p| p.me());
    ok(serde_json::to_value(me)?)
}
