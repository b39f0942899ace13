//! How each real agent CLI (claude, codex, gemini, opencode, kilo) is prepared and started so
//! that it runs interactively under a PTY, as an unprivileged uid with a private HOME, against a
//! configured model endpoint, with no first-run dialog ever waiting for a person.
//!
//! Pure: no I/O. [`prepare`] returns the argv, the environment and the files to write under the
//! agent's HOME; the caller creates the directories and writes the files (owned by the agent's
//! uid, `0700` directories and `0600` files) before it spawns `argv`.
//!
//! * Secrets (the API key) only ever go into the environment (and, for claude, the last 20
//!   characters into `~/.claude.json`, which is how claude remembers that a custom key was
//!   approved); never into argv, which every local user can read in `/proc/<pid>/cmdline`.
//! * Telemetry, update checks and auto-updates are off for every CLI.
//! * Each CLI trusts exactly the agent's working directory and runs tools without asking: the
//!   agent is contained by its uid, not by the CLI's own sandbox or approval prompts.
//! * `base_url` is the API root without the version segment (`http://127.0.0.1:8080`, like
//!   `ANTHROPIC_BASE_URL`); a trailing `/v1` is tolerated. Each CLI gets the form it wants
//!   (`…/v1` for OpenAI-style clients, `…/v1beta` for Google's, the root for Anthropic's).
//!
//! What was verified against the real CLIs (versions in `container/agent-clis.json`), started
//! under a PTY as a uid without a passwd entry: see `/tmp/agent-cli-findings.md` from the
//! groundwork this module came from, summarised at each runtime below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// The runtimes [`prepare`] knows.
pub const RUNTIMES: &[&str] = &["claude", "codex", "gemini", "opencode", "kilo"];

/// Everything [`prepare`] needs to know about one agent start.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeInputs<'a> {
    /// `claude`, `codex`, `gemini`, `opencode` or `kilo`.
    pub runtime: &'a str,
    /// The model id; for opencode/kilo `provider/model` (a bare id gets a provider inferred from
    /// its name: `claude…` anthropic, `gpt…`/`o1…`/`o3…`/`o4…`/`codex…` openai, `gemini…` google).
    /// `None`: the CLI's default.
    pub model: Option<&'a str>,
    /// The initial prompt, handed to the CLI the way its interactive TUI takes one. Empty: the
    /// TUI starts without one.
    pub prompt: &'a str,
    /// The agent's private HOME (absolute).
    pub home: &'a Path,
    /// The agent's working directory (absolute; the worktree), which the CLI is told to trust.
    pub workdir: &'a Path,
    /// The model provider's API key; `None`: the CLI finds its key in the environment the town
    /// configured (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, `GEMINI_API_KEY`, …).
    pub api_key: Option<&'a str>,
    /// The model endpoint's root URL; `None`: the provider's public API.
    pub base_url: Option<&'a str>,
    /// The agent runs as uid 0 (a server without uid isolation): claude refuses
    /// `--dangerously-skip-permissions` as root unless told it is sandboxed (`IS_SANDBOX=1`).
    pub as_root: bool,
}

/// How to start one CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The command line; `argv[0]` is the bare CLI name, found on PATH (the directory
    /// `scripts/agent-clis.sh` prints must be on the agent's PATH).
    pub argv: Vec<String>,
    /// Variables to set over the agent's base environment (HOME, XDG dirs, TMPDIR, keys, …).
    pub env: BTreeMap<String, String>,
    /// Directories to create, relative to HOME, before the files.
    pub dirs: Vec<PathBuf>,
    /// Files to write, relative to HOME, with their contents (they may hold part of a secret:
    /// write them `0600`, owned by the agent).
    pub files: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    #[error("unknown runtime {0:?}; use claude, codex, gemini, opencode or kilo")]
    UnknownRuntime(String),
    #[error("invalid model {0:?}: use letters, digits and . _ - : / @ + (at most 200)")]
    InvalidModel(String),
    #[error("invalid base URL {0:?}: it must be an http(s) URL without spaces or quotes")]
    InvalidBaseUrl(String),
    #[error("the API key must be 1-4096 printable characters without spaces")]
    InvalidApiKey,
    #[error("the prompt must not contain NUL characters")]
    InvalidPrompt,
    #[error("{what} must be an absolute UTF-8 path without control characters, not {path:?}")]
    InvalidPath { what: &'static str, path: String },
    #[error("{runtime}: model {model:?} is for a custom provider, which needs a base URL")]
    NeedsBaseUrl { runtime: String, model: String },
    #[error("{runtime}: a base URL needs a model (provider/model) to know which API it speaks")]
    NeedsModel { runtime: String },
}

/// The argv, environment and HOME files that start `i.runtime` without any first-run dialog.
pub fn prepare(i: &RuntimeInputs) -> Result<Prepared, RuntimeError> {
    let home = path_str("home", i.home)?;
    let workdir = path_str("workdir", i.workdir)?;
    if let Some(m) = i.model {
        validate_model(m)?;
    }
    if let Some(k) = i.api_key {
        if k.is_empty() || k.len() > 4096 || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(RuntimeError::InvalidApiKey);
        }
    }
    if i.prompt.contains('\0') {
        return Err(RuntimeError::InvalidPrompt);
    }
    let root = i.base_url.map(api_root).transpose()?;
    let c = Ctx { i, home, workdir, root: root.as_deref() };
    let mut p = match i.runtime {
        "claude" => claude(&c),
        "codex" => codex(&c),
        "gemini" => gemini(&c),
        "opencode" => opencode_like(&c, OPENCODE),
        "kilo" => opencode_like(&c, KILO),
        other => return Err(RuntimeError::UnknownRuntime(other.to_string())),
    }?;
    common_env(&c, &mut p);
    Ok(p)
}

struct Ctx<'a> {
    i: &'a RuntimeInputs<'a>,
    home: &'a str,
    workdir: &'a str,
    /// The base URL without a trailing `/` or `/v1`.
    root: Option<&'a str>,
}

impl Ctx<'_> {
    fn prompt(&self) -> Option<&str> {
        Some(self.i.prompt).filter(|p| !p.trim().is_empty())
    }
    fn in_home(&self, rel: &str) -> String {
        format!("{}/{rel}", self.home.trim_end_matches('/'))
    }
}

/// The temporary directory inside HOME: claude, codex and the Bun-built CLIs (opencode, kilo,
/// claude) otherwise leave per-uid directories and extracted native libraries in `/tmp`.
const TMP_DIR: &str = ".tmp";

fn common_env(c: &Ctx, p: &mut Prepared) {
    let e = &mut p.env;
    e.insert("HOME".into(), c.home.into());
    // Explicit, so no inherited XDG_* can point a CLI at another agent's (or the server's) state.
    e.insert("XDG_CONFIG_HOME".into(), c.in_home(".config"));
    e.insert("XDG_DATA_HOME".into(), c.in_home(".local/share"));
    e.insert("XDG_STATE_HOME".into(), c.in_home(".local/state"));
    e.insert("XDG_CACHE_HOME".into(), c.in_home(".cache"));
    e.insert("TMPDIR".into(), c.in_home(TMP_DIR));
    // The dashboard's terminal (xterm.js) renders 24-bit colour; gemini warns without this.
    e.insert("COLORTERM".into(), "truecolor".into());
    // Generic opt-outs some Node CLIs and libraries honour.
    e.insert("DO_NOT_TRACK".into(), "1".into());
    e.insert("NO_UPDATE_NOTIFIER".into(), "1".into());
    p.dirs.insert(0, PathBuf::from(TMP_DIR));
}

// ---------------------------------------------------------------------------------------------
// claude (@anthropic-ai/claude-code)
//
// Without `~/.claude.json` it stops at onboarding (theme, then a connectivity check against the
// public API host that fails offline). `hasCompletedOnboarding` skips that;
// `customApiKeyResponses.approved` (last 20 characters of the key) skips "Detected a custom API
// key … use this API key?" (default No); `projects[workdir].hasTrustDialogAccepted` skips the
// trust dialog; `bypassPermissionsModeAccepted` and `skipDangerousModePermissionPrompt` skip the
// bypass-permissions disclaimer; `hasSeenAutoDefaultNudge` skips "Make auto mode your default
// permission mode?", which otherwise opens after the first turn when the user settings set a
// `defaultMode`.

fn claude(c: &Ctx) -> Result<Prepared, RuntimeError> {
    let i = c.i;
    let mut env = BTreeMap::new();
    if let Some(k) = i.api_key {
        env.insert("ANTHROPIC_API_KEY".into(), k.to_string());
    }
    if let Some(r) = c.root {
        env.insert("ANTHROPIC_BASE_URL".into(), r.to_string());
    }
    for (k, v) in [
        ("DISABLE_AUTOUPDATER", "1"),
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        // Also stops the start-up probes (`HEAD /api/hello`) and feature-flag fetches.
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ] {
        env.insert(k.into(), v.into());
    }
    // Its scratch directory (`claude-<uid>/`) otherwise goes to /tmp even with TMPDIR set.
    env.insert("CLAUDE_CODE_TMPDIR".into(), c.in_home(TMP_DIR));
    if i.as_root {
        env.insert("IS_SANDBOX".into(), "1".into());
    }

    let mut approved = Vec::new();
    if let Some(k) = i.api_key {
        approved.push(last_chars(k.trim(), 20));
    }
    let mut projects = Map::new();
    projects.insert(
        c.workdir.to_string(),
        json!({ "hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true, "allowedTools": [] }),
    );
    let state = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "autoUpdates": false,
        "customApiKeyResponses": { "approved": approved, "rejected": [] },
        "bypassPermissionsModeAccepted": true,
        "hasSeenAutoDefaultNudge": true,
        "hasAcknowledgedCostThreshold": true,
        "projects": projects,
    });
    let settings = json!({
        "permissions": { "defaultMode": "bypassPermissions" },
        "skipDangerousModePermissionPrompt": true,
    });

    let mut argv = vec!["claude".to_string(), "--dangerously-skip-permissions".into()];
    if let Some(m) = i.model {
        argv.extend(["--model".into(), m.to_string()]);
    }
    if let Some(p) = c.prompt() {
        // `--`: a prompt starting with `-` is still the prompt.
        argv.extend(["--".into(), p.to_string()]);
    }
    Ok(Prepared {
        argv,
        env,
        dirs: vec![PathBuf::from(".claude")],
        files: vec![(PathBuf::from(".claude.json"), pretty(&state)), (PathBuf::from(".claude/settings.json"), pretty(&settings))],
    })
}

// ---------------------------------------------------------------------------------------------
// codex (@openai/codex)
//
// Always its own provider entry (`gastown`) with `env_key`, so codex never shows its ChatGPT
// login screen; `wire_api = "responses"` (`POST {base_url}/responses`, SSE). `--no-daemon`: the
// TUI otherwise starts a shared background app-server that outlives it (a setsid'd process with a
// socket in /tmp/codex-daemon-<uid>/ and a ~400 MB copy of itself under CODEX_HOME), which a
// restarted agent then trips over. `allow_login_shell = false`: its shell tool defaults to a
// login shell (`bash -lc`), and /etc/profile resets PATH, so `gt` would not be found.

fn codex(c: &Ctx) -> Result<Prepared, RuntimeError> {
    let i = c.i;
    let base = match c.root {
        Some(r) => format!("{r}/v1"),
        None => "https://api.openai.com/v1".to_string(),
    };
    let mut t = String::new();
    if let Some(m) = i.model {
        t.push_str(&format!("model = {}\n", toml_str(m)));
    }
    t.push_str(concat!(
        "model_provider = \"gastown\"\n",
        "approval_policy = \"never\"\n",
        "sandbox_mode = \"danger-full-access\"\n",
        "check_for_update_on_startup = false\n",
        "allow_login_shell = false\n",
        "\n[model_providers.gastown]\n",
        "name = \"Gastown model API\"\n",
    ));
    t.push_str(&format!("base_url = {}\n", toml_str(&base)));
    t.push_str("wire_api = \"responses\"\nenv_key = \"OPENAI_API_KEY\"\n");
    t.push_str(&format!("\n[projects.{}]\ntrust_level = \"trusted\"\n", toml_str(c.workdir)));
    t.push_str(concat!(
        "\n[notice]\n",
        "hide_full_access_warning = true\n",
        "hide_world_writable_warning = true\n",
        "hide_rate_limit_model_nudge = true\n",
        "\n[analytics]\nenabled = false\n",
        "\n[tui]\nscreen_reader_detection_done = true\n",
    ));

    let mut env = BTreeMap::new();
    env.insert("CODEX_HOME".into(), c.in_home(".codex"));
    if let Some(k) = i.api_key {
        env.insert("OPENAI_API_KEY".into(), k.to_string());
    }
    let mut argv = vec!["codex".to_string(), "--no-daemon".into()];
    if let Some(m) = i.model {
        argv.extend(["--model".into(), m.to_string()]);
    }
    if let Some(p) = c.prompt() {
        argv.extend(["--".into(), p.to_string()]);
    }
    Ok(Prepared { argv, env, dirs: vec![PathBuf::from(".codex")], files: vec![(PathBuf::from(".codex/config.toml"), t)] })
}

// ---------------------------------------------------------------------------------------------
// gemini (@google/gemini-cli)
//
// `security.auth.selectedType = "gemini-api-key"` skips the "How would you like to
// authenticate?" dialog (with GOOGLE_GEMINI_BASE_URL set it would pick the `gateway` type, which
// the TUI's check rejects as "Invalid auth method selected"); `trustedFolders.json` skips "Do you
// trust the files in this folder?". GOOGLE_GEMINI_BASE_URL points the genai client at the root
// (it appends `/v1beta/models/{model}:streamGenerateContent?alt=sse`); any http(s) URL is taken.

fn gemini(c: &Ctx) -> Result<Prepared, RuntimeError> {
    let i = c.i;
    let mut env = BTreeMap::new();
    if let Some(k) = i.api_key {
        env.insert("GEMINI_API_KEY".into(), k.to_string());
    }
    if let Some(r) = c.root {
        env.insert("GOOGLE_GEMINI_BASE_URL".into(), r.to_string());
    }
    env.insert("GEMINI_TELEMETRY_ENABLED".into(), "false".into());
    let settings = json!({
        "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
        "security": { "auth": { "selectedType": "gemini-api-key" }, "folderTrust": { "enabled": true } },
    });
    let mut trusted = Map::new();
    trusted.insert(c.workdir.to_string(), json!("TRUST_FOLDER"));

    let mut argv = vec!["gemini".to_string(), "--approval-mode=yolo".into()];
    if let Some(m) = i.model {
        argv.push(format!("--model={m}"));
    }
    if let Some(p) = c.prompt() {
        // One argument (`--opt=value`), so a prompt starting with `-` is not taken for an option.
        argv.push(format!("--prompt-interactive={p}"));
    }
    Ok(Prepared {
        argv,
        env,
        dirs: vec![PathBuf::from(".gemini")],
        files: vec![
            (PathBuf::from(".gemini/settings.json"), pretty(&settings)),
            (PathBuf::from(".gemini/trustedFolders.json"), pretty(&Value::Object(trusted))),
        ],
    })
}

// ---------------------------------------------------------------------------------------------
// opencode (opencode-ai) and kilo (@kilocode/cli, an opencode fork)
//
// Global config in `$XDG_CONFIG_HOME/opencode/opencode.json` (kilo: `…/kilo/kilo.json`). Built-in
// providers take `options.baseURL` (anthropic `…/v1` → POST /v1/messages; openai `…/v1` → POST
// /v1/responses; google `…/v1beta` → streamGenerateContent); any other provider id becomes an
// `@ai-sdk/openai-compatible` provider (POST {base}/v1/chat/completions). The model is declared
// under the provider so a model the bundled catalogue does not know still resolves, and it is
// also the `small_model` (titles), so nothing asks the endpoint for another model. No dialogs at
// start; `permission` allows everything that would otherwise ask.

struct OpencodeFlavour {
    bin: &'static str,
    config: &'static str,
    schema: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const OPENCODE: OpencodeFlavour = OpencodeFlavour {
    bin: "opencode",
    config: ".config/opencode/opencode.json",
    schema: "https://opencode.ai/config.json",
    env: &[("OPENCODE_DISABLE_AUTOUPDATE", "1"), ("OPENCODE_DISABLE_MODELS_FETCH", "1"), ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")],
};

const KILO: OpencodeFlavour = OpencodeFlavour {
    bin: "kilo",
    config: ".config/kilo/kilo.json",
    schema: "https://app.kilo.ai/config.json",
    env: &[
        ("KILO_DISABLE_AUTOUPDATE", "1"),
        ("KILO_DISABLE_MODELS_FETCH", "1"),
        ("KILO_DISABLE_LSP_DOWNLOAD", "1"),
        ("KILO_DISABLE_SESSION_INGEST", "1"),
        // Telemetry is on unless this says otherwise (anything but "all" turns it off).
        ("KILO_TELEMETRY_LEVEL", "off"),
    ],
};

fn opencode_like(c: &Ctx, f: OpencodeFlavour) -> Result<Prepared, RuntimeError> {
    let i = c.i;
    let mut env: BTreeMap<String, String> = f.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut cfg = json!({
        "$schema": f.schema,
        "autoupdate": false,
        "share": "disabled",
        "permission": {
            "edit": "allow", "bash": "allow", "webfetch": "allow",
            "external_directory": "allow", "doom_loop": "allow",
        },
    });
    let full_model = match i.model {
        Some(m) => {
            let (provider, id) = split_model(m);
            let builtin = matches!(provider.as_str(), "anthropic" | "openai" | "google");
            if !builtin && c.root.is_none() {
                return Err(RuntimeError::NeedsBaseUrl { runtime: i.runtime.into(), model: m.into() });
            }
            let key_var = match provider.as_str() {
                "anthropic" => "ANTHROPIC_API_KEY",
                "openai" => "OPENAI_API_KEY",
                "google" => "GOOGLE_GENERATIVE_AI_API_KEY",
                _ => "GASTOWN_MODEL_API_KEY",
            };
            let mut options = Map::new();
            if let Some(r) = c.root {
                let v = if provider == "google" { "v1beta" } else { "v1" };
                options.insert("baseURL".into(), json!(format!("{r}/{v}")));
            }
            if let Some(k) = i.api_key {
                env.insert(key_var.into(), k.to_string());
                options.insert("apiKey".into(), json!(format!("{{env:{key_var}}}")));
            }
            let mut entry = json!({ "options": options, "models": { id.clone(): {} } });
            if !builtin {
                entry["npm"] = json!("@ai-sdk/openai-compatible");
                entry["name"] = json!("Gastown model API");
                entry["models"][&id] = json!({ "name": id, "tool_call": true });
            }
            let full = format!("{provider}/{id}");
            cfg["model"] = json!(full);
            cfg["small_model"] = json!(full);
            cfg["provider"] = json!({ provider: entry });
            Some(full)
        }
        None if c.root.is_some() => return Err(RuntimeError::NeedsModel { runtime: i.runtime.into() }),
        None => None,
    };

    let mut argv = vec![f.bin.to_string()];
    if let Some(m) = &full_model {
        argv.push(format!("--model={m}"));
    }
    if let Some(p) = c.prompt() {
        // The TUI's `--prompt` submits it at start; `=` keeps a leading `-` from being an option.
        argv.push(format!("--prompt={p}"));
    }
    let config = PathBuf::from(f.config);
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Prepared { argv, env, dirs: vec![dir], files: vec![(config, pretty(&cfg))] })
}

/// `provider/model`, or a bare id with the provider inferred from its name.
fn split_model(m: &str) -> (String, String) {
    if let Some((p, id)) = m.split_once('/') {
        return (p.to_string(), id.to_string());
    }
    let l = m.to_ascii_lowercase();
    let p = if l.starts_with("claude") {
        "anthropic"
    } else if l.starts_with("gpt") || l.starts_with("codex") || ["o1", "o3", "o4"].iter().any(|x| l.starts_with(x)) {
        "openai"
    } else if l.starts_with("gemini") {
        "google"
    } else {
        "gastown"
    };
    (p.to_string(), m.to_string())
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn path_str<'a>(what: &'static str, p: &'a Path) -> Result<&'a str, RuntimeError> {
    match p.to_str() {
        Some(s) if p.is_absolute() && !s.chars().any(char::is_control) => Ok(s),
        _ => Err(RuntimeError::InvalidPath { what, path: p.display().to_string() }),
    }
}

fn validate_model(m: &str) -> Result<(), RuntimeError> {
    let ok = !m.is_empty()
        && m.len() <= 200
        && !m.starts_with('-')
        && !m.starts_with('/')
        && !m.ends_with('/')
        && m.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidModel(m.to_string()))
    }
}

/// The base URL without a trailing `/` or version segment.
fn api_root(u: &str) -> Result<String, RuntimeError> {
    let bad = || RuntimeError::InvalidBaseUrl(u.to_string());
    let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://")).ok_or_else(bad)?;
    if rest.is_empty()
        || rest.starts_with('/')
        || u.len() > 2048
        || u.chars().any(|c| c.is_control() || c.is_whitespace() || "\"'\\<>`{}".contains(c))
    {
        return Err(bad());
    }
    let mut r = u.trim_end_matches('/');
    for v in ["/v1beta", "/v1"] {
        if let Some(s) = r.strip_suffix(v) {
            r = s.trim_end_matches('/');
            break;
        }
    }
    Ok(r.to_string())
}

fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-0123456789abcdefghijKLMNOPQRSTUV";

    fn inputs(runtime: &str) -> RuntimeInputs<'_> {
        RuntimeInputs {
            runtime,
            model: None,
            prompt: "Fix the login bug.\nThen run `gt done`.",
            home: Path::new("/ws/homes/a1"),
            workdir: Path::new("/ws/rigs/r1/worktrees/toast"),
            api_key: Some(KEY),
            base_url: Some("http://127.0.0.1:41001"),
            as_root: false,
        }
    }

    fn model_for(runtime: &str) -> &'static str {
        match runtime {
            "claude" => "claude-sonnet-4-5",
            "codex" => "gpt-5-codex",
            "gemini" => "gemini-2.5-pro",
            _ => "anthropic/claude-sonnet-4-5",
        }
    }

    fn file<'a>(p: &'a Prepared, rel: &str) -> &'a str {
        p.files
            .iter()
            .find(|(f, _)| f == Path::new(rel))
            .map(|(_, c)| c.as_str())
            .unwrap_or_else(|| panic!("no file {rel} in {:?}", p.files))
    }

    fn json_file(p: &Prepared, rel: &str) -> Value {
        serde_json::from_str(file(p, rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
    }

    #[test]
    fn no_secret_in_argv_for_any_runtime() {
        for rt in RUNTIMES {
            let i = RuntimeInputs { model: Some(model_for(rt)), ..inputs(rt) };
            let p = prepare(&i).unwrap();
            for a in &p.argv {
                assert!(!a.contains(KEY), "{rt}: key in argv {a:?}");
                assert!(!a.contains(&KEY[KEY.len() - 20..]), "{rt}: key tail in argv {a:?}");
            }
            assert!(p.env.values().any(|v| v == KEY), "{rt}: key not in env {:?}", p.env.keys());
        }
    }

    #[test]
    fn prompt_and_model_are_passed_through() {
        for rt in RUNTIMES {
            let m = model_for(rt);
            let p = prepare(&RuntimeInputs { model: Some(m), ..inputs(rt) }).unwrap();
            let joined = p.argv.join("\u{1}");
            assert!(joined.contains("Fix the login bug.\nThen run `gt done`."), "{rt}: prompt missing in {:?}", p.argv);
            let bare = m.rsplit('/').next().unwrap();
            let in_argv = p.argv.iter().any(|a| a.contains(bare));
            let in_files = p.files.iter().any(|(_, c)| c.contains(bare));
            assert!(in_argv || in_files, "{rt}: model missing");
            assert_eq!(p.argv[0], *rt);
        }
    }

    #[test]
    fn leading_dash_prompt_stays_one_positional_or_value() {
        for rt in RUNTIMES {
            let p = prepare(&RuntimeInputs { prompt: "-rf is not an option", model: Some(model_for(rt)), ..inputs(rt) }).unwrap();
            let pos = p.argv.iter().position(|a| a.ends_with("-rf is not an option")).unwrap();
            let a = &p.argv[pos];
            assert!(a.starts_with("--prompt") || p.argv[pos - 1] == "--", "{rt}: {:?}", p.argv);
        }
    }

    #[test]
    fn empty_prompt_starts_without_one() {
        let p = prepare(&RuntimeInputs { prompt: "  ", ..inputs("claude") }).unwrap();
        assert_eq!(p.argv, vec!["claude", "--dangerously-skip-permissions"]);
    }

    #[test]
    fn claude_files_skip_onboarding_key_trust_and_bypass_dialogs() {
        let p = prepare(&RuntimeInputs { model: Some("claude-sonnet-4-5"), ..inputs("claude") }).unwrap();
        let s = json_file(&p, ".claude.json");
        assert_eq!(s["hasCompletedOnboarding"], true);
        assert_eq!(s["customApiKeyResponses"]["approved"][0], KEY[KEY.len() - 20..]);
        assert_eq!(s["projects"]["/ws/rigs/r1/worktrees/toast"]["hasTrustDialogAccepted"], true);
        assert_eq!(s["bypassPermissionsModeAccepted"], true);
        assert_eq!(s["hasSeenAutoDefaultNudge"], true);
        assert_eq!(s["autoUpdates"], false);
        let st = json_file(&p, ".claude/settings.json");
        assert_eq!(st["permissions"]["defaultMode"], "bypassPermissions");
        assert_eq!(st["skipDangerousModePermissionPrompt"], true);
        assert_eq!(p.env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:41001");
        assert_eq!(p.env["DISABLE_AUTOUPDATER"], "1");
        assert_eq!(p.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"], "1");
        assert!(!p.env.contains_key("IS_SANDBOX"));
        assert_eq!(p.argv[..4], ["claude", "--dangerously-skip-permissions", "--model", "claude-sonnet-4-5"]);
        let root = prepare(&RuntimeInputs { as_root: true, ..inputs("claude") }).unwrap();
        assert_eq!(root.env["IS_SANDBOX"], "1");
    }

    #[test]
    fn codex_config_has_provider_trust_and_no_prompts() {
        let p =
            prepare(&RuntimeInputs { model: Some("gpt-5-codex"), base_url: Some("http://127.0.0.1:9/v1/"), ..inputs("codex") }).unwrap();
        let t = file(&p, ".codex/config.toml");
        for needle in [
            "model = \"gpt-5-codex\"",
            "model_provider = \"gastown\"",
            "approval_policy = \"never\"",
            "sandbox_mode = \"danger-full-access\"",
            "check_for_update_on_startup = false",
            "allow_login_shell = false",
            "base_url = \"http://127.0.0.1:9/v1\"",
            "wire_api = \"responses\"",
            "env_key = \"OPENAI_API_KEY\"",
            "[projects.\"/ws/rigs/r1/worktrees/toast\"]\ntrust_level = \"trusted\"",
            "hide_full_access_warning = true",
            "[analytics]\nenabled = false",
        ] {
            assert!(t.contains(needle), "config.toml lacks {needle:?}:\n{t}");
        }
        assert!(!t.contains(KEY));
        assert_eq!(p.env["CODEX_HOME"], "/ws/homes/a1/.codex");
        assert_eq!(p.env["OPENAI_API_KEY"], KEY);
        assert_eq!(p.argv[..2], ["codex", "--no-daemon"]);
        let public = prepare(&RuntimeInputs { base_url: None, ..inputs("codex") }).unwrap();
        assert!(file(&public, ".codex/config.toml").contains("base_url = \"https://api.openai.com/v1\""));
    }

    #[test]
    fn gemini_settings_select_api_key_auth_and_trust_workdir() {
        let p = prepare(&RuntimeInputs { model: Some("gemini-2.5-pro"), ..inputs("gemini") }).unwrap();
        let s = json_file(&p, ".gemini/settings.json");
        assert_eq!(s["security"]["auth"]["selectedType"], "gemini-api-key");
        assert_eq!(s["general"]["enableAutoUpdate"], false);
        assert_eq!(s["privacy"]["usageStatisticsEnabled"], false);
        assert_eq!(s["telemetry"]["enabled"], false);
        let t = json_file(&p, ".gemini/trustedFolders.json");
        assert_eq!(t["/ws/rigs/r1/worktrees/toast"], "TRUST_FOLDER");
        assert_eq!(p.env["GEMINI_API_KEY"], KEY);
        assert_eq!(p.env["GOOGLE_GEMINI_BASE_URL"], "http://127.0.0.1:41001");
        assert!(p.argv.contains(&"--approval-mode=yolo".to_string()));
        assert!(p.argv.contains(&"--model=gemini-2.5-pro".to_string()));
    }

    #[test]
    fn opencode_and_kilo_point_their_provider_at_the_base_url() {
        for (rt, cfg) in [("opencode", ".config/opencode/opencode.json"), ("kilo", ".config/kilo/kilo.json")] {
            let p = prepare(&RuntimeInputs { model: Some("anthropic/claude-sonnet-4-5"), ..inputs(rt) }).unwrap();
            let c = json_file(&p, cfg);
            assert_eq!(c["model"], "anthropic/claude-sonnet-4-5");
            assert_eq!(c["small_model"], "anthropic/claude-sonnet-4-5");
            assert_eq!(c["autoupdate"], false);
            assert_eq!(c["permission"]["bash"], "allow");
            assert_eq!(c["provider"]["anthropic"]["options"]["baseURL"], "http://127.0.0.1:41001/v1");
            assert_eq!(c["provider"]["anthropic"]["options"]["apiKey"], "{env:ANTHROPIC_API_KEY}");
            assert!(c["provider"]["anthropic"]["models"]["claude-sonnet-4-5"].is_object());
            assert_eq!(p.env["ANTHROPIC_API_KEY"], KEY);
            assert!(!file(&p, cfg).contains(KEY));
            assert_eq!(p.argv[1], "--model=anthropic/claude-sonnet-4-5");
            assert!(p.argv[2].starts_with("--prompt="));
        }
        let k = prepare(&RuntimeInputs { model: Some("anthropic/claude-sonnet-4-5"), ..inputs("kilo") }).unwrap();
        assert_eq!(k.env["KILO_TELEMETRY_LEVEL"], "off");
        let o = prepare(&RuntimeInputs { model: Some("opencode-x"), ..inputs("opencode") }).unwrap();
        let c = json_file(&o, ".config/opencode/opencode.json");
        assert_eq!(c["provider"]["gastown"]["npm"], "@ai-sdk/openai-compatible");
        assert_eq!(c["provider"]["gastown"]["options"]["baseURL"], "http://127.0.0.1:41001/v1");
        let g = prepare(&RuntimeInputs { model: Some("gemini-2.5-pro"), ..inputs("opencode") }).unwrap();
        let c = json_file(&g, ".config/opencode/opencode.json");
        assert_eq!(c["provider"]["google"]["options"]["baseURL"], "http://127.0.0.1:41001/v1beta");
        assert_eq!(g.env["GOOGLE_GENERATIVE_AI_API_KEY"], KEY);
    }

    #[test]
    fn opencode_needs_a_model_with_a_base_url_and_a_base_url_for_custom_providers() {
        assert!(matches!(prepare(&inputs("opencode")), Err(RuntimeError::NeedsModel { .. })));
        let e = prepare(&RuntimeInputs { model: Some("acme/m1"), base_url: None, ..inputs("kilo") });
        assert!(matches!(e, Err(RuntimeError::NeedsBaseUrl { .. })));
        let public = prepare(&RuntimeInputs { model: None, base_url: None, api_key: None, ..inputs("opencode") }).unwrap();
        assert_eq!(public.argv[0], "opencode");
        assert!(public.argv[1].starts_with("--prompt="));
    }

    #[test]
    fn common_env_keeps_everything_in_home() {
        for rt in RUNTIMES {
            let p = prepare(&RuntimeInputs { model: Some(model_for(rt)), ..inputs(rt) }).unwrap();
            assert_eq!(p.env["HOME"], "/ws/homes/a1");
            assert_eq!(p.env["TMPDIR"], "/ws/homes/a1/.tmp");
            assert_eq!(p.env["XDG_CONFIG_HOME"], "/ws/homes/a1/.config");
            assert!(p.dirs.contains(&PathBuf::from(".tmp")));
            for (f, _) in &p.files {
                assert!(f.is_relative() && !f.components().any(|c| c == std::path::Component::ParentDir), "{rt}: {f:?}");
                let parent = f.parent().unwrap();
                assert!(parent.as_os_str().is_empty() || p.dirs.iter().any(|d| d == parent), "{rt}: no dir for {f:?}");
            }
        }
    }

    #[test]
    fn invalid_inputs_are_refused() {
        assert_eq!(prepare(&inputs("aider")), Err(RuntimeError::UnknownRuntime("aider".into())));
        assert!(matches!(prepare(&RuntimeInputs { model: Some("--help"), ..inputs("claude") }), Err(RuntimeError::InvalidModel(_))));
        assert!(matches!(prepare(&RuntimeInputs { model: Some("a b"), ..inputs("claude") }), Err(RuntimeError::InvalidModel(_))));
        for u in ["ftp://x", "http://", "http://a b", "http://x\"y", "127.0.0.1:80"] {
            assert!(
                matches!(prepare(&RuntimeInputs { base_url: Some(u), ..inputs("codex") }), Err(RuntimeError::InvalidBaseUrl(_))),
                "{u}"
            );
        }
        assert_eq!(prepare(&RuntimeInputs { api_key: Some("a\nb"), ..inputs("claude") }), Err(RuntimeError::InvalidApiKey));
        assert_eq!(prepare(&RuntimeInputs { prompt: "a\0b", ..inputs("claude") }), Err(RuntimeError::InvalidPrompt));
        assert!(matches!(prepare(&RuntimeInputs { home: Path::new("rel"), ..inputs("claude") }), Err(RuntimeError::InvalidPath { .. })));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let p = prepare(&RuntimeInputs { workdir: Path::new("/w/we\"ird"), ..inputs("codex") }).unwrap();
        assert!(file(&p, ".codex/config.toml").contains("[projects.\"/w/we\\\"ird\"]"));
    }

    #[test]
    fn base_url_root_drops_version_and_slash() {
        assert_eq!(api_root("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(api_root("https://h/v1").unwrap(), "https://h");
        assert_eq!(api_root("https://h/proxy/v1beta/").unwrap(), "https://h/proxy");
    }

    /// Not a check: with GASTOWN_RUNTIME_DUMP=<dir> (and GASTOWN_RUNTIME_* inputs) writes what
    /// `prepare` returns, so the real CLIs can be started from exactly this output by hand.
    #[test]
    fn dump_for_manual_runs() {
        let Ok(dir) = std::env::var("GASTOWN_RUNTIME_DUMP") else { return };
        let var = |k: &str| std::env::var(format!("GASTOWN_RUNTIME_{k}")).ok();
        let (rt, home, wd) = (var("NAME").unwrap(), var("HOME").unwrap(), var("WORKDIR").unwrap());
        let (model, key, base, prompt) = (var("MODEL"), var("KEY"), var("BASE_URL"), var("PROMPT").unwrap_or_default());
        let p = prepare(&RuntimeInputs {
            runtime: &rt,
            model: model.as_deref(),
            prompt: &prompt,
            home: Path::new(&home),
            workdir: Path::new(&wd),
            api_key: key.as_deref(),
            base_url: base.as_deref(),
            as_root: false,
        })
        .unwrap();
        let out = Path::new(&dir);
        std::fs::create_dir_all(out.join("home")).unwrap();
        for d in &p.dirs {
            std::fs::create_dir_all(out.join("home").join(d)).unwrap();
        }
        for (f, c) in &p.files {
            std::fs::write(out.join("home").join(f), c).unwrap();
        }
        std::fs::write(out.join("prepared.json"), serde_json::to_string_pretty(&json!({ "argv": p.argv, "env": p.env })).unwrap()).unwrap();
    }
}
