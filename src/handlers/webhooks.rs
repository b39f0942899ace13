//! Pull requests on the forges: a rig's own settings (`PATCH /api/towns/:townId/rigs/:rigId`:
//! merge strategy, forge, repository) and the forges' webhooks
//! (`POST /api/webhooks/{github,gitlab}/:townId`). A webhook is handed to the TownDO exactly as
//! received — the raw body and its signature header — because the signature covers the raw
//! bytes and the secret lives in the town.

use gastown_core::forge::ForgeKind;
use gastown_core::town::{RigPatch, TownOp};
use gastown_core::CoreError;

use super::{ok, Ctx, Reply};

/// GitHub caps payloads at 25 MB; pull request events are far smaller. Anything beyond this is
/// refused before it is read into memory twice.
const MAX_WEBHOOK_BYTES: usize = 5 * 1024 * 1024;

pub async fn get_rig(ctx: Ctx) -> Reply {
    ok(ctx.town_reply(TownOp::GetRig { rig_id: ctx.rig_id() }).await?)
}

pub async fn patch_rig(ctx: Ctx, patch: RigPatch) -> Reply {
    ok(ctx.town_reply(TownOp::PatchRig { rig_id: ctx.rig_id(), patch }).await?)
}

pub async fn github(ctx: Ctx) -> Reply {
    receive(ctx, ForgeKind::Github).await
}

pub async fn gitlab(ctx: Ctx) -> Reply {
    receive(ctx, ForgeKind::Gitlab).await
}

async fn receive(ctx: Ctx, forge: ForgeKind) -> Reply {
    let header = |name: &str| ctx.req.header(name);
    let (event, credential) = match forge {
        ForgeKind::Github => (header("x-github-event"), header("x-hub-signature-256")),
        ForgeKind::Gitlab => (header("x-gitlab-event"), header("x-gitlab-token")),
    };
    if header("content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|n| n > MAX_WEBHOOK_BYTES) {
        return Err(CoreError::PayloadTooLarge(format!("webhook bodies are limited to {MAX_WEBHOOK_BYTES} bytes")));
    }
    let bytes = ctx.req.bytes().await.map_err(|_| CoreError::bad_request("could not read the webhook body"))?;
    if bytes.len() > MAX_WEBHOOK_BYTES {
        return Err(CoreError::PayloadTooLarge(format!("webhook bodies are limited to {MAX_WEBHOOK_BYTES} bytes")));
    }
    // Lossy on purpose: a body that is not UTF-8 then fails the signature (401), as a forged one.
    let body = String::from_utf8_lossy(&bytes).into_owned();
    let op = TownOp::ForgeWebhook { forge, event: event.unwrap_or_default(), credential, body };
    ok(ctx.town_reply(op).await?)
}
