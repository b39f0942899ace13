//! Git manager against real local bare repositories.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bare_repo, git};
use gastown_container::git::{
    GitAuth, GitError, GitManager, GitSettings, Identity, MergeBatchRequest, MergeOutcome, MergeStrategy, SecretString,
};

struct Fixture {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    ws: PathBuf,
    gm: GitManager,
    url: String,
}

fn fixture(tweak: impl FnOnce(&mut GitSettings, &Path)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let bare = bare_repo(&root);
    let ws = root.join("ws");
    let mut settings = GitSettings::new(&ws);
    tweak(&mut settings, &bare);
    let gm = GitManager::new(settings).unwrap();
    let url = bare.to_str().unwrap().to_string();
    Fixture { _tmp: tmp, bare, ws, gm, url }
}

/// Commits as the agent would: identity from the environment, nothing else.
fn commit_as(worktree: &Path, name: &str, file: &str, content: &str) -> String {
    std::fs::write(worktree.join(file), content).unwrap();
    let id = Identity::for_agent(name, None).unwrap();
    for args in [vec!["add", file], vec!["commit", "-q", "-m", &format!("{name}: edit {file}")]] {
        let out = Command::new("git")
            .args(&args)
            .current_dir(worktree)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .envs(id.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    git(worktree, &["rev-parse", "HEAD"])
}

/// A train of one: the single merge the refinery makes when nothing else is queued.
fn merge_req(f: &Fixture, branch: &str, gates: &[&str]) -> MergeBatchRequest {
    batch_req(f, &[branch.to_string()], gates)
}

/// Runs a train of one and returns its one outcome; a branch that is not on origin is
/// `BranchNotFound` here (in a train it is the branch's `invalid` outcome).
async fn merge(f: &Fixture, req: MergeBatchRequest) -> Result<MergeOutcome, GitError> {
    let branch = req.branches[0].clone();
    match f.gm.merge_batch(req).await?.results.pop() {
        Some(MergeOutcome::Invalid { .. }) | None => Err(GitError::BranchNotFound(branch)),
        Some(outcome) => Ok(outcome),
    }
}

fn bare_main(f: &Fixture) -> String {
    git(&f.bare, &["rev-parse", "refs/heads/main"])
}

fn merge_tmp_is_empty(f: &Fixture) -> bool {
    let dir = f.ws.join("rigs/rig1/merge-tmp");
    std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none())
}

/// Sets up a polecat worktree with one committed and pushed change.
async fn pushed_change(f: &Fixture, name: &str, bead: &str, file: &str, content: &str) -> String {
    f.gm.ensure_repo("rig1", &f.url, &GitAuth::default()).await.unwrap();
    let wt = f.gm.ensure_worktree("rig1", "agent-1", name, bead, "main").await.unwrap();
    commit_as(&wt.path, name, file, content);
    f.gm.push_agent_branch("rig1", &f.url, "agent-1", name, bead, &wt.branch, &GitAuth::default()).await.unwrap();
    wt.branch
}

#[tokio::test]
async fn clone_worktree_commit_and_push_branch() {
    let f = fixture(|_, _| {});
    let repo = f.gm.ensure_repo("rig1", &f.url, &GitAuth::default()).await.unwrap();
    assert_eq!(repo, f.ws.join("rigs/rig1/repo"));

    let wt = f.gm.ensure_worktree("rig1", "agent-1", "Toast", "gt-abc12", "main").await.unwrap();
    assert!(wt.created);
    assert_eq!(wt.branch, "gt/toast/gt-abc12");
    assert_eq!(wt.path, f.ws.join("rigs/rig1/worktrees/toast-gt-abc12"));
    assert!(wt.path.join("README.md").is_file());

    // Prompt files live in .gastown/ and must never show up as changes.
    std::fs::create_dir_all(wt.path.join(".gastown")).unwrap();
    std::fs::write(wt.path.join(".gastown/prompt.md"), "do the thing").unwrap();
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");

    let sha = commit_as(&wt.path, "Toast", "feature.txt", "feature\n");
    // Only the agent's own branch can be pushed for it.
    for other in ["main", "gt/other/gt-abc12", "gt/toast/gt-zzz"] {
        let r = f.gm.push_agent_branch("rig1", &f.url, "agent-1", "Toast", "gt-abc12", other, &GitAuth::default()).await;
        assert!(matches!(r, Err(GitError::Forbidden(_))), "{other}: {r:?}");
    }
    let (branch, pushed) =
        f.gm.push_agent_branch("rig1", &f.url, "agent-1", "Toast", "gt-abc12", &wt.branch, &GitAuth::default()).await.unwrap();
    assert_eq!((branch.as_str(), pushed.as_str()), (wt.branch.as_str(), sha.as_str()));
    // The agent's clone cannot push by itself: its origin is the server's clone.
    assert_eq!(git(&wt.path, &["remote", "get-url", "origin"]), repo.display().to_string());
    assert_eq!(git(&f.bare, &["rev-parse", "refs/heads/gt/toast/gt-abc12"]), sha);
    assert_eq!(git(&f.bare, &["log", "-1", "--format=%an <%ae>", &sha]), "Toast (gastown) <toast@gastown.local>");

    // Idempotent: the existing worktree (with its work) is reused.
    let again = f.gm.ensure_worktree("rig1", "agent-1", "Toast", "gt-abc12", "main").await.unwrap();
    assert!(!again.created);
    assert_eq!(git(&again.path, &["rev-parse", "HEAD"]), sha);
    // A second ensure_repo fetches instead of cloning.
    f.gm.ensure_repo("rig1", &f.url, &GitAuth::default()).await.unwrap();

    // After the local worktree is gone, a new one resumes from the pushed branch.
    std::fs::remove_dir_all(&wt.path).unwrap();
    let resumed = f.gm.ensure_worktree("rig1", "agent-1", "Toast", "gt-abc12", "main").await.unwrap();
    assert_eq!(git(&resumed.path, &["rev-parse", "HEAD"]), sha);
}

#[tokio::test]
async fn merge_lands_on_main_after_gates() {
    let f = fixture(|_, _| {});
    let branch = pushed_change(&f, "Toast", "gt-1", "feature.txt", "feature\n").await;
    let t0 = Instant::now();
    let outcome = merge(&f, merge_req(&f, &branch, &["test -f feature.txt", "echo gate ok; test \"$CI\" = true"])).await.unwrap();
    let MergeOutcome::Merged { commit_sha, up_to_date, gates, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(!up_to_date);
    assert_eq!(gates.len(), 2);
    assert_eq!(bare_main(&f), commit_sha);
    let info = git(&f.bare, &["log", "-1", "--format=%P|%s|%an", &commit_sha]);
    let mut parts = info.split('|');
    assert_eq!(parts.next().unwrap().split(' ').count(), 2, "{info}");
    assert_eq!(parts.next().unwrap(), "Merge branch 'gt/toast/gt-1' into main");
    assert_eq!(parts.next().unwrap(), "Refinery (gastown)");
    git(&f.bare, &["cat-file", "-e", "main:feature.txt"]);
    assert!(merge_tmp_is_empty(&f));
    let list = git(&f.ws.join("rigs/rig1/repo"), &["worktree", "list", "--porcelain"]);
    // Only the server clone itself: polecats have clones of their own, merge checkouts are gone.
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
    assert!(t0.elapsed() < Duration::from_secs(20));

    // Merging the same branch again is a no-op.
    let again = merge(&f, merge_req(&f, &branch, &[])).await.unwrap();
    assert!(matches!(again, MergeOutcome::Merged { up_to_date: true, .. }), "{again:?}");
    assert_eq!(bare_main(&f), commit_sha);
}

#[tokio::test]
async fn conflict_pushes_nothing_and_names_the_files() {
    let f = fixture(|_, _| {});
    let a = pushed_change(&f, "Toast", "gt-a", "README.md", "toast was here\nline two\n").await;
    let b = pushed_change(&f, "Nux", "gt-b", "README.md", "nux was here\nline two\n").await;
    let first = merge(&f, merge_req(&f, &a, &[])).await.unwrap();
    assert!(matches!(first, MergeOutcome::Merged { .. }), "{first:?}");
    let main_after_a = bare_main(&f);

    let second = merge(&f, merge_req(&f, &b, &["true"])).await.unwrap();
    match second {
        MergeOutcome::Conflict { files, branch, .. } => {
            assert_eq!(files, vec!["README.md".to_string()]);
            assert_eq!(branch, b);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bare_main(&f), main_after_a);
    assert!(merge_tmp_is_empty(&f));
}

#[tokio::test]
async fn failing_gate_pushes_nothing_and_keeps_output() {
    let f = fixture(|_, _| {});
    let seed = bare_main(&f);
    let branch = pushed_change(&f, "Toast", "gt-1", "feature.txt", "x\n").await;
    let outcome =
        merge(&f, merge_req(&f, &branch, &["true", "echo out-line; echo err-line >&2; exit 4", "echo never-runs"])).await.unwrap();
    match outcome {
        MergeOutcome::GateFailed { gate, exit_code, timed_out, output, .. } => {
            assert_eq!(gate, "echo out-line; echo err-line >&2; exit 4");
            assert_eq!(exit_code, Some(4));
            assert!(!timed_out);
            assert!(output.contains("out-line") && output.contains("err-line"), "{output}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bare_main(&f), seed);
    assert!(merge_tmp_is_empty(&f));

    // A gate that hangs (and leaves a background job holding the output
    // pipe) is killed at the timeout.
    let mut req = merge_req(&f, &branch, &["sleep 30 & echo started; sleep 30"]);
    req.gate_timeout = Duration::from_secs(1);
    let t0 = Instant::now();
    let outcome = merge(&f, req).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    match outcome {
        MergeOutcome::GateFailed { timed_out, output, .. } => {
            assert!(timed_out);
            assert!(output.contains("started"), "{output}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bare_main(&f), seed);
    assert!(merge_tmp_is_empty(&f));

    // Large output is bounded to the tail.
    let req = merge_req(&f, &branch, &["i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; exit 1"]);
    match merge(&f, req).await.unwrap() {
        MergeOutcome::GateFailed { output, .. } => {
            assert!(output.len() < 70 * 1024, "{}", output.len());
            assert!(output.starts_with("[... "), "{}", &output[..40]);
            assert!(output.contains("line-19999"));
        }
        other => panic!("{other:?}"),
    }
}

fn batch_req(f: &Fixture, branches: &[String], gates: &[&str]) -> MergeBatchRequest {
    MergeBatchRequest {
        rig_id: "rig1".into(),
        git_url: f.url.clone(),
        branches: branches.to_vec(),
        target_branch: "main".into(),
        gates: gates.iter().map(|g| g.to_string()).collect(),
        gate_timeout: Duration::from_secs(20),
        strategy: MergeStrategy::Direct,
        auth: GitAuth::default(),
        env: BTreeMap::new(),
    }
}

/// A gate that appends a line to a log outside the repository, then runs `check`.
fn logged_gate(log: &Path, check: &str) -> String {
    format!("echo run >> '{}'; {check}", log.display())
}

fn lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn a_train_lands_its_branches_with_one_gate_run_and_skips_a_conflict() {
    let f = fixture(|_, _| {});
    let seed = bare_main(&f);
    let log = f.ws.parent().unwrap().join("gates.log");
    let mut branches = vec![];
    for (i, name) in ["Ace", "Bix", "Cog"].iter().enumerate() {
        branches.push(pushed_change(&f, name, &format!("gt-{i}"), &format!("f{i}.txt"), "x\n").await);
    }
    // Conflicts with the seed's README only once another branch changed it: it goes second.
    let clash_a = pushed_change(&f, "Dax", "gt-d", "README.md", "dax\n").await;
    let clash_b = pushed_change(&f, "Eel", "gt-e", "README.md", "eel\n").await;
    branches.insert(1, clash_a.clone());
    branches.insert(2, clash_b.clone());
    let gate = logged_gate(&log, "test -f f0.txt");
    let out = f.gm.merge_batch(batch_req(&f, &branches, &[&gate])).await.unwrap();
    assert_eq!(lines(&log), 1, "one gate run for the whole train");
    assert_eq!(out.gate_runs.len(), 1);
    let status: Vec<&str> = out.results.iter().map(status_of).collect();
    assert_eq!(status, vec!["merged", "merged", "conflict", "merged", "merged"]);
    let main = bare_main(&f);
    assert_eq!(out.pushed.as_deref(), Some(main.as_str()));
    // Each branch's commit is where it entered the train: main's first-parent chain, in order.
    let chain = git(&f.bare, &["rev-list", "--first-parent", &format!("{seed}..{main}")]);
    let chain: Vec<&str> = chain.lines().rev().collect();
    let commits: Vec<String> = out
        .results
        .iter()
        .filter_map(|r| match r {
            MergeOutcome::Merged { commit_sha, up_to_date: false, .. } => Some(commit_sha.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(chain, commits);
    match &out.results[2] {
        MergeOutcome::Conflict { files, files_total, branch, .. } => {
            assert_eq!((files.as_slice(), *files_total, branch), (&["README.md".to_string()][..], 1, &clash_b));
        }
        other => panic!("{other:?}"),
    }
    assert!(merge_tmp_is_empty(&f));
    // A branch already on the target is up to date; a missing one is reported alone.
    let again = f.gm.merge_batch(batch_req(&f, &[branches[0].clone(), "gt/nobody/gt-zz".into()], &[])).await.unwrap();
    assert!(matches!(again.results[0], MergeOutcome::Merged { up_to_date: true, .. }), "{:?}", again.results[0]);
    assert!(matches!(again.results[1], MergeOutcome::Invalid { .. }), "{:?}", again.results[1]);
    assert_eq!(again.pushed, None);
    // Bad trains are refused before git runs.
    for bad in [vec![], vec![branches[0].clone(), branches[0].clone()], vec!["-x".to_string()]] {
        assert!(matches!(f.gm.merge_batch(batch_req(&f, &bad, &[])).await, Err(GitError::Invalid(_))), "{bad:?}");
    }
}

#[tokio::test]
async fn a_failing_train_is_halved_to_the_branch_that_broke_the_gates() {
    let f = fixture(|_, _| {});
    let seed = bare_main(&f);
    let log = f.ws.parent().unwrap().join("gates.log");
    let mut branches = vec![];
    for i in 0..4 {
        let file = if i == 1 { "BROKEN".to_string() } else { format!("f{i}.txt") };
        branches.push(pushed_change(&f, &format!("P{i}"), &format!("gt-{i}"), &file, "x\n").await);
    }
    let gate = logged_gate(&log, "test ! -e BROKEN || { echo BROKEN is here; exit 3; }");
    let out = f.gm.merge_batch(batch_req(&f, &branches, &[&gate])).await.unwrap();
    let status: Vec<&str> = out.results.iter().map(status_of).collect();
    assert_eq!(status, vec!["merged", "gate_failed", "deferred", "deferred"]);
    // Whole train (fails), the first two (fail), the first one (passes): three runs.
    assert_eq!(lines(&log), 3);
    assert_eq!(out.gate_runs.iter().map(|r| (r.branches, r.passed)).collect::<Vec<_>>(), vec![(4, false), (2, false), (1, true)]);
    match &out.results[1] {
        MergeOutcome::GateFailed { exit_code, output, .. } => {
            assert_eq!(*exit_code, Some(3));
            assert!(output.contains("BROKEN is here"), "{output}");
        }
        other => panic!("{other:?}"),
    }
    // Only the first landed; nothing of the broken branch or the ones behind it reached main.
    let MergeOutcome::Merged { commit_sha, .. } = &out.results[0] else { unreachable!() };
    assert_eq!(&bare_main(&f), commit_sha);
    assert_eq!(git(&f.bare, &["rev-parse", &format!("{commit_sha}^1")]), seed);
    assert!(Command::new("git").args(["cat-file", "-e", "main:BROKEN"]).current_dir(&f.bare).status().unwrap().code() != Some(0));
    assert!(merge_tmp_is_empty(&f));
    let list = git(&f.ws.join("rigs/rig1/repo"), &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "every gate checkout removed: {list}");

    // The deferred ones land in the next train, with one run.
    let out = f.gm.merge_batch(batch_req(&f, &branches[2..], &[&gate])).await.unwrap();
    assert_eq!(out.results.iter().map(status_of).collect::<Vec<_>>(), vec!["merged", "merged"]);
    assert_eq!(lines(&log), 4);
}

#[tokio::test]
async fn a_train_whose_target_moved_is_rejected_as_a_whole() {
    let f = fixture(|_, _| {});
    let root = f.ws.parent().unwrap().to_path_buf();
    // Someone else's commit on main, pushed while the gates run.
    let other = root.join("other");
    git(&root, &["clone", "-q", f.bare.to_str().unwrap(), other.to_str().unwrap()]);
    common::commit_file(&other, "other.txt", "x\n", "someone else");
    let a = pushed_change(&f, "Ace", "gt-a", "a.txt", "a\n").await;
    let b = pushed_change(&f, "Bix", "gt-b", "b.txt", "b\n").await;
    let gate = format!("git -C '{}' push -q origin HEAD:main", other.display());
    let out = f.gm.merge_batch(batch_req(&f, &[a, b], &[&gate])).await.unwrap();
    assert_eq!(out.results.iter().map(status_of).collect::<Vec<_>>(), vec!["push_rejected", "push_rejected"]);
    assert_eq!(out.pushed, None);
    assert_eq!(bare_main(&f), git(&other, &["rev-parse", "HEAD"]));
}

#[tokio::test]
async fn a_conflict_in_thousands_of_files_is_reported_bounded() {
    let f = fixture(|_, _| {});
    let mut branches = vec![];
    for (name, bead) in [("Ace", "gt-a"), ("Bix", "gt-b")] {
        f.gm.ensure_repo("rig1", &f.url, &GitAuth::default()).await.unwrap();
        let wt = f.gm.ensure_worktree("rig1", "agent-1", name, bead, "main").await.unwrap();
        let dir = wt.path.join("mass");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3000 {
            std::fs::write(dir.join(format!("file-{i:05}.txt")), format!("{name}\n")).unwrap();
        }
        git(&wt.path, &["add", "mass"]);
        git(&wt.path, &["commit", "-q", "-m", "mass"]);
        f.gm.push_agent_branch("rig1", &f.url, "agent-1", name, bead, &wt.branch, &GitAuth::default()).await.unwrap();
        branches.push(wt.branch);
    }
    let out = f.gm.merge_batch(batch_req(&f, &branches, &[])).await.unwrap();
    match &out.results[1] {
        MergeOutcome::Conflict { files, files_total, message, .. } => {
            assert_eq!(*files_total, 3000);
            assert_eq!(files.len(), gastown_container::git::MAX_CONFLICT_FILES);
            assert!(message.len() <= 8 * 1024 + 10, "{}", message.len());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(out.results[0], MergeOutcome::Merged { .. }));
    assert!(merge_tmp_is_empty(&f));
}

fn status_of(o: &MergeOutcome) -> &'static str {
    match o {
        MergeOutcome::Merged { .. } => "merged",
        MergeOutcome::Conflict { .. } => "conflict",
        MergeOutcome::GateFailed { .. } => "gate_failed",
        MergeOutcome::PushRejected { .. } => "push_rejected",
        MergeOutcome::Invalid { .. } => "invalid",
        MergeOutcome::Deferred { .. } => "deferred",
        MergeOutcome::Gated { .. } => "gated",
    }
}

fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[tokio::test]
async fn https_token_stays_in_the_credential_file() {
    const TOKEN: &str = "ghp_FAKE_TOKEN_do_not_leak_42";
    const URL: &str = "https://git.example.test/org/repo.git";
    // Route the https URL to the local bare repo so no network is needed; the
    // credential plumbing is configured exactly as for a real remote.
    let f = fixture(|s, bare| {
        s.extra_config.push((format!("url.{}.insteadOf", bare.display()), URL.to_string()));
    });
    let auth =
        GitAuth { github_token: Some(SecretString::new(TOKEN)), github_url: Some("https://git.example.test".into()), ..GitAuth::default() };
    let repo = f.gm.ensure_repo("rig1", URL, &auth).await.unwrap();
    let wt = f.gm.ensure_worktree("rig1", "agent-1", "Toast", "gt-1", "main").await.unwrap();
    commit_as(&wt.path, "Toast", "feature.txt", "x\n");
    f.gm.push_agent_branch("rig1", URL, "agent-1", "Toast", "gt-1", &wt.branch, &auth).await.unwrap();
    let mut req = merge_req(&f, &wt.branch, &[]);
    req.git_url = URL.into();
    req.auth = auth.clone();
    let outcome = merge(&f, req).await.unwrap();
    assert!(matches!(outcome, MergeOutcome::Merged { .. }), "{outcome:?}");

    // The token is in the 0600 credential file outside every worktree...
    let cred = f.gm.credential_file("rig1").unwrap();
    assert!(!cred.starts_with(f.ws.join("rigs")));
    assert_eq!(std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&cred).unwrap().contains(TOKEN));
    // ...and nowhere else: not in .git/config, worktree metadata, objects or
    // commits, nor in any git argv we ran, nor in the remote URL.
    assert_eq!(files_containing(&f.ws.join("rigs"), TOKEN.as_bytes()), Vec::<PathBuf>::new());
    assert_eq!(files_containing(&f.bare, TOKEN.as_bytes()), Vec::<PathBuf>::new());
    let log = f.gm.command_log();
    assert!(log.len() > 10);
    assert!(log.iter().flatten().all(|a| !a.contains(TOKEN)));
    assert_eq!(git(&repo, &["remote", "get-url", "origin"]), URL);
    let config = std::fs::read_to_string(repo.join(".git/config")).unwrap();
    assert!(!config.contains(TOKEN) && !config.contains("credential"), "{config}");

    // An agent's git gets no credential at all: pushes go through the town.
    let out = Command::new("git")
        .args(["credential", "fill"])
        .current_dir(&wt.path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(f.gm.agent_env("rig1").unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"protocol=https\nhost=git.example.test\n\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let filled = String::from_utf8_lossy(&out.stdout);
    assert!(!filled.contains(TOKEN) && !filled.contains("x-access-token"), "{filled}");

    // Config-on-request: without a token the stale file is removed.
    f.gm.ensure_repo("rig1", URL, &GitAuth::default()).await.unwrap();
    assert!(!cred.exists());
}

#[tokio::test]
async fn hostile_input_is_refused_before_git_runs() {
    let f = fixture(|_, _| {});
    let none = GitAuth::default();
    fn invalid<T>(r: Result<T, GitError>) -> bool {
        matches!(r, Err(GitError::Invalid(_)))
    }

    assert!(invalid(f.gm.ensure_repo("../evil", &f.url, &none).await));
    assert!(invalid(f.gm.ensure_repo("-rig", &f.url, &none).await));
    assert!(invalid(f.gm.ensure_repo("rig1", "--upload-pack=touch /tmp/pwned", &none).await));
    let err = f.gm.ensure_repo("rig1", "https://user:hunter2@example.com/r.git", &none).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(invalid(f.gm.ensure_repo("rig1", "ext::sh -c touch% /tmp/pwned", &none).await));
    assert!(invalid(f.gm.ensure_repo("rig1", "/tmp/../etc", &none).await));
    assert!(f.gm.command_log().is_empty(), "git ran for invalid input");

    f.gm.ensure_repo("rig1", &f.url, &none).await.unwrap();
    for (name, bead, base) in [
        ("Toast", "../../etc", "main"),
        ("Toast", "-bead", "main"),
        ("Toast", "gt-1", "-main"),
        ("Toast", "gt-1", "main..x"),
        ("!!!", "gt-1", "main"),
    ] {
        let r = f.gm.ensure_worktree("rig1", "agent-1", name, bead, base).await;
        assert!(invalid(r), "{name} {bead} {base}");
    }
    assert!(matches!(f.gm.ensure_worktree("rig1", "agent-1", "Toast", "gt-1", "nope").await, Err(GitError::BranchNotFound(_))));
    assert!(matches!(f.gm.ensure_worktree("other-rig", "agent-1", "Toast", "gt-1", "main").await, Err(GitError::NotCloned(_))));

    let mut req = merge_req(&f, "--force", &[]);
    assert!(invalid(merge(&f, req.clone()).await));
    req.branches = vec!["gt/none/x".into()];
    assert!(matches!(merge(&f, req.clone()).await, Err(GitError::BranchNotFound(_))));
    req.strategy = MergeStrategy::PullRequest;
    assert!(matches!(merge(&f, req).await, Err(GitError::BranchNotFound(_))));
    assert!(!Path::new("/tmp/pwned").exists());
    assert!(merge_tmp_is_empty(&f));
}
