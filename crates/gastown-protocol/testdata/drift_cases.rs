// The cases on which the API and the container used to disagree, and a few that both must
// accept. Included (`include!`) by the core's town-store tests (through `TownOp::AddRig`) and by
// the container's validator tests, so both sides are held to the same table.
// Each entry: (field, value). `git_url` values are tried as a rig's git URL, `default_branch`
// values as its default branch.

/// Refused by both: a 400 from the API, a validation error in the container.
const DRIFT_REFUSED: &[(&str, &str)] = &[
    ("git_url", "http://github.com/org/repo.git"),
    ("git_url", "ssh://-oProxyCommand=x/y"),
    ("git_url", "ssh://git@-oProxyCommand=x/y"),
    ("git_url", "ssh://host:notaport/x"),
    ("git_url", "https://host:notaport/x"),
    ("git_url", "https://user:pw@github.com/org/repo.git"),
    ("git_url", "https://ghp_token@github.com/org/repo.git"),
    ("git_url", "ssh://user:pw@host/repo.git"),
    ("git_url", "https://github.com/org/../etc"),
    ("git_url", "git@github.com:org/../etc"),
    ("git_url", "/srv/../etc/repo.git"),
    ("git_url", "-uhttps://github.com/org/repo.git"),
    ("git_url", "git@github.com:-oProxyCommand=x"),
    ("git_url", "ext::sh -c touch% /tmp/pwned"),
    ("default_branch", "HEAD"),
    ("default_branch", "café"),
    ("default_branch", "a..b"),
    ("default_branch", "-f"),
    ("default_branch", "--upload-pack=x"),
];

/// Accepted by both (local repositories: the API in development only).
const BOTH_ACCEPT: &[(&str, &str)] = &[
    ("git_url", "https://github.com/org/repo.git"),
    ("git_url", "https://git.example.com:8443/org/repo"),
    ("git_url", "ssh://git@github.com:22/org/repo.git"),
    ("git_url", "git@github.com:org/repo.git"),
    ("git_url", "file:///srv/git/repo.git"),
    ("git_url", "/srv/git/repo.git"),
    ("default_branch", "main"),
    ("default_branch", "release/1.2"),
];
