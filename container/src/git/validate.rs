//! Validation of everything that ends up in a git argv or a filesystem path:
//! identifiers, branch names, repository URLs and workspace-relative paths.
//!
//! Ids, branch names and URLs are checked by `gastown_protocol::validate`, the very functions
//! the Worker's API runs when a rig is created, so the two sides cannot drift; this module only
//! adapts their errors and keeps the container-only path checks.
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

pub use gastown_protocol::validate::{redact_url, GitUrl, UrlKind};

/// The shared validators' error under this crate's static label (the same label was passed
/// to them as the field name).
fn shared(what: &'static str) -> impl Fn(gastown_protocol::Invalid) -> ValidationError {
    move |e| ValidationError { what, value: e.value, reason: e.reason }
}

/// Ids used as path components and map keys (rig, town, agent, bead ids); see
/// `gastown_protocol::validate::id`.
pub fn validate_id(what: &'static str, value: &str) -> Result<(), ValidationError> {
    gastown_protocol::validate::id(what, value).map_err(shared(what))
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

/// Branch names; see `gastown_protocol::validate::branch`.
pub fn validate_branch(value: &str) -> Result<(), ValidationError> {
    gastown_protocol::validate::branch("branch name", value).map_err(shared("branch name"))
}

/// Repository URLs; see `gastown_protocol::validate::git_url`. Local repositories are always
/// allowed here: whether a deployment may use them is decided (and enforced) by the Worker when
/// the rig is created, and the e2e tests run the container against local bare repositories.
pub fn validate_url(value: &str) -> Result<GitUrl, ValidationError> {
    gastown_protocol::validate::git_url("git url", value, true).map_err(shared("git url"))
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
    fn slugs() {
        assert_eq!(slug("name", "Toast 2").unwrap(), "toast-2");
        assert_eq!(slug("name", "--Max__Power--").unwrap(), "max-power");
        assert!(slug("name", "!!!").is_err());
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

/// The drift table shared with the API's tests: the container refuses and accepts exactly what
/// the API does when a rig is created.
#[cfg(test)]
mod drift {
    use super::*;

    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/gastown-protocol/testdata/drift_cases.rs"));

    fn check(field: &str, value: &str) -> Result<(), ValidationError> {
        match field {
            "git_url" => validate_url(value).map(|_| ()),
            "default_branch" => validate_branch(value),
            other => panic!("unknown field {other}"),
        }
    }

    #[test]
    fn same_table_as_the_api() {
        for (field, value) in DRIFT_REFUSED {
            let e = check(field, value).unwrap_err();
            assert!(!e.reason.is_empty(), "{field} {value:?}");
        }
        for (field, value) in BOTH_ACCEPT {
            check(field, value).unwrap_or_else(|e| panic!("{field} {value:?}: {e}"));
        }
    }
}
