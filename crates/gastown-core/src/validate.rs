//! Field validation shared by every entry point: lengths, names, git URLs and ref names. Each
//! check returns a 400 that names the field, so a caller always learns what to fix. Names, branch
//! names and git URLs are checked by `gastown_protocol::validate`, the same functions the
//! container runs, so the API never accepts what the container would refuse.

use crate::error::{CoreError, CoreResult};

pub const MAX_TITLE: usize = 500;
pub const MAX_BODY: usize = 64 * 1024;
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL: usize = 64;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_NAME: usize = gastown_protocol::validate::MAX_NAME;

/// A required, trimmed-non-empty string of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> CoreResult<()> {
    if value.trim().is_empty() {
        return Err(CoreError::bad(field, "must not be empty"));
    }
    optional_text(field, Some(value), max)
}

pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> CoreResult<()> {
    if let Some(v) = value {
        let n = v.chars().count();
        if n > max {
            return Err(CoreError::bad(field, format!("is {n} characters long; the limit is {max}")));
        }
        if v.contains('\0') {
            return Err(CoreError::bad(field, "must not contain NUL characters"));
        }
    }
    Ok(())
}

pub fn labels(labels: &[String]) -> CoreResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(CoreError::bad("labels", format!("at most {MAX_LABELS} labels")));
    }
    for l in labels {
        text("labels", l, MAX_LABEL)?;
    }
    Ok(())
}

pub fn metadata(field: &str, v: &serde_json::Value) -> CoreResult<()> {
    if !v.is_object() {
        return Err(CoreError::bad(field, "must be a JSON object"));
    }
    let n = v.to_string().len();
    if n > MAX_METADATA_BYTES {
        return Err(CoreError::bad(field, format!("is {n} bytes; the limit is {MAX_METADATA_BYTES}")));
    }
    Ok(())
}

/// Rig, town and agent names (see `gastown_protocol::validate::name`).
pub fn name(field: &str, v: &str) -> CoreResult<()> {
    Ok(gastown_protocol::validate::name(field, v)?)
}

/// A display name (towns): free text but bounded and single-line.
pub fn display_name(field: &str, v: &str) -> CoreResult<()> {
    text(field, v, MAX_NAME)?;
    if v.chars().any(char::is_control) {
        return Err(CoreError::bad(field, "must be a single line without control characters"));
    }
    Ok(())
}

/// git's ref-name rules plus the container's own (see `gastown_protocol::validate::branch`).
pub fn branch(field: &str, v: &str) -> CoreResult<()> {
    Ok(gastown_protocol::validate::branch(field, v)?)
}

/// Git remotes the container can clone (see `gastown_protocol::validate::git_url`); local
/// repositories only when `allow_local` (development).
pub fn git_url(field: &str, v: &str, allow_local: bool) -> CoreResult<()> {
    gastown_protocol::validate::git_url(field, v, allow_local)?;
    Ok(())
}

/// Environment variable names the owner may set for agents. `GASTOWN_` is ours.
pub fn env_key(v: &str) -> CoreResult<()> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(CoreError::bad(&format!("env_vars.{v}"), "names must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if v.to_ascii_uppercase().starts_with("GASTOWN_") {
        return Err(CoreError::bad(&format!("env_vars.{v}"), "the GASTOWN_ prefix is reserved"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text() {
        assert!(name("name", "gas-town_1.0").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a..b", "a b", &"x".repeat(65)] {
            assert!(name("name", bad).is_err(), "{bad}");
        }
        assert!(text("title", "  ", 10).is_err());
        let e = text("title", &"é".repeat(11), 10).unwrap_err();
        assert!(e.to_string().contains("title") && e.to_string().contains("limit is 10"));
        assert!(display_name("name", "line\nbreak").is_err());
    }

    #[test]
    fn env_keys() {
        assert!(env_key("OPENAI_API_KEY").is_ok());
        assert!(env_key("_x1").is_ok());
        assert!(env_key("1X").is_err());
        assert!(env_key("A-B").is_err());
        assert!(env_key("gastown_token").is_err());
    }
}
