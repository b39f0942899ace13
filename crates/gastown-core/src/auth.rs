//! Who is calling, proven how: agent tokens (HS256, minted by the town for each agent run) and
//! Cloudflare Access tokens (RS256, verified against the team's JWKS). Verification is pure —
//! keys and "now" are passed in — so the production checks are what the native tests exercise.
//! Fetching and caching the JWKS is the Worker's job.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key, Rsa, RsaPublicKey};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, Token, UntrustedToken};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::model::AgentRole;
use crate::time::Millis;

/// HS256 needs a key at least as long as its output to be worth anything.
pub const MIN_SECRET_LEN: usize = 32;
const LEEWAY_SECS: i64 = 30;

/// The custom claims of an agent token. The mayor's token has no rig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentClaims {
    pub town_id: String,
    pub rig_id: Option<String>,
    pub agent_id: String,
    pub role: AgentRole,
}

fn time_options(now: Millis) -> TimeOptions<impl Fn() -> DateTime<Utc>> {
    let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || at)
}

fn unauthorized(m: &str) -> CoreError {
    CoreError::Unauthorized(m.to_string())
}

fn hs_key(secret: &str) -> CoreResult<Hs256Key> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(CoreError::Internal(format!("GASTOWN_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes")));
    }
    Ok(Hs256Key::new(secret.as_bytes()))
}

pub fn sign_agent_token(secret: &str, claims: &AgentClaims, now: Millis, ttl_secs: i64) -> CoreResult<String> {
    let key = hs_key(secret)?;
    let c = Claims::new(claims.clone()).set_duration_and_issuance(&time_options(now), Duration::seconds(ttl_secs));
    Hs256.token(&Header::empty().with_token_type("JWT"), &c, &key).map_err(|e| CoreError::Internal(format!("signing: {e}")))
}

pub fn verify_agent_token(secret: &str, token: &str, now: Millis) -> CoreResult<AgentClaims> {
    let key = hs_key(secret)?;
    let untrusted = UntrustedToken::new(token).map_err(|_| unauthorized("malformed token"))?;
    let t: Token<AgentClaims> =
        Hs256.validator(&key).validate(&untrusted).map_err(|_| unauthorized("invalid token signature or claims"))?;
    let claims = t.claims();
    if claims.expiration.is_none() {
        return Err(unauthorized("token has no expiry"));
    }
    claims.validate_expiration(&time_options(now)).map_err(|_| unauthorized("token expired"))?;
    Ok(claims.custom.clone())
}

/// An agent token may only touch its own town, its own rig, and — where the route names an
/// agent — itself.
pub fn check_agent_scope(c: &AgentClaims, town_id: &str, rig_id: Option<&str>, agent_id: Option<&str>) -> CoreResult<()> {
    if c.town_id != town_id {
        return Err(CoreError::Forbidden("token is for another town".into()));
    }
    if let Some(rig) = rig_id {
        if c.rig_id.as_deref() != Some(rig) {
            return Err(CoreError::Forbidden("token is for another rig".into()));
        }
    }
    if let Some(agent) = agent_id {
        if c.agent_id != agent {
            return Err(CoreError::Forbidden("token is for another agent".into()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Which authentication a deployment uses

/// How people are authenticated (`GASTOWN_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Cloudflare Access JWTs (the default).
    Access,
    /// A local operator who may act for any user, with no credential at all.
    Dev,
}

/// True only for a deployment that says, explicitly, that it is a local development one
/// (`ENVIRONMENT=development`, any case, surrounding spaces ignored). Anything else — unset,
/// empty, a typo, `Production`, `staging` — counts as production: the dangerous settings (dev
/// auth, local git repositories) fail closed instead of failing open on a misspelt value.
pub fn is_development(environment: Option<&str>) -> bool {
    environment.is_some_and(|e| e.trim().eq_ignore_ascii_case("development"))
}

/// The auth mode from `GASTOWN_AUTH` and `ENVIRONMENT`. Dev auth accepts anonymous requests as
/// any user, so it is refused unless the deployment is explicitly a development one.
pub fn auth_mode(auth: Option<&str>, environment: Option<&str>) -> CoreResult<AuthMode> {
    match auth.map(str::trim).filter(|a| !a.is_empty()) {
        None => Ok(AuthMode::Access),
        Some(a) if a.eq_ignore_ascii_case("access") => Ok(AuthMode::Access),
        Some(a) if a.eq_ignore_ascii_case("dev") => {
            if is_development(environment) {
                Ok(AuthMode::Dev)
            } else {
                let env = match environment.map(str::trim).filter(|e| !e.is_empty()) {
                    Some(e) => format!("ENVIRONMENT is {e:?}"),
                    None => "ENVIRONMENT is not set".to_string(),
                };
                Err(CoreError::Misconfigured(format!(
                    "GASTOWN_AUTH=dev is refused unless ENVIRONMENT=development ({env}); use GASTOWN_AUTH=access"
                )))
            }
        }
        Some(other) => Err(CoreError::Misconfigured(format!("unknown GASTOWN_AUTH mode {other:?}; use access or dev"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Cloudflare Access

/// The RSA keys of a team's JWKS (`<team>/cdn-cgi/access/certs`), by key id.
#[derive(Default, Clone)]
pub struct Jwks {
    keys: HashMap<String, RsaPublicKey>,
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

impl Jwks {
    pub fn parse(json: &str) -> CoreResult<Jwks> {
        let doc: JwksDoc = serde_json::from_str(json).map_err(|e| CoreError::Internal(format!("JWKS: {e}")))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut keys = HashMap::new();
        for k in doc.keys {
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else {
                continue;
            };
            if k.kty != "RSA" {
                continue;
            }
            let (Ok(n), Ok(e)) = (b64.decode(n.trim_end_matches('=')), b64.decode(e.trim_end_matches('='))) else {
                continue;
            };
            if let Ok(key) = RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e)) {
                keys.insert(kid, key);
            }
        }
        if keys.is_empty() {
            return Err(CoreError::Internal("JWKS has no usable RSA keys".into()));
        }
        Ok(Jwks { keys })
    }

    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Deserialize)]
struct AccessClaims {
    iss: String,
    #[serde(deserialize_with = "one_or_many")]
    aud: Vec<String>,
    #[serde(default)]
    sub: String,
    email: Option<String>,
    common_name: Option<String>,
}

/// Who an Access token names: a person (`email`, stable `sub`) or a service token (`common_name`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessIdentity {
    pub user_id: String,
    pub email: Option<String>,
    pub service: bool,
}

#[derive(Debug, PartialEq)]
pub enum AccessError {
    /// The token names a key we do not have: the JWKS may have rotated; refresh and retry once.
    UnknownKid(String),
    Invalid(String),
}

/// `<team domain>` exactly as the issuer appears in tokens: scheme and host, no trailing slash.
pub fn normalize_team_domain(d: &str) -> String {
    let d = d.trim().trim_end_matches('/');
    if d.starts_with("http://") || d.starts_with("https://") {
        d.to_string()
    } else {
        format!("https://{d}")
    }
}

pub fn verify_access_token(
    token: &str,
    jwks: &Jwks,
    team_domain: &str,
    audience: &str,
    now: Millis,
) -> Result<AccessIdentity, AccessError> {
    verify_access_token_until(token, jwks, team_domain, audience, now).map(|(id, _)| id)
}

/// [`verify_access_token`], also returning when the token expires (ms since the epoch).
pub fn verify_access_token_until(
    token: &str,
    jwks: &Jwks,
    team_domain: &str,
    audience: &str,
    now: Millis,
) -> Result<(AccessIdentity, Millis), AccessError> {
    let inv = |m: &str| AccessError::Invalid(m.to_string());
    let untrusted = UntrustedToken::new(token).map_err(|_| inv("malformed token"))?;
    if untrusted.algorithm() != "RS256" {
        return Err(inv("unexpected algorithm"));
    }
    let kid = untrusted.header().key_id.clone().ok_or_else(|| inv("token has no key id"))?;
    let key = jwks.keys.get(&kid).ok_or_else(|| AccessError::UnknownKid(kid.clone()))?;
    let t: Token<AccessClaims> = Rsa::rs256().validator(key).validate(&untrusted).map_err(|_| inv("bad signature or claims"))?;
    let claims = t.claims();
    let opts = time_options(now);
    if claims.expiration.is_none() {
        return Err(inv("token has no expiry"));
    }
    claims.validate_expiration(&opts).map_err(|_| inv("token expired"))?;
    if claims.not_before.is_some() {
        claims.validate_maturity(&opts).map_err(|_| inv("token not yet valid"))?;
    }
    let c = &claims.custom;
    if c.iss.trim_end_matches('/') != normalize_team_domain(team_domain) {
        return Err(inv("wrong issuer"));
    }
    if !c.aud.iter().any(|a| a == audience) {
        return Err(inv("wrong audience"));
    }
    let expires = claims.expiration.map_or(now, |e| e.timestamp_millis());
    match (&c.common_name, &c.email) {
        (Some(cn), _) if !cn.is_empty() => Ok((AccessIdentity { user_id: service_user_id(cn), email: None, service: true }, expires)),
        (_, Some(email)) if !c.sub.is_empty() => {
            Ok((AccessIdentity { user_id: c.sub.clone(), email: Some(email.clone()), service: false }, expires))
        }
        _ => Err(inv("token names neither a user nor a service")),
    }
}

/// Access tokens already verified, so that a person's every request does not pay an RSA
/// signature check (milliseconds in wasm): a browser sends the same token for hours. An entry
/// is keyed by the token's SHA-256 and trusted until the token expires, but never longer than
/// [`VerifiedTokens::MAX_TRUST_MS`] after it was checked; and the Worker clears the table each
/// time it fetches the team's keys, so a key rotated out stops being honoured as soon as the
/// Worker sees the new set. Bounded: when full, expired entries go, then all.
pub struct VerifiedTokens {
    entries: HashMap<[u8; 32], (AccessIdentity, Millis)>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl VerifiedTokens {
    pub const MAX_TRUST_MS: Millis = 5 * 60 * 1000;
    pub const CAPACITY: usize = 1024;

    pub fn new() -> Self {
        VerifiedTokens { entries: HashMap::new() }
    }

    fn key(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// Who `token` names, if it was verified and is still to be trusted at `now`.
    pub fn get(&self, token: &str, now: Millis) -> Option<AccessIdentity> {
        self.entries.get(&Self::key(token)).filter(|(_, until)| now < *until).map(|(id, _)| id.clone())
    }

    /// Records a token just verified at `now`, which expires at `expires`.
    pub fn insert(&mut self, token: &str, identity: AccessIdentity, expires: Millis, now: Millis) {
        if self.entries.len() >= Self::CAPACITY {
            self.entries.retain(|_, (_, until)| now < *until);
            if self.entries.len() >= Self::CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(Self::key(token), (identity, expires.min(now + Self::MAX_TRUST_MS)));
    }

    /// Forgets every token (the Worker does when it fetches the team's keys again).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The user id of an Access service token, from its `common_name` (the client id,
/// `<32 hex>.access`). Ids travel in paths (`/api/users/:userId/…`) where only letters, digits,
/// `-` and `_` are accepted, so the id is `svc-<client id without .access>`; a common name of
/// any other shape becomes `svc_` plus a hash of it (another prefix: the two never collide).
/// The same token always maps to the same id, and no person's `sub` (a UUID) looks like either.
pub fn service_user_id(common_name: &str) -> String {
    let cn = common_name.trim();
    if let Some(client) = cn.strip_suffix(".access") {
        let id = format!("svc-{client}");
        if !client.is_empty() && crate::ids::looks_like_id(&id) {
            return id;
        }
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cn.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("svc_{hex}")
}

/// A stream ticket: lets a client on another origin open one agent's terminal once, within a
/// minute, for the user who minted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamTicket {
    /// Always "stream": an agent token can never pass as a ticket, nor the reverse.
    pub kind: String,
    pub user_id: String,
    pub town_id: String,
    pub agent_id: String,
    /// Unique id; consumed on first use.
    pub jti: String,
}

pub const TICKET_TTL_SECS: i64 = 60;

pub fn sign_stream_ticket(secret: &str, user_id: &str, town_id: &str, agent_id: &str, now: Millis) -> CoreResult<(String, StreamTicket)> {
    let key = hs_key(secret)?;
    let t = StreamTicket {
        kind: "stream".into(),
        user_id: user_id.into(),
        town_id: town_id.into(),
        agent_id: agent_id.into(),
        jti: crate::ids::uuid(),
    };
    let c = Claims::new(t.clone()).set_duration_and_issuance(&time_options(now), Duration::seconds(TICKET_TTL_SECS));
    let token = Hs256.token(&Header::empty().with_token_type("JWT"), &c, &key).map_err(|e| CoreError::Internal(format!("signing: {e}")))?;
    Ok((token, t))
}

/// Checks a ticket's signature, expiry and scope (consuming it is the town's job).
pub fn verify_stream_ticket(secret: &str, ticket: &str, town_id: &str, agent_id: &str, now: Millis) -> CoreResult<StreamTicket> {
    let key = hs_key(secret)?;
    let untrusted = UntrustedToken::new(ticket).map_err(|_| unauthorized("malformed ticket"))?;
    let t: Token<StreamTicket> = Hs256.validator(&key).validate(&untrusted).map_err(|_| unauthorized("invalid ticket"))?;
    let claims = t.claims();
    if claims.expiration.is_none() {
        return Err(unauthorized("ticket has no expiry"));
    }
    // No leeway beyond the clock's: a ticket is good for exactly its minute.
    let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    claims.validate_expiration(&TimeOptions::new(Duration::zero(), move || at)).map_err(|_| unauthorized("ticket expired"))?;
    let t = claims.custom.clone();
    if t.kind != "stream" {
        return Err(unauthorized("not a stream ticket"));
    }
    if t.town_id != town_id || t.agent_id != agent_id {
        return Err(CoreError::Forbidden("the ticket is for another terminal".into()));
    }
    Ok(t)
}

/// The secret the town's container requires on every control request: derived from the JWT
/// secret per town, so one leaked container secret opens no other town's container.
pub fn container_secret(master: &str, town_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"gastown-container:");
    mac.update(town_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality for secrets (container secret, stream tickets).
pub fn secret_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::alg::{RsaPrivateKey, StrongKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
    const NOW: Millis = 1_800_000_000_000;

    fn claims() -> AgentClaims {
        AgentClaims { town_id: "t1".into(), rig_id: Some("r1".into()), agent_id: "gt-abcde".into(), role: AgentRole::Polecat }
    }

    #[test]
    fn agent_tokens_verify_and_expire() {
        let tok = sign_agent_token(SECRET, &claims(), NOW, 3600).unwrap();
        assert_eq!(verify_agent_token(SECRET, &tok, NOW + 1000).unwrap(), claims());
        let e = verify_agent_token(SECRET, &tok, NOW + 3_700_000).unwrap_err();
        assert_eq!(e, CoreError::Unauthorized("token expired".into()));
        let forged = sign_agent_token("another-secret-that-is-also-32-bytes-long!", &claims(), NOW, 3600).unwrap();
        assert_eq!(verify_agent_token(SECRET, &forged, NOW).unwrap_err().status(), 401);
        assert_eq!(verify_agent_token(SECRET, "not.a.token", NOW).unwrap_err().status(), 401);
        // A tampered payload fails the signature.
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: serde_json::Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        payload["town_id"] = json!("t2");
        parts[1] = b64.encode(payload.to_string());
        assert_eq!(verify_agent_token(SECRET, &parts.join("."), NOW).unwrap_err().status(), 401);
        assert!(sign_agent_token("short", &claims(), NOW, 60).is_err());
    }

    #[test]
    fn stream_tickets() {
        let (tok, t) = sign_stream_ticket(SECRET, "u1", "t1", "a1", NOW).unwrap();
        assert_eq!(verify_stream_ticket(SECRET, &tok, "t1", "a1", NOW + 59_000).unwrap(), t);
        assert_eq!(verify_stream_ticket(SECRET, &tok, "t1", "a1", NOW + 61_000).unwrap_err().status(), 401);
        assert_eq!(verify_stream_ticket(SECRET, &tok, "t2", "a1", NOW).unwrap_err().status(), 403);
        assert_eq!(verify_stream_ticket(SECRET, &tok, "t1", "a2", NOW).unwrap_err().status(), 403);
        assert_eq!(verify_stream_ticket("another-secret-that-is-also-32-bytes-long!", &tok, "t1", "a1", NOW).unwrap_err().status(), 401);
        // An agent token is not a ticket.
        let agent = sign_agent_token(SECRET, &claims(), NOW, 60).unwrap();
        assert_eq!(verify_stream_ticket(SECRET, &agent, "t1", "gt-abcde", NOW).unwrap_err().status(), 401);
        let (tok2, t2) = sign_stream_ticket(SECRET, "u1", "t1", "a1", NOW).unwrap();
        assert_ne!((tok2, t2.jti), (tok, t.jti), "every ticket is unique");
    }

    #[test]
    fn dev_auth_only_in_an_explicit_development_environment() {
        for env in ["development", "Development", " DEVELOPMENT "] {
            assert_eq!(auth_mode(Some("dev"), Some(env)).unwrap(), AuthMode::Dev, "{env:?}");
        }
        // Anything else fails closed: a capitalised or misspelt production, staging, unset.
        for env in [Some("production"), Some("Production"), Some("PRODUCTION "), Some("prod"), Some("staging"), Some(""), None] {
            let e = auth_mode(Some("dev"), env).unwrap_err();
            assert_eq!(e.status(), 503, "{env:?}");
            assert!(e.to_string().contains("GASTOWN_AUTH=dev is refused unless ENVIRONMENT=development"), "{e}");
        }
        assert!(auth_mode(Some("dev"), Some("Production")).unwrap_err().to_string().contains(r#"ENVIRONMENT is "Production""#));
        assert!(auth_mode(Some("dev"), None).unwrap_err().to_string().contains("ENVIRONMENT is not set"));
        // Access works everywhere; an unknown mode is a misconfiguration.
        for env in [Some("production"), Some("development"), None] {
            assert_eq!(auth_mode(None, env).unwrap(), AuthMode::Access);
            assert_eq!(auth_mode(Some("access"), env).unwrap(), AuthMode::Access);
        }
        assert_eq!(auth_mode(Some("none"), Some("development")).unwrap_err().status(), 503);
        assert!(is_development(Some("development")) && !is_development(Some("dev-ish")) && !is_development(None));
    }

    #[test]
    fn service_tokens_get_path_safe_stable_ids() {
        let id = service_user_id("88bf3b6d86161464f6509f7219099e57.access");
        assert_eq!(id, "svc-88bf3b6d86161464f6509f7219099e57");
        assert!(crate::ids::looks_like_id(&id));
        // Odd shapes still give a usable id, the same one every time, distinct per name.
        let odd = service_user_id("not a client id");
        assert!(crate::ids::looks_like_id(&odd) && odd.starts_with("svc_"), "{odd}");
        assert_eq!(odd, service_user_id("not a client id"));
        assert_ne!(odd, service_user_id("not a client id!"));
        assert_ne!(service_user_id(".access"), service_user_id("x.access"));
        assert!(service_user_id(".access").starts_with("svc_"));
        assert!(crate::ids::looks_like_id(&service_user_id(&"a".repeat(200))));
    }

    #[test]
    fn agent_scope() {
        let c = claims();
        assert!(check_agent_scope(&c, "t1", Some("r1"), Some("gt-abcde")).is_ok());
        assert!(check_agent_scope(&c, "t1", None, None).is_ok());
        for (t, r, a) in [("t2", Some("r1"), None), ("t1", Some("r2"), None), ("t1", Some("r1"), Some("gt-other"))] {
            assert_eq!(check_agent_scope(&c, t, r, a).unwrap_err().status(), 403);
        }
        let mayor = AgentClaims { rig_id: None, role: AgentRole::Mayor, ..claims() };
        assert_eq!(check_agent_scope(&mayor, "t1", Some("r1"), None).unwrap_err().status(), 403);
    }

    fn test_key() -> RsaPrivateKey {
        let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/access-test-key.pem")).unwrap();
        RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
    }

    fn jwks_for(key: &RsaPrivateKey, kid: &str) -> Jwks {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let pubk = key.to_public_key();
        let doc = json!({"keys": [{"kid": kid, "kty": "RSA", "alg": "RS256",
            "n": b64.encode(pubk.n().to_bytes_be()), "e": b64.encode(pubk.e().to_bytes_be())}]});
        Jwks::parse(&doc.to_string()).unwrap()
    }

    fn access_token(key: &RsaPrivateKey, kid: &str, claims: serde_json::Value, exp_in: i64) -> String {
        let strong = StrongKey::try_from(key.clone()).unwrap();
        let opts = time_options(NOW);
        let c = Claims::new(claims).set_duration_and_issuance(&opts, Duration::seconds(exp_in));
        Rsa::rs256().token(&Header::empty().with_key_id(kid), &c, strong.as_ref()).unwrap()
    }

    #[test]
    fn verified_tokens_are_trusted_until_expiry_or_five_minutes_and_stay_bounded() {
        let key = test_key();
        let jwks = jwks_for(&key, "k1");
        let team = "https://team.cloudflareaccess.com";
        let user = json!({"iss": team, "aud": ["aud1"], "sub": "u-1", "email": "a@b.c"});
        let long = access_token(&key, "k1", user.clone(), 3600);
        let (id, exp) = verify_access_token_until(&long, &jwks, team, "aud1", NOW).unwrap();
        assert_eq!(exp, NOW + 3_600_000);
        let mut cache = VerifiedTokens::new();
        assert_eq!(cache.get(&long, NOW), None);
        cache.insert(&long, id.clone(), exp, NOW);
        assert_eq!(cache.get(&long, NOW + 1000), Some(id.clone()));
        // Trusted five minutes after the check at most (then verified again), however long it lives.
        assert_eq!(cache.get(&long, NOW + VerifiedTokens::MAX_TRUST_MS), None);
        // A token that expires sooner is trusted only until then.
        let short = access_token(&key, "k1", user, 60);
        let (id2, exp2) = verify_access_token_until(&short, &jwks, team, "aud1", NOW).unwrap();
        cache.insert(&short, id2, exp2, NOW);
        assert!(cache.get(&short, NOW + 59_000).is_some() && cache.get(&short, NOW + 60_000).is_none());
        // Another token (one character changed) is not the cached one.
        let mut forged = long.clone();
        forged.pop();
        forged.push('A');
        assert_eq!(cache.get(&forged, NOW), None);
        // Bounded: expired entries make room, and a full table of live ones starts over.
        let mut cache = VerifiedTokens::new();
        cache.insert("live", id.clone(), NOW + 60_000, NOW);
        for i in 1..VerifiedTokens::CAPACITY {
            cache.insert(&format!("t{i}"), id.clone(), NOW + 1000, NOW);
        }
        assert_eq!(cache.len(), VerifiedTokens::CAPACITY);
        cache.insert("fresh", id.clone(), NOW + 10_000, NOW + 2000);
        assert_eq!(cache.len(), 2, "the expired entries were dropped");
        assert!(cache.get("live", NOW + 2000).is_some() && cache.get("fresh", NOW + 2000).is_some());
        for i in 2..VerifiedTokens::CAPACITY {
            cache.insert(&format!("u{i}"), id.clone(), NOW + 60_000, NOW + 2000);
        }
        cache.insert("last", id.clone(), NOW + 60_000, NOW + 2000);
        assert_eq!(cache.len(), 1, "a table full of live entries starts over");
    }

    #[test]
    fn access_tokens() {
        let key = test_key();
        let jwks = jwks_for(&key, "k1");
        let team = "https://team.cloudflareaccess.com";
        let user = json!({"iss": team, "aud": ["aud1"], "sub": "u-1", "email": "a@b.c", "identity_nonce": "n"});
        let ok = access_token(&key, "k1", user.clone(), 60);
        assert_eq!(
            verify_access_token(&ok, &jwks, "team.cloudflareaccess.com", "aud1", NOW).unwrap(),
            AccessIdentity { user_id: "u-1".into(), email: Some("a@b.c".into()), service: false }
        );
        let svc = access_token(&key, "k1", json!({"iss": team, "aud": "aud1", "sub": "", "common_name": "abc.access"}), 60);
        assert_eq!(
            verify_access_token(&svc, &jwks, team, "aud1", NOW).unwrap(),
            AccessIdentity { user_id: "svc-abc".into(), email: None, service: true }
        );

        let check = |tok: &str, now: Millis| verify_access_token(tok, &jwks, team, "aud1", now);
        assert!(matches!(check(&ok, NOW + 120_000), Err(AccessError::Invalid(m)) if m == "token expired"));
        let wrong_aud = access_token(&key, "k1", json!({"iss": team, "aud": ["other"], "sub": "u", "email": "e@x"}), 60);
        assert!(matches!(check(&wrong_aud, NOW), Err(AccessError::Invalid(m)) if m == "wrong audience"));
        let wrong_iss = access_token(&key, "k1", json!({"iss": "https://evil.example", "aud": ["aud1"], "sub": "u", "email": "e@x"}), 60);
        assert!(matches!(check(&wrong_iss, NOW), Err(AccessError::Invalid(m)) if m == "wrong issuer"));
        let unknown = access_token(&key, "k2", user.clone(), 60);
        assert_eq!(check(&unknown, NOW), Err(AccessError::UnknownKid("k2".into())));
        // An HS256 token signed with the public modulus as secret must not pass (alg confusion).
        let hs = Hs256.token(&Header::empty().with_key_id("k1"), &Claims::new(user), &Hs256Key::new(b"k")).unwrap();
        assert!(matches!(check(&hs, NOW), Err(AccessError::Invalid(_))));
        assert!(secret_eq("abc", "abc") && !secret_eq("abc", "abd") && !secret_eq("abc", "ab"));
        let (a, b) = (container_secret(SECRET, "t1"), container_secret(SECRET, "t2"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(a, container_secret(SECRET, "t1"));
    }
}
