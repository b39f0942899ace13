//! Decoding request JSON into typed inputs with errors a person can act on: the message names
//! the field path (`input.priority: unknown variant ...`) and the status is always 400.

use serde::de::DeserializeOwned;

use crate::error::{CoreError, CoreResult};

fn bad(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> CoreError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let field = match (prefix.is_empty(), path.is_empty()) {
        (true, true) => None,
        (true, false) => Some(path),
        (false, true) => Some(prefix.to_string()),
        (false, false) => Some(format!("{prefix}.{path}")),
    };
    let inner = e.into_inner();
    let msg = inner.to_string();
    // serde appends " at line 1 column 17"; the field path already says where.
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    CoreError::BadRequest { field, message: msg }
}

pub fn from_value<T: DeserializeOwned>(prefix: &str, v: serde_json::Value) -> CoreResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| bad(prefix, e))
}

/// Parses a request body, which must be a JSON object. Empty bodies parse as `{}` so
/// all-optional inputs need no body.
pub fn from_body<T: DeserializeOwned>(body: &[u8]) -> CoreResult<T> {
    // No body at all reads as `{}` (routes whose fields all have defaults); anything else must be
    // JSON — whitespace alone is not (the API fuzz test sends it).
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| CoreError::bad_request(format!("request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(CoreError::bad_request("request body must be a JSON object"));
    }
    from_value("", v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        title: String,
        n: Option<u32>,
        inner: Option<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        kind: crate::model::BeadStatus,
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_body::<In>(br#"{"title": 5}"#).unwrap_err().to_string();
        assert!(e.starts_with("title: invalid type"), "{e}");
        let e = from_body::<In>(br#"{"title": "x", "inner": {"kind": "done"}}"#).unwrap_err().to_string();
        assert!(e.starts_with("inner.kind: unknown variant `done`"), "{e}");
        let e = from_body::<In>(br#"{"title": "x", "extra": 1}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = from_body::<In>(b"{not json").unwrap_err().to_string();
        assert!(e.starts_with("request body is not valid JSON"), "{e}");
        let e = from_body::<In>(b"[1]").unwrap_err().to_string();
        assert_eq!(e, "request body must be a JSON object");
        let e = from_body::<In>(b"").unwrap_err().to_string();
        assert!(e.contains("missing field `title`"), "{e}");
        // Whitespace is not an empty body: it is not JSON.
        let e = from_body::<In>(b" ").unwrap_err().to_string();
        assert!(e.starts_with("request body is not valid JSON"), "{e}");
        assert!(from_body::<In>(br#"{"title":"ok","n":3}"#).is_ok());
        let e = from_body::<In>(br#"{"title":"ok","n":-3}"#).unwrap_err().to_string();
        assert!(e.starts_with("n: invalid value"), "{e}");
    }
}
