//! Health and identity.

use serde_json::json;

use super::{ok, Ctx, Reply};

/// Liveness, with the size of this isolate's wasm heap: it grows to the largest working set a
/// request needed and stays there (wasm memory never shrinks), so a figure that keeps climbing
/// under a steady load is a leak. The reliability suite samples it.
pub async fn health(_ctx: Ctx) -> Reply {
    ok(json!({"status": "ok", "service": "gastown", "version": env!("CARGO_PKG_VERSION"), "wasm_memory_bytes": wasm_memory_bytes()}))
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
