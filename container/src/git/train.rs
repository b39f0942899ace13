//! The refinery's merge train: several branches of one rig landed with one gate run.
//!
//! The branches are merged one after another onto the target in a temporary detached worktree
//! of the server's clone (a branch that conflicts is reported alone and skipped). Each merge
//! commit is fixed as it is made, so every branch has the commit at which it entered the train,
//! and the gates run once, on the last one. When they fail on more than one branch, the train
//! is halved over those commits (prefixes of the train) until the first branch whose commit fails
//! while the one before it passes: only that branch is reported as failing the gates, established
//! by a run that contains it and nothing after it. What comes before it lands; what comes after
//! it was never tested on something that lands, so it is `deferred` (back to the queue).
//!
//! The invariants of a single merge hold for every gate run: the commit is fixed before the gates
//! run, the gates run as the refinery's uid, the server never runs git in a checkout the gates
//! had (each halving gets a fresh worktree at its commit), and only a commit that passed is pushed,
//! from the server's clone.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::validate::{validate_branch, validate_url};
use super::{gate, path_str, tail, GateReport, GitAuth, GitError, GitManager, MergeOutcome, MergeStrategy, ValidationError};
use crate::isolation::{self, Ident};

/// Branches in one train at most.
pub const MAX_TRAIN: usize = 50;
/// Conflicting files named in an outcome at most; `files_total` counts them all.
pub const MAX_CONFLICT_FILES: usize = 1000;

/// Land `branches` (in this order) on `target_branch` as one train.
#[derive(Debug, Clone)]
pub struct MergeBatchRequest {
    pub rig_id: String,
    pub git_url: String,
    pub branches: Vec<String>,
    pub target_branch: String,
    /// Shell command lines, run in order with `sh -c`.
    pub gates: Vec<String>,
    /// Per-gate timeout.
    pub gate_timeout: Duration,
    pub strategy: MergeStrategy,
    pub auth: GitAuth,
    /// Extra environment for the gates (the town's env vars).
    pub env: BTreeMap<String, String>,
}

/// The train's report and its gate runs, as the Worker reads them (shared with it).
pub use gastown_protocol::{GateRunReport, MergeBatchReply as BatchOutcome};

/// A branch merged into the train.
struct Entry {
    /// Its index in the request.
    idx: usize,
    /// The commit at which it entered the train.
    sha: String,
    /// False when merging it changed nothing (an earlier branch of the train already had it).
    advanced: bool,
}

/// What one gate run came to.
struct Verdict {
    reports: Vec<GateReport>,
    failure: Option<(String, gate::GateRun)>,
}

impl GitManager {
    /// Lands `req.branches` on `req.target_branch` as one train (see the module docs). Errors
    /// are about the request as a whole (bad input, no target branch, git failing); everything
    /// about one branch is in its result.
    pub async fn merge_batch(&self, req: MergeBatchRequest) -> Result<BatchOutcome, GitError> {
        let url = validate_url(&req.git_url)?;
        if req.branches.is_empty() || req.branches.len() > MAX_TRAIN {
            let value = req.branches.len().to_string();
            return Err(ValidationError { what: "branches", value, reason: format!("must list 1 to {MAX_TRAIN} branches") }.into());
        }
        for (i, b) in req.branches.iter().enumerate() {
            validate_branch(b)?;
            if req.branches[..i].contains(b) {
                return Err(ValidationError { what: "branches", value: b.clone(), reason: "must not repeat a branch".into() }.into());
            }
        }
        validate_branch(&req.target_branch)?;
        let rig_dir = self.rig_dir(&req.rig_id)?;
        if req.gates.iter().any(|g| g.contains('\0')) {
            return Err(ValidationError { what: "gate", value: String::new(), reason: "must not contain NUL".into() }.into());
        }
        if req.strategy == MergeStrategy::PullRequest && req.branches.len() != 1 {
            // A pull request is gated on its own: the branch merged with the target, nothing else.
            let value = req.branches.len().to_string();
            return Err(ValidationError {
                what: "branches",
                value,
                reason: "merge strategy pull_request gates one branch at a time".into(),
            }
            .into());
        }

        let merge_lock = self.lock_for(&self.inner.merge_locks, &req.rig_id);
        let _merging = merge_lock.lock().await;
        let repo_lock = self.repo_lock(&req.rig_id)?;

        let tmp = self.merge_tmp(&rig_dir);
        let target_ref = format!("refs/remotes/origin/{}", req.target_branch);
        let (repo, cred, present) = {
            let _g = repo_lock.lock().await;
            let repo = self.ensure_repo_locked(&req.rig_id, &url, &req.auth).await?;
            if !self.ref_exists(&repo, &target_ref).await? {
                return Err(GitError::BranchNotFound(req.target_branch.clone()));
            }
            let mut present = vec![];
            for b in &req.branches {
                present.push(self.ref_exists(&repo, &format!("refs/remotes/origin/{b}")).await?);
            }
            isolation::private_dir(&rig_dir.join("merge-tmp"), None, 0o711)?;
            let tmp_s = path_str(&tmp)?.to_string();
            self.run_ok(&repo, &["worktree", "add", "--detach", "--", &tmp_s, &target_ref], None, &[]).await?;
            let cred = self.credential_file(&req.rig_id)?;
            (repo, cred.is_file().then_some(cred), present)
        };

        let result = self.run_train(&repo, &tmp, &req, &present, cred.as_deref(), &repo_lock).await;

        let _g = repo_lock.lock().await;
        self.remove_worktree(&repo, &tmp).await;
        result
    }

    fn merge_tmp(&self, rig_dir: &Path) -> std::path::PathBuf {
        let n = self.inner.counter.fetch_add(1, Ordering::SeqCst);
        rig_dir.join("merge-tmp").join(format!("merge-{}-{n}", crate::process::now_ms()))
    }

    async fn run_train(
        &self,
        repo: &Path,
        tmp: &Path,
        req: &MergeBatchRequest,
        present: &[bool],
        cred: Option<&Path>,
        repo_lock: &tokio::sync::Mutex<()>,
    ) -> Result<BatchOutcome, GitError> {
        let target = req.target_branch.clone();
        let base = self.run_ok(tmp, &["rev-parse", "HEAD"], None, &[]).await?.trim().to_string();
        let mut results: Vec<Option<MergeOutcome>> = vec![None; req.branches.len()];
        let identity = self.inner.settings.refinery_identity.env();

        // 1. Merge every branch in order; the commits are fixed here, before any gate runs.
        let mut entries: Vec<Entry> = vec![];
        let mut head = base.clone();
        for (idx, branch) in req.branches.iter().enumerate() {
            let (b, t) = (branch.clone(), target.clone());
            if !present[idx] {
                let message = format!("branch {branch} not found on origin");
                results[idx] = Some(MergeOutcome::Invalid { branch: b, target_branch: t, message });
                continue;
            }
            let source_ref = format!("refs/remotes/origin/{branch}");
            if self.run(tmp, &["merge-base", "--is-ancestor", &source_ref, &base], None, &[]).await?.ok() {
                results[idx] =
                    Some(MergeOutcome::Merged { branch: b, target_branch: t, commit_sha: base.clone(), up_to_date: true, gates: vec![] });
                continue;
            }
            let message = format!("Merge branch '{branch}' into {target}");
            let merged = self.run(tmp, &["merge", "--no-ff", "--no-edit", "-m", &message, &source_ref], None, &identity).await?;
            if !merged.ok() {
                let files = self.run(tmp, &["diff", "--name-only", "--diff-filter=U", "-z"], None, &[]).await?;
                let all: Vec<&str> = files.stdout.split('\0').filter(|f| !f.is_empty()).collect();
                let files_total = all.len() as u64;
                let files = all.into_iter().take(MAX_CONFLICT_FILES).map(|f| tail(f, 1024)).collect();
                // Back to the train so far; the next branch goes on top of it.
                let _ = self.run(tmp, &["merge", "--abort"], None, &[]).await;
                self.run_ok(tmp, &["reset", "-q", "--hard", &head], None, &[]).await?;
                results[idx] = Some(MergeOutcome::Conflict {
                    branch: b,
                    target_branch: t,
                    files,
                    files_total,
                    message: tail(&format!("{}{}", merged.stdout, merged.stderr), 8 * 1024),
                });
                continue;
            }
            let sha = self.run_ok(tmp, &["rev-parse", "HEAD"], None, &[]).await?.trim().to_string();
            entries.push(Entry { idx, advanced: sha != head, sha: sha.clone() });
            head = sha;
        }

        // 2. Gate the whole train; on failure halve it down to the first failing branch.
        let refinery = self.inner.settings.isolation.refinery();
        let gate_env = self.gate_env(&req.env, refinery)?;
        let mut gate_runs = vec![];
        let mut culprit: Option<(usize, String, gate::GateRun)> = None;
        let mut landed = entries.len();
        let mut passed_reports: BTreeMap<String, Vec<GateReport>> = BTreeMap::new();
        if let Some(last) = entries.last() {
            let tip = last.sha.clone();
            // The merge checkout's last use: no git runs in it after the gates had it.
            let first = self.gate_in(tmp, req, &gate_env, refinery).await?;
            gate_runs.push(GateRunReport {
                commit_sha: tip.clone(),
                branches: entries.len(),
                passed: first.failure.is_none(),
                gates: first.reports.clone(),
            });
            match first.failure {
                None => {
                    passed_reports.insert(tip, first.reports);
                }
                Some(mut failure) => {
                    // Only commits that added something can be to blame.
                    let cands: Vec<usize> = entries.iter().enumerate().filter(|(_, e)| e.advanced).map(|(p, _)| p).collect();
                    let mut lo: isize = -1;
                    // The first merged branch always adds a commit, so there is a candidate.
                    let Some(mut hi) = cands.len().checked_sub(1) else {
                        return Err(GitError::Io(std::io::Error::other("a failing train without a merge commit")));
                    };
                    while hi as isize - lo > 1 {
                        let mid = ((lo + hi as isize) / 2) as usize;
                        let sha = entries[cands[mid]].sha.clone();
                        let v = self.gate_at(repo, &sha, req, &gate_env, refinery, repo_lock).await?;
                        gate_runs.push(GateRunReport {
                            commit_sha: sha.clone(),
                            branches: cands[mid] + 1,
                            passed: v.failure.is_none(),
                            gates: v.reports.clone(),
                        });
                        match v.failure {
                            None => {
                                passed_reports.insert(sha, v.reports);
                                lo = mid as isize;
                            }
                            Some(f) => {
                                failure = f;
                                hi = mid;
                            }
                        }
                    }
                    landed = cands[hi];
                    let (gate, run) = failure;
                    culprit = Some((cands[hi], gate, run));
                }
            }
        }

        // 3. Push what passed (from the server's clone), then say what became of each branch.
        // With pull requests nothing is pushed to the target: the forge merges the branch once
        // its review is done, and the branch is already on origin (`gt done` pushed it).
        if req.strategy == MergeStrategy::PullRequest {
            return self.gated(repo, req, &entries, landed, culprit, gate_runs, results, passed_reports).await;
        }
        let land = entries[..landed].last().map(|e| e.sha.clone()).filter(|sha| *sha != base);
        let mut rejected = None;
        if let Some(sha) = &land {
            let refspec = format!("{sha}:refs/heads/{target}");
            let pushed = {
                let _g = repo_lock.lock().await;
                self.run(repo, &["push", "origin", &refspec], cred, &[]).await?
            };
            if !pushed.ok() {
                rejected = Some(tail(&pushed.stderr, 8 * 1024));
            }
        }
        let landed_reports = land.as_ref().and_then(|sha| passed_reports.get(sha)).cloned().unwrap_or_default();
        let culprit_branch = culprit.as_ref().map(|(p, _, _)| req.branches[entries[*p].idx].clone());
        for (pos, e) in entries.iter().enumerate() {
            let (branch, target_branch) = (req.branches[e.idx].clone(), target.clone());
            results[e.idx] = Some(if pos < landed {
                match &rejected {
                    Some(message) => {
                        MergeOutcome::PushRejected { branch, target_branch, commit_sha: e.sha.clone(), message: message.clone() }
                    }
                    None => MergeOutcome::Merged {
                        branch,
                        target_branch,
                        commit_sha: e.sha.clone(),
                        up_to_date: !e.advanced,
                        gates: landed_reports.clone(),
                    },
                }
            } else if pos == landed {
                let (_, gate, run) = culprit.take().expect("a branch past the landed ones is the culprit");
                MergeOutcome::GateFailed {
                    branch,
                    target_branch,
                    gate,
                    exit_code: run.exit_code,
                    signal: run.signal,
                    timed_out: run.timed_out,
                    output: run.output,
                }
            } else {
                let ahead = culprit_branch.as_deref().unwrap_or("a branch");
                MergeOutcome::Deferred {
                    branch,
                    target_branch,
                    message: format!("not tested: {ahead}, ahead of it in the merge train, failed the gates; back in the queue"),
                }
            });
        }
        tracing::info!(
            rig_id = %req.rig_id, branches = req.branches.len(), merged = entries.len(), landed, gate_runs = gate_runs.len(),
            pushed = ?land, rejected = rejected.is_some(), "merge train done"
        );
        let results = results.into_iter().map(|r| r.expect("every branch has a result")).collect();
        Ok(BatchOutcome { target_branch: target, pushed: if rejected.is_some() { None } else { land }, gate_runs, results })
    }

    /// The outcome of a train of one under strategy `pull_request`: `gated` (with the branch's
    /// head, the commit the pull request shows) when the merge with the target passed.
    #[allow(clippy::too_many_arguments)]
    async fn gated(
        &self,
        repo: &Path,
        req: &MergeBatchRequest,
        entries: &[Entry],
        landed: usize,
        mut culprit: Option<(usize, String, gate::GateRun)>,
        gate_runs: Vec<GateRunReport>,
        mut results: Vec<Option<MergeOutcome>>,
        passed: BTreeMap<String, Vec<GateReport>>,
    ) -> Result<BatchOutcome, GitError> {
        let target = req.target_branch.clone();
        for (pos, e) in entries.iter().enumerate() {
            let branch = req.branches[e.idx].clone();
            let head_sha =
                self.run_ok(repo, &["rev-parse", &format!("refs/remotes/origin/{branch}^{{commit}}")], None, &[]).await?.trim().to_string();
            results[e.idx] = Some(if pos < landed {
                MergeOutcome::Gated {
                    branch,
                    target_branch: target.clone(),
                    head_sha,
                    commit_sha: e.sha.clone(),
                    gates: passed.get(&e.sha).cloned().unwrap_or_default(),
                }
            } else {
                let (_, gate, run) = culprit.take().expect("a train of one that did not pass has a failing gate");
                MergeOutcome::GateFailed {
                    branch,
                    target_branch: target.clone(),
                    gate,
                    exit_code: run.exit_code,
                    signal: run.signal,
                    timed_out: run.timed_out,
                    output: run.output,
                }
            });
        }
        tracing::info!(rig_id = %req.rig_id, gated = landed, "pull request gating done");
        let results = results.into_iter().map(|r| r.expect("every branch has a result")).collect();
        Ok(BatchOutcome { target_branch: target, pushed: None, gate_runs, results })
    }

    /// Runs the gates in `dir` (a checkout of the commit under test) as the refinery, stopping at
    /// the first that fails. The checkout is the refinery's from here on.
    async fn gate_in(
        &self,
        dir: &Path,
        req: &MergeBatchRequest,
        env: &[(String, String)],
        refinery: Option<Ident>,
    ) -> Result<Verdict, GitError> {
        if let (Some(id), false) = (refinery, req.gates.is_empty()) {
            isolation::chown_tree(dir, id)?;
        }
        let mut reports = vec![];
        for g in &req.gates {
            tracing::info!(rig_id = %req.rig_id, gate = %g, "running gate");
            let run = gate::run_gate(dir, g, req.gate_timeout, env, self.inner.settings.max_gate_output, refinery).await?;
            if !run.success() {
                return Ok(Verdict { reports, failure: Some((g.clone(), run)) });
            }
            reports.push(GateReport { gate: g.clone(), exit_code: run.exit_code, duration_ms: run.duration.as_millis() as u64 });
        }
        Ok(Verdict { reports, failure: None })
    }

    /// The gates on `sha` in a fresh detached worktree of its own, removed afterwards.
    async fn gate_at(
        &self,
        repo: &Path,
        sha: &str,
        req: &MergeBatchRequest,
        env: &[(String, String)],
        refinery: Option<Ident>,
        repo_lock: &tokio::sync::Mutex<()>,
    ) -> Result<Verdict, GitError> {
        let dir = self.merge_tmp(&self.rig_dir(&req.rig_id)?);
        {
            let _g = repo_lock.lock().await;
            let dir_s = path_str(&dir)?.to_string();
            self.run_ok(repo, &["worktree", "add", "--detach", "--", &dir_s, sha], None, &[]).await?;
        }
        let verdict = self.gate_in(&dir, req, env, refinery).await;
        let _g = repo_lock.lock().await;
        self.remove_worktree(repo, &dir).await;
        verdict
    }
}
