//! The four Durable Object classes and how the Worker talks to them. Each class is thin glue:
//! it owns a [`sql::DoSql`], applies its migrations once, decodes a typed op, and hands it to
//! the matching store in `gastown_core`. The Worker reaches the op-running classes by JS RPC
//! (`stub.gastownCall(path, op)`, see `src/entry.mjs`), not by `fetch`: no Request or Response
//! is built and no body stream read on either side, which measured 0.4 ms a call against 2 ms.
//! The op goes in as JSON text; out comes `[status, text]`: on 200 the reply's JSON as it is (so
//! the Worker can pass it to the client without reading it), otherwise `{"error": …}`. `fetch`
//! stays for what must be HTTP: WebSocket upgrades.

pub mod agent;
pub mod container;
pub mod forge;
pub mod sql;
pub mod town;
pub mod user;
pub mod work;

use gastown_core::limits::Limits;
use gastown_core::migrate::{self, Migration};
use gastown_core::time::iso;
use gastown_core::{CoreError, CoreResult};
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use worker::{Env, Stub};

use crate::http::now_ms;

/// Applies migrations once per DO instance lifetime (they are idempotent; this skips the check).
pub(crate) fn ensure_schema(db: &sql::DoSql, done: &std::cell::Cell<bool>, list: &[Migration]) -> CoreResult<()> {
    if !done.get() {
        migrate::apply(db, list, &iso(now_ms()))?;
        done.set(true);
    }
    Ok(())
}

#[wasm_bindgen(
    inline_js = "export function gastown_rpc(env, binding, name, path, body) { return env[binding].getByName(name).gastownCall(path, body); }"
)]
extern "C" {
    /// Calls `gastownCall` on the DO named `name` in the namespace bound as `binding`, over JS
    /// RPC, in one call out of wasm (through `worker::Env` and `Stub` it takes about ten: the
    /// binding's type is checked by its constructor's name on every look-up); resolves to
    /// `[status, text]`.
    #[wasm_bindgen(catch)]
    fn gastown_rpc(env: &JsValue, binding: &str, name: &str, path: &str, body: String) -> Result<js_sys::Promise, JsValue>;
}

/// What a DO's `gastownCall` resolves to: `[200, reply JSON]` or `[status, {"error": …}]`.
pub(crate) fn rpc_reply(result: CoreResult<String>) -> js_sys::Array {
    let (status, text) = match result {
        Ok(json) => (200, json),
        Err(e) => (e.status(), json!({"error": e.to_string()}).to_string()),
    };
    js_sys::Array::of2(&JsValue::from(status), &JsValue::from(text))
}

/// The JSON text of a value a DO built (as opposed to one a store serialised itself).
pub(crate) fn to_text(result: CoreResult<Value>) -> CoreResult<String> {
    result.map(|v| v.to_string())
}

pub(crate) fn decode_op<T: serde::de::DeserializeOwned>(body: &str) -> CoreResult<T> {
    serde_json::from_str(body).map_err(|e| CoreError::Internal(format!("decoding op: {e}")))
}

/// Sends `body` to the DO named `name` in the namespace bound as `binding`, at `path`, and
/// decodes its reply.
pub(crate) async fn call(env: &Env, binding: &str, name: &str, path: &str, body: &impl Serialize) -> CoreResult<Value> {
    let text = call_json(env, binding, name, path, body).await?;
    serde_json::from_str(&text).map_err(|e| CoreError::Internal(format!("durable object reply: {e}")))
}

/// [`call`], returning the reply as JSON text, unread.
pub(crate) async fn call_json(env: &Env, binding: &str, name: &str, path: &str, body: &impl Serialize) -> CoreResult<String> {
    let failed = |e: JsValue| CoreError::Internal(format!("{binding} call failed: {e:?}"));
    let promise = gastown_rpc(env, binding, name, path, serde_json::to_string(body)?).map_err(failed)?;
    let reply = worker::wasm_bindgen_futures::JsFuture::from(promise).await.map_err(failed)?;
    let reply: js_sys::Array = reply.dyn_into().map_err(|_| CoreError::Internal("durable object reply: not [status, text]".into()))?;
    let status = reply.get(0).as_f64().unwrap_or(500.0) as u16;
    let text = reply.get(1).as_string().unwrap_or_default();
    if status == 200 {
        return Ok(text);
    }
    let message = serde_json::from_str::<Value>(&text).ok().and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
    Err(CoreError::from_status(status, message.unwrap_or_else(|| "error".into())))
}

/// Event streams are one-way; a client's `ping` gets a `pong` so it can check liveness.
pub(crate) fn answer_ping(ws: &worker::WebSocket, message: worker::WebSocketIncomingMessage) -> worker::Result<()> {
    if let worker::WebSocketIncomingMessage::String(s) = message {
        if s.trim() == "ping" {
            ws.send_with_str(r#"{"type":"pong"}"#)?;
        }
    }
    Ok(())
}

pub(crate) fn stub(env: &Env, binding: &str, name: &str) -> CoreResult<Stub> {
    env.durable_object(binding).and_then(|ns| ns.get_by_name(name)).map_err(|e| CoreError::Internal(format!("{binding} binding: {e}")))
}

/// The deployment's limits: the defaults in `gastown_core::limits`, overridden by the Worker's
/// `GASTOWN_MAX_*` variables (a bad value is a 503 naming the variable).
pub fn limits(env: &Env) -> CoreResult<Limits> {
    Limits::from_vars(|name| crate::auth::var(env, name))
}
