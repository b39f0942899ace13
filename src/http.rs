//! HTTP plumbing shared by every handler: the `{"success":…}` envelope (with the security
//! headers of every API response), mapping errors to statuses, reading bounded JSON bodies and
//! typed query parameters.

use gastown_core::{CoreError, CoreResult};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use worker::{Headers, Request, Response};

/// Larger bodies are refused before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A reply's data: a value built in the Worker, or JSON text a Durable Object produced, passed
/// on without being read (most routes: the store serialises once and nobody parses it again).
pub enum Body {
    Json(Value),
    Raw(String),
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Json(v)
    }
}

pub fn json_response(status: u16, body: &Value) -> worker::Result<Response> {
    text_response(status, body.to_string())
}

fn text_response(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    for (name, value) in gastown_core::web::api_security_headers() {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(body.into_bytes())?.with_status(status).with_headers(headers))
}

/// `data` in the success envelope.
pub fn ok(status: u16, data: Body) -> worker::Result<Response> {
    match data {
        Body::Json(v) => json_response(status, &json!({"success": true, "data": v})),
        Body::Raw(text) => text_response(status, format!("{{\"success\":true,\"data\":{text}}}")),
    }
}

/// `data` without the envelope (`/health`, the OpenAPI document).
pub fn bare(status: u16, data: Body) -> worker::Result<Response> {
    match data {
        Body::Json(v) => json_response(status, &v),
        Body::Raw(text) => text_response(status, text),
    }
}

pub fn error(e: &CoreError) -> worker::Result<Response> {
    if let CoreError::Internal(m) = e {
        // The detail goes to the log, not to the caller.
        worker::console_error!("internal error: {m}");
        return json_response(500, &json!({"success": false, "error": "internal error"}));
    }
    json_response(e.status(), &json!({"success": false, "error": e.to_string()}))
}

/// Reads and decodes the JSON body, refusing anything over [`MAX_BODY_BYTES`] (413) and a
/// non-empty body not sent as `application/json` (415).
pub async fn body<T: DeserializeOwned>(req: &mut Request) -> CoreResult<T> {
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.parse::<usize>().is_ok_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
    }
    let bytes = req.bytes().await.map_err(|_| CoreError::bad_request("could not read the request body"))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    gastown_core::web::check_json_body(req.headers().get("content-type").ok().flatten().as_deref(), &bytes)?;
    gastown_core::json::from_body(&bytes)
}

fn too_large() -> CoreError {
    CoreError::PayloadTooLarge(format!("body: request body is larger than {MAX_BODY_BYTES} bytes"))
}

/// The query string as typed look-ups.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn from(url: &worker::Url) -> Query {
        Query(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// Decodes the non-empty parameters into `T` (an empty `?status=` means "no filter").
    pub fn decode<T: DeserializeOwned>(&self) -> CoreResult<T> {
        let pairs: Vec<(&str, &str)> = self.0.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let encoded = serde_urlencoded::to_string(&pairs).map_err(|e| CoreError::bad_request(format!("query: {e}")))?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            CoreError::bad(if field == "." { "query" } else { &field }, e.inner().to_string())
        })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

pub fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

/// Decodes a DO's typed reply.
pub fn decode<T: DeserializeOwned>(v: Value) -> CoreResult<T> {
    serde_json::from_value(v).map_err(|e| CoreError::Internal(format!("decoding a Durable Object reply: {e}")))
}
