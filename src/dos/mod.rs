//! The four Durable Object classes and how the Worker talks to them. Each class is thin glue:
//! it owns a [`sql::DoSql`], applies its migrations once, decodes a typed op, and hands it to
//! the matching store in `gastown_core`. The wire format between Worker and DO is a JSON op in,
//! and out either 200 with the reply's JSON as it is, or an error status with `{"error": …}`.

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

/// What a DO sends back to the Worker: on success the reply's JSON itself (so the Worker can
/// pass it to the client without reading it), otherwise the error's status with `{"error": …}`.
pub(crate) fn reply(result: CoreResult<Value>) -> worker::Result<Response> {
    reply_json(result.map(|v| v.to_string()))
}

pub(crate) fn reply_json(result: CoreResult<String>) -> worker::Result<Response> {
    match result {
        Ok(json) => {
            let headers = worker::Headers::new();
            headers.set("content-type", "application/json")?;
            Ok(Response::from_bytes(json.into_bytes())?.with_headers(headers))
        }
        Err(e) => json_response(e.status(), &json!({"error": e.to_string()})),
    }
}

pub(crate) async fn read_op<T: serde::de::DeserializeOwned>(req: &mut Request) -> CoreResult<T> {
    let bytes = req.bytes().await.map_err(|e| CoreError::Internal(format!("reading op: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| CoreError::Internal(format!("decoding op: {e}")))
}

/// Sends `body` to a DO at `path` and decodes its reply.
pub(crate) async fn call(stub: &Stub, path: &str, body: &impl Serialize) -> CoreResult<Value> {
    let text = call_json(stub, path, body).await?;
    serde_json::from_str(&text).map_err(|e| CoreError::Internal(format!("durable object reply: {e}")))
}

/// Sends `body` to a DO at `path` and returns its reply as JSON text, unread.
pub(crate) async fn call_json(stub: &Stub, path: &str, body: &impl Serialize) -> CoreResult<String> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(serde_json::to_string(body)?.into()));
    let req = Request::new_with_init(&format!("https://do{path}"), &init).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| CoreError::Internal(format!("durable object call failed: {e}")))?;
    let status = resp.status_code();
    let text = resp.text().await.map_err(|e| CoreError::Internal(format!("durable object reply: {e}")))?;
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
