//! The one error type of the control plane. Every variant maps to exactly one HTTP status, so a
//! store deep inside a Durable Object can say "404" without knowing about HTTP.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Input the caller can fix. `field` names the offending field when there is one.
    #[error("{}", match .field { Some(f) => format!("{f}: {}", .message), None => .message.clone() })]
    BadRequest { field: Option<String>, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but conflicts with current state (duplicate, bad transition, cycle).
    #[error("{0}")]
    Conflict(String),
    /// The path exists but not with this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request body is over the size cap (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not in the media type the route reads (415): JSON routes take only
    /// `application/json`, which a cross-site form or `text/plain` fetch cannot send unasked.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The deployment is configured in a way that cannot work (e.g. dev auth in production).
    #[error("server misconfigured: {0}")]
    Misconfigured(String),
    /// A service this one depends on (the town's container, the git remote) failed or refused;
    /// the message says which and why.
    #[error("{0}")]
    Upstream(String),
    /// Storage or invariant failure: a bug or an outage, never the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        CoreError::BadRequest { field: Some(field.to_string()), message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        CoreError::BadRequest { field: None, message: message.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        CoreError::NotFound(format!("{what} not found: {id}"))
    }

    pub fn status(&self) -> u16 {
        match self {
            CoreError::BadRequest { .. } => 400,
            CoreError::Unauthorized(_) => 401,
            CoreError::Forbidden(_) => 403,
            CoreError::NotFound(_) => 404,
            CoreError::Conflict(_) => 409,
            CoreError::MethodNotAllowed(_) => 405,
            CoreError::PayloadTooLarge(_) => 413,
            CoreError::UnsupportedMediaType(_) => 415,
            CoreError::Misconfigured(_) => 503,
            CoreError::Upstream(_) => 502,
            CoreError::Internal(_) => 500,
        }
    }

    /// Rebuilds an error from a status and message, e.g. one a Durable Object sent back.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            400 => CoreError::BadRequest { field: None, message },
            401 => CoreError::Unauthorized(message),
            403 => CoreError::Forbidden(message),
            404 => CoreError::NotFound(message),
            405 => CoreError::MethodNotAllowed(message),
            409 => CoreError::Conflict(message),
            413 => CoreError::PayloadTooLarge(message),
            415 => CoreError::UnsupportedMediaType(message),
            502 => CoreError::Upstream(message),
            503 => CoreError::Misconfigured(message),
            _ => CoreError::Internal(message),
        }
    }
}

impl From<serde_json::Error> for CoreError {
    fn from(e: serde_json::Error) -> Self {
        CoreError::Internal(format!("json: {e}"))
    }
}

/// A value the shared validators refused is the caller's to fix: a 400 naming the field.
impl From<gastown_protocol::Invalid> for CoreError {
    fn from(e: gastown_protocol::Invalid) -> Self {
        CoreError::bad(&e.field, format!("{:?} {}", e.value, e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        let all = [
            CoreError::bad_request("b"),
            CoreError::Unauthorized("u".into()),
            CoreError::Forbidden("f".into()),
            CoreError::NotFound("n".into()),
            CoreError::Conflict("c".into()),
            CoreError::MethodNotAllowed("m".into()),
            CoreError::PayloadTooLarge("p".into()),
            CoreError::UnsupportedMediaType("m".into()),
            CoreError::Misconfigured("x".into()),
            CoreError::Upstream("y".into()),
            CoreError::Internal("i".into()),
        ];
        let statuses: Vec<u16> = all.iter().map(CoreError::status).collect();
        assert_eq!(statuses, [400, 401, 403, 404, 409, 405, 413, 415, 503, 502, 500]);
        // A Durable Object's error keeps its status through the Worker.
        for e in &all {
            assert_eq!(CoreError::from_status(e.status(), "m".into()).status(), e.status());
        }
    }
}
