//! A small blocking client for the Gastown Worker API.
//!
//! Every answer is an envelope: `{"success":true,"data":…}` or
//! `{"success":false,"error":"message"}`. 4xx becomes [`GtError::Refused`] (exit 1),
//! 5xx and anything unreadable [`GtError::Server`] (exit 3), transport failures
//! [`GtError::Network`] (exit 3).

use std::time::Duration;

use serde_json::Value;

use crate::gt::config::ApiConfig;
use crate::gt::error::{GtError, GtResult};

pub struct Api {
    agent: ureq::Agent,
    base_url: String,
    auth_header: String,
    /// How long a request that may be repeated is retried (the town restarting, a deploy).
    retry_for: Duration,
}

/// Whether trying again later could succeed: the town unreachable, failing, or overloaded.
/// A refusal (4xx) is an answer; repeating the request would get the same one.
pub fn transient(e: &GtError) -> bool {
    matches!(e, GtError::Network(_) | GtError::Server { .. } | GtError::Refused { status: 429, .. })
}

/// The pauses between attempts: 0.5 s doubling to 8 s, as long as `budget` lasts.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
}

/// Percent-encodes one path segment or query component.
pub use gastown_container::text::percent_encode as encode;

/// `?a=1&b=2` from the pairs whose value is present (empty string when none are).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{}={}", encode(k), encode(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn snippet(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    if out.is_empty() {
        "(empty body)".into()
    } else {
        out
    }
}

impl Api {
    pub fn new(cfg: ApiConfig) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(5)))
            .max_redirects(0)
            .user_agent(concat!("gastown-gt/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.into(),
            base_url: cfg.base_url,
            auth_header: format!("Bearer {}", cfg.token),
            retry_for: Duration::from_secs(120),
        }
    }

    pub fn from_env() -> GtResult<Self> {
        let mut api = Self::new(ApiConfig::from_env()?);
        api.retry_for = Duration::from_secs(crate::gt::config::retry_secs()?);
        Ok(api)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry budget is spent; every
    /// retry is announced on stderr (an agent's terminal shows why it waits).
    fn retrying(&self, what: &str, mut attempt: impl FnMut() -> GtResult<Value>) -> GtResult<Value> {
        let deadline = std::time::Instant::now() + self.retry_for;
        let mut n = 0;
        loop {
            match attempt() {
                Err(e) if transient(&e) && std::time::Instant::now() + backoff(n) < deadline => {
                    let pause = backoff(n);
                    eprintln!("gt: {what}: {e}; retrying in {:.1} s", pause.as_secs_f32());
                    std::thread::sleep(pause);
                    n += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET path` (path starts with `/`, segments already encoded, may carry a query); retried
    /// while the town is unreachable.
    pub fn get(&self, path: &str) -> GtResult<Value> {
        let url = format!("{}{}", self.base_url, path);
        self.retrying(&format!("GET {path}"), || {
            let res = self.agent.get(&url).header("Authorization", &self.auth_header).header("Accept", "application/json").call();
            self.finish("GET", path, res)
        })
    }

    /// `POST path` for a request the town answers the same way however often it arrives (e.g.
    /// `done`: a repeat finds the merge request the first one created), so it is retried.
    pub fn post_idempotent(&self, path: &str, body: &Value) -> GtResult<Value> {
        self.retrying(&format!("POST {path}"), || self.post(path, body))
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> GtResult<Value> {
        let url = format!("{}{}", self.base_url, path);
        let res = self.agent.post(&url).header("Authorization", &self.auth_header).header("Accept", "application/json").send_json(body);
        self.finish("POST", path, res)
    }

    fn finish(&self, method: &str, path: &str, res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> GtResult<Value> {
        let mut resp = res.map_err(|e| self.transport_error(method, path, e))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| self.transport_error(method, path, e))?;
        let envelope: Option<Value> = serde_json::from_str(&text).ok();
        let error_msg = envelope.as_ref().and_then(|v| v.get("error")).and_then(|e| match e {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        match status {
            200..=299 => match envelope {
                Some(Value::Object(mut o)) => {
                    if o.get("success") == Some(&Value::Bool(false)) {
                        return Err(GtError::Refused { status, message: error_msg.unwrap_or_else(|| "request failed".into()) });
                    }
                    Ok(o.remove("data").unwrap_or(Value::Null))
                }
                _ => {
                    Err(GtError::Server { status, message: format!("{method} {path} did not answer a JSON envelope: {}", snippet(&text)) })
                }
            },
            400..=499 => Err(GtError::Refused { status, message: error_msg.unwrap_or_else(|| snippet(&text)) }),
            _ => Err(GtError::Server { status, message: error_msg.unwrap_or_else(|| snippet(&text)) }),
        }
    }

    fn transport_error(&self, method: &str, path: &str, e: ureq::Error) -> GtError {
        match e {
            ureq::Error::BadUri(m) => GtError::usage(format!("GASTOWN_API_URL does not make a valid URL for {method} {path}: {m}")),
            ureq::Error::Timeout(t) => GtError::Network(format!("{method} {path}: the Gastown API at {} timed out ({t})", self.base_url)),
            other => GtError::Network(format!("{method} {path}: cannot reach the Gastown API at {}: {other}", self.base_url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_pass_is_retried() {
        assert!(transient(&GtError::Network("connection refused".into())));
        assert!(transient(&GtError::Server { status: 502, message: "container unreachable".into() }));
        assert!(transient(&GtError::Refused { status: 429, message: "slow down".into() }));
        assert!(!transient(&GtError::Refused { status: 409, message: "nothing on the hook".into() }));
        assert!(!transient(&GtError::Refused { status: 403, message: "not your branch".into() }));
        assert!(!transient(&GtError::Usage("bad".into())));
        let pauses: Vec<u64> = (0..7).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(pauses, vec![500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    /// A town that is down and comes back within the budget: the request lands once it is up.
    #[test]
    fn a_request_is_retried_until_the_town_answers() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let body = if status.starts_with("200") {
                    r#"{"success":true,"data":{"id":"mr-1"}}"#
                } else {
                    r#"{"success":false,"error":"down"}"#
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(reply.as_bytes()).unwrap();
            }
        });
        let mut api = Api::new(ApiConfig { base_url: format!("http://{addr}"), token: "t".into() });
        api.retry_for = Duration::from_secs(10);
        let v = api.post_idempotent("/done", &serde_json::json!({})).unwrap();
        assert_eq!(v["id"], "mr-1");
        server.join().unwrap();
        // Without a budget the first failure is the answer.
        api.retry_for = Duration::ZERO;
        assert!(matches!(api.get("/x"), Err(GtError::Network(_))));
    }
}
