//! The validators both sides run on values that end up in a git argv or a filesystem path:
//! git URLs, branch names, ids and agent/rig names.
//!
//! The rules are the container's (the stricter side: it is the one that hands these values to
//! git), so anything the API accepts the container can use. Values are treated as hostile:
//! anything that could be read as an option (leading `-`), escape a directory (`..`), smuggle
//! credentials into a URL or pick an exotic git transport (`http://`, `ext::`, `fd::`, an ssh
//! host that is really `-oProxyCommand=…`) is refused. Every error names the field it is about.

/// A refused value: which field, the value as it may be shown (URL credentials redacted, at most
/// 200 characters) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {reason}")]
pub struct Invalid {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl Invalid {
    fn new(field: &str, value: &str, reason: impl Into<String>) -> Self {
        Invalid { field: field.to_string(), value: value.chars().take(200).collect(), reason: reason.into() }
    }
}

pub const MAX_ID: usize = 128;
pub const MAX_NAME: usize = 64;
pub const MAX_BRANCH: usize = 200;
pub const MAX_GIT_URL: usize = 2048;

/// Ids used as path components and map keys (rig, town, agent, bead ids):
/// 1-128 of `[A-Za-z0-9._-]`, starting with a letter or digit, no `..`.
pub fn id(field: &str, value: &str) -> Result<(), Invalid> {
    let err = |r: String| Err(Invalid::new(field, value, r));
    if value.is_empty() || value.len() > MAX_ID {
        return err(format!("must be 1-{MAX_ID} characters"));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return err("must start with a letter or digit".into());
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return err(format!("must not contain {c:?}; only letters, digits, '.', '_' and '-'"));
    }
    if value.contains("..") {
        return err("must not contain '..'".into());
    }
    Ok(())
}

/// Agent, rig and town names: 1-64 of `[A-Za-z0-9._-]`, no leading `.` or `-`, no `..`. They
/// become directory names and appear in role paths like `<rig>/refinery` and in branch names.
pub fn name(field: &str, value: &str) -> Result<(), Invalid> {
    let err = |r: &str| Err(Invalid::new(field, value, r));
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(Invalid::new(field, value, format!("must be 1-{MAX_NAME} characters")));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return err("may contain only letters, digits, '.', '_' and '-'");
    }
    if value.starts_with(['.', '-']) || value.contains("..") {
        return err("must not start with '.' or '-' or contain '..'");
    }
    Ok(())
}

/// Branch names per `git check-ref-format --branch`, plus: no leading `-` (never an option),
/// not `HEAD` or `@`, ASCII only (git would take more, but these names travel in argv, paths
/// and logs on both sides).
pub fn branch(field: &str, value: &str) -> Result<(), Invalid> {
    let err = |r: String| Err(Invalid::new(field, value, format!("is not a valid branch name: {r}")));
    if value.is_empty() || value.len() > MAX_BRANCH {
        return err(format!("must be 1-{MAX_BRANCH} characters"));
    }
    if value.starts_with('-') {
        return err("must not start with '-'".into());
    }
    if value == "@" || value == "HEAD" {
        return err("is reserved".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return err(format!("must not contain {c:?} (only ASCII without spaces, control characters or any of ~^:?*[\\)"));
    }
    if value.contains("..") || value.contains("@{") || value.contains("//") {
        return err("must not contain '..', '@{' or '//'".into());
    }
    if value.starts_with('/') || value.ends_with('/') || value.ends_with('.') {
        return err("must not start or end with '/' or end with '.'".into());
    }
    if value.split('/').any(|part| part.starts_with('.') || part.ends_with(".lock")) {
        return err("no component may start with '.' or end with '.lock'".into());
    }
    Ok(())
}

/// Transport of a validated repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlKind {
    /// `https://host[:port]/path`; `authority` is `host[:port]`, both lower-cased.
    Https { authority: String, host: String },
    /// `ssh://[user@]host[:port]/path` or scp-style `user@host:path`.
    Ssh,
    /// `file:///abs/path`.
    File,
    /// `/abs/path` (a local, usually bare, repository).
    LocalPath,
}

/// A git URL that passed [`git_url`].
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

/// Host characters: DNS names and bracketed IPv6 literals. Never a leading `-` (ssh would read
/// `-oProxyCommand=…` as an option).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
}

/// `host[:port]` → host, if the port (when present) is a number 1-65535.
fn host_of(authority: &str) -> Option<&str> {
    // A bracketed IPv6 literal has colons of its own: the port, if any, follows the `]`.
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|_| authority.find(']')) {
        let rest = &authority[end + 1..];
        (&authority[..=end], if rest.is_empty() { None } else { Some(rest.strip_prefix(':')?) })
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (port_ok && valid_host(host)).then_some(host)
}

/// Git remotes the container can clone: `https://`, `ssh://`, scp-style `user@host:path`, and —
/// only when `allow_local` (development) — `file:///abs/path` and absolute paths (local bare
/// repositories). Refuses credentials in the URL (tokens belong in the town config's
/// `git_auth`), whitespace and control characters, a leading `-`, `..` path segments and every
/// other transport (`http://`, `ext::`, `fd::`, …). Errors never echo URL credentials.
pub fn git_url(field: &str, value: &str, allow_local: bool) -> Result<GitUrl, Invalid> {
    let shown = redact_url(value);
    let err = |r: &str| Err(Invalid::new(field, &shown, r));
    if value.is_empty() || value.len() > MAX_GIT_URL {
        return err("must be 1-2048 characters");
    }
    if value.starts_with('-') {
        return err("must not start with '-'");
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err("must not contain whitespace or control characters");
    }
    let has_dotdot = |path: &str| path.split('/').any(|seg| seg == "..");
    let ok = |kind| Ok(GitUrl { raw: value.to_string(), kind });

    if let Some(rest) = value.strip_prefix("https://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return err("must not embed credentials; put tokens in the town config's git_auth");
        }
        let Some(host) = host_of(authority) else { return err("must name a valid host[:port]") };
        if path.is_empty() || has_dotdot(path) {
            return err("must name a repository path without '..', e.g. https://github.com/org/repo.git");
        }
        return ok(UrlKind::Https { authority: authority.to_ascii_lowercase(), host: host.to_ascii_lowercase() });
    }
    if let Some(rest) = value.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = match authority.rsplit_once('@') {
            Some((user, host)) => {
                if user.contains(':') {
                    return err("must not embed credentials (a password in the URL)");
                }
                if user.is_empty()
                    || user.starts_with('-')
                    || !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return err("ssh:// URL must be ssh://[user@]host[:port]/path with a plain user name");
                }
                host
            }
            None => authority,
        };
        if host_of(host_port).is_none() {
            return err("ssh:// URL must be ssh://[user@]host[:port]/path with a valid host and port");
        }
        if path.is_empty() || has_dotdot(path) {
            return err("must name a repository path without '..'");
        }
        return ok(UrlKind::Ssh);
    }
    if value.starts_with("file://") || value.starts_with('/') {
        if !allow_local {
            return err("local repositories (file:// or a path) are allowed only in development");
        }
        if let Some(path) = value.strip_prefix("file://") {
            if !path.starts_with('/') || has_dotdot(path) {
                return err("file:// URLs need an absolute path without '..'");
            }
            return ok(UrlKind::File);
        }
        if has_dotdot(value) {
            return err("must not contain '..' components");
        }
        return ok(UrlKind::LocalPath);
    }
    // scp-like `user@host:path`. Anything else with "::" or "://" is another transport, and a
    // bare "host:path" is too easily confused with a path.
    if !value.contains("://") && !value.contains("::") {
        if let Some((user_host, path)) = value.split_once(':') {
            if let Some((user, host)) = user_host.split_once('@') {
                let ok_user = !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                let ok_host = valid_host(host) && !host.contains(':');
                if ok_user && ok_host && !path.is_empty() && !path.starts_with('-') && !has_dotdot(path) {
                    return ok(UrlKind::Ssh);
                }
                return err("invalid user@host:path form");
            }
        }
    }
    err("must be an https://, ssh:// or user@host:path git URL (file:// and absolute paths only in development)")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["rig1", "a.b-c_d", "0f3e2a9c-1b2c-4d5e-8f90-123456789abc"] {
            id("rig_id", ok).unwrap();
        }
        for bad in ["", "../x", "a/b", "-x", ".x", "a..b", "a b", "a\nb", "ä", &"x".repeat(129)] {
            let e = id("rig_id", bad).unwrap_err();
            assert!(e.to_string().starts_with("rig_id: "), "{e}");
        }
    }

    #[test]
    fn names() {
        name("name", "gas-town_1.0").unwrap();
        for bad in ["", "-x", ".x", "a/b", "a..b", "a b", "é", &"x".repeat(65)] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branches() {
        for ok in ["main", "gt/toast/gt-abc12", "release-1.2", "feature/x_y", "HEADS"] {
            branch("branch", ok).unwrap();
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
            "café",
        ] {
            let e = branch("default_branch", bad).unwrap_err();
            assert!(e.to_string().starts_with("default_branch: "), "{e}");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://github.com/org/repo.git",
            "https://git.example.com:8443/org/repo",
            "https://[::1]:8443/org/repo",
            "ssh://git@github.com/org/repo.git",
            "ssh://github.com:22/org/repo.git",
            "ssh://git@github.com:22/org/repo.git",
            "git@github.com:org/repo.git",
        ] {
            git_url("git_url", ok, false).unwrap();
        }
        for local in ["file:///srv/git/repo.git", "/srv/git/repo.git"] {
            git_url("git_url", local, true).unwrap();
            let e = git_url("git_url", local, false).unwrap_err();
            assert!(e.reason.contains("only in development"), "{e}");
        }
        for bad in [
            "",
            "-uhttps://x/y",
            "--upload-pack=touch /tmp/x",
            "http://github.com/org/repo",
            "https://user:pass@github.com/org/repo",
            "https://ghp_token@github.com/org/repo",
            "ssh://user:pw@host/repo",
            "ssh://-oProxyCommand=x/y",
            "ssh://git@-oProxyCommand=x/y",
            "ssh://host:notaport/x",
            "ssh://a@b@host/x",
            "https://host:notaport/x",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "https://github.com/org/repo with space",
            "https://github.com/org/repo\n",
            "https://github.com/../etc",
            "https://github.com",
            "file://relative/path",
            "/srv/../etc/passwd",
            "relative/path",
            "host:path",
            "git@-oProxyCommand=x:repo",
            "git@github.com:-oProxyCommand=x",
            "https://-host/repo",
            "https:///nohost",
        ] {
            let e = git_url("git_url", bad, true).unwrap_err();
            assert!(e.to_string().starts_with("git_url: "), "{bad:?}: {e}");
        }
        let e = git_url("git_url", "https://user:s3cret@github.com/org/repo", true).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        match git_url("git_url", "https://GitHub.com:443/o/r", false).unwrap().kind() {
            UrlKind::Https { authority, host } => {
                assert_eq!(authority, "github.com:443");
                assert_eq!(host, "github.com");
            }
            other => panic!("{other:?}"),
        }
    }
}
