//! Errors and their exit codes.
//!
//! * 0 — ok
//! * 1 — the API refused the request (4xx), or there is nothing to do (e.g. no hooked bead)
//! * 2 — usage or configuration error (bad arguments, missing environment)
//! * 3 — server (5xx), network, or git failure

use std::fmt;

pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_FAILURE: i32 = 3;

#[derive(Debug)]
pub enum GtError {
    /// Bad arguments or configuration (exit 2).
    Usage(String),
    /// The API answered 4xx; `message` is the server's `error` (exit 1).
    Refused { status: u16, message: String },
    /// A refusal decided locally, e.g. nothing on the hook (exit 1).
    Nothing(String),
    /// The API answered 5xx or something that is not an envelope (exit 3).
    Server { status: u16, message: String },
    /// The API could not be reached (exit 3).
    Network(String),
    /// A git command failed (exit 3).
    Git(String),
    /// A local I/O failure (exit 3).
    Io(String),
}

pub type GtResult<T> = Result<T, GtError>;

impl GtError {
    pub fn exit_code(&self) -> i32 {
        match self {
            GtError::Refused { .. } | GtError::Nothing(_) => EXIT_REFUSED,
            GtError::Usage(_) => EXIT_USAGE,
            GtError::Server { .. } | GtError::Network(_) | GtError::Git(_) | GtError::Io(_) => EXIT_FAILURE,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        GtError::Usage(msg.into())
    }
}

impl fmt::Display for GtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtError::Usage(m) => write!(f, "{m}"),
            GtError::Refused { status, message } => {
                write!(f, "the Gastown API refused the request (HTTP {status}): {message}")
            }
            GtError::Nothing(m) => write!(f, "{m}"),
            GtError::Server { status, message } => {
                write!(f, "the Gastown API failed (HTTP {status}): {message}")
            }
            GtError::Network(m) => write!(f, "{m}"),
            GtError::Git(m) => write!(f, "{m}"),
            GtError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for GtError {}
