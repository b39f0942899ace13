//! Field validation shared by every entry point: lengths, names, git URLs and ref names. Each
//! check returns a 400 that names the field, so a caller always learns what to fix.

use crate::error::{CoreError, CoreResult};

pub const MAX_TITLE: usize = 500;
pub const MAX_BODY: usize = 64 * 1024;
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL: usize = 64;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_NAME: usize = 64;

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

/// Rig and town names: letters, digits, `.`, `_`, `-`; no leading dot or dash (they become
/// directory names and appear in role paths like `<rig>/refinery`).
pub fn name(field: &str, v: &str) -> CoreResult<()> {
    if v.is_empty() || v.len() > MAX_NAME {
        return Err(CoreError::bad(field, format!("must be 1-{MAX_NAME} characters")));
    }
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(CoreError::bad(field, "may contain only letters, digits, '.', '_' and '-'"));
    }
    if v.starts_with(['.', '-']) || v.contains("..") {
        return Err(CoreError::bad(field, "must not start with '.' or '-' or contain '..'"));
    }
    Ok(())
}

/// A display name (towns): free text but bounded and single-line.
pub fn display_name(field: &str, v: &str) -> CoreResult<()> {
    text(field, v, MAX_NAME)?;
    if v.chars().any(char::is_control) {
        return Err(CoreError::bad(field, "must be a single line without control characters"));
    }
    Ok(())
}

/// git's ref-name rules (git-check-ref-format), plus no leading `-` so it is never an option.
pub fn branch(field: &str, v: &str) -> CoreResult<()> {
    let bad = |m: &str| Err(CoreError::bad(field, format!("{v:?} is not a valid branch name: {m}")));
    if v.is_empty() || v.len() > 200 {
        return bad("must be 1-200 characters");
    }
    if v.starts_with('-') || v.starts_with('/') || v.ends_with('/') || v.ends_with('.') {
        return bad("must not start with '-' or '/' or end with '/' or '.'");
    }
    if v.contains("..") || v.contains("//") || v.contains("@{") || v == "@" {
        return bad("must not contain '..', '//' or '@{'");
    }
    if v.chars().any(|c| c.is_ascii_control() || c == ' ' || "~^:?*[\\".contains(c)) {
        return bad("must not contain spaces, control characters or any of ~^:?*[\\");
    }
    if v.split('/').any(|part| part.starts_with('.') || part.ends_with(".lock")) {
        return bad("no component may start with '.' or end with '.lock'");
    }
    Ok(())
}

/// Git remotes the container can clone: `https://`, `ssh://`, scp-style `user@host:path`, and —
/// outside production — `file://` URLs and absolute paths (local bare repositories).
pub fn git_url(field: &str, v: &str, allow_local: bool) -> CoreResult<()> {
    let bad = |m: &str| Err(CoreError::bad(field, m.to_string()));
    if v.is_empty() || v.len() > 2048 {
        return bad("must be 1-2048 characters");
    }
    if v.starts_with('-') {
        return bad("must not start with '-'");
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace or control characters");
    }
    if let Some(rest) = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://")) {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return bad("must not embed credentials; put tokens in the town config's git_auth");
        }
        if authority.is_empty() || rest.len() <= authority.len() + 1 {
            return bad("must name a host and a repository path, e.g. https://github.com/org/repo.git");
        }
        return Ok(());
    }
    if let Some(rest) = v.strip_prefix("ssh://") {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() || authority.contains(':') && authority.split(':').nth(1).is_some_and(|p| p.parse::<u16>().is_err()) {
            return bad("ssh:// URL must be ssh://[user@]host[:port]/path");
        }
        if authority.matches('@').count() > 1 {
            return bad("must not embed credentials");
        }
        return Ok(());
    }
    if v.starts_with("file://") || v.starts_with('/') {
        if !allow_local {
            return bad("local repositories (file:// or a path) are not allowed in production");
        }
        let path = v.trim_start_matches("file://");
        if !path.starts_with('/') {
            return bad("file:// URLs need an absolute path");
        }
        if path.split('/').any(|p| p == "..") {
            return bad("must not contain '..' components");
        }
        return Ok(());
    }
    // scp-like: user@host:path
    if let Some((userhost, path)) = v.split_once(':') {
        let host_ok = userhost.split_once('@').is_some_and(|(u, h)| !u.is_empty() && !h.is_empty() && !h.contains('@'));
        if host_ok && !path.is_empty() && !path.starts_with('-') {
            return Ok(());
        }
    }
    bad("must be an https://, ssh:// or user@host:path git URL")
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
    fn git_urls() {
        for ok in [
            "https://github.com/org/repo.git",
            "git@github.com:org/repo.git",
            "ssh://git@github.com:22/org/repo.git",
            "file:///tmp/repo.git",
            "/srv/git/repo.git",
        ] {
            assert!(git_url("git_url", ok, true).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-uhttps://x",
            "https://user:pw@github.com/org/repo",
            "https://github.com",
            "ftp://x/y",
            "file://relative/path",
            "/srv/../etc/repo",
            "https://github.com/a b",
            "git@github.com:-oProxyCommand=x",
            "not a url",
        ] {
            let e = git_url("git_url", bad, true).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.to_string().starts_with("git_url:"), "{bad}: {e}");
        }
        assert!(git_url("git_url", "file:///tmp/r.git", false).is_err());
        assert!(git_url("git_url", "/tmp/r.git", false).is_err());
    }

    #[test]
    fn branches() {
        for ok in ["main", "gt/nux/gt-4k2x9", "release-1.2", "feature/a_b"] {
            assert!(branch("b", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "a~1", "x.lock", "a/.hidden", "/a", "a/", "a//b", "a@{1}", "a\\b"] {
            assert!(branch("b", bad).is_err(), "{bad}");
        }
    }

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
