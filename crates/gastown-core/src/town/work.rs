//! Getting work done: polecat capacity and the queue behind it, dispatch with bounded retries,
//! process lifecycle reports (with spawn epochs, so a stale "exited" cannot undo a newer run),
//! and the refinery's merge queue (one merge train at a time per rig). The DO glue claims jobs here,
//! performs the I/O, and reports the outcome back; every decision stays in this file.

use gastown_protocol::{ErrorReply, StartReply};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Actor, TownStore};
use crate::bounded;
use crate::config::{MergeStrategy, RuntimeChoice};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::model::{Agent, AgentStatus, Bead, BeadStatus, EventType, Priority, ReviewEntry, Rig, Severity};
use crate::params;
use crate::time::{iso, parse_iso, Millis};

/// Attempts before a bead is failed and a person is told (the reference system once retried for 70 hours).
pub const MAX_ATTEMPTS: i64 = 5;

/// Failed merges of one bead before it is failed and escalated instead of sent back again.
pub const MAX_REWORKS: i64 = 3;

/// 1 s, 2 s, 4 s, 8 s, … capped at a minute.
pub fn backoff_ms(attempts: i64) -> Millis {
    1000i64.saturating_mul(1 << (attempts.clamp(1, 7) - 1)).min(60_000)
}

/// Retrying what needs the container while it cannot be reached: 5 s, 10 s, 20 s, 40 s, … so
/// the last of [`MAX_ATTEMPTS`] comes 75 s after the first — a container that restarts (a
/// deploy, a crash) is back long before; one that is gone for good fails the work within about
/// a minute and a half and a person is told.
pub fn unreachable_backoff_ms(attempts: i64) -> Millis {
    5 * backoff_ms(attempts)
}

/// Everything the container needs to start one agent run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DispatchJob {
    pub town_id: String,
    pub agent: Agent,
    /// The hooked bead (none for a kept-alive agent such as the mayor).
    pub bead: Option<Bead>,
    /// The agent's rig (none for the mayor).
    pub rig: Option<Rig>,
    /// The spawn epoch this run will report in its lifecycle events.
    pub epoch: i64,
    pub runtime: RuntimeChoice,
    pub prompt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MergeJob {
    pub review: ReviewEntry,
    pub rig: Rig,
    pub gates: Vec<String>,
    pub gate_timeout_secs: u32,
    pub strategy: MergeStrategy,
    /// The polecat that submitted the work (its token authenticates the merge callback).
    pub agent_id: String,
    /// With strategy `pr`: the pull request this work is already open as (a rework updates it).
    #[serde(default)]
    pub pr: Option<crate::forge::PullRequest>,
    /// The title of the bead it delivers (the pull request's title).
    #[serde(default)]
    pub source_title: String,
    #[serde(default)]
    pub agent_name: String,
}

/// A notice to type into a running agent's terminal. `key` lets the container drop a repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NudgeJob {
    pub agent_id: String,
    pub key: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Work {
    pub dispatches: Vec<DispatchJob>,
    pub merges: Vec<MergeJob>,
    #[serde(default)]
    pub nudges: Vec<NudgeJob>,
    /// The container's limit on runs as the town knows it (the DO records a different answer).
    #[serde(default)]
    pub container_max_agents: Option<i64>,
    /// Open pull requests to poll (no webhook needed).
    #[serde(default)]
    pub pr_polls: Vec<super::pulls::PrPollJob>,
    /// Approved, green pull requests to merge (`refinery.auto_merge`).
    #[serde(default)]
    pub pr_merges: Vec<super::pulls::PrMergeJob>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
            && self.merges.is_empty()
            && self.nudges.is_empty()
            && self.pr_polls.is_empty()
            && self.pr_merges.is_empty()
    }
}

/// What the container's answer to a start means for the town.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// Running (a repeat of the start of a run already live counts: the container says so).
    Started { max_agents: Option<i64> },
    /// No room now (the container's limit, or the rig's): wait for a slot; not an attempt.
    Full { reason: String, container_limit: Option<i64> },
    /// Failed; `permanent` when retrying cannot help (the container refused the request itself).
    Failed { error: String, permanent: bool },
    /// The container could not be reached (or its gateway said so): retried on a slower
    /// schedule, long enough to outlast a restart.
    Unreachable { error: String },
}

impl StartOutcome {
    /// Reads the container's reply: `{"success":true,"data":`[`StartReply`]`}` or an
    /// [`ErrorReply`] (a gateway's own error may be neither: its text is the message).
    pub fn from_reply(status: u16, body: &serde_json::Value) -> StartOutcome {
        if status < 300 {
            // A run that started is started, whatever else its answer says; the container's
            // limit comes with a well-formed answer.
            let reply = StartReply::deserialize(&body["data"]).ok();
            return StartOutcome::Started { max_agents: reply.and_then(|r| i64::try_from(r.max_agents).ok()) };
        }
        let err = ErrorReply::deserialize(body).ok();
        let message = err.as_ref().map_or_else(|| body.to_string(), |e| e.error.clone());
        if matches!(status, 502..=504) {
            return StartOutcome::Unreachable { error: format!("the container cannot be reached ({status}): {message}") };
        }
        let limit = err.as_ref().and_then(|e| e.limit).and_then(|l| i64::try_from(l).ok());
        match (status, err.as_ref().and_then(|e| e.code.as_deref())) {
            (409, Some("capacity_exceeded")) => StartOutcome::Full { reason: message, container_limit: limit },
            (409, Some("rig_capacity_exceeded")) => StartOutcome::Full { reason: message, container_limit: None },
            _ => StartOutcome::Failed {
                error: format!("container refused the start ({status}): {message}"),
                // Any other 4xx is the request itself; 409 is a state that passes (a run of
                // another epoch still stopping).
                permanent: (400..500).contains(&status) && status != 409,
            },
        }
    }
}

/// How long a run the container had no room for waits before it is offered again (a run that
/// ends frees its slot sooner: its exit report drives the queue at once).
pub const DEFERRAL_MS: Millis = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Lifecycle {
    Started {
        epoch: i64,
    },
    Exited {
        epoch: i64,
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
        #[serde(default)]
        reason: Option<String>,
        /// The last lines of its terminal, as plain text (an error, a prompt it gave up at).
        #[serde(default)]
        screen: Option<String>,
    },
}

/// `gt escalate`: a problem that needs a person (or the mayor).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalateInput {
    pub message: String,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub category: Option<String>,
}

/// What the container's merge came to, for one merge request (of a train, or alone).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MergeOutcome {
    Merged {
        commit_sha: String,
    },
    Conflict {
        files: Vec<String>,
        message: String,
        /// How many files conflicted when `files` was already cut short by the container.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files_total: Option<u64>,
    },
    GateFailed {
        gate: String,
        exit_code: Option<i32>,
        output: String,
    },
    /// Merged and gated, but the target moved before the push: not the work's fault, so the
    /// merge is retried with backoff like an unreachable container.
    PushRejected {
        message: String,
    },
    /// The merge could not be attempted because of the work itself (e.g. the branch was never pushed).
    Invalid {
        message: String,
    },
    /// Not tested: an earlier branch of its train failed the gates, and what this one would have
    /// been tested on does not land. Back in the queue at its place; the attempt does not count.
    Deferred {
        message: String,
    },
    /// The container could not be reached or answered with an error: retried with backoff.
    Unreachable {
        error: String,
    },
    /// Strategy `pr`: the branch merged with the target passed the gates (nothing was pushed).
    /// The DO turns it into `PullRequest` once the pull request is open.
    Gated {
        /// The branch's head: the commit the pull request shows.
        head_sha: String,
    },
    /// Strategy `pr`: gated, and the pull request is open (opened, or updated by the push).
    PullRequest {
        pr: crate::forge::PullRequest,
    },
}

/// One merge request's outcome, as the batch entry point takes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MergeReport {
    pub review_id: String,
    pub outcome: MergeOutcome,
}

/// Whether the mayor runs, as `GET …/mayor/status` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MayorStatus {
    pub status: MayorState,
    pub agent: Option<crate::model::Agent>,
    /// Started again whenever it stops (`POST …/mayor/ensure`, or mail from a person).
    pub keep_alive: bool,
}

/// `starting`: a run was started and has not reported in; `active`: running; `idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MayorState {
    Starting,
    Active,
    Idle,
}

/// Groups claimed merges into trains: one per rig and target branch, in queue order. The
/// container merges a train's branches one after another and gates the result once.
pub fn merge_trains(merges: &[MergeJob]) -> Vec<Vec<MergeJob>> {
    let mut trains: Vec<Vec<MergeJob>> = vec![];
    for m in merges {
        match trains.iter_mut().find(|t| t[0].rig.id == m.rig.id && t[0].review.target_branch == m.review.target_branch) {
            Some(t) => t.push(m.clone()),
            None => trains.push(vec![m.clone()]),
        }
    }
    trains
}

/// See [`TownStore::polecat_slot`].
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    Free,
    RigFull,
    TownFull,
}

impl TownStore<'_> {
    fn busy_polecats(&self, rig_id: Option<&str>) -> CoreResult<i64> {
        self.db.scalar_i64(
            "SELECT COUNT(*) FROM agents WHERE role = 'polecat' AND (hook_bead_id IS NOT NULL OR status IN ('working', 'stalled')) AND (?1 IS NULL OR rig_id = ?1)",
            params![rig_id],
        )
    }

    /// Runs the town believes are live in its container (started or starting, not yet exited).
    fn live_runs(&self) -> CoreResult<i64> {
        self.db.scalar_i64("SELECT COUNT(*) FROM agents WHERE status IN ('working', 'stalled')", params![])
    }

    /// The container's limit on runs at once, once it has told us.
    pub(crate) fn container_max_agents(&self) -> CoreResult<Option<i64>> {
        Ok(self.meta()?.container_max_agents)
    }

    /// How many more runs the container takes now (`None`: its limit is not known yet).
    pub(crate) fn free_run_slots(&self) -> CoreResult<Option<i64>> {
        Ok(match self.container_max_agents()? {
            Some(max) => Some((max - self.live_runs()?).max(0)),
            None => None,
        })
    }

    pub(crate) fn set_container_capacity(&self, max_agents: i64) -> CoreResult<Option<i64>> {
        if max_agents < 1 {
            return Err(CoreError::bad("max_agents", "must be at least 1"));
        }
        self.forget_meta();
        self.db.run("UPDATE town_meta SET container_max_agents = ? WHERE id = 1", params![max_agents])?;
        self.container_max_agents()
    }

    /// A polecat slot is free in the rig and in the town.
    pub(crate) fn has_polecat_slot(&self, rig_id: &str) -> CoreResult<bool> {
        Ok(self.polecat_slot(rig_id)? == Slot::Free)
    }

    /// Whether one more polecat may work in `rig_id`, and if not, which limit is reached (the
    /// queue scan skips a full rig but stops at a full town).
    fn polecat_slot(&self, rig_id: &str) -> CoreResult<Slot> {
        Ok(if self.town_full()? {
            Slot::TownFull
        } else if self.rig_full(rig_id)? {
            Slot::RigFull
        } else {
            Slot::Free
        })
    }

    fn town_full(&self) -> CoreResult<bool> {
        Ok(self.busy_polecats(None)? >= self.config()?.capacity.max_polecats_per_town as i64)
    }

    fn rig_full(&self, rig_id: &str) -> CoreResult<bool> {
        Ok(self.busy_polecats(Some(rig_id))? >= self.config()?.capacity.max_polecats_per_rig as i64)
    }

    pub(crate) fn enqueue(&self, bead_id: &str, rig_id: &str, actor: &Actor) -> CoreResult<()> {
        self.enqueue_because(bead_id, rig_id, actor, "no free polecat slot")
    }

    fn enqueue_because(&self, bead_id: &str, rig_id: &str, actor: &Actor, reason: &str) -> CoreResult<()> {
        self.db.run(
            "INSERT OR IGNORE INTO dispatch_queue (bead_id, rig_id, queued_at) VALUES (?, ?, ?)",
            params![bead_id, rig_id, self.now_iso()],
        )?;
        self.event(bead_id, Some(rig_id), None, actor, EventType::Queued, None, None, json!({"reason": reason}))
    }

    /// A person retried a failed bead: work that belongs to a rig (and is not a step run through
    /// its molecule's root) is queued for a polecat again with a fresh count of attempts.
    pub(crate) fn requeue_failed(&self, bead: &Bead, actor: &Actor) -> CoreResult<()> {
        let Some(rig_id) = bead.rig_id.as_deref() else { return Ok(()) };
        if bead.bead_type != crate::model::BeadType::Issue || bead.metadata.get("step").is_some_and(|s| !s.is_null()) {
            return Ok(());
        }
        // Merges that failed before the retry no longer count towards giving up.
        self.db.run(
            "UPDATE beads SET metadata = json_set(metadata, '$.failed_merges_before_retry', \
               (SELECT COUNT(*) FROM reviews r JOIN beads m ON m.bead_id = r.bead_id WHERE r.source_bead_id = ?1 AND m.status = 'failed')) \
             WHERE bead_id = ?1",
            params![bead.id.as_str()],
        )?;
        self.enqueue_because(&bead.id, rig_id, actor, "retried")?;
        self.fill_from_queue()
    }

    /// Hands queued beads to polecats while slots are free: highest priority first, then oldest.
    /// Bounded by the rigs and by capacity, not by the queue (a backlog behind full rigs is the
    /// normal case): the rigs with queued work are found from the rigs, a seek each; a full town
    /// ends it before any queued row is read; and only the queues of rigs with a free slot are.
    pub(crate) fn fill_from_queue(&self) -> CoreResult<()> {
        #[derive(Deserialize)]
        struct R {
            rig_id: String,
        }
        let rigs: Vec<R> = self
            .db
            .query("SELECT r.rig_id FROM rigs r WHERE EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.rig_id = r.rig_id)", params![])?;
        if rigs.is_empty() {
            return Ok(());
        }
        // Nothing is assigned in this pass, so the town is asked once, then each rig.
        if self.town_full()? {
            return Ok(());
        }
        let mut free: Vec<String> = vec![];
        for r in rigs {
            if !self.rig_full(&r.rig_id)? {
                free.push(r.rig_id);
            }
        }
        if free.is_empty() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Q {
            bead_id: String,
            rig_id: String,
            status: Option<String>,
        }
        let queued: Vec<Q> = self.db.query(
            "SELECT q.bead_id, q.rig_id, b.status FROM dispatch_queue q LEFT JOIN beads b ON b.bead_id = q.bead_id \
             WHERE q.rig_id IN (SELECT value FROM json_each(?)) \
             ORDER BY CASE b.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, q.queued_at, q.bead_id",
            params![serde_json::to_string(&free)?],
        )?;
        // A rig found full is not asked again, and a full town ends the scan.
        let mut full_rigs: Vec<String> = vec![];
        for q in queued {
            // SQLite drops a bead from the queue when it leaves `open` (migration 0017); one
            // queued some other way is dropped here, when its turn comes.
            if q.status.as_deref() != Some("open") {
                self.db.run("DELETE FROM dispatch_queue WHERE bead_id = ?", params![q.bead_id.as_str()])?;
                continue;
            }
            if full_rigs.contains(&q.rig_id) {
                continue;
            }
            match self.polecat_slot(&q.rig_id)? {
                Slot::TownFull => break,
                Slot::RigFull => {
                    full_rigs.push(q.rig_id);
                    continue;
                }
                Slot::Free => {}
            }
            if self.open_blockers(&q.bead_id)? > 0 {
                // Waits in the queue until what blocks it is closed.
                continue;
            }
            self.db.run("DELETE FROM dispatch_queue WHERE bead_id = ?", params![q.bead_id.as_str()])?;
            self.assign_polecat(&q.rig_id, &q.bead_id, &Actor::System)?;
        }
        Ok(())
    }

    /// Claims every agent run that is due: hooked, idle, past its backoff. Each claim bumps the
    /// spawn epoch and counts an attempt before any I/O, so a crash between claim and start can
    /// neither double-start nor retry forever.
    pub(crate) fn claim_work(&self) -> CoreResult<Work> {
        if !self.work_may_be_due()? {
            // The tests hold the shortcut to its promise on every claim they make: the full
            // claim must then find nothing and change nothing.
            #[cfg(test)]
            {
                let changes = || self.db.scalar_i64("SELECT total_changes()", params![]);
                let before = changes()?;
                let w = self.claim_all()?;
                assert!(w.is_empty() && changes()? == before, "work_may_be_due said no, but the claim found {w:?}");
            }
            return Ok(Work { container_max_agents: self.container_max_agents()?, ..Work::default() });
        }
        self.claim_all()
    }

    fn claim_all(&self) -> CoreResult<Work> {
        self.reescalate_due()?;
        self.feed_stranded_convoys()?;
        self.fill_from_queue()?;
        let now = self.now_iso();
        #[derive(Deserialize)]
        struct Due {
            bead_id: String,
            dispatch_attempts: i64,
        }
        let due: Vec<Due> = self.db.query(
            "SELECT a.bead_id, a.dispatch_attempts FROM agents a JOIN beads b ON b.bead_id = a.hook_bead_id \
             WHERE a.status = 'idle' AND a.role = 'polecat' AND (a.next_dispatch_at IS NULL OR a.next_dispatch_at <= ?) \
             ORDER BY CASE b.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, b.created_at",
            params![now.as_str()],
        )?;
        let town_id = self.meta()?.town_id;
        let config = self.config()?;
        let mut work = Work { container_max_agents: self.container_max_agents()?, ..Work::default() };
        // The mayor (what people talk to) is started before polecats take the last slots.
        self.claim_kept_alive(&town_id, &config, &now, &mut work)?;
        // Never more runs than the container takes: the rest stay due and wait, uncounted.
        let mut free = self.free_run_slots()?;
        for d in due {
            if d.dispatch_attempts >= MAX_ATTEMPTS {
                self.give_up(&d.bead_id, "dispatch kept failing")?;
                continue;
            }
            if free == Some(0) {
                break;
            }
            let agent = self.agent(&d.bead_id)?;
            let Some(hook) = agent.hook_bead_id.clone() else { continue };
            let bead = self.bead(&hook)?;
            if bead.status.is_terminal() {
                // Never dispatch finished work.
                self.unhook(&agent.id, &Actor::System, false)?;
                continue;
            }
            self.claim_run(&agent.id, &now)?;
            free = free.map(|f| f - 1);
            if bead.status == BeadStatus::Open {
                self.set_status(&bead.id, BeadStatus::InProgress, &Actor::System, None)?;
            }
            let agent = self.agent(&agent.id)?;
            let rig_id = agent.rig_id.clone().ok_or_else(|| CoreError::Internal("polecat without a rig".into()))?;
            let rig = self.rig(&rig_id)?;
            let rework = self.latest_rework(&agent.id, &bead.id)?;
            let checkpoint = agent.checkpoint.as_ref().map(|c| c.to_string());
            let bead = self.bead(&bead.id)?;
            let mut prompt = crate::prompts::for_agent(&agent, Some(&rig), Some(&bead), rework.as_deref(), checkpoint.as_deref());
            if let Some(m) = self.molecule_of(&bead)? {
                prompt.push_str(&format!(
                    "\n\nThis work is a molecule of {} steps ({}). Run `gt mol current` to see your step, do it, then run `gt mol advance`; \
                     repeat until it says every step is done, then run `gt done`.",
                    m.steps.len(),
                    m.formula
                ));
            }
            let mut runtime = config.resolve_runtime(Some(&rig_id), agent.role);
            // The model may be picked for one piece of work when it is slung (`metadata.model`);
            // anything that does not look like a model name is ignored.
            if let Some(m) = bead.metadata.get("model").and_then(|v| v.as_str()).filter(|m| is_model_name(m)) {
                runtime.model = Some(m.to_string());
            }
            work.dispatches.push(DispatchJob {
                prompt,
                runtime,
                epoch: agent.spawn_epoch,
                town_id: town_id.clone(),
                agent,
                bead: Some(bead),
                rig: Some(rig),
            });
        }
        work.merges = self.claim_merges()?;
        work.nudges = self.claim_nudges()?;
        work.pr_polls = self.claim_pr_polls()?;
        work.pr_merges = self.claim_pr_merges()?;
        Ok(work)
    }

    /// One statement that is true whenever [`TownStore::claim_work`] could find anything to do
    /// now: the drive loop runs after every op that may create work, and most find none (a
    /// status change, a bead hooked while the container is full). It may say yes when there
    /// is nothing (a convoy noted for a look, a blocked bead in the queue), never no when there is:
    /// each clause is a loosened copy of one claim's own selection below. Each reads only open
    /// rows (the partial indexes of migration 0012; the running agents before their unread mail,
    /// which piles up for an idle one; the beads in review before their reviews, as an approved
    /// pull request stays approved after it merged), so its cost does not grow with the town's
    /// past (a native test reads the plans).
    fn work_may_be_due(&self) -> CoreResult<bool> {
        let cfg = self.config()?;
        let (esc, cap) = (cfg.escalations, cfg.capacity);
        let now = self.now_iso();
        let reescalate_before = iso(self.now - esc.reescalate_after_secs as Millis * 1000);
        Ok(self.db.scalar_i64(
            "SELECT EXISTS (SELECT 1 FROM escalations INDEXED BY idx_escalations_due WHERE acknowledged_at IS NULL AND re_escalation_count < ?1 AND last_escalated_at <= ?2) \
             OR EXISTS (SELECT 1 FROM convoys_to_check) \
             OR ((SELECT COUNT(*) FROM agents a WHERE a.role = 'polecat' AND (a.hook_bead_id IS NOT NULL OR a.status IN ('working', 'stalled'))) < ?5 \
                 AND EXISTS (SELECT 1 FROM rigs rg WHERE EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.rig_id = rg.rig_id) \
                             AND (SELECT COUNT(*) FROM agents a WHERE a.role = 'polecat' AND a.rig_id = rg.rig_id \
                                  AND (a.hook_bead_id IS NOT NULL OR a.status IN ('working', 'stalled'))) < ?4)) \
             OR EXISTS (SELECT 1 FROM agents WHERE status = 'idle' AND (hook_bead_id IS NOT NULL OR keep_alive = 1) \
                        AND (next_dispatch_at IS NULL OR next_dispatch_at <= ?3)) \
             OR EXISTS (SELECT 1 FROM beads WHERE type = 'merge_request' AND status = 'open') \
             OR EXISTS (SELECT 1 FROM agents a CROSS JOIN mail m ON m.to_agent_id = a.bead_id \
                        WHERE a.status IN ('working', 'stalled') AND m.read_at IS NULL AND m.nudged_at IS NULL) \
             OR EXISTS (SELECT 1 FROM agents WHERE pending_nudge IS NOT NULL) \
             OR EXISTS (SELECT 1 FROM beads b CROSS JOIN reviews r ON r.bead_id = b.bead_id WHERE b.type = 'merge_request' AND b.status = 'in_review' \
                        AND r.pr_number IS NOT NULL AND (r.pr_next_poll_at <= ?3 OR (?6 AND r.pr_review = 'approved' \
                        AND r.pr_checks IN ('success', 'none') AND (r.pr_merge_asked IS NULL OR r.pr_merge_asked != r.pr_head_sha))))",
            params![esc.max_reescalations, reescalate_before, now, cap.max_polecats_per_rig, cap.max_polecats_per_town, cfg.refinery.auto_merge],
        )? != 0)
    }

    /// A new run of `agent_id`: a fresh spawn epoch, one more attempt, the witness's view reset.
    /// Unread mail needs no terminal notice any more: the new run's prompt lists it.
    fn claim_run(&self, agent_id: &str, now: &str) -> CoreResult<()> {
        self.db.run(
            "UPDATE agents SET status = 'working', spawn_epoch = spawn_epoch + 1, dispatch_attempts = dispatch_attempts + 1, \
             last_activity_at = ?, next_dispatch_at = NULL, running_epoch = NULL, stalled_at = NULL, stall_escalated = 0, \
             output_seen = 0, pending_nudge = NULL WHERE bead_id = ?",
            params![now, agent_id],
        )?;
        self.db.run("UPDATE mail SET nudged_at = ? WHERE to_agent_id = ? AND read_at IS NULL AND nudged_at IS NULL", params![now, agent_id])
    }

    /// Agents the town keeps running (the mayor) that are down and due: started again, with the
    /// same bounded backoff as any dispatch; after the last attempt the town stops trying and
    /// tells a person.
    fn claim_kept_alive(&self, town_id: &str, config: &crate::config::TownConfig, now: &str, work: &mut Work) -> CoreResult<()> {
        #[derive(Deserialize)]
        struct Due {
            bead_id: String,
            dispatch_attempts: i64,
        }
        let due: Vec<Due> = self.db.query(
            "SELECT bead_id, dispatch_attempts FROM agents WHERE keep_alive = 1 AND status = 'idle' AND hook_bead_id IS NULL \
             AND (next_dispatch_at IS NULL OR next_dispatch_at <= ?)",
            params![now],
        )?;
        for d in due {
            if d.dispatch_attempts >= MAX_ATTEMPTS {
                self.db.run("UPDATE agents SET keep_alive = 0, dispatch_attempts = 0 WHERE bead_id = ?", params![d.bead_id.as_str()])?;
                let a = self.agent(&d.bead_id)?;
                self.raise_escalation(
                    Severity::High,
                    "dispatch",
                    &format!("{} keeps failing to start or exits at once; stopped restarting it", a.name),
                    Some(&a.id),
                    a.rig_id.as_deref(),
                    None,
                )?;
                continue;
            }
            self.claim_run(&d.bead_id, now)?;
            let agent = self.agent(&d.bead_id)?;
            let rigs = self.list_rigs()?;
            let mut prompt =
                crate::prompts::for_agent(&agent, None, None, None, agent.checkpoint.as_ref().map(|c| c.to_string()).as_deref());
            let names: Vec<&str> = rigs.iter().map(|r| r.name.as_str()).collect();
            prompt.push_str(&format!("\n\nThe town's rigs: {}.", if names.is_empty() { "none yet".to_string() } else { names.join(", ") }));
            work.dispatches.push(DispatchJob {
                runtime: config.resolve_runtime(agent.rig_id.as_deref(), agent.role),
                epoch: agent.spawn_epoch,
                town_id: town_id.to_string(),
                prompt,
                agent,
                bead: None,
                rig: None,
            });
        }
        Ok(())
    }

    /// Keeps the town's mayor running from now on (started by the next drive).
    pub(crate) fn ensure_mayor_running(&self, actor: &Actor) -> CoreResult<MayorStatus> {
        let mayor = self.ensure_mayor(actor)?;
        self.db.run(
            "UPDATE agents SET keep_alive = 1, dispatch_attempts = CASE WHEN keep_alive = 1 THEN dispatch_attempts ELSE 0 END, \
             next_dispatch_at = CASE WHEN keep_alive = 1 THEN next_dispatch_at ELSE NULL END WHERE bead_id = ?",
            params![mayor.id.as_str()],
        )?;
        self.mayor_status()
    }

    /// `starting` (a run was started and has not reported in), `active` (running), or `idle`.
    pub(crate) fn mayor_status(&self) -> CoreResult<MayorStatus> {
        #[derive(Deserialize)]
        struct M {
            bead_id: String,
            status: String,
            spawn_epoch: i64,
            running_epoch: Option<i64>,
            keep_alive: i64,
        }
        let m: Option<M> = self
            .db
            .query_opt("SELECT bead_id, status, spawn_epoch, running_epoch, keep_alive FROM agents WHERE role = 'mayor'", params![])?;
        Ok(match m {
            None => MayorStatus { status: MayorState::Idle, agent: None, keep_alive: false },
            Some(m) => {
                let status = match (m.status.as_str(), m.running_epoch) {
                    ("working", Some(e)) if e == m.spawn_epoch => MayorState::Active,
                    ("working", _) => MayorState::Starting,
                    _ if m.keep_alive == 1 => MayorState::Starting,
                    _ => MayorState::Idle,
                };
                MayorStatus { status, agent: Some(self.agent(&m.bead_id)?), keep_alive: m.keep_alive == 1 }
            }
        })
    }

    /// The body of the newest unread rework mail for this bead, to put in the next prompt.
    fn latest_rework(&self, agent_id: &str, bead_id: &str) -> CoreResult<Option<String>> {
        #[derive(Deserialize)]
        struct R {
            body: Option<String>,
        }
        Ok(self
            .db
            .query_opt::<R>(
                "SELECT b.body FROM mail m JOIN beads b ON b.bead_id = m.bead_id WHERE m.to_agent_id = ? AND m.read_at IS NULL \
                 AND json_extract(b.metadata, '$.rework_of') = ? ORDER BY b.created_at DESC LIMIT 1",
                params![agent_id, bead_id],
            )?
            .and_then(|r| r.body))
    }

    /// The container could not start run `epoch`: back off (longer when it could not be reached
    /// at all), or give up after the last attempt.
    pub(crate) fn dispatch_failed(&self, agent_id: &str, epoch: i64, error: &str, permanent: bool, unreachable: bool) -> CoreResult<Agent> {
        let a = self.agent(agent_id)?;
        if a.spawn_epoch != epoch || !matches!(a.status, AgentStatus::Working | AgentStatus::Stalled) {
            return Ok(a);
        }
        let error: String = error.chars().take(2000).collect();
        self.db.run(
            "UPDATE agents SET status = 'idle', last_error = ?, next_dispatch_at = ? WHERE bead_id = ?",
            params![
                error.as_str(),
                iso(self.now + if unreachable { unreachable_backoff_ms(a.dispatch_attempts) } else { backoff_ms(a.dispatch_attempts) }),
                agent_id
            ],
        )?;
        if let Some(h) = &a.hook_bead_id {
            self.event(
                h,
                a.rig_id.as_deref(),
                Some(agent_id),
                &Actor::System,
                EventType::DispatchFailed,
                None,
                None,
                json!({"attempt": a.dispatch_attempts, "error": error}),
            )?;
            if permanent {
                self.give_up(agent_id, &format!("the agent cannot be started: {error}"))?;
            } else if a.dispatch_attempts >= MAX_ATTEMPTS {
                self.give_up(agent_id, &format!("dispatch failed {} times; last error: {error}", a.dispatch_attempts))?;
            }
        }
        self.agent(agent_id)
    }

    /// The container had no room for run `epoch`: the run waits for a slot. Nothing failed, so
    /// the attempt the claim counted is given back (a full container never fails a bead).
    pub(crate) fn dispatch_deferred(&self, agent_id: &str, epoch: i64, reason: &str, container_limit: Option<i64>) -> CoreResult<Agent> {
        if let Some(limit) = container_limit {
            self.set_container_capacity(limit)?;
        }
        let a = self.agent(agent_id)?;
        if a.spawn_epoch != epoch || !matches!(a.status, AgentStatus::Working | AgentStatus::Stalled) {
            return Ok(a);
        }
        let reason: String = reason.chars().take(500).collect();
        self.db.run(
            "UPDATE agents SET status = 'idle', running_epoch = NULL, dispatch_attempts = MAX(dispatch_attempts - 1, 0), \
             next_dispatch_at = ?, last_error = ? WHERE bead_id = ?",
            params![iso(self.now + DEFERRAL_MS), format!("waiting for a free slot: {reason}"), agent_id],
        )?;
        self.agent(agent_id)
    }

    /// Ends retrying: the hooked bead is failed, the agent freed, and a person is told.
    fn give_up(&self, agent_id: &str, reason: &str) -> CoreResult<()> {
        let a = self.agent(agent_id)?;
        let Some(bead_id) = a.hook_bead_id.clone() else { return Ok(()) };
        self.set_status(&bead_id, BeadStatus::Failed, &Actor::System, Some(reason))?;
        self.db.run(
            "UPDATE agents SET status = 'idle', dispatch_attempts = 0, next_dispatch_at = NULL, last_error = ? WHERE bead_id = ?",
            params![reason, agent_id],
        )?;
        self.raise_escalation(
            Severity::High,
            "dispatch",
            &format!("{bead_id} failed: {reason}"),
            Some(agent_id),
            a.rig_id.as_deref(),
            Some(&bead_id),
        )?;
        self.fill_from_queue()
    }

    pub(crate) fn escalate(&self, rig_id: Option<&str>, input: EscalateInput, actor: &Actor) -> CoreResult<Bead> {
        crate::validate::text("message", &input.message, crate::validate::MAX_BODY)?;
        crate::validate::optional_text("category", input.category.as_deref(), 100)?;
        if let Some(r) = rig_id {
            self.rig(r)?;
        }
        let source = actor.agent_id();
        let about = match source {
            Some(a) => self.agent(a)?.hook_bead_id,
            None => None,
        };
        let id = self.raise_escalation(
            input.severity.unwrap_or(Severity::Medium),
            input.category.as_deref().unwrap_or("agent"),
            &input.message,
            source,
            rig_id,
            about.as_deref(),
        )?;
        self.bead(&id)
    }

    /// A run started or ended. Reports for an older run than the agent's current one are ignored.
    pub(crate) fn lifecycle(&self, agent_id: &str, ev: &Lifecycle) -> CoreResult<serde_json::Value> {
        let a = self.agent(agent_id)?;
        let epoch = match ev {
            Lifecycle::Started { epoch } | Lifecycle::Exited { epoch, .. } => *epoch,
        };
        if epoch != a.spawn_epoch {
            return Ok(json!({"applied": false, "reason": format!("stale epoch {epoch}; current is {}", a.spawn_epoch)}));
        }
        let hook = a.hook_bead_id.clone();
        match ev {
            Lifecycle::Started { .. } => {
                // The reports travel separately: a quick run's exit may have come first.
                if self.db.scalar_i64("SELECT COALESCE(exited_epoch, -1) FROM agents WHERE bead_id = ?", params![agent_id])? == epoch {
                    return Ok(json!({"applied": false, "reason": format!("run {epoch} has already exited")}));
                }
                self.db.run(
                    "UPDATE agents SET status = 'working', running_epoch = ?, last_activity_at = ? WHERE bead_id = ?",
                    params![epoch, self.now_iso(), agent_id],
                )?;
                // On the hooked bead if there is one, else on the agent itself (the mayor has no
                // hook): viewers learn of every new run, e.g. to attach its terminal again.
                self.event(
                    hook.as_deref().unwrap_or(agent_id),
                    a.rig_id.as_deref(),
                    Some(agent_id),
                    &Actor::System,
                    EventType::AgentSpawned,
                    None,
                    Some(&epoch.to_string()),
                    json!({}),
                )?;
            }
            Lifecycle::Exited { code, signal, reason, screen, .. } => {
                let screen: String = screen.as_deref().unwrap_or_default().trim().chars().take(1500).collect();
                let seen = if screen.is_empty() { String::new() } else { format!("; the last lines of its screen:\n{screen}") };
                if !matches!(a.status, AgentStatus::Working | AgentStatus::Stalled) {
                    return Ok(json!({"applied": false, "reason": "agent was not running"}));
                }
                self.db.run("UPDATE agents SET exited_epoch = ? WHERE bead_id = ?", params![epoch, agent_id])?;
                let meta = json!({"epoch": epoch, "code": code, "signal": signal, "reason": reason, "screen": screen});
                let kept_alive = self.db.scalar_i64("SELECT keep_alive FROM agents WHERE bead_id = ?", params![agent_id])? == 1;
                // Each case decides the agent's next state and what the exit meant; the event is
                // recorded once, on the hooked bead if there is one, else on the agent.
                let outcome = match &hook {
                    // Exited without `gt done`: the work is not done; retry with backoff, bounded.
                    Some(_) => {
                        let how = match (code, signal) {
                            (Some(c), _) => format!("exit code {c}"),
                            (None, Some(s)) => format!("signal {s}"),
                            (None, None) => "no exit status".to_string(),
                        };
                        let why = format!("exited without gt done ({how}){seen}");
                        self.db.run(
                            "UPDATE agents SET status = 'idle', running_epoch = NULL, last_error = ?, next_dispatch_at = ?, last_activity_at = ? WHERE bead_id = ?",
                            params![why.as_str(), iso(self.now + backoff_ms(a.dispatch_attempts)), self.now_iso(), agent_id],
                        )?;
                        "without_done"
                    }
                    // Kept alive: start it again. A run that lasted a while was healthy and resets
                    // the count; quick exits back off and eventually stop (claim_kept_alive).
                    None if kept_alive => {
                        let ran_ms = a.last_activity_at.as_deref().and_then(parse_iso).map_or(0, |t| self.now - t);
                        let attempts = if ran_ms >= 60_000 { 0 } else { a.dispatch_attempts };
                        let next = iso(self.now + if attempts == 0 { 0 } else { backoff_ms(attempts) });
                        self.db.run(
                            "UPDATE agents SET status = 'idle', running_epoch = NULL, dispatch_attempts = ?, next_dispatch_at = ?, last_activity_at = ? WHERE bead_id = ?",
                            params![attempts, next, self.now_iso(), agent_id],
                        )?;
                        "restarting"
                    }
                    // After `gt done`: the agent is free.
                    None => {
                        self.db.run(
                            "UPDATE agents SET status = 'idle', running_epoch = NULL, dispatch_attempts = 0, last_error = NULL, last_activity_at = ? WHERE bead_id = ?",
                            params![self.now_iso(), agent_id],
                        )?;
                        "done"
                    }
                };
                let on = hook.as_deref().unwrap_or(agent_id);
                self.event(on, a.rig_id.as_deref(), Some(agent_id), &Actor::System, EventType::AgentExited, None, Some(outcome), meta)?;
                match outcome {
                    "without_done" if a.dispatch_attempts >= MAX_ATTEMPTS => {
                        self.give_up(agent_id, &format!("exited without gt done, {} times{seen}", a.dispatch_attempts))?;
                    }
                    "done" => self.fill_from_queue()?,
                    _ => {}
                }
            }
        }
        Ok(json!({"applied": true, "agent": self.agent(agent_id)?}))
    }

    /// Starts at most one merge train per rig: up to `refinery.max_batch` of the rig's pending
    /// merge requests for one target branch, oldest first, skipping those still backing off.
    /// (A merge running longer than its gates allow is put back in the queue by the witness.)
    fn claim_merges(&self) -> CoreResult<Vec<MergeJob>> {
        let config = self.config()?;
        let max_batch = config.refinery.max_batch.max(1) as usize;
        #[derive(Deserialize)]
        struct P {
            bead_id: String,
            rig_id: String,
            target_branch: String,
            attempts: i64,
            started_at: Option<String>,
        }
        let pending: Vec<P> = self.db.query(
            "SELECT b.bead_id, b.rig_id, r.target_branch, r.attempts, r.started_at FROM beads b JOIN reviews r ON r.bead_id = b.bead_id \
             WHERE b.type = 'merge_request' AND b.status = 'open' AND b.rig_id NOT IN \
               (SELECT rig_id FROM beads WHERE type = 'merge_request' AND status = 'in_progress' AND rig_id IS NOT NULL) \
             ORDER BY b.created_at, r.rowid",
            params![],
        )?;
        let mut jobs = vec![];
        // Per rig: the train's target branch and its length so far.
        let mut trains: Vec<(String, String, usize)> = vec![];
        for p in pending {
            // A retried merge waits out its backoff.
            if p.attempts > 0
                && p.started_at.as_deref().and_then(parse_iso).is_some_and(|t| t + unreachable_backoff_ms(p.attempts) > self.now)
            {
                continue;
            }
            let rig = self.rig(&p.rig_id)?;
            let strategy = rig.merge_strategy.unwrap_or(config.refinery.merge_strategy);
            // A pull request is gated on its own: the branch merged with the target, nothing else.
            let max_batch = if strategy == MergeStrategy::Pr { 1 } else { max_batch };
            match trains.iter_mut().find(|(rig, _, _)| *rig == p.rig_id) {
                Some((_, target, len)) if *target == p.target_branch && *len < max_batch => *len += 1,
                Some(_) => continue,
                None => trains.push((p.rig_id.clone(), p.target_branch.clone(), 1)),
            }
            self.db.run(
                "UPDATE reviews SET started_at = ?, attempts = attempts + 1, claimed_by = ? WHERE bead_id = ?",
                params![self.now_iso(), self.instance.as_deref(), p.bead_id.as_str()],
            )?;
            self.set_status(&p.bead_id, BeadStatus::InProgress, &Actor::System, None)?;
            let review = self.review(&p.bead_id)?;
            let source_title = self.bead_opt(&review.source_bead_id)?.map(|b| b.title).unwrap_or_default();
            let agent_name =
                self.agent_row(&review.agent_id)?.map(|_| self.agent(&review.agent_id)).transpose()?.map(|a| a.name).unwrap_or_default();
            jobs.push(MergeJob {
                agent_id: review.agent_id.clone(),
                pr: if strategy == MergeStrategy::Pr { self.pull_request_of(&review.id)? } else { None },
                rig,
                review,
                gates: config.refinery.gates.clone(),
                gate_timeout_secs: config.refinery.gate_timeout_secs,
                strategy,
                source_title,
                agent_name,
            });
        }
        Ok(jobs)
    }

    /// The merge queue, newest first, in one statement. A merge request's row is written with
    /// its bead, so the table's own order is the order they were made in: walking it backwards
    /// reads the page alone, where sorting by the bead's time read every merge request the town
    /// ever had.
    pub(crate) fn list_merge_queue(&self, limit: Option<u32>) -> CoreResult<Vec<ReviewEntry>> {
        let limit = super::beads::page_limit(limit, super::beads::MAX_PAGE, super::beads::MAX_PAGE)?;
        Ok(self
            .db
            .query::<super::agents::ReviewRow>(&format!("{} ORDER BY r.rowid DESC LIMIT ?", super::agents::REVIEW_SELECT), params![limit])?
            .into_iter()
            .map(super::agents::ReviewRow::into_entry)
            .collect())
    }

    /// A failed merge request goes back in the queue as it was (e.g. after a person fixed the
    /// target branch or a flaky gate); only failed ones can be retried.
    pub(crate) fn retry_merge(&self, mr_id: &str, actor: &Actor) -> CoreResult<ReviewEntry> {
        let r = self.review(mr_id)?;
        if r.status != "failed" {
            return Err(CoreError::Conflict(format!("merge request {mr_id} is {}; only a failed one can be retried", r.status)));
        }
        self.db.run(
            "UPDATE reviews SET attempts = 0, started_at = NULL, output = NULL, processed_at = NULL WHERE bead_id = ?",
            params![mr_id],
        )?;
        self.set_status(mr_id, BeadStatus::Open, actor, Some("retried"))?;
        self.review(mr_id)
    }

    /// Applies a merge's result: merged work closes the source bead; a deferred one waits for the
    /// next train; a rejected push or an unreachable container is retried with backoff; anything
    /// else sends the work back to its polecat with a rework mail, and nothing was pushed. Every
    /// text stored from the outcome is bounded (`crate::bounded`).
    pub(crate) fn merge_result(&self, mr_id: &str, outcome: &MergeOutcome) -> CoreResult<ReviewEntry> {
        let review = self.review(mr_id)?;
        if review.status != "running" {
            return Err(CoreError::Conflict(format!("merge request {mr_id} is {}, not running", review.status)));
        }
        let rig_id = review.rig_id.clone();
        let sys = Actor::System;
        match outcome {
            MergeOutcome::Merged { commit_sha } => self.record_merged(&review, commit_sha, json!({}))?,
            MergeOutcome::PullRequest { pr } => self.pr_opened(&review, pr)?,
            MergeOutcome::Deferred { message } => {
                // Its attempt is given back: nothing was tried, so it neither backs off nor counts
                // towards giving up.
                self.db.run("UPDATE reviews SET attempts = MAX(attempts - 1, 0), started_at = NULL WHERE bead_id = ?", params![mr_id])?;
                self.set_status(mr_id, BeadStatus::Open, &sys, Some(&bounded::head(message, 500)))?;
            }
            MergeOutcome::Gated { .. } => {
                // Never recorded as such: gated work without an open pull request is not done.
                let why = MergeOutcome::Unreachable { error: "the gates passed but no pull request was opened".into() };
                return self.merge_result(mr_id, &why);
            }
            MergeOutcome::Unreachable { error: why } | MergeOutcome::PushRejected { message: why } => {
                let why = bounded::head(why, bounded::MAX_SHORT);
                let attempts = self.db.scalar_i64("SELECT attempts FROM reviews WHERE bead_id = ?", params![mr_id])?;
                let label = if matches!(outcome, MergeOutcome::PushRejected { .. }) { "push_rejected" } else { "unreachable" };
                if attempts < MAX_ATTEMPTS {
                    self.set_status(mr_id, BeadStatus::Open, &sys, Some(&bounded::head(&why, 500)))?;
                } else {
                    self.db.run(
                        "UPDATE reviews SET output = ?, processed_at = ? WHERE bead_id = ?",
                        params![why.as_str(), self.now_iso(), mr_id],
                    )?;
                    self.set_status(mr_id, BeadStatus::Failed, &sys, Some("the merge could not be run"))?;
                    self.report_review(&review, "failed", json!({"reason": label, "error": bounded::head(&why, 500)}))?;
                    self.raise_escalation(
                        Severity::High,
                        "refinery",
                        &format!("merge of {} failed {attempts} times: {why}", review.branch),
                        None,
                        rig_id.as_deref(),
                        Some(&review.source_bead_id),
                    )?;
                }
            }
            failure => {
                let (reason, output) = match failure {
                    MergeOutcome::Conflict { files, message, files_total } => (
                        "conflict",
                        format!(
                            "Merge conflict with {}: {}\n{}",
                            review.target_branch,
                            bounded::file_list(files, *files_total),
                            bounded::tail(message, bounded::MAX_SHORT)
                        ),
                    ),
                    MergeOutcome::GateFailed { gate, exit_code, output } => {
                        // In words: "exit code 1", never Rust's `Some(1)`; say so when it printed nothing.
                        let how = exit_code.map_or_else(|| "killed or timed out".to_string(), |c| format!("exit code {c}"));
                        let (gate, out) = (bounded::head(gate, 500), bounded::tail(output.trim(), bounded::MAX_OUTPUT));
                        let text = if out.trim().is_empty() {
                            format!("Quality gate `{gate}` failed ({how}) with no output")
                        } else {
                            format!("Quality gate `{gate}` failed ({how}):\n{out}")
                        };
                        ("gate_failed", text)
                    }
                    MergeOutcome::Invalid { message } => {
                        ("invalid", format!("The merge could not be attempted: {}", bounded::head(message, bounded::MAX_SHORT)))
                    }
                    _ => unreachable!("handled above"),
                };
                self.fail_merge(&review, reason, &output)?;
            }
        }
        self.review(mr_id)
    }

    /// Landed: the merge request and the bead it delivers close, with the merge commit recorded
    /// (convoys tracking the bead progress through its close).
    pub(crate) fn record_merged(&self, review: &ReviewEntry, commit_sha: &str, extra: serde_json::Value) -> CoreResult<()> {
        let sys = Actor::System;
        let commit_sha = bounded::head(commit_sha, 100);
        self.db.run(
            "UPDATE reviews SET merge_commit = ?, processed_at = ?, output = NULL WHERE bead_id = ?",
            params![commit_sha.as_str(), self.now_iso(), review.id.as_str()],
        )?;
        self.set_status(&review.id, BeadStatus::Closed, &sys, Some("merged"))?;
        let mut meta = json!({"merge_commit": commit_sha, "branch": review.branch});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        self.report_review(review, "merged", meta)?;
        if self.bead_opt(&review.source_bead_id)?.is_some_and(|b| !b.status.is_terminal()) {
            self.set_status(&review.source_bead_id, BeadStatus::Closed, &sys, Some(&format!("merged as {commit_sha}")))?;
        }
        Ok(())
    }

    /// Applies a train's outcomes, each in a transaction of its own: one that cannot be recorded
    /// (whatever the reason) is recorded as failed with a short error instead of staying running,
    /// and never holds up the others. Returns each merge request as it ended up.
    pub(crate) fn merge_results(&self, reports: &[MergeReport]) -> CoreResult<Vec<serde_json::Value>> {
        let mut out = vec![];
        for r in reports {
            let entry = match self.tx(|| self.merge_result(&r.review_id, &r.outcome)) {
                Ok(e) => json!(e),
                // Not running (a late or repeated result) is not a failure to record: leave it be.
                Err(e @ CoreError::Conflict(_)) | Err(e @ CoreError::NotFound(_)) => json!({"id": r.review_id, "error": e.to_string()}),
                Err(e) => match self.tx(|| self.merge_unrecorded(&r.review_id, &e.to_string())) {
                    Ok(entry) => json!(entry),
                    Err(again) => json!({"id": r.review_id, "error": again.to_string()}),
                },
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// The fallback when a merge's result could not be recorded: the merge request fails with a
    /// short error and the work goes back to its polecat, so nothing stays `running` forever.
    pub(crate) fn merge_unrecorded(&self, mr_id: &str, error: &str) -> CoreResult<ReviewEntry> {
        let review = self.review(mr_id)?;
        if review.status != "running" {
            return Err(CoreError::Conflict(format!("merge request {mr_id} is {}, not running", review.status)));
        }
        let output = format!("The merge result could not be recorded: {}", bounded::head(error, 1000));
        self.fail_merge(&review, "unrecorded", &output)?;
        self.review(mr_id)
    }

    /// A failed merge request: its output stored, the failure reported on it and its bead, and
    /// the work sent back for rework.
    pub(crate) fn fail_merge(&self, review: &ReviewEntry, reason: &str, output: &str) -> CoreResult<()> {
        self.db.run(
            "UPDATE reviews SET output = ?, processed_at = ? WHERE bead_id = ?",
            params![output, self.now_iso(), review.id.as_str()],
        )?;
        self.set_status(&review.id, BeadStatus::Failed, &Actor::System, Some(reason))?;
        self.report_review(review, "failed", json!({"reason": reason}))?;
        self.return_for_rework(review, output)
    }

    /// A review's completion, recorded on both the merge request and the bead it delivers.
    pub(crate) fn report_review(&self, review: &ReviewEntry, status: &str, meta: serde_json::Value) -> CoreResult<()> {
        for bead in [review.id.as_str(), review.source_bead_id.as_str()] {
            let agent = Some(review.agent_id.as_str());
            self.event(
                bead,
                review.rig_id.as_deref(),
                agent,
                &Actor::System,
                EventType::ReviewCompleted,
                None,
                Some(status),
                meta.clone(),
            )?;
        }
        Ok(())
    }

    /// The source bead goes back to the polecat that did it (or to the queue if that polecat is
    /// gone or busy), with a mail saying what to fix.
    fn return_for_rework(&self, review: &ReviewEntry, output: &str) -> CoreResult<()> {
        let Some(source) = self.bead_opt(&review.source_bead_id)? else { return Ok(()) };
        if source.status.is_terminal() {
            return Ok(());
        }
        let failures = self.db.scalar_i64(
            "SELECT COUNT(*) FROM reviews r JOIN beads b ON b.bead_id = r.bead_id WHERE r.source_bead_id = ? AND b.status = 'failed'",
            params![source.id.as_str()],
        )? - source.metadata.get("failed_merges_before_retry").and_then(|v| v.as_i64()).unwrap_or(0);
        if failures >= MAX_REWORKS {
            self.set_status(&source.id, BeadStatus::Failed, &Actor::System, Some("its merges kept failing"))?;
            self.raise_escalation(
                Severity::High,
                "refinery",
                &format!("{} failed to merge {failures} times; last: {}", source.id, bounded::tail(output, bounded::MAX_SHORT)),
                Some(&review.agent_id),
                review.rig_id.as_deref(),
                Some(&source.id),
            )?;
            return Ok(());
        }
        self.set_status(&source.id, BeadStatus::InProgress, &Actor::System, Some("returned for rework"))?;
        let polecat = self.agent_row(&review.agent_id)?.map(|r| r.hook_bead_id.is_none());
        if polecat == Some(true) {
            let agent = self.agent(&review.agent_id)?;
            let tail = bounded::tail(output, 8000);
            let mail =
                self.deliver("refinery", &agent, &format!("Rework needed: {}", source.title), &tail, Priority::High, &Actor::System)?;
            self.db.run(
                "UPDATE beads SET metadata = json_set(metadata, '$.rework_of', ?) WHERE bead_id = ?",
                params![source.id.as_str(), mail.id.as_str()],
            )?;
            self.db.run("UPDATE agents SET dispatch_attempts = 0 WHERE bead_id = ?", params![agent.id.as_str()])?;
            self.hook(&agent.id, &source.id, &Actor::System)?;
        } else {
            self.set_status(&source.id, BeadStatus::Open, &Actor::System, Some("its polecat is gone or busy"))?;
            if let Some(rig) = &source.rig_id {
                self.enqueue(&source.id, rig, &Actor::System)?;
            }
            self.fill_from_queue()?;
        }
        Ok(())
    }

    /// When the town next needs its alarm, or `None` when nothing is pending (an idle town
    /// costs nothing).
    pub(crate) fn next_wake(&self) -> CoreResult<Option<Millis>> {
        // Two statements for the deadlines kept in columns (the drive loop asks after each op
        // that may create work, so each statement here is paid often); the witness's below.
        // (Not one compound SELECT: the runtime allows only a few terms in one.)
        #[derive(Deserialize)]
        struct Wake {
            due: Option<String>,
            kept: Option<String>,
            queue: i64,
            live: i64,
            escalation: Option<String>,
            pr: Option<String>,
        }
        let cfg = self.config()?;
        let w: Wake = self.db.query_opt(
            "SELECT (SELECT CASE WHEN COUNT(*) > 0 THEN MIN(COALESCE(next_dispatch_at, '')) END FROM agents \
                     WHERE status = 'idle' AND role = 'polecat' AND hook_bead_id IS NOT NULL) AS due, \
                    (SELECT CASE WHEN COUNT(*) > 0 THEN MIN(COALESCE(next_dispatch_at, '')) END FROM agents \
                     WHERE keep_alive = 1 AND status = 'idle' AND hook_bead_id IS NULL) AS kept, \
                    (EXISTS (SELECT 1 FROM dispatch_queue) AND NOT EXISTS (SELECT 1 FROM agents WHERE role = 'polecat' \
                     AND (hook_bead_id IS NOT NULL OR status IN ('working', 'stalled')))) AS queue, \
                    (SELECT COUNT(*) FROM agents WHERE status IN ('working', 'stalled')) AS live, \
                    (SELECT MIN(last_escalated_at) FROM escalations INDEXED BY idx_escalations_due WHERE acknowledged_at IS NULL AND re_escalation_count < ?1) AS escalation, \
                    (SELECT MIN(r.pr_next_poll_at) FROM reviews r JOIN beads b ON b.bead_id = r.bead_id \
                     WHERE b.type = 'merge_request' AND b.status = 'in_review' AND r.pr_next_poll_at IS NOT NULL) AS pr",
            params![cfg.escalations.max_reescalations],
        )?
        .ok_or_else(|| CoreError::Internal("next wake: no row".into()))?;
        // A missing or empty time (never set) means due now.
        let at = |t: &Option<String>| t.as_deref().and_then(parse_iso).unwrap_or(self.now);
        let mut times: Vec<Millis> = vec![];
        // With the container full, waiting polecats are started when a run ends (its exit report
        // drives the queue), not by an alarm that could only find the container full again.
        let full = self.container_max_agents()?.is_some_and(|max| max - w.live <= 0);
        if w.due.is_some() && !full {
            times.push(at(&w.due));
        }
        if w.kept.is_some() {
            times.push(at(&w.kept));
        }
        if w.queue != 0 {
            times.push(self.now);
        }
        times.extend(w.escalation.as_deref().and_then(parse_iso).map(|t| t + cfg.escalations.reescalate_after_secs as Millis * 1000));
        times.extend(w.pr.as_deref().and_then(parse_iso));
        #[derive(Deserialize)]
        struct M {
            status: String,
            attempts: i64,
            started_at: Option<String>,
        }
        let merges: Vec<M> = self.db.query(
            "SELECT b.status, r.attempts, r.started_at FROM beads b JOIN reviews r ON r.bead_id = b.bead_id WHERE b.type = 'merge_request' AND b.status IN ('open', 'in_progress')",
            params![],
        )?;
        for m in merges {
            let started = m.started_at.as_deref().and_then(parse_iso);
            times.push(match (m.status.as_str(), started) {
                ("open", Some(t)) if m.attempts > 0 => t + unreachable_backoff_ms(m.attempts),
                ("open", _) => self.now,
                (_, Some(t)) => t + cfg.refinery.merge_timeout_ms() + 1,
                _ => self.now,
            });
        }
        if cfg.refinery.auto_merge && self.claimable_merges()? {
            times.push(self.now);
        }
        let (limits, tick) = self.witness_limits()?;
        times.extend(crate::witness::next_look(&self.witness_snapshot()?, &limits, tick, self.now));
        Ok(times.into_iter().min().map(|t| t.max(self.now)))
    }
}

/// A model name as agent CLIs take them (`claude-sonnet-4`, `openai/gpt-5`, `model:tag`).
pub(crate) fn is_model_name(m: &str) -> bool {
    !m.is_empty() && m.len() <= 100 && m.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@'))
}
