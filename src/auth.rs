//! Authentication: turns a request into a [`Principal`]. Agents present their own short-lived
//! HS256 token as `Authorization: Bearer`; people come through Cloudflare Access (RS256 JWT in
//! `Cf-Access-Jwt-Assertion` or the `CF_Authorization` cookie, checked against the team's JWKS,
//! cached per isolate and refreshed when a token names an unknown key). `GASTOWN_AUTH=dev`
//! replaces Access with a local operator and is refused unless `ENVIRONMENT=development`.

use std::cell::RefCell;

use gastown_core::auth::{self, AccessError, AccessIdentity, AgentClaims, AuthMode, Jwks};
use gastown_core::town::Actor;
use gastown_core::{CoreError, CoreResult};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use worker::{Env, Fetch, Url};

use crate::http::{now_ms, Incoming};

const JWKS_TTL_MS: i64 = 60 * 60 * 1000;
/// Unknown key ids trigger at most one JWKS refetch per this interval (no refetch storms).
const JWKS_MIN_REFRESH_MS: i64 = 5 * 1000;
pub const DEFAULT_DEV_USER: &str = "dev-user";

#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A person or service token authenticated by Cloudflare Access.
    User(AccessIdentity),
    /// `GASTOWN_AUTH=dev`: the local operator, who may act for any user id.
    Dev {
        user_id: String,
    },
    Agent(AgentClaims),
}

#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct Me {
    pub user_id: String,
    pub email: Option<String>,
    pub kind: &'static str,
}

impl Principal {
    pub fn me(&self) -> Me {
        match self {
            Principal::User(u) => {
                Me { user_id: u.user_id.clone(), email: u.email.clone(), kind: if u.service { "service" } else { "user" } }
            }
            Principal::Dev { user_id } => Me { user_id: user_id.clone(), email: None, kind: "dev" },
            Principal::Agent(c) => Me { user_id: c.agent_id.clone(), email: None, kind: "agent" },
        }
    }

    /// How the principal is recorded on beads and events.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User(u) => Actor::User(u.user_id.clone()),
            Principal::Dev { user_id } => Actor::User(user_id.clone()),
            Principal::Agent(c) => Actor::Agent(c.agent_id.clone()),
        }
    }
}

/// A non-empty string variable (or secret) of the deployment. Read from `env` once per isolate:
/// they cannot change while it lives (a new deployment or `.dev.vars` starts new isolates), and
/// the router reads five or six of them on every request, each otherwise several calls out of wasm.
pub fn var(env: &Env, name: &str) -> Option<String> {
    VARS.with(|vars| {
        if let Some(v) = vars.borrow().get(name) {
            return v.clone();
        }
        let v = gastown_var(env, name);
        vars.borrow_mut().insert(name.to_string(), v.clone());
        v
    })
}

#[wasm_bindgen(
    inline_js = "export function gastown_var(env, name) { const v = env[name]; return typeof v === 'string' && v !== '' ? v : undefined; }"
)]
extern "C" {
    fn gastown_var(env: &JsValue, name: &str) -> Option<String>;
}

fn mode(env: &Env) -> CoreResult<AuthMode> {
    auth::auth_mode(var(env, "GASTOWN_AUTH").as_deref(), var(env, "ENVIRONMENT").as_deref())
}

/// True only when the deployment says explicitly that it is a development one (local git
/// repositories allowed, dev auth possible); every other value, or none, counts as production.
pub fn is_development(env: &Env) -> bool {
    auth::is_development(var(env, "ENVIRONMENT").as_deref())
}

/// Fails fast on a deployment that could never authenticate anyone correctly.
pub fn check_config(env: &Env) -> CoreResult<()> {
    mode(env)?;
    Ok(())
}

pub fn jwt_secret(env: &Env) -> CoreResult<String> {
    var(env, "GASTOWN_JWT_SECRET").ok_or_else(|| CoreError::Misconfigured("GASTOWN_JWT_SECRET is not set".into()))
}

/// The caller, or `None` for an anonymous request. A credential that is present but wrong is an
/// error (401), never silently anonymous.
pub async fn authenticate(req: &Incoming, env: &Env) -> CoreResult<Option<Principal>> {
    let mode = mode(env)?;
    if let Some(h) = req.header("authorization") {
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .ok_or_else(|| CoreError::Unauthorized("Authorization must be \"Bearer <agent token>\"".into()))?;
        let claims = auth::verify_agent_token(&jwt_secret(env)?, token.trim(), now_ms())?;
        return Ok(Some(Principal::Agent(claims)));
    }
    match mode {
        AuthMode::Dev => Ok(Some(Principal::Dev { user_id: var(env, "GASTOWN_DEV_USER_ID").unwrap_or_else(|| DEFAULT_DEV_USER.into()) })),
        AuthMode::Access => match access_token(req) {
            None => Ok(None),
            Some(t) => verify_access(env, &t).await.map(|id| Some(Principal::User(id))),
        },
    }
}

fn access_token(req: &Incoming) -> Option<String> {
    if let Some(h) = req.header("cf-access-jwt-assertion") {
        return Some(h);
    }
    access_cookie(req)
}

/// The `CF_Authorization` cookie: the credential a browser attaches by itself, so requests
/// carrying it get the Origin check (`gastown_core::web`).
pub fn access_cookie(req: &Incoming) -> Option<String> {
    let cookies = req.header("cookie")?;
    cookies.split(';').find_map(|c| c.trim().strip_prefix("CF_Authorization=").map(str::to_string))
}

thread_local! {
    static VARS: RefCell<std::collections::HashMap<String, Option<String>>> = RefCell::new(Default::default());
    static JWKS: RefCell<Option<(Jwks, i64)>> = const { RefCell::new(None) };
    /// Tokens this isolate has verified (see `gastown_core::auth::VerifiedTokens`).
    static VERIFIED: RefCell<auth::VerifiedTokens> = RefCell::new(auth::VerifiedTokens::new());
}

async fn fetch_jwks(team: &str) -> CoreResult<Jwks> {
    let url = Url::parse(&format!("{team}/cdn-cgi/access/certs"))
        .map_err(|_| CoreError::Internal("CF_ACCESS_TEAM_DOMAIN is not a URL".into()))?;
    let mut resp = Fetch::Url(url).send().await.map_err(|e| CoreError::Internal(format!("fetching Access keys: {e}")))?;
    if resp.status_code() != 200 {
        return Err(CoreError::Internal(format!("Access keys answered {}", resp.status_code())));
    }
    let text = resp.text().await.map_err(|e| CoreError::Internal(format!("reading Access keys: {e}")))?;
    let jwks = Jwks::parse(&text)?;
    JWKS.with(|c| *c.borrow_mut() = Some((jwks.clone(), now_ms())));
    // A key the team rotated out stops being honoured as soon as we learn of it, not only when
    // the tokens verified with it age out of the table.
    VERIFIED.with(|v| v.borrow_mut().clear());
    Ok(jwks)
}

async fn verify_access(env: &Env, token: &str) -> CoreResult<AccessIdentity> {
    let team = auth::normalize_team_domain(
        &var(env, "CF_ACCESS_TEAM_DOMAIN").ok_or_else(|| CoreError::Misconfigured("CF_ACCESS_TEAM_DOMAIN is not set".into()))?,
    );
    let aud = var(env, "CF_ACCESS_AUD").ok_or_else(|| CoreError::Misconfigured("CF_ACCESS_AUD is not set".into()))?;
    let now = now_ms();
    if let Some(id) = VERIFIED.with(|v| v.borrow().get(token, now)) {
        return Ok(id);
    }
    let cached = JWKS.with(|c| c.borrow().clone()).filter(|(_, at)| now - at < JWKS_TTL_MS);
    let (jwks, fetched_at) = match cached {
        Some(c) => c,
        None => (fetch_jwks(&team).await?, now),
    };
    let unauthorized = |m: String| {
        worker::console_log!("access token refused: {m}");
        CoreError::Unauthorized("invalid Cloudflare Access token".into())
    };
    let (id, expires) = match auth::verify_access_token_until(token, &jwks, &team, &aud, now) {
        Ok(verified) => verified,
        // The team may have rotated its keys: refetch once, unless we just did.
        Err(AccessError::UnknownKid(_)) if now - fetched_at >= JWKS_MIN_REFRESH_MS => {
            let fresh = fetch_jwks(&team).await?;
            auth::verify_access_token_until(token, &fresh, &team, &aud, now).map_err(|e| unauthorized(format!("{e:?}")))?
        }
        Err(e) => return Err(unauthorized(format!("{e:?}"))),
    };
    VERIFIED.with(|v| v.borrow_mut().insert(token, id.clone(), expires, now));
    Ok(id)
}
