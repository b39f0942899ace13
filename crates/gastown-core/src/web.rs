//! The browser-facing rules of the HTTP layer, as pure functions the Worker applies to every
//! request: which cross-site requests are refused (the Origin check against CSRF and cross-site
//! WebSocket hijacking), which bodies count as JSON, and the security headers of responses.
//!
//! Why an Origin check: a browser attaches the Access cookie (`CF_Authorization`) to every
//! request to this host, including one that a page on another site makes it send — a form
//! post, a `fetch` with `text/plain`, or a WebSocket, which no CORS rule protects. Browsers
//! always send `Origin` on those, and a page cannot forge it, so a state-changing request or a
//! WebSocket upgrade is accepted only from this server's own origin or one the operator listed
//! in `ALLOWED_ORIGINS`.

use crate::error::{CoreError, CoreResult};

/// How a request proved who it is, as far as the Origin check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A credential a browser never attaches by itself: an agent's bearer token, a stream
    /// ticket in the URL. Another origin can only have it if it was handed over on purpose.
    Explicit,
    /// The Access cookie, which the browser sends on its own (also with a header the Access
    /// edge derives from it).
    AccessCookie,
    /// Anything else: an Access header without the cookie (service tokens), dev auth (which
    /// trusts every caller, so a browser's request is as good as authenticated), or none.
    Ambient,
}

/// What the Origin check needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct OriginCheck<'a> {
    pub method: &'a str,
    /// `Upgrade: websocket`: a GET, but one that opens a two-way channel.
    pub websocket: bool,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// The request URL, whose origin is always allowed (the dashboard is served from it).
    pub url: &'a str,
    pub credential: Credential,
}

/// `scheme://host[:port]` of a URL or origin, lowercased, default port dropped; `None` for
/// anything that is not an http(s) or ws(s) origin (including the opaque origin `null`).
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo is never part of an origin.
    let authority = authority.rsplit('@').next().unwrap_or_default().to_ascii_lowercase();
    if authority.is_empty() {
        return None;
    }
    let default_port = match scheme.as_str() {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return None,
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The origins listed in `ALLOWED_ORIGINS` (comma- or space-separated), normalised. An entry
/// that is not an origin is an error, so a typo is seen at once instead of silently refusing.
pub fn parse_allowed_origins(var: Option<&str>) -> CoreResult<Vec<String>> {
    let mut out = vec![];
    for entry in var.unwrap_or_default().split([',', ' ', '\n', '\t']).map(str::trim).filter(|e| !e.is_empty()) {
        let o = origin_of(entry)
            .filter(|o| o.starts_with("http"))
            .ok_or_else(|| CoreError::Misconfigured(format!("ALLOWED_ORIGINS: {entry:?} is not an origin like https://app.example.com")))?;
        out.push(o);
    }
    Ok(out)
}

/// Refuses (403) a state-changing request or WebSocket upgrade that comes from a foreign
/// origin, and one carrying the Access cookie with no `Origin` at all. Reads (GET/HEAD that
/// are not upgrades) and requests with an explicit credential pass: those are not forgeable by
/// another site.
pub fn check_origin(r: &OriginCheck, allowed: &[String]) -> CoreResult<()> {
    let read = !r.websocket && (r.method.eq_ignore_ascii_case("GET") || r.method.eq_ignore_ascii_case("HEAD"));
    if read || r.credential == Credential::Explicit {
        return Ok(());
    }
    let own = origin_of(r.url);
    let what = if r.websocket { "WebSocket upgrade" } else { "request" };
    match r.origin.map(str::trim) {
        None if r.credential == Credential::AccessCookie => Err(CoreError::Forbidden(format!(
            "cross-origin check: a {what} authenticated by the Access cookie must carry an Origin header"
        ))),
        None => Ok(()),
        Some(o) => {
            let o_norm = origin_of(o);
            let ok = o_norm.as_ref().is_some_and(|o| own.as_ref() == Some(o) || allowed.contains(o));
            if ok {
                Ok(())
            } else {
                Err(CoreError::Forbidden(format!(
                    "cross-origin {what} refused: Origin {o} is neither this server's origin ({}) nor listed in ALLOWED_ORIGINS",
                    own.as_deref().unwrap_or("unknown")
                )))
            }
        }
    }
}

/// True when a `Content-Type` header says JSON (`application/json`, any parameters).
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type.and_then(|c| c.split(';').next()).is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses (415) a non-empty body that is not declared as JSON. A JSON route only ever reads
/// JSON, and `application/json` is a type another site cannot send without a CORS preflight
/// (which this server never grants), so this also closes the `text/plain` CSRF trick.
pub fn check_json_body(content_type: Option<&str>, body: &[u8]) -> CoreResult<()> {
    if body.is_empty() || is_json_content_type(content_type) {
        return Ok(());
    }
    Err(CoreError::UnsupportedMediaType(format!(
        "the request body must be JSON sent with Content-Type: application/json (got {})",
        content_type.map_or_else(|| "no Content-Type".to_string(), |c| format!("{c:?}"))
    )))
}

/// The dashboard's Content-Security-Policy: everything from this origin only, no inline
/// script, no framing. The one exception is `style-src-elem 'unsafe-inline'`: xterm.js renders
/// the terminal with `<style>` elements it creates at run time (cell size, theme colours), and
/// without it Chromium refuses each of them. Style attributes stay `'self'` (the dashboard sets
/// styles through the CSSOM, which CSP does not restrict); scripts stay strictly `'self'`.
/// `connect-src 'self'` covers the same-origin `ws:`/`wss:` sockets. `dashboard/_headers` must
/// carry the same value (a test checks it).
pub const DASHBOARD_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-elem 'self' 'unsafe-inline'; connect-src 'self'; \
     img-src 'self' data:; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// API responses are data, never documents: nothing may load from them or frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers every API response carries, besides its content type.
pub fn api_security_headers() -> [(&'static str, &'static str); 4] {
    [
        ("content-security-policy", API_CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://gastown.example.com/api/users/u/towns";

    fn check(method: &str, websocket: bool, origin: Option<&str>, credential: Credential) -> CoreResult<()> {
        let allowed = parse_allowed_origins(Some("https://ops.example.com, http://localhost:5173")).unwrap();
        check_origin(&OriginCheck { method, websocket, origin, url: URL, credential }, &allowed)
    }

    #[test]
    fn origins_normalise() {
        assert_eq!(origin_of("https://Gastown.Example.com:443/x?y#z").as_deref(), Some("https://gastown.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8787/api").as_deref(), Some("http://127.0.0.1:8787"));
        assert_eq!(origin_of("http://u:p@h:80").as_deref(), Some("http://h"));
        assert_eq!(origin_of("ws://h:8080/s").as_deref(), Some("ws://h:8080"));
        for bad in ["null", "", "file:///etc/passwd", "https://", "javascript:alert(1)"] {
            assert_eq!(origin_of(bad), None, "{bad:?}");
        }
        assert_eq!(parse_allowed_origins(None).unwrap(), Vec::<String>::new());
        assert_eq!(parse_allowed_origins(Some(" https://A.example.com/ ,http://b:81")).unwrap(), ["https://a.example.com", "http://b:81"]);
        assert_eq!(parse_allowed_origins(Some("a.example.com")).unwrap_err().status(), 503);
        assert_eq!(parse_allowed_origins(Some("*")).unwrap_err().status(), 503);
    }

    #[test]
    fn cookie_requests_need_an_allowed_origin() {
        use Credential::*;
        // Reads are never refused: a cross-site GET cannot read the answer (no CORS).
        assert!(check("GET", false, Some("https://evil.example"), AccessCookie).is_ok());
        assert!(check("HEAD", false, None, AccessCookie).is_ok());
        for (method, ws) in [("POST", false), ("PATCH", false), ("DELETE", false), ("GET", true)] {
            // The own origin and the listed ones pass.
            assert!(check(method, ws, Some("https://gastown.example.com"), AccessCookie).is_ok());
            assert!(check(method, ws, Some("https://ops.example.com"), AccessCookie).is_ok());
            assert!(check(method, ws, Some("http://localhost:5173"), AccessCookie).is_ok());
            // A foreign, look-alike, wrong-scheme, wrong-port or opaque origin does not.
            for o in [
                "https://evil.example",
                "https://gastown.example.com.evil.example",
                "http://gastown.example.com",
                "https://gastown.example.com:8443",
                "null",
            ] {
                let e = check(method, ws, Some(o), AccessCookie).unwrap_err();
                assert_eq!(e.status(), 403, "{method} {o}");
                assert!(e.to_string().contains(&format!("Origin {o} is neither this server's origin")), "{e}");
            }
            // The cookie without an Origin is refused; other credentials without one pass (curl).
            assert_eq!(check(method, ws, None, AccessCookie).unwrap_err().status(), 403);
            assert!(check(method, ws, None, Ambient).is_ok());
            // Dev auth and Access headers: a foreign Origin is still a browser on another site.
            assert_eq!(check(method, ws, Some("https://evil.example"), Ambient).unwrap_err().status(), 403);
            // Bearer tokens and stream tickets are not sent by a browser on its own.
            assert!(check(method, ws, Some("https://evil.example"), Explicit).is_ok());
        }
        assert!(check("POST", true, Some("https://evil.example"), AccessCookie).unwrap_err().to_string().contains("WebSocket"));
    }

    #[test]
    fn json_bodies_need_a_json_content_type() {
        assert!(check_json_body(Some("application/json"), b"{}").is_ok());
        assert!(check_json_body(Some("Application/JSON; charset=utf-8"), b"{}").is_ok());
        // No body: nothing to mistake for JSON.
        assert!(check_json_body(None, b"").is_ok());
        // Whitespace is a body: declared as anything but JSON, it is refused like any other.
        assert_eq!(check_json_body(Some("text/plain"), b"  \n").unwrap_err().status(), 415);
        for ct in [
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let e = check_json_body(ct, br#"{"title":"x"}"#).unwrap_err();
            assert_eq!(e.status(), 415, "{ct:?}");
            assert!(e.to_string().contains("Content-Type: application/json"), "{e}");
        }
    }

    #[test]
    fn the_assets_headers_file_matches() {
        // Workers static assets take their headers from dashboard/_headers (copied into dist);
        // it must say what this module says.
        let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dashboard/_headers")).unwrap();
        let lines: Vec<&str> = file.lines().map(str::trim).collect();
        assert!(lines.contains(&"/*"), "{file}");
        for want in [
            format!("Content-Security-Policy: {DASHBOARD_CSP}"),
            "X-Frame-Options: DENY".into(),
            "X-Content-Type-Options: nosniff".into(),
            "Referrer-Policy: no-referrer".into(),
        ] {
            assert!(lines.contains(&want.as_str()), "dashboard/_headers lacks {want:?}:\n{file}");
        }
        for directive in ["script-src 'self';", "style-src 'self';", "frame-ancestors 'none'", "base-uri 'none'", "connect-src 'self'"] {
            assert!(DASHBOARD_CSP.contains(directive));
        }
        assert!(!DASHBOARD_CSP.contains("unsafe-eval"));
    }
}
