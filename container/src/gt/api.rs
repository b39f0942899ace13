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
        Self { agent: config.into(), base_url: cfg.base_url, auth_header: format!("Bearer {}", cfg.token) }
    }

    pub fn from_env() -> GtResult<Self> {
        Ok(Self::new(ApiConfig::from_env()?))
    }

    /// `GET path` (path starts with `/`, segments already encoded, may carry a query).
    pub fn get(&self, path: &str) -> GtResult<Value> {
        let url = format!("{}{}", self.base_url, path);
        let res = self.agent.get(&url).header("Authorization", &self.auth_header).header("Accept", "application/json").call();
        self.finish("GET", path, res)
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
