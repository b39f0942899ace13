//! HTTP plumbing shared by every handler: the incoming request as the router reads it, the
//! `{"success":…}` envelope (with the security headers of every API response), mapping errors
//! to statuses, reading bounded JSON bodies and typed query parameters.
//!
//! Both ends talk to the runtime's own `Request` and `Response` directly rather than through
//! `worker::Request`/`worker::Response`: those also read the request's `cf` object and its URL
//! twice, and build a reply with a dozen separate calls across the wasm boundary; here the
//! method, the URL and the headers object cost three crossings (each header value read is one
//! more) and a reply one.

use std::cell::OnceCell;

use gastown_core::{CoreError, CoreResult};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use worker::worker_sys::web_sys;
use worker::Headers;

#[wasm_bindgen(
    inline_js = "export function gastown_response(status, body, headers) { return new Response(body.slice(), { status, headers }); }"
)]
extern "C" {
    /// A response with the given status, headers (`[[name, value], …]`) and a copy of `body`
    /// (a view of wasm memory, which the next allocation may move). Throws for a status the
    /// runtime refuses (outside 200–599), which no route answers with.
    #[wasm_bindgen(catch)]
    fn gastown_response(status: u16, body: &[u8], headers: &JsValue) -> Result<web_sys::Response, JsValue>;
}

/// The request as the router and handlers read it: its method, and the handle of its headers,
/// fetched once.
pub struct Incoming {
    raw: web_sys::Request,
    headers: Headers,
    method: String,
}

impl Incoming {
    pub fn new(raw: web_sys::Request) -> Self {
        Incoming { headers: Headers(raw.headers()), method: raw.method(), raw }
    }

    pub fn url(&self) -> String {
        self.raw.url()
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// The whole body (the caller bounds it first by `content-length` where it can).
    pub async fn bytes(&self) -> worker::Result<Vec<u8>> {
        let buffer = worker::wasm_bindgen_futures::JsFuture::from(self.raw.array_buffer()?).await?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

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

pub fn json_response(status: u16, body: &Value) -> web_sys::Response {
    text_response(status, body.to_string())
}

thread_local! {
    /// The headers of every API response as the runtime's `[[name, value], …]`, built once.
    static API_HEADERS: OnceCell<JsValue> = const { OnceCell::new() };
}

fn text_response(status: u16, body: String) -> web_sys::Response {
    API_HEADERS.with(|cell| {
        let headers = cell.get_or_init(|| {
            let pairs = [("content-type", "application/json; charset=utf-8"), ("cache-control", "no-store")];
            let list = js_sys::Array::new();
            for (name, value) in pairs.into_iter().chain(gastown_core::web::api_security_headers()) {
                list.push(&js_sys::Array::of2(&name.into(), &value.into()));
            }
            list.into()
        });
        gastown_response(status, body.as_bytes(), headers).unwrap_or_else(|e| {
            worker::console_error!("building a {status} response: {e:?}");
            let fallback = br#"{"success":false,"error":"internal error"}"#;
            gastown_response(500, fallback, headers).expect("a 500 with a JSON body is always a valid response")
        })
    })
}

/// `data` in the success envelope.
pub fn ok(status: u16, data: Body) -> web_sys::Response {
    match data {
        Body::Json(v) => json_response(status, &json!({"success": true, "data": v})),
        Body::Raw(text) => text_response(status, format!("{{\"success\":true,\"data\":{text}}}")),
    }
}

/// `data` without the envelope (`/health`, the OpenAPI document).
pub fn bare(status: u16, data: Body) -> web_sys::Response {
    match data {
        Body::Json(v) => json_response(status, &v),
        Body::Raw(text) => text_response(status, text),
    }
}

pub fn error(e: &CoreError) -> web_sys::Response {
    if let CoreError::Internal(m) = e {
        // The detail goes to the log, not to the caller.
        worker::console_error!("internal error: {m}");
        return json_response(500, &json!({"success": false, "error": "internal error"}));
    }
    json_response(e.status(), &json!({"success": false, "error": e.to_string()}))
}

/// Reads and decodes the JSON body, refusing anything over [`MAX_BODY_BYTES`] (413) and a
/// non-empty body not sent as `application/json` (415).
pub async fn body<T: DeserializeOwned>(req: &Incoming) -> CoreResult<T> {
    if let Some(len) = req.header("content-length") {
        if len.parse::<usize>().is_ok_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
    }
    let bytes = req.bytes().await.map_err(|_| CoreError::bad_request("could not read the request body"))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    gastown_core::web::check_json_body(req.header("content-type").as_deref(), &bytes)?;
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
