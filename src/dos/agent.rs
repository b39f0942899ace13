//! AgentDO: one per agent (named `<town>:<agent>`), the agent's bounded event log. `POST /op`
//! appends or reads; `GET /events/ws?since=<id>` opens a hibernating socket that first receives
//! what it missed and then every new event as it is appended.

use std::cell::Cell;

use gastown_core::agent_log::{AgentEvent, AgentLog, AgentLogOp};
use gastown_core::migrate;
use gastown_core::CoreResult;
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::sql::DoSql;
use super::{decode_op, ensure_schema, rpc_reply, to_text};
use crate::http::now_ms;

const REPLAY_LIMIT: u32 = 1000;

#[durable_object]
pub struct AgentDO {
    state: State,
    migrated: Cell<bool>,
}

fn message(e: &AgentEvent) -> String {
    json!({"type": "event", "seq": e.id, "event": e}).to_string()
}

impl AgentDO {
    fn log<T>(&self, f: impl FnOnce(&AgentLog) -> gastown_core::CoreResult<T>) -> gastown_core::CoreResult<T> {
        let db = DoSql::new(self.state.storage());
        ensure_schema(&db, &self.migrated, migrate::AGENT)?;
        f(&AgentLog::new(&db, now_ms()))
    }

    /// `/op`: one [`AgentLogOp`]; an append is pushed to live viewers.
    async fn op(&self, path: &str, body: &str) -> CoreResult<String> {
        if path != "/op" {
            return Err(gastown_core::CoreError::NotFound(format!("no agent call {path}")));
        }
        let op: AgentLogOp = decode_op(body)?;
        if matches!(op, AgentLogOp::Destroy) {
            for ws in self.state.get_websockets() {
                let _ = ws.close(Some(1000), Some("agent deleted"));
            }
            self.state.storage().delete_all().await.map_err(|e| gastown_core::CoreError::Internal(e.to_string()))?;
            self.migrated.set(false);
            return Ok(r#"{"destroyed":true}"#.into());
        }
        let append = matches!(op, AgentLogOp::Append { .. });
        let result = self.log(|l| l.handle(op));
        if append {
            // Push the new event to live viewers.
            let sockets = self.state.get_websockets();
            if let (false, Ok(v)) = (sockets.is_empty(), &result) {
                let id = v["id"].as_i64().unwrap_or(0);
                if let Ok(events) = self.log(|l| l.list(id - 1, 1)) {
                    for ws in &sockets {
                        for e in &events {
                            let _ = ws.send_with_str(message(e));
                        }
                    }
                }
            }
        }
        to_text(result)
    }

    fn open_stream(&self, since: Option<i64>) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let mut seq = since.unwrap_or(0);
        if let Some(since) = since {
            let missed = self.log(|l| l.list(since, REPLAY_LIMIT)).map_err(|e| worker::Error::RustError(e.to_string()))?;
            for e in &missed {
                pair.server.send_with_str(message(e))?;
                seq = e.id;
            }
            if missed.len() as u32 == REPLAY_LIMIT {
                pair.server.send_with_str(json!({"type": "refetch"}).to_string())?;
            }
        }
        pair.server.send_with_str(json!({"type": "ready", "seq": seq}).to_string())?;
        Response::from_websocket(pair.client)
    }
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl AgentDO {
    /// The Worker's calls, by JS RPC (see `crate::dos`).
    #[wasm_bindgen(js_name = gastownCall)]
    pub async fn gastown_call(&self, path: String, body: String) -> js_sys::Array {
        rpc_reply(self.op(&path, &body).await)
    }
}

impl DurableObject for AgentDO {
    fn new(state: State, _env: Env) -> Self {
        AgentDO { state, migrated: Cell::new(false) }
    }

    /// Only the live event stream: every op comes by RPC ([`AgentDO::gastown_call`]).
    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == "/events/ws" {
            let since = req.url()?.query_pairs().find(|(k, _)| k == "since").and_then(|(_, v)| v.parse::<i64>().ok());
            return self.open_stream(since);
        }
        Response::error("not found", 404)
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        super::answer_ping(&ws, message)
    }

    async fn websocket_close(&self, _ws: WebSocket, _code: usize, _reason: String, _clean: bool) -> Result<()> {
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }
}
