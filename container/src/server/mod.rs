//! The control server: the HTTP/WebSocket API that the town's container
//! Durable Object uses to drive this container.
//!
//! Every route except `GET /health` requires `Authorization: Bearer <secret>`,
//! checked in constant time. Bodies and answers are JSON in the envelope
//! `{"success":true,"data":…}` / `{"success":false,"error":"…","code":"…"}`.
//! Bad input is always a 4xx with a readable message, never a 500.

mod config;
mod handlers;
mod pty;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;

pub use config::TownConfig;

use crate::git::{GitError, GitManager};
use crate::process::{ProcessError, ProcessManager};

/// Shortest container secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// The per-town shared secret. Compared in constant time; never printed.
pub struct ControlSecret(Vec<u8>);

impl ControlSecret {
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("the container secret must be at least {MIN_SECRET_LEN} bytes"));
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the container secret must not contain whitespace".into());
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    /// Constant time in the content of the secret; a length mismatch fails
    /// early, which reveals nothing useful about a random secret.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

/// Server-wide tunables that are not part of the town config.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Pause between typing a message and pressing Enter, so TUIs treat the
    /// text as a paste rather than a submission per line.
    pub enter_delay: Duration,
    /// Default per-gate timeout when neither request nor config sets one.
    pub default_gate_timeout: Duration,
    /// Working directories of agents without a worktree (mayor, refinery…).
    pub agents_dir: PathBuf,
    /// Where `gt` is installed for agents (readable and executable by every agent uid).
    pub bin_dir: PathBuf,
    /// Folders put on agents' PATH after `bin_dir` and before the system's (where the image
    /// installed the agent CLIs).
    pub agent_path: Vec<PathBuf>,
}

impl ServerOptions {
    /// The PATH every agent gets.
    pub fn agent_path_var(&self) -> String {
        let mut parts = vec![self.bin_dir.display().to_string()];
        parts.extend(self.agent_path.iter().map(|p| p.display().to_string()));
        parts.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(String::from));
        parts.join(":")
    }
}

struct Inner {
    reporter: crate::report::Reporter,
    secret: ControlSecret,
    pm: ProcessManager,
    git: GitManager,
    options: ServerOptions,
    started: Instant,
    /// Authenticated requests served: lets an operator (and the tests) see that an idle town
    /// leaves its container alone.
    requests: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    pub fn new(secret: ControlSecret, pm: ProcessManager, git: GitManager, options: ServerOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                reporter: crate::report::Reporter::default(),
                secret,
                pm,
                git,
                options,
                started: Instant::now(),
                requests: Default::default(),
            }),
        }
    }

    /// Where agents' lifecycle reports go (registered per agent at start).
    pub fn reporter(&self) -> &crate::report::Reporter {
        &self.inner.reporter
    }

    pub fn process_manager(&self) -> &ProcessManager {
        &self.inner.pm
    }

    pub fn git(&self) -> &GitManager {
        &self.inner.git
    }

    pub fn options(&self) -> &ServerOptions {
        &self.inner.options
    }
}

/// All routes, with authentication applied to everything but `/health`.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/agents/start", post(handlers::start_agent))
        .route("/agents/{id}/stop", post(handlers::stop_agent))
        .route("/agents/{id}/status", get(handlers::agent_status))
        .route("/agents/{id}/nudge", post(handlers::nudge_agent))
        .route("/agents/{id}/pty", get(pty::attach))
        .route("/sessions", get(handlers::sessions))
        .route("/git/merge-batch", post(handlers::merge_batch))
        .route("/git/push", post(handlers::push))
        .route("/git/check", post(handlers::check_remote))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_secret));
    Router::new()
        .route("/health", get(handlers::health))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops every agent (SIGHUP, grace,
/// SIGKILL) before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pm = state.inner.pm.clone();
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Stopping agents first also ends attached terminals, which would
            // otherwise keep the graceful shutdown waiting.
            pm.stop_all(None).await;
        })
        .await
}

async fn require_secret(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|token| state.inner.secret.matches(token));
    if !ok {
        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid container secret").into_response();
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
        return resp;
    }
    state.inner.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    next.run(req).await
}

/// `{"success":true,"data":…}` with the given status.
pub(crate) fn ok<T: Serialize>(status: StatusCode, data: T) -> Response {
    (status, Json(serde_json::json!({ "success": true, "data": data }))).into_response()
}

/// An error answer: `{"success":false,"error":…,"code":…}`, with `limit` when a cap refused it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The cap that refused the request (the town learns the container's capacity from it).
    pub limit: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), limit: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut body = serde_json::json!({
            "success": false,
            "error": self.message,
            "code": self.code,
        });
        if let Some(limit) = self.limit {
            body["limit"] = limit.into();
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<ProcessError> for ApiError {
    fn from(e: ProcessError) -> Self {
        let msg = e.to_string();
        match e {
            ProcessError::Invalid(_) => Self::bad_request("invalid_request", msg),
            ProcessError::Spawn { .. } => Self::bad_request("spawn_failed", msg),
            ProcessError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "agent_not_found", msg),
            ProcessError::AlreadyRunning(_) => Self::new(StatusCode::CONFLICT, "already_running", msg),
            // "Wait for a slot", not "this start is broken": the town does not count it as an attempt.
            ProcessError::CapacityExceeded { limit, .. } => {
                Self { limit: Some(limit), ..Self::new(StatusCode::CONFLICT, "capacity_exceeded", msg) }
            }
            ProcessError::RigCapacityExceeded { .. } => Self::new(StatusCode::CONFLICT, "rig_capacity_exceeded", msg),
            ProcessError::NotRunning(_) => Self::new(StatusCode::CONFLICT, "not_running", msg),
            ProcessError::Pty(_) | ProcessError::StopTimedOut(_) | ProcessError::Io(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg)
            }
        }
    }
}

impl From<GitError> for ApiError {
    fn from(e: GitError) -> Self {
        let msg = e.to_string();
        match e {
            GitError::Invalid(_) => Self::bad_request("invalid_request", msg),
            GitError::BranchNotFound(_) => Self::new(StatusCode::NOT_FOUND, "branch_not_found", msg),
            GitError::NotCloned(_) => Self::new(StatusCode::CONFLICT, "not_cloned", msg),
            GitError::NotSupported(_) => Self::new(StatusCode::NOT_IMPLEMENTED, "not_supported", msg),
            GitError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", msg),
            GitError::Isolation(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
            // The remote or the repository refused: not our bug, not bad JSON.
            GitError::Command { .. } => Self::new(StatusCode::BAD_GATEWAY, "git_failed", msg),
            GitError::Io(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
        }
    }
}

/// JSON body extractor whose rejections use the error envelope (axum's own
/// answer with plain text and 415/422).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) => Err(ApiError::bad_request("invalid_body", rej.body_text())),
        }
    }
}
