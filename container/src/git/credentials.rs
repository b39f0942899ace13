//! HTTPS credentials for git, kept where they cannot leak.
//!
//! A token from the town config is written to a per-rig file under
//! `<workspace>/.credentials/` (directory 0700, file 0600), outside every
//! worktree so no agent can commit it. Git finds it through a
//! `credential.helper=store --file=<path>` setting passed in `GIT_CONFIG_*`
//! environment variables: the token never appears in argv (visible in `ps`), in
//! a remote URL, or in any `.git/config`.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::Deserialize;

use super::validate::{GitUrl, UrlKind};
// Git runs non-`!` helpers through the shell, so the credential file path is shell-quoted.
use crate::text::{percent_encode, shell_quote};

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// Git hosting tokens from the town config (`git_auth`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GitAuth {
    pub github_token: Option<SecretString>,
    pub gitlab_token: Option<SecretString>,
    /// Self-hosted GitLab base URL; its host (and only it) gets the GitLab token. Default
    /// `https://gitlab.com`.
    pub gitlab_instance_url: Option<String>,
    /// GitHub Enterprise base URL; its host (and only it) gets the GitHub token. Default
    /// `https://github.com`.
    pub github_url: Option<String>,
}

/// The tokens as the town config carries them, wrapped so they never show in `Debug` output.
impl From<&gastown_protocol::container::GitAuth> for GitAuth {
    fn from(a: &gastown_protocol::container::GitAuth) -> Self {
        GitAuth {
            github_token: a.github_token.clone().map(SecretString::new),
            gitlab_token: a.gitlab_token.clone().map(SecretString::new),
            gitlab_instance_url: a.gitlab_instance_url.clone(),
            github_url: a.github_url.clone(),
        }
    }
}

/// The lower-cased host of a configured base URL (`https://host[:port]/…`).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Picks the username/token pair git should present for `url`, if any. A token goes to its
/// forge's configured host and nowhere else: the GitHub token (`x-access-token`) only to
/// `github.com` or the configured GitHub Enterprise host, the GitLab token (`oauth2`) only to
/// `gitlab.com` or the configured instance. Any other host gets nothing.
pub(crate) fn select<'a>(auth: &'a GitAuth, url: &GitUrl) -> Option<(&'static str, &'a str)> {
    let UrlKind::Https { host, .. } = url.kind() else {
        return None;
    };
    let host = host.to_ascii_lowercase();
    let github = auth.github_url.as_deref().map_or(Some("github.com".to_string()), host_of);
    let gitlab = auth.gitlab_instance_url.as_deref().map_or(Some("gitlab.com".to_string()), host_of);
    let (user, token) = if github.as_deref() == Some(host.as_str()) {
        ("x-access-token", auth.github_token.as_ref())
    } else if gitlab.as_deref() == Some(host.as_str()) {
        ("oauth2", auth.gitlab_token.as_ref())
    } else {
        return None;
    };
    token.filter(|t| !t.is_empty()).map(|t| (user, t.expose()))
}

/// Writes (atomically, 0600) the store-format line for `url`, or removes a
/// stale file when there is no token. Returns whether a file now exists.
pub(crate) fn sync_file(path: &Path, auth: &GitAuth, url: &GitUrl) -> std::io::Result<bool> {
    let Some((user, token)) = select(auth, url) else {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        return Ok(false);
    };
    let UrlKind::Https { authority, .. } = url.kind() else {
        return Ok(false);
    };
    let dir = path.parent().ok_or_else(|| std::io::Error::other("credential path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let line = format!("https://{}:{}@{}\n", percent_encode(user), percent_encode(token), authority);
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("cred"), std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(line.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// `credential.helper` values that make git use exactly this file: an empty
/// value first resets helpers inherited from system config.
pub(crate) fn helper_config(path: &Path) -> [(String, String); 2] {
    [
        ("credential.helper".to_string(), String::new()),
        ("credential.helper".to_string(), format!("store --file={}", shell_quote(&path.to_string_lossy()))),
    ]
}

/// `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` for `pairs`.
pub(crate) fn config_env(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = Vec::with_capacity(pairs.len() * 2 + 1);
    env.push(("GIT_CONFIG_COUNT".to_string(), pairs.len().to_string()));
    for (i, (k, v)) in pairs.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), k.clone()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), v.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::validate::validate_url;

    fn auth() -> GitAuth {
        GitAuth {
            github_token: Some(SecretString::new("gh_tok")),
            gitlab_token: Some(SecretString::new("gl_tok")),
            gitlab_instance_url: Some("https://code.example.org".into()),
            github_url: None,
        }
    }

    #[test]
    fn picks_the_right_token_for_exactly_the_configured_hosts() {
        let a = auth();
        let gh = validate_url("https://github.com/o/r").unwrap();
        assert_eq!(select(&a, &gh), Some(("x-access-token", "gh_tok")));
        let own = validate_url("https://code.example.org/o/r").unwrap();
        assert_eq!(select(&a, &own), Some(("oauth2", "gl_tok")));
        // With an instance configured, gitlab.com is just another host.
        let gl = validate_url("https://gitlab.com/o/r").unwrap();
        assert_eq!(select(&a, &gl), None);
        let default_gl = GitAuth { gitlab_instance_url: None, ..auth() };
        assert_eq!(select(&default_gl, &gl), Some(("oauth2", "gl_tok")));
        // Look-alikes and "anything else" get nothing.
        for other in [
            "https://127.0.0.1/o/r",
            "https://github.com.evil.example/o/r",
            "https://gitlab.evil.example/o/r",
            "https://evil-github.com/o/r",
        ] {
            assert_eq!(select(&default_gl, &validate_url(other).unwrap()), None, "{other}");
        }
        let ghe = GitAuth { github_url: Some("https://ghe.corp.example/api/v3".into()), ..auth() };
        assert_eq!(select(&ghe, &validate_url("https://GHE.corp.example/o/r").unwrap()), Some(("x-access-token", "gh_tok")));
        assert_eq!(select(&ghe, &gh), None, "with an Enterprise host configured, github.com gets nothing");
        let ssh = validate_url("git@github.com:o/r.git").unwrap();
        assert_eq!(select(&a, &ssh), None);
        assert_eq!(select(&GitAuth::default(), &gh), None);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let shown = format!("{:?}", auth());
        assert!(!shown.contains("gh_tok") && !shown.contains("gl_tok"), "{shown}");
    }

    #[test]
    fn file_is_private_and_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds").join("rig1");
        let a = GitAuth { github_token: Some(SecretString::new("a b/c")), ..Default::default() };
        let url = validate_url("https://github.com:8443/o/r").unwrap();
        assert!(sync_file(&path, &a, &url).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "https://x-access-token:a%20b%2Fc@github.com:8443\n");
        assert!(!sync_file(&path, &GitAuth::default(), &url).unwrap());
        assert!(!path.exists());
    }
}
