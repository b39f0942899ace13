//! `GET /agents/{id}/pty`: attach a terminal to an agent over WebSocket.
//!
//! Server → client: binary frames are terminal bytes (scrollback first, then
//! live output, joined without gap or overlap); text frames are JSON control
//! messages: `{"type":"exit",…}` when the process ends, `{"type":"lagged",
//! "missed_bytes":n}` when this client was too slow and output was skipped for
//! it, `{"type":"error","error":…}` for a refused client frame.
//! Client → server: binary frames are keyboard input (only with `?write=1`);
//! text frames are JSON `{"type":"resize","cols":…,"rows":…}` or
//! `{"type":"input","data":"…"}`. A read-only viewer may neither type nor
//! resize: the terminal size belongs to whoever drives the agent.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::process::{ExitInfo, OutputEvent, OutputSubscription};

#[derive(Deserialize)]
pub(super) struct AttachQuery {
    #[serde(default)]
    write: Option<String>,
}

pub(super) async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Subscribe before upgrading: output produced during the handshake is
    // buffered in the subscription rather than lost.
    let sub = state.process_manager().subscribe_output(&id)?;
    let ws = ws.map_err(|rej| ApiError::new(StatusCode::BAD_REQUEST, "websocket_required", rej.body_text()))?;
    let writable = matches!(q.write.as_deref(), Some("1" | "true"));
    Ok(ws.on_upgrade(move |socket| session(socket, state, id, sub, writable)).into_response())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientControl {
    Resize { cols: u16, rows: u16 },
    Input { data: String },
}

fn json_frame(v: serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn exit_frame(agent_id: &str, e: &ExitInfo) -> Message {
    json_frame(serde_json::json!({
        "type": "exit",
        "agent_id": agent_id,
        "code": e.code,
        "signal": e.signal,
        "signal_name": crate::process::exit_signal_name(e),
        "reason": e.reason,
        "spawn_epoch": e.spawn_epoch,
    }))
}

fn error_frame(msg: &str) -> Message {
    json_frame(serde_json::json!({ "type": "error", "error": msg }))
}

/// Resizes closer together than this are coalesced: the first applies at once, the latest of a
/// storm applies when it settles (a window being dragged must not flood the program with SIGWINCH).
const RESIZE_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

async fn session(mut socket: WebSocket, state: AppState, id: String, mut sub: OutputSubscription, writable: bool) {
    let pm = state.process_manager().clone();
    let mut last_resize = tokio::time::Instant::now() - RESIZE_SETTLE;
    let mut pending_resize: Option<(u16, u16)> = None;
    if !sub.scrollback.is_empty() {
        let snapshot = std::mem::take(&mut sub.scrollback);
        if socket.send(Message::Binary(snapshot.into())).await.is_err() {
            return;
        }
    }
    if let Some(exit) = sub.exited.clone() {
        let _ = socket.send(exit_frame(&id, &exit)).await;
        let _ = socket.send(Message::Close(Some(normal_close()))).await;
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(last_resize + RESIZE_SETTLE), if pending_resize.is_some() => {
                let (cols, rows) = pending_resize.take().expect("guarded by the branch condition");
                last_resize = tokio::time::Instant::now();
                if let Err(e) = pm.resize(&id, cols, rows) {
                    if socket.send(error_frame(&e.to_string())).await.is_err() {
                        return;
                    }
                }
            }
            ev = sub.recv() => match ev {
                Some(OutputEvent::Data { data, .. }) => {
                    if socket.send(Message::Binary(data)).await.is_err() {
                        return;
                    }
                }
                Some(OutputEvent::Gap { missed }) => {
                    let frame = json_frame(serde_json::json!({"type": "lagged", "missed_bytes": missed}));
                    if socket.send(frame).await.is_err() {
                        return;
                    }
                }
                Some(OutputEvent::Exit(exit)) => {
                    let _ = socket.send(exit_frame(&id, &exit)).await;
                    let _ = socket.send(Message::Close(Some(normal_close()))).await;
                    return;
                }
                // The session record was replaced by a newer run.
                None => {
                    let _ = socket.send(Message::Close(Some(normal_close()))).await;
                    return;
                }
            },
            msg = socket.recv() => {
                let reply = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Binary(data))) => {
                        handle_input(&pm, &id, writable, data.to_vec()).await
                    }
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ClientControl>(text.as_str()) {
                            Ok(ClientControl::Input { data }) => {
                                handle_input(&pm, &id, writable, data.into_bytes()).await
                            }
                            Ok(ClientControl::Resize { cols, rows }) => {
                                if !writable {
                                    Some("read-only session".to_string())
                                } else if pending_resize.is_none() && last_resize.elapsed() >= RESIZE_SETTLE {
                                    last_resize = tokio::time::Instant::now();
                                    pm.resize(&id, cols, rows).err().map(|e| e.to_string())
                                } else {
                                    pending_resize = Some((cols, rows));
                                    None
                                }
                            }
                            Err(e) => Some(format!("unrecognised control message: {e}")),
                        }
                    }
                    Some(Ok(_)) => None, // ping/pong are handled by axum
                };
                if let Some(err) = reply {
                    if socket.send(error_frame(&err)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn handle_input(pm: &crate::process::ProcessManager, id: &str, writable: bool, data: Vec<u8>) -> Option<String> {
    if !writable {
        return Some("read-only session".to_string());
    }
    pm.type_input(id, data).await.err().map(|e| e.to_string())
}

fn normal_close() -> CloseFrame {
    CloseFrame { code: 1000, reason: Utf8Bytes::from_static("process exited") }
}
