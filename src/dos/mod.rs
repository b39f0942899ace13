//! The four Durable Object classes and how the Worker talks to them. Each class is thin glue:
//! it owns a [`sql::DoSql`], applies its migrations once, decodes a typed op, and hands it to
//! the matching store in `gastown_core`. The wire format between Worker and DO is a JSON op in,
//! and a status with `{"ok": …}` or `{"error": …}` out.

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
use worker::{Env, Method, Request, RequestInit, Response, Stub};

use crate::http::{json_response, now_ms};

/// Applies migrations once per DO instance lifetime (they are idempotent; this skips the check).
pub(crate) fn ensure_schema(db: &sql::DoSql, done: &std::cell::Cell<bool>, list: &[Migration]) -> CoreResult<()> {
    if !done.get() {
        migrate::apply(db, list, &iso(now_ms()))?;
        done.set(true);
    }
    Ok(())
}

/// What a DO sends back to the Worker.
pub(crate) fn reply(result: CoreResult<Value>) -> worker::Result<Response> {
    match result {
        Ok(v) => json_response(200, &json!({"ok": v})),
        Err(e) => json_response(e.status(), &json!({"error": e.to_string()})),
    }
}

pub(crate) async fn read_op<T: serde::de::DeserializeOwned>(req: &mut Request) -> CoreResult<T> {
    let bytes = req.bytes().await.map_err(|e| CoreError::Internal(format!("reading op: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| CoreError::Internal(format!("decoding op: {e}")))
}

/// Sends `body` to a DO at `path` and unwraps its reply.
pub(crate) async fn call(stub: &Stub, path: &str, body: &impl Serialize) -> CoreResult<Value> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(serde_json::to_string(body)?.into()));
    let req = Request::new_with_init(&format!("https://do{path}"), &init).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| CoreError::Internal(format!("durable object call failed: {e}")))?;
    let status = resp.status_code();
    let v: Value = resp.json().await.map_err(|e| CoreError::Internal(format!("durable object reply: {e}")))?;
    if status == 200 {
        Ok(v.get("ok").cloned().unwrap_or(Value::Null))
    } else {
        Err(CoreError::from_status(status, v.get("error").and_then(Value::as_str).unwrap_or("error").to_string()))
    }
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
