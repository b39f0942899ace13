//! Control server over real HTTP and WebSocket connections on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{bare_repo, git, http};
use futures_util::{SinkExt, StreamExt};
use gastown_container::git::{GitManager, GitSettings};
use gastown_container::process::{ProcessConfig, ProcessManager};
use gastown_container::server::{self, AppState, ControlSecret, ServerOptions};
use gastown_protocol::{AgentSnapshot, ErrorReply, PushReply, StartReply};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "test-secret-0123456789abcdef";
const AUTH: (&str, &str) = ("Authorization", "Bearer test-secret-0123456789abcdef");

struct TestServer {
    addr: SocketAddr,
    tmp: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    async fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, &[AUTH], None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        http(self.addr, "POST", path, &[AUTH], Some(&body.to_string())).await
    }
    /// A request that carries the town config, as the Worker sends it: in the body.
    async fn post_cfg(&self, path: &str, cfg: Value, mut body: Value) -> (u16, Value) {
        body["config"] = cfg;
        http(self.addr, "POST", path, &[AUTH], Some(&body.to_string())).await
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().canonicalize().unwrap()
    }
}

/// The `data` of a reply (or the whole error reply) as the contract's type the town decodes it
/// with: what this server sends is what the Worker reads.
fn as_contract<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

async fn start_server() -> TestServer {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let git = GitManager::new(GitSettings::new(&ws)).unwrap();
    let pm = ProcessManager::new(ProcessConfig { max_running: 3, stop_grace: Duration::from_secs(2), ..ProcessConfig::default() });
    let agents_dir = git.workspace().join("agents");
    let state = AppState::new(
        ControlSecret::new(SECRET).unwrap(),
        pm,
        git,
        ServerOptions {
            enter_delay: Duration::from_millis(50),
            default_gate_timeout: Duration::from_secs(30),
            agents_dir,
            bin_dir: PathBuf::from(env!("CARGO_BIN_EXE_gt")).parent().unwrap().to_path_buf(),
            agent_path: vec![],
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    TestServer { addr, tmp, _stop: stop }
}

async fn wait_status(s: &TestServer, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = s.get(&format!("/agents/{id}/status")).await;
        assert_eq!(code, 200, "{body}");
        if body["data"]["status"] == want {
            return body["data"].clone();
        }
        assert!(Instant::now() < deadline, "agent {id} never reached {want}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn attach(s: &TestServer, id: &str, query: &str) -> Ws {
    let mut req = format!("ws://{}/agents/{id}/pty{query}", s.addr).into_client_request().unwrap();
    req.headers_mut().insert("Authorization", AUTH.1.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads frames until the terminal output contains `needle`; returns the
/// output and the JSON control frames seen on the way.
async fn read_until(ws: &mut Ws, out: &mut String, needle: &str) -> Vec<Value> {
    let mut controls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next()).await.unwrap_or_else(|_| panic!("timed out waiting for {needle:?} in {out:?}"));
        match msg {
            Some(Ok(Message::Binary(b))) => out.push_str(&String::from_utf8_lossy(&b)),
            Some(Ok(Message::Text(t))) => controls.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(_)) => {}
            other => panic!("socket ended ({other:?}) before {needle:?}; output {out:?}"),
        }
    }
    controls
}

async fn next_control(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no control frame");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_error_envelopes() {
    let s = start_server().await;
    let (code, body) = http(s.addr, "GET", "/health", &[], None).await;
    assert_eq!(code, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["data"]["running_agents"], 0);
    assert!(body["data"]["uptime_secs"].is_u64());

    for headers in [
        vec![],
        vec![("Authorization", "Bearer test-secret-0123456789abcdeX")],
        vec![("Authorization", "Bearer short")],
        vec![("Authorization", "test-secret-0123456789abcdef")],
        vec![("Authorization", "Basic dGVzdA==")],
    ] {
        let (code, body) = http(s.addr, "GET", "/sessions", &headers, None).await;
        assert_eq!(code, 401, "{headers:?}");
        assert_eq!(body["success"], false);
        assert_eq!(body["code"], "unauthorized");
        let (code, _) = http(s.addr, "POST", "/agents/start", &headers, Some("{}")).await;
        assert_eq!(code, 401);
    }
    let (code, body) = s.get("/sessions").await;
    assert_eq!((code, body["success"].clone()), (200, json!(true)));
    assert_eq!(body["data"], json!([]));

    let (code, body) = s.get("/agents/nobody/status").await;
    assert_eq!(code, 404);
    assert_eq!(body["code"], "agent_not_found");
    let (code, _) = s.post("/agents/nobody/stop", json!({})).await;
    assert_eq!(code, 404);

    let (code, body) = http(s.addr, "POST", "/agents/start", &[AUTH], Some("{not json")).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["success"], false);
    let (code, body) = s.post("/agents/start", json!({"agent_id": "a"})).await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("missing field"), "{body}");
    let base = json!({"agent_id": "a1", "town_id": "t1", "rig_id": "r1", "role": "mayor",
                      "name": "Mayor", "command": ["true"]});
    // A malformed town config in the body is a 400 that names it.
    let (code, body) = s.post_cfg("/agents/start", json!({"capacity": {"max_agents": "many"}}), base.clone()).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["code"], "invalid_body");
    assert!(body["error"].as_str().unwrap().contains("config"), "{body}");
    for (field, value) in [
        ("agent_id", json!("../etc")),
        ("rig_id", json!("-r")),
        ("role", json!("overlord")),
        ("command", json!([])),
        ("env", json!({"BAD-NAME": "x"})),
    ] {
        let mut b = base.clone();
        b[field] = value;
        let (code, body) = s.post("/agents/start", b).await;
        assert_eq!(code, 400, "{field}: {body}");
    }
    let (code, body) = s
        .post("/agents/start", {
            let mut b = base.clone();
            b["role"] = json!("polecat");
            b
        })
        .await;
    assert_eq!(code, 400, "polecat without git_url: {body}");
    let (code, body) = s
        .post("/agents/start", {
            let mut b = base.clone();
            b["command"] = json!(["/no/such/binary"]);
            b
        })
        .await;
    assert_eq!((code, body["code"].clone()), (400, json!("spawn_failed")));
    let (code, body) = s.post("/git/merge-batch", json!({"rig_id": "r1"})).await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = http(s.addr, "GET", "/nope", &[AUTH], None).await;
    assert_eq!(code, 404);

    assert!(ControlSecret::new("too-short").is_err());
    assert!(ControlSecret::new(SECRET).unwrap().matches(SECRET.as_bytes()));
    assert!(!ControlSecret::new(SECRET).unwrap().matches(b"test-secret-0123456789abcdeg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lifecycle_messages_and_terminal_attach() {
    let s = start_server().await;
    let start = json!({
        "agent_id": "mayor-1", "town_id": "t1", "rig_id": "r1", "role": "mayor", "name": "Mayor",
        "env": {"GASTOWN_AGENT_TOKEN": "jwt-abc", "GASTOWN_AGENT_ID": "spoofed"},
        "command": ["sh", "-c",
            "echo token=$GASTOWN_AGENT_TOKEN id=$GASTOWN_AGENT_ID role=$GASTOWN_AGENT_ROLE town=$TOWN_VAR; while read line; do echo said:$line; done"]
    });
    let cfg = json!({"env_vars": {"TOWN_VAR": "from-town"}});
    let (code, body) = s.post_cfg("/agents/start", cfg.clone(), start.clone()).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["data"]["status"], "running");
    assert_eq!(body["data"]["spawn_epoch"], 1);
    assert_eq!(body["data"]["role"], "mayor");
    let (code, body) = s.post_cfg("/agents/start", cfg.clone(), start.clone()).await;
    assert_eq!((code, body["code"].clone()), (409, json!("already_running")));
    let refused: ErrorReply = as_contract(&body);
    assert_eq!(refused.code.as_deref(), Some("already_running"));

    // Capacity from the town config (max 1) refuses a second agent.
    let other = json!({"agent_id": "w1", "town_id": "t1", "rig_id": "r1", "role": "witness",
                       "name": "Witness", "command": ["sleep", "30"]});
    let (code, body) = s.post_cfg("/agents/start", json!({"capacity": {"max_agents": 1}}), other.clone()).await;
    assert_eq!((code, body["code"].clone(), body["limit"].clone()), (409, json!("capacity_exceeded"), json!(1)), "{body}");

    let (code, body) = s.post("/agents/mayor-1/nudge", json!({"key": "mail:1", "text": "hello there"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["outcome"], "queued");
    let (_, body) = s.post("/agents/mayor-1/nudge", json!({"key": "mail:1", "text": "hello there"})).await;
    assert_eq!(body["data"]["outcome"], "duplicate");
    let (code, _) = s.post("/agents/mayor-1/nudge", json!({"key": "", "text": "x"})).await;
    assert_eq!(code, 400);

    // Read-only attach: scrollback first, input and resize refused.
    let mut ro = attach(&s, "mayor-1", "").await;
    let mut ro_out = String::new();
    read_until(&mut ro, &mut ro_out, "said:hello there").await;
    assert!(ro_out.contains("token=jwt-abc id=mayor-1 role=mayor town=from-town"), "{ro_out}");
    ro.send(Message::binary(b"typed\r".to_vec())).await.unwrap();
    assert_eq!(next_control(&mut ro).await, json!({"type": "error", "error": "read-only session"}));
    ro.send(Message::text(r#"{"type":"resize","cols":100,"rows":30}"#)).await.unwrap();
    assert_eq!(next_control(&mut ro).await["error"], "read-only session");

    // Writable attach: input reaches the agent, every viewer sees the echo.
    let mut rw = attach(&s, "mayor-1", "?write=1").await;
    let mut rw_out = String::new();
    read_until(&mut rw, &mut rw_out, "said:hello there").await;
    rw.send(Message::binary(b"from-ws\r".to_vec())).await.unwrap();
    rw.send(Message::text(r#"{"type":"resize","cols":100,"rows":30}"#)).await.unwrap();
    rw.send(Message::text(r#"{"type":"input","data":"as-text\r"}"#)).await.unwrap();
    let controls = read_until(&mut rw, &mut rw_out, "said:as-text").await;
    assert!(controls.is_empty(), "{controls:?}");
    assert!(rw_out.contains("said:from-ws"), "{rw_out}");
    read_until(&mut ro, &mut ro_out, "said:as-text").await;
    assert!(!ro_out.contains("said:typed"), "read-only input reached the agent");

    let (code, body) = s.get("/sessions").await;
    assert_eq!(code, 200);
    let list = body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let sessions: Vec<AgentSnapshot> = as_contract(&body["data"]);
    assert!(sessions[0].is_live() && sessions[0].screen.is_some(), "{body}");
    assert_eq!(list[0]["agent_id"], "mayor-1");
    assert_eq!(list[0]["name"], "Mayor");
    assert_eq!(list[0]["status"], "running");

    let (code, body) = s.post("/agents/mayor-1/stop", json!({"grace_secs": 2})).await;
    assert_eq!(code, 200, "{body}");
    let stopped: AgentSnapshot = as_contract(&body["data"]);
    assert!(!stopped.is_live() && stopped.exit.is_some(), "{body}");
    assert_eq!(body["data"]["status"], "exited");
    assert_eq!(body["data"]["exit"]["reason"], "stopped");
    let exit = next_control(&mut rw).await;
    assert_eq!(exit["type"], "exit");
    assert_eq!(exit["reason"], "stopped");
    assert_eq!(exit["spawn_epoch"], 1);

    let (code, body) = s.post("/agents/mayor-1/nudge", json!({"key": "late", "text": "late"})).await;
    assert_eq!((code, body["code"].clone()), (409, json!("not_running")));
    // Attaching after the exit replays scrollback and the exit at once.
    let mut late = attach(&s, "mayor-1", "").await;
    let mut late_out = String::new();
    read_until(&mut late, &mut late_out, "said:as-text").await;
    assert_eq!(next_control(&mut late).await["type"], "exit");

    let (code, body) = s.get("/health").await;
    assert_eq!(code, 200);
    assert_eq!(body["data"]["running_agents"], 0);
    assert_eq!(body["data"]["sessions"], 1);

    // An unauthenticated attach is refused before the upgrade.
    let req = format!("ws://{}/agents/mayor-1/pty", s.addr).into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let (code, _) = s.get("/agents/ghost/pty").await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polecat_in_a_worktree_then_push_and_merge() {
    let s = start_server().await;
    let bare = bare_repo(&s.root());
    let url = bare.to_str().unwrap().to_string();
    let cfg = json!({
        // Keep the agent's git independent of the host user's config.
        "env_vars": {"GIT_CONFIG_GLOBAL": "/dev/null"},
        "refinery": {"gates": ["echo gate says no; exit 3"]}
    });
    let (code, body) = s
        .post_cfg(
            "/agents/start",
            cfg.clone(),
            json!({
                "agent_id": "pc-1", "town_id": "t1", "rig_id": "rig1", "role": "polecat",
                "name": "Toast", "bead_id": "gt-42", "git_url": url, "default_branch": "main",
                "env": {"GASTOWN_API_URL": "http://127.0.0.1:9", "GASTOWN_AGENT_TOKEN": "jwt"},
                "command": ["sh", "-c",
                    "pwd; echo branch=$GASTOWN_BRANCH; echo work > feature.txt && git add feature.txt && git commit -qm 'polecat work' && echo committed"]
            }),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["data"]["branch"], "gt/toast/gt-42");
    let worktree = body["data"]["cwd"].as_str().unwrap().to_string();
    assert!(worktree.ends_with("/rigs/rig1/worktrees/toast-gt-42"), "{worktree}");

    let done = wait_status(&s, "pc-1", "exited").await;
    assert_eq!(done["exit"]["code"], 0, "{done}");
    let mut out = attach(&s, "pc-1", "").await;
    let mut text = String::new();
    read_until(&mut out, &mut text, "committed").await;
    assert!(text.contains(&worktree) && text.contains("branch=gt/toast/gt-42"), "{text}");
    assert_eq!(git(std::path::Path::new(&worktree), &["log", "-1", "--format=%an <%ae>"]), "Toast (gastown) <toast@gastown.local>");

    let push = json!({"rig_id": "rig1", "git_url": url, "agent_id": "pc-1", "agent_name": "Toast", "bead_id": "gt-42", "branch": "gt/toast/gt-42"});
    let mut main = push.clone();
    main["branch"] = json!("main");
    let (code, body) = s.post_cfg("/git/push", cfg.clone(), main).await;
    assert_eq!((code, body["code"].clone()), (403, json!("forbidden")), "only the agent's own branch: {body}");
    let (code, body) = s.post_cfg("/git/push", cfg.clone(), push).await;
    assert_eq!(code, 200, "{body}");
    let pushed = body["data"]["commit_sha"].as_str().unwrap().to_string();
    let reply: PushReply = as_contract(&body["data"]);
    assert_eq!((reply.pushed, reply.branch.as_str(), reply.commit_sha.as_str()), (true, "gt/toast/gt-42", pushed.as_str()));
    assert_eq!(git(&bare, &["rev-parse", "gt/toast/gt-42"]), pushed);

    // A train of one (the only merge route: one branch is a train of one).
    let merge = json!({"rig_id": "rig1", "git_url": url, "branches": ["gt/toast/gt-42"],
                       "target_branch": "main", "timeout_secs": 20});
    let seed = git(&bare, &["rev-parse", "main"]);
    // Gates from the town config apply when the request names none.
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), merge.clone()).await;
    assert_eq!(code, 200, "{body}");
    let one = &body["data"]["results"][0];
    assert_eq!(one["status"], "gate_failed");
    assert_eq!(one["exit_code"], 3);
    assert!(one["output"].as_str().unwrap().contains("gate says no"));
    assert_eq!(git(&bare, &["rev-parse", "main"]), seed);

    // Strategy pull_request: the branch merged with the target is gated like a direct merge,
    // and nothing is pushed (the forge merges once the pull request is reviewed).
    let mut pr = merge.clone();
    pr["strategy"] = json!("pull_request");
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), pr.clone()).await;
    assert_eq!((code, body["data"]["results"][0]["status"].clone()), (200, json!("gate_failed")), "{body}");
    pr["gates"] = json!(["test -f feature.txt"]);
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), pr).await;
    let one = &body["data"]["results"][0];
    assert_eq!((code, one["status"].clone()), (200, json!("gated")), "{body}");
    assert_eq!(one["head_sha"].as_str().unwrap(), git(&bare, &["rev-parse", "gt/toast/gt-42"]));
    assert_ne!(one["commit_sha"].as_str().unwrap(), seed, "the merge with the target was what was gated");
    assert_eq!(git(&bare, &["rev-parse", "main"]), seed, "nothing pushed to the target");
    let two = json!({"rig_id": "rig1", "git_url": url, "branches": ["gt/toast/gt-42", "gt/x/y"], "target_branch": "main", "strategy": "pull_request"});
    let (code, _) = s.post_cfg("/git/merge-batch", cfg.clone(), two).await;
    assert_eq!(code, 400, "pull requests are gated one branch at a time");

    let mut ok = merge.clone();
    ok["gates"] = json!(["test -f feature.txt"]);
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), ok).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["results"][0]["status"], "merged");
    let sha = body["data"]["results"][0]["commit_sha"].as_str().unwrap();
    assert_eq!(body["data"]["pushed"].as_str(), Some(sha));
    assert_eq!(git(&bare, &["rev-parse", "main"]), sha);
    git(&bare, &["cat-file", "-e", "main:feature.txt"]);

    let mut missing = merge.clone();
    missing["branches"] = json!(["gt/nobody/gt-0"]);
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), missing).await;
    assert_eq!((code, body["data"]["results"][0]["status"].clone()), (200, json!("invalid")), "a branch not on origin: {body}");

    // The train form: one result per branch, in order; bad trains are a 400.
    let batch = json!({"rig_id": "rig1", "git_url": url, "branches": ["gt/toast/gt-42", "gt/nobody/gt-0"],
                       "target_branch": "main", "gates": ["true"]});
    let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), batch.clone()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["results"][0]["status"], "merged");
    assert_eq!(body["data"]["results"][0]["up_to_date"], true);
    assert_eq!(body["data"]["results"][1]["status"], "invalid");
    for bad in [json!([]), json!(["gt/toast/gt-42", "gt/toast/gt-42"]), json!("gt/toast/gt-42")] {
        let mut b = batch.clone();
        b["branches"] = bad.clone();
        let (code, body) = s.post_cfg("/git/merge-batch", cfg.clone(), b).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let mut unknown = batch.clone();
    unknown["branch"] = json!("x");
    assert_eq!(s.post_cfg("/git/merge-batch", cfg.clone(), unknown).await.0, 400);
    let mut no_target = batch;
    no_target["target_branch"] = json!("nowhere");
    let (code, body) = s.post_cfg("/git/merge-batch", cfg, no_target).await;
    assert_eq!((code, body["code"].clone()), (404, json!("branch_not_found")));
}

/// The town may repeat a start (a retried request, a witness restart racing the first start):
/// the run of that epoch is found and reported, never refused as a failure or started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_start_of_the_same_epoch_is_a_success() {
    let s = start_server().await;
    let start = json!({"agent_id": "mayor-e", "town_id": "t1", "rig_id": "r1", "role": "mayor", "name": "Mayor",
                       "epoch": 7, "command": ["sleep", "30"]});
    let (code, body) = s.post("/agents/start", start.clone()).await;
    assert_eq!((code, body["data"]["already_running"].clone()), (201, json!(false)), "{body}");
    assert_eq!(body["data"]["max_agents"], 3, "{body}");
    let reply: StartReply = as_contract(&body["data"]);
    assert_eq!((reply.max_agents, reply.already_running, reply.agent.spawn_epoch), (3, false, 7));
    let pid = body["data"]["pid"].clone();
    let (code, body) = s.post("/agents/start", start.clone()).await;
    assert_eq!((code, body["data"]["already_running"].clone(), body["data"]["pid"].clone()), (200, json!(true), pid.clone()), "{body}");
    let (_, health) = s.get("/health").await;
    assert_eq!((health["data"]["running_agents"].clone(), health["data"]["max_agents"].clone()), (json!(1), json!(3)));
    // A newer epoch replaces the run.
    let mut newer = start;
    newer["epoch"] = json!(8);
    let (code, body) = s.post("/agents/start", newer).await;
    assert_eq!(code, 201, "{body}");
    assert_ne!(body["data"]["pid"], pid);
    let (code, _) = s.post("/agents/mayor-e/stop", json!({})).await;
    assert_eq!(code, 200);
}
