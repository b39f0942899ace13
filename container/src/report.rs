//! Reports agent lifecycle (started, exited with code/signal/reason) to the town. Each agent is
//! registered at start with the Worker URL and its own token, so the report is authenticated as
//! that agent and can only touch that agent. Reports carry the Worker's spawn epoch; the town
//! ignores a report for an older run. Delivery is retried briefly (the Worker may be restarting).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast;

use crate::process::LifecycleEvent;

#[derive(Clone)]
struct Callback {
    api_url: String,
    token: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

/// Where to report each agent's lifecycle; agents started without a callback are not reported.
#[derive(Clone, Default, Debug)]
pub struct Reporter {
    callbacks: Arc<Mutex<HashMap<String, Callback>>>,
}

impl Reporter {
    pub fn register(&self, agent_id: &str, api_url: &str, token: &str) {
        let cb = Callback { api_url: api_url.trim_end_matches('/').to_string(), token: token.to_string() };
        self.callbacks.lock().expect("reporter lock").insert(agent_id.to_string(), cb);
    }

    fn callback(&self, agent_id: &str) -> Option<Callback> {
        self.callbacks.lock().expect("reporter lock").get(agent_id).cloned()
    }

    /// Forwards events until the channel closes.
    pub async fn forward(self, mut events: broadcast::Receiver<LifecycleEvent>) {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let Some(cb) = self.callback(ev.agent_id()) else { continue };
                    tokio::task::spawn_blocking(move || deliver(&cb, &ev));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "lifecycle reports fell behind"),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

/// The town route a report goes to: the agent's own, or the mayor's (which has no rig).
fn route(ev: &LifecycleEvent, town: &str, rig: &str, agent: &str) -> String {
    let role = match ev {
        LifecycleEvent::Started { role, .. } | LifecycleEvent::Exited { role, .. } => role.as_str(),
    };
    if role == "mayor" {
        format!("/api/mayor/{town}/tools/lifecycle")
    } else {
        format!("/api/towns/{town}/rigs/{rig}/agents/{agent}/lifecycle")
    }
}

fn body(ev: &LifecycleEvent) -> (String, String, String, serde_json::Value) {
    match ev {
        LifecycleEvent::Started { agent_id, town_id, rig_id, spawn_epoch, .. } => {
            (town_id.clone(), rig_id.clone(), agent_id.clone(), json!({"event": "started", "epoch": spawn_epoch}))
        }
        LifecycleEvent::Exited { agent_id, town_id, rig_id, spawn_epoch, exit, screen, .. } => (
            town_id.clone(),
            rig_id.clone(),
            agent_id.clone(),
            json!({"event": "exited", "epoch": spawn_epoch, "code": exit.code, "signal": exit.signal,
                   "reason": serde_json::to_value(exit.reason).ok().and_then(|v| v.as_str().map(str::to_string)),
                   "screen": screen}),
        ),
    }
}

fn deliver(cb: &Callback, ev: &LifecycleEvent) {
    let (town, rig, agent, payload) = body(ev);
    let url = format!("{}{}", cb.api_url, route(ev, &town, &rig, &agent));
    let http = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build().new_agent();
    for attempt in 0..5u32 {
        match http.post(&url).header("authorization", &format!("Bearer {}", cb.token)).send_json(&payload) {
            Ok(resp) if resp.status().is_success() => return,
            // The town refused it (e.g. the agent was deleted): retrying will not help.
            Ok(resp) if resp.status().is_client_error() => {
                tracing::warn!(%agent, status = resp.status().as_u16(), "lifecycle report refused");
                return;
            }
            Ok(resp) => tracing::warn!(%agent, status = resp.status().as_u16(), attempt, "lifecycle report failed"),
            Err(e) => tracing::warn!(%agent, error = %e, attempt, "lifecycle report failed"),
        }
        std::thread::sleep(Duration::from_millis(200 * 2u64.pow(attempt)));
    }
}
