//! Process manager on real PTYs and real child processes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{group_alive, pid_alive, Collector};
use gastown_container::process::{
    AgentState, ExitReason, LifecycleEvent, Limits, NudgeOutcome, NudgeTiming, ProcessConfig, ProcessError, ProcessManager, StartSpec,
};

const T: Duration = Duration::from_secs(10);

fn manager(f: impl FnOnce(&mut ProcessConfig)) -> ProcessManager {
    let mut cfg = ProcessConfig { stop_grace: Duration::from_secs(5), ..ProcessConfig::default() };
    f(&mut cfg);
    ProcessManager::new(cfg)
}

fn spec(id: &str, script: &str) -> StartSpec {
    StartSpec {
        agent_id: id.into(),
        name: id.into(),
        role: "polecat".into(),
        town_id: "town1".into(),
        rig_id: "rig1".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: std::env::temp_dir(),
        ..StartSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_output_input_echo_and_exit_code() {
    let pm = manager(|_| {});
    let mut events = pm.subscribe_events();
    let started = pm.start(spec("a1", "printf hello; read x; echo got:$x; exit 7")).unwrap();
    assert_eq!(started.status, AgentState::Running);
    assert_eq!(started.spawn_epoch, 1);
    let mut out = Collector::new(pm.subscribe_output("a1").unwrap());
    out.wait_for("hello", T).await;
    pm.write_input("a1", b"world\r".to_vec()).await.unwrap();
    let text = out.wait_for("got:world", T).await;
    // The terminal echoes typed input: proof that it really is a tty.
    assert!(text.contains("helloworld"), "{text:?}");
    let exit = out.until_exit(T).await;
    assert_eq!(exit.code, Some(7));
    assert_eq!(exit.signal, None);
    assert_eq!(exit.reason, ExitReason::Exited);

    let st = pm.status("a1").unwrap();
    assert_eq!(st.status, AgentState::Exited);
    assert_eq!(st.exit.as_ref().unwrap().code, Some(7));
    assert!(!pid_alive(st.pid));

    match events.recv().await.unwrap() {
        LifecycleEvent::Started { agent_id, spawn_epoch, .. } => assert_eq!((agent_id.as_str(), spawn_epoch), ("a1", 1)),
        other => panic!("{other:?}"),
    }
    match events.recv().await.unwrap() {
        LifecycleEvent::Exited { spawn_epoch, exit, .. } => {
            assert_eq!(spawn_epoch, 1);
            assert_eq!(exit.code, Some(7));
        }
        other => panic!("{other:?}"),
    }

    // Restarting the same agent bumps the epoch.
    let again = pm.start(spec("a1", "exit 0")).unwrap();
    assert_eq!(again.spawn_epoch, 2);
    let ev = events.recv().await.unwrap();
    assert_eq!((ev.agent_id(), ev.spawn_epoch()), ("a1", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_by_signal_is_reported() {
    let pm = manager(|_| {});
    pm.start(spec("sig", "kill -TERM $$")).unwrap();
    let exit = pm.wait_exit("sig").await.unwrap();
    assert_eq!(exit.code, None);
    assert_eq!(exit.signal, Some(15));
    assert_eq!(gastown_container::process::exit_signal_name(&exit), Some("SIGTERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_changes_stty_size() {
    let pm = manager(|c| c.initial_size = (80, 24));
    pm.start(spec("rs", "stty size; echo mark1; read x; stty size; echo mark2")).unwrap();
    let mut out = Collector::new(pm.subscribe_output("rs").unwrap());
    let text = out.wait_for("mark1", T).await;
    assert!(text.contains("24 80"), "{text:?}");
    pm.resize("rs", 132, 40).unwrap();
    pm.write_input("rs", b"\r".to_vec()).await.unwrap();
    let text = out.wait_for("mark2", T).await;
    assert!(text.contains("40 132"), "{text:?}");
    assert!(pm.resize("rs", 0, 10).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_built_from_scratch() {
    // cargo sets this for test binaries; it must not reach the agent.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let pm = manager(|_| {});
    let mut s = spec("env", "env; echo END-OF-ENV");
    s.env = BTreeMap::from([
        ("GASTOWN_AGENT_TOKEN".to_string(), "jwt-for-env".to_string()),
        ("GASTOWN_API_URL".to_string(), "http://127.0.0.1:1".to_string()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    s.cwd = dir.path().canonicalize().unwrap();
    pm.start(s).unwrap();
    let mut out = Collector::new(pm.subscribe_output("env").unwrap());
    let text = out.wait_for("END-OF-ENV", T).await;
    let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.trim_end_matches('\r').split_once('=')).collect();
    assert_eq!(vars.get("TERM"), Some(&"xterm-256color"));
    assert_eq!(vars.get("GASTOWN_AGENT_TOKEN"), Some(&"jwt-for-env"));
    assert_eq!(vars.get("PWD").copied(), Some(dir.path().canonicalize().unwrap().to_str().unwrap()));
    assert!(vars.contains_key("PATH") && vars.contains_key("HOME") && vars.contains_key("LANG"));
    assert!(!vars.contains_key("CARGO_MANIFEST_DIR"), "{vars:?}");
    let allowed = ["PATH", "HOME", "LANG", "TERM", "SHELL", "PWD", "SHLVL", "_", "OLDPWD", "GASTOWN_AGENT_TOKEN", "GASTOWN_API_URL"];
    for k in vars.keys() {
        assert!(allowed.contains(k), "unexpected variable {k} leaked into the agent");
    }
    // The server's own environment is untouched.
    assert!(std::env::var_os("GASTOWN_AGENT_TOKEN").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_when_sighup_is_trapped() {
    let pm = manager(|_| {});
    pm.start(spec("trap", "trap 'echo bye; exit 3' HUP; echo ready; while :; do sleep 0.05; done")).unwrap();
    let mut out = Collector::new(pm.subscribe_output("trap").unwrap());
    out.wait_for("ready", T).await;
    let pid = pm.status("trap").unwrap().pid;
    let t0 = Instant::now();
    let exit = pm.stop("trap", Some(Duration::from_secs(5))).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(exit.reason, ExitReason::Stopped);
    assert_eq!(exit.code, Some(3));
    out.wait_for("bye", T).await;
    assert!(!pid_alive(pid));
    assert!(!group_alive(pid), "children of the agent survived");
    // Stopping again just reports the same exit.
    assert_eq!(pm.stop("trap", None).await.unwrap(), exit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_grace_when_sighup_is_ignored() {
    let pm = manager(|_| {});
    pm.start(spec("stubborn", "trap '' HUP; echo ready; while :; do sleep 0.05; done")).unwrap();
    let mut out = Collector::new(pm.subscribe_output("stubborn").unwrap());
    out.wait_for("ready", T).await;
    let pid = pm.status("stubborn").unwrap().pid;
    let t0 = Instant::now();
    let stopping = {
        let pm = pm.clone();
        tokio::spawn(async move { pm.stop("stubborn", Some(Duration::from_millis(600))).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pm.status("stubborn").unwrap().status, AgentState::Stopping);
    let exit = stopping.await.unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(600));
    assert_eq!(exit.reason, ExitReason::Killed);
    assert_eq!(exit.signal, Some(9));
    assert!(!pid_alive(pid));
    assert!(!group_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_and_duplicate_start() {
    let pm = manager(|c| c.max_running = 2);
    pm.start(spec("c1", "sleep 30")).unwrap();
    pm.start(spec("c2", "sleep 30")).unwrap();
    assert!(matches!(pm.start(spec("c1", "sleep 30")), Err(ProcessError::AlreadyRunning(_))));
    let err = pm.start(spec("c3", "sleep 30")).unwrap_err();
    assert!(matches!(err, ProcessError::CapacityExceeded { running: 2, limit: 2 }), "{err:?}");
    // A town config can only lower the cap.
    let mut tight = spec("c3", "sleep 30");
    tight.limits = Limits { max_running: Some(1), ..Limits::default() };
    assert!(pm.start(tight).is_err());
    let mut per_rig = spec("c3", "sleep 30");
    per_rig.limits = Limits { max_running: Some(100), max_same_role_per_rig: Some(1) };
    pm.stop("c2", Some(Duration::from_secs(2))).await.unwrap();
    assert!(matches!(pm.start(per_rig), Err(ProcessError::RigCapacityExceeded { .. })));
    pm.start(spec("c3", "sleep 30")).unwrap();
    assert_eq!(pm.running_count(), 2);
    assert_eq!(pm.session_count(), 3);
    pm.stop_all(Some(Duration::from_secs(2))).await;
    assert_eq!(pm.running_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrollback_plus_live_has_no_gap_or_duplicate() {
    // Small ring so that early subscribers' snapshots are already trimmed.
    let pm = manager(|c| {
        c.scrollback_bytes = 4096;
        c.live_channel_capacity = 100_000;
    });
    pm.start(spec("seq", "i=0; while [ $i -lt 3000 ]; do echo n$i; i=$((i+1)); done; echo DONE")).unwrap();
    let mut collectors = Vec::new();
    for _ in 0..8 {
        let sub = pm.subscribe_output("seq").unwrap();
        collectors.push((sub.scrollback_start, Collector::new(sub)));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total_at_end = {
        pm.wait_exit("seq").await.unwrap();
        pm.status("seq").unwrap().output_bytes
    };
    for (start, mut c) in collectors {
        c.until_exit(T).await;
        assert_eq!(c.gaps, 0);
        assert_eq!(start + c.buf.len() as u64, total_at_end);
        let text = c.text();
        let nums: Vec<u32> = text
            .split("\r\n")
            .skip(1) // the first line may be cut by the ring
            .filter_map(|l| l.strip_prefix('n'))
            .map(|n| n.parse().unwrap())
            .collect();
        for w in nums.windows(2) {
            assert_eq!(w[1], w[0] + 1, "gap or duplicate at the seam");
        }
        assert!(text.ends_with("DONE\r\n"), "{:?}", &text[text.len().saturating_sub(40)..]);
    }
    // Late subscribers get the bounded scrollback and the exit straight away.
    let late = pm.subscribe_output("seq").unwrap();
    assert_eq!(late.scrollback.len(), 4096);
    assert!(late.exited.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_never_blocks_the_agent() {
    // A ring far smaller than the flood: what the channel dropped has left the ring too.
    let pm = manager(|c| {
        c.live_channel_capacity = 4;
        c.scrollback_bytes = 4096;
    });
    let mut stalled = pm.subscribe_output("nope").err();
    assert!(matches!(stalled.take(), Some(ProcessError::NotFound(_))));
    pm.start(spec("flood", "i=0; while [ $i -lt 2000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done")).unwrap();
    // Subscribe and never read while the agent floods the terminal.
    let mut sub = pm.subscribe_output("flood").unwrap();
    let exit = tokio::time::timeout(T, pm.wait_exit("flood")).await.expect("agent blocked by a slow subscriber").unwrap();
    assert_eq!(exit.code, Some(0));
    // Output before `scrollback_start` had left the ring before we subscribed.
    let (mut gap, mut seen) = (0, sub.scrollback_start + sub.scrollback.len() as u64);
    loop {
        match sub.recv().await {
            Some(gastown_container::process::OutputEvent::Gap { missed }) => gap += missed,
            Some(gastown_container::process::OutputEvent::Data { data, .. }) => seen += data.len() as u64,
            Some(gastown_container::process::OutputEvent::Exit(_)) | None => break,
        }
    }
    assert!(gap > 0, "the stalled subscriber should have skipped output");
    assert_eq!(seen + gap, pm.status("flood").unwrap().output_bytes, "before + seen + skipped = everything, exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused() {
    let pm = manager(|_| {});
    let mut s = spec("bad", "true");
    s.cwd = "/definitely/not/here".into();
    assert!(matches!(pm.start(s), Err(ProcessError::Invalid(_))));
    let mut s = spec("bad", "true");
    s.env.insert("NOT-A-NAME".into(), "x".into());
    assert!(matches!(pm.start(s), Err(ProcessError::Invalid(_))));
    let mut s = spec("bad", "true");
    s.argv = vec!["/no/such/program".into()];
    assert!(matches!(pm.start(s), Err(ProcessError::Spawn { .. })));
    assert!(matches!(pm.write_input("ghost", vec![1]).await, Err(ProcessError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_manager_kills_its_agents() {
    let pid = {
        let pm = manager(|_| {});
        pm.start(spec("orphan", "trap '' HUP; sleep 30")).unwrap();
        pm.status("orphan").unwrap().pid
    };
    let deadline = Instant::now() + T;
    while group_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!group_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nudges_wait_for_typing_to_stop_arrive_once_and_fold_floods() {
    let pm = manager(|_| {});
    // Each line the program reads is printed back as got:<line>.
    pm.start(spec("n1", "while read l; do echo got:$l; done")).unwrap();
    let mut out = Collector::new(pm.subscribe_output("n1").unwrap());
    let timing = NudgeTiming {
        typing_quiet: Duration::from_millis(800),
        output_quiet: Duration::from_millis(100),
        output_wait_max: Duration::from_secs(2),
        enter_delay: Duration::from_millis(50),
    };
    // A person is mid-word: the notice must not be typed into their line.
    pm.type_input("n1", b"hel".to_vec()).await.unwrap();
    let typed_at = Instant::now();
    assert_eq!(pm.nudge("n1", "mail:1", "you have mail", timing).unwrap(), NudgeOutcome::Queued);
    assert_eq!(pm.nudge("n1", "mail:1", "you have mail", timing).unwrap(), NudgeOutcome::Duplicate);
    assert_eq!(pm.nudge("n1", "mail:2", "you have mail", timing).unwrap(), NudgeOutcome::Folded);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pm.type_input("n1", b"lo\r".to_vec()).await.unwrap();
    out.wait_for("got:hello", T).await;
    let text = out.wait_for("got:you have mail", T).await;
    assert!(typed_at.elapsed() >= Duration::from_millis(1000), "waited for the typing to stop");
    assert!(!text.contains("helyou"), "never typed into the person's line: {text:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(out.text().matches("got:you have mail").count(), 1, "once, though asked three times: {:?}", out.text());
    // Control characters cannot press keys.
    pm.nudge("n1", "x", "a\rb\u{3}c", timing).unwrap();
    out.wait_for("got:a b c", T).await;
    assert!(matches!(pm.nudge("nobody", "k", "t", timing), Err(ProcessError::NotFound(_))));
    pm.stop("n1", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_reads_like_the_terminal_shows_it() {
    let pm = manager(|_| {});
    // A TUI-like program: clears, draws with cursor positioning, overwrites, then waits.
    let script = r#"printf '\033[2J\033[1;1Hold title\033[1;1Hnew title\033[3;5HDo you want to use this API key? (y/N)\033[5;1Hprogress 10%%\rprogress 99%%'; sleep 30"#;
    pm.start(spec("vt", script)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let screen = loop {
        let s = pm.status("vt").unwrap().screen.unwrap_or_default();
        if s.contains("99%") || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(screen, "new title\n    Do you want to use this API key? (y/N)\nprogress 99%");
    pm.stop("vt", Some(Duration::from_secs(1))).await.unwrap();
    assert_eq!(pm.status("vt").unwrap().screen, None, "only a running agent has a screen to show");
}
