//! Validation of everything that ends up in a git argv or a filesystem path:
//! identifiers, branch names, repository URLs and workspace-relative paths.
//!
//! These values come from the Worker (ultimately from users and agents), so
//! they are treated as hostile: anything that could be read as an option
//! (leading `-`), escape the workspace (`..`), smuggle credentials into a URL or
//! pick an exotic git transport is refused before git ever sees it.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct ValidationError {
    pub what: &'static str,
    /// The offending value, with any URL credentials redacted.
    pub value: String,
    pub reason: String,
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError { what, value: value.chars().take(200).collect(), reason: reason.into() }
}

/// Ids used as path components and map keys (rig, town, agent, bead ids):
/// 1-128 of `[A-Za-z0-9._-]`, starting with a letter or digit, no `..`.
pub fn validate_id(what: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > 128 {
        return Err(invalid(what, value, "must be 1-128 characters"));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(what, value, "must start with a letter or digit"));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(what, value, format!("character {c:?} not allowed")));
    }
    if value.contains("..") {
        return Err(invalid(what, value, "must not contain '..'"));
    }
    Ok(())
}

/// Lower-case slug of a display name, usable in branch names and paths
/// ("Toast 2" → "toast-2").
pub fn slug(what: &'static str, name: &str) -> Result<String, ValidationError> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(40).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        return Err(invalid(what, name, "has no letters or digits"));
    }
    Ok(out)
}

/// Branch names per `git check-ref-format --branch`, plus: no leading `-`, no
/// whitespace, ASCII only.
pub fn validate_branch(value: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "branch name";
    let err = |r: &str| Err(invalid(WHAT, value, r));
    if value.is_empty() || value.len() > 200 {
        return err("must be 1-200 characters");
    }
    if value.starts_with('-') {
        return err("must not start with '-'");
    }
    if value == "@" || value == "HEAD" {
        return err("is reserved");
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(invalid(WHAT, value, format!("character {c:?} not allowed")));
    }
    if value.contains("..") || value.contains("@{") || value.contains("//") {
        return err("must not contain '..', '@{' or '//'");
    }
    if value.starts_with('/') || value.ends_with('/') || value.ends_with('.') {
        return err("must not start or end with '/' or end with '.'");
    }
    for part in value.split('/') {
        if part.starts_with('.') || part.ends_with(".lock") {
            return err("no path component may start with '.' or end with '.lock'");
        }
    }
    Ok(())
}

/// Transport of a validated repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlKind {
    /// `https://host[:port]/path`; `authority` is `host[:port]`.
    Https { authority: String, host: String },
    /// `ssh://[user@]host[:port]/path` or scp-style `user@host:path`.
    Ssh,
    /// `file:///abs/path`.
    File,
    /// `/abs/path` (a local, usually bare, repository).
    LocalPath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    raw: String,
    kind: UrlKind,
}

impl GitUrl {
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn kind(&self) -> &UrlKind {
        &self.kind
    }
}

/// Accepts `https://`, `ssh://`, `user@host:path`, `file:///…` and absolute
/// local paths. Refuses credentials in the URL (they belong in the credential
/// file), whitespace/control characters, a leading `-`, `..` path segments and
/// every other transport (`http://`, `ext::`, `fd::`, …).
pub fn validate_url(value: &str) -> Result<GitUrl, ValidationError> {
    const WHAT: &str = "git url";
    let shown = redact_url(value);
    let err = |r: &str| Err(ValidationError { what: WHAT, value: shown.chars().take(200).collect(), reason: r.to_string() });
    if value.is_empty() || value.len() > 2048 {
        return err("must be 1-2048 characters");
    }
    if value.starts_with('-') {
        return err("must not start with '-'");
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err("must not contain whitespace or control characters");
    }
    let has_dotdot = |path: &str| path.split('/').any(|seg| seg == "..");

    if let Some(rest) = value.strip_prefix("https://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return err("credentials in the URL are not allowed; configure a token instead");
        }
        let host =
            authority.rsplit_once(':').map_or(authority, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { authority });
        if host.is_empty()
            || host.starts_with('-')
            || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        {
            return err("invalid host");
        }
        if path.is_empty() || has_dotdot(path) {
            return err("missing repository path or '..' segment");
        }
        return Ok(GitUrl {
            raw: value.to_string(),
            kind: UrlKind::Https { authority: authority.to_ascii_lowercase(), host: host.to_ascii_lowercase() },
        });
    }
    if let Some(rest) = value.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = match authority.rsplit_once('@') {
            Some((user, host)) => {
                if user.is_empty() || user.contains(':') || user.starts_with('-') {
                    return err("a password in the URL is not allowed");
                }
                host
            }
            None => authority,
        };
        if host.is_empty() || host.starts_with('-') {
            return err("invalid host");
        }
        if path.is_empty() || has_dotdot(path) {
            return err("missing repository path or '..' segment");
        }
        return Ok(GitUrl { raw: value.to_string(), kind: UrlKind::Ssh });
    }
    if let Some(path) = value.strip_prefix("file://") {
        if !path.starts_with('/') || has_dotdot(path) {
            return err("file:// URLs need an absolute path without '..'");
        }
        return Ok(GitUrl { raw: value.to_string(), kind: UrlKind::File });
    }
    if value.starts_with('/') {
        if has_dotdot(value) {
            return err("must not contain '..' segments");
        }
        return Ok(GitUrl { raw: value.to_string(), kind: UrlKind::LocalPath });
    }
    // scp-like `user@host:path`. Anything else with "::" or "://" is another
    // transport, and a bare "host:path" is too easily confused with a path.
    if !value.contains("://") && !value.contains("::") {
        if let Some((user_host, path)) = value.split_once(':') {
            if let Some((user, host)) = user_host.split_once('@') {
                let ok_user = !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                let ok_host =
                    !host.is_empty() && !host.starts_with('-') && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
                if ok_user && ok_host && !path.is_empty() && !path.starts_with('-') && !has_dotdot(path) {
                    return Ok(GitUrl { raw: value.to_string(), kind: UrlKind::Ssh });
                }
                return err("invalid user@host:path form");
            }
        }
    }
    err("unsupported URL; use https://, ssh://, user@host:path, file:// or an absolute path")
}

/// Replaces the user-info part of a URL so errors and logs never echo secrets.
pub fn redact_url(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, host)) = authority.rsplit_once('@') {
            let sep = if rest.contains('/') { "/" } else { "" };
            return format!("{scheme}://***@{host}{sep}{path}");
        }
    }
    value.to_string()
}

/// Joins a relative path under `root`, refusing absolute paths and any `..`.
pub fn join_within(root: &Path, relative: &str) -> Result<PathBuf, ValidationError> {
    const WHAT: &str = "path";
    if relative.is_empty() || relative.contains('\0') {
        return Err(invalid(WHAT, relative, "must be a non-empty path"));
    }
    let rel = Path::new(relative);
    let mut out = root.to_path_buf();
    for comp in rel.components() {
        match comp {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(WHAT, relative, "must not contain '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid(WHAT, relative, "must be relative")),
        }
    }
    Ok(out)
}

/// Lexical check that `path` lies strictly inside `root` (both absolute,
/// neither containing `..`). Used before anything destructive.
pub fn ensure_inside(root: &Path, path: &Path) -> Result<(), ValidationError> {
    let shown = path.display().to_string();
    let clean = |p: &Path| p.is_absolute() && p.components().all(|c| !matches!(c, Component::ParentDir | Component::CurDir));
    if !clean(root) || !clean(path) || path == root || !path.starts_with(root) {
        return Err(invalid("path", &shown, format!("must be inside {}", root.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["rig1", "a.b-c_d", "0f3e2a9c-1b2c-4d5e-8f90-123456789abc"] {
            validate_id("rig id", ok).unwrap();
        }
        for bad in ["", "../x", "a/b", "-x", ".x", "a..b", "a b", "a\nb", "ä"] {
            assert!(validate_id("rig id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("name", "Toast 2").unwrap(), "toast-2");
        assert_eq!(slug("name", "--Max__Power--").unwrap(), "max-power");
        assert!(slug("name", "!!!").is_err());
    }

    #[test]
    fn branches() {
        for ok in ["main", "gt/toast/gt-abc12", "release-1.2", "feature/x_y"] {
            validate_branch(ok).unwrap();
        }
        for bad in [
            "",
            "-f",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "x.lock",
            "a/.hidden",
            "/a",
            "a/",
            "a//b",
            "a.",
            "a@{1}",
            "@",
            "HEAD",
            "a\tb",
            "a\u{7f}",
        ] {
            assert!(validate_branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://github.com/org/repo.git",
            "https://git.example.com:8443/org/repo",
            "ssh://git@github.com/org/repo.git",
            "ssh://github.com:22/org/repo.git",
            "git@github.com:org/repo.git",
            "file:///srv/git/repo.git",
            "/srv/git/repo.git",
        ] {
            validate_url(ok).unwrap();
        }
        for bad in [
            "",
            "-uhttps://x/y",
            "--upload-pack=touch /tmp/x",
            "http://github.com/org/repo",
            "https://user:pass@github.com/org/repo",
            "https://ghp_token@github.com/org/repo",
            "ssh://user:pw@host/repo",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "https://github.com/org/repo with space",
            "https://github.com/org/repo\n",
            "https://github.com/../etc",
            "file://relative/path",
            "/srv/../etc/passwd",
            "relative/path",
            "host:path",
            "git@-oProxyCommand=x:repo",
            "https://-host/repo",
            "https:///nohost",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?}");
        }
        let e = validate_url("https://user:s3cret@github.com/org/repo").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        match validate_url("https://GitHub.com:443/o/r").unwrap().kind() {
            UrlKind::Https { authority, host } => {
                assert_eq!(authority, "github.com:443");
                assert_eq!(host, "github.com");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths() {
        let root = Path::new("/ws");
        assert_eq!(join_within(root, "a/b").unwrap(), PathBuf::from("/ws/a/b"));
        assert_eq!(join_within(root, "./a").unwrap(), PathBuf::from("/ws/a"));
        for bad in ["../x", "a/../../x", "/etc/passwd", "", "a\0b"] {
            assert!(join_within(root, bad).is_err(), "{bad:?}");
        }
        ensure_inside(root, Path::new("/ws/rigs/x")).unwrap();
        for bad in ["/ws", "/other", "/ws/../etc", "ws/x", "/wsx/a"] {
            assert!(ensure_inside(root, Path::new(bad)).is_err(), "{bad:?}");
        }
    }
}
