//! The witness's two halves around the pure [`crate::witness::reconcile`]: loading the snapshot
//! from the town's tables, and applying the actions it returns (each recorded as an event, so the
//! activity feed shows what the witness did and why).

use serde::Deserialize;
use serde_json::json;

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::CoreResult;
use crate::model::{AgentRole, AgentStatus, BeadStatus, EventType, Severity};
use crate::params;
use crate::time::{parse_iso, Millis};
use crate::witness::{self, Action, AgentView, Limits, MergeView, RunMark, RunView, Snapshot};

/// The most an agent's recorded activity lags its calls, whatever the limits.
const MAX_ACTIVITY_LAG_MS: Millis = 30_000;

/// What the stall nudge says (typed into the agent's terminal).
const STALL_NUDGE: &str = "The witness has seen no activity from you for a while. If you are stuck, run `gt escalate \"<what blocks you>\"`; if you are done, run `gt done`.";

impl TownStore<'_> {
    pub(crate) fn witness_limits(&self) -> CoreResult<(Limits, Millis)> {
        let cfg = self.config()?;
        Ok((Limits::new(&cfg.witness, cfg.refinery.merge_timeout_ms()), cfg.witness.tick_secs as Millis * 1000))
    }

    /// The town as the witness sees it, without the container's view.
    pub(crate) fn witness_snapshot(&self) -> CoreResult<Snapshot> {
        #[derive(Deserialize)]
        struct A {
            bead_id: String,
            name: String,
            role: String,
            status: String,
            hook_bead_id: Option<String>,
            hook_status: Option<String>,
            spawn_epoch: i64,
            running_epoch: Option<i64>,
            last_activity_at: Option<String>,
            stalled_at: Option<String>,
            stall_escalated: i64,
            output_seen: i64,
            keep_alive: i64,
        }
        let rows: Vec<A> = self.db.query(
            "SELECT a.bead_id, a.name, a.role, a.status, a.hook_bead_id, b.status AS hook_status, a.spawn_epoch, a.running_epoch, \
             a.last_activity_at, a.stalled_at, a.stall_escalated, a.output_seen, a.keep_alive \
             FROM agents a LEFT JOIN beads b ON b.bead_id = a.hook_bead_id ORDER BY a.bead_id",
            params![],
        )?;
        let mut agents = Vec::with_capacity(rows.len());
        for r in rows {
            let hook = match (r.hook_bead_id, r.hook_status) {
                (Some(id), Some(st)) => Some((id, BeadStatus::parse("status", &st)?)),
                // A hook on a deleted bead holds nothing.
                (Some(id), None) => Some((id, BeadStatus::Closed)),
                _ => None,
            };
            agents.push(AgentView {
                id: r.bead_id,
                name: r.name,
                role: AgentRole::parse("role", &r.role)?,
                status: AgentStatus::parse("status", &r.status)?,
                hook,
                spawn_epoch: r.spawn_epoch,
                running_epoch: r.running_epoch,
                last_activity: r.last_activity_at.as_deref().and_then(parse_iso),
                stalled_at: r.stalled_at.as_deref().and_then(parse_iso),
                stall_escalated: r.stall_escalated != 0,
                output_seen: r.output_seen,
                keep_alive: r.keep_alive != 0,
            });
        }
        #[derive(Deserialize)]
        struct Id {
            bead_id: String,
        }
        // Work in progress that nobody holds; a molecule's steps are held through their root.
        let orphans: Vec<Id> = self.db.query(
            "SELECT b.bead_id FROM beads b WHERE b.type = 'issue' AND b.status = 'in_progress' AND b.rig_id IS NOT NULL \
             AND json_extract(b.metadata, '$.step') IS NULL \
             AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.hook_bead_id = b.bead_id) ORDER BY b.bead_id",
            params![],
        )?;
        #[derive(Deserialize)]
        struct M {
            bead_id: String,
            started_at: Option<String>,
            claimed_by: Option<String>,
        }
        let merges: Vec<M> = self.db.query(
            "SELECT b.bead_id, r.started_at, r.claimed_by FROM beads b JOIN reviews r ON r.bead_id = b.bead_id \
             WHERE b.type = 'merge_request' AND b.status = 'in_progress' ORDER BY b.bead_id",
            params![],
        )?;
        Ok(Snapshot {
            agents,
            orphans: orphans.into_iter().map(|o| o.bead_id).collect(),
            running_merges: merges
                .into_iter()
                .map(|m| MergeView {
                    orphaned: m.claimed_by.is_some() && self.instance.is_some() && m.claimed_by != self.instance,
                    id: m.bead_id,
                    started_at: m.started_at.as_deref().and_then(parse_iso),
                })
                .collect(),
            container: None,
            asked: None,
            container_full: self.free_run_slots()? == Some(0),
        })
    }

    /// An agent called the town: a sign of life. Written only when it changes what the witness
    /// would decide — the agent is stalled or nudged, or its recorded activity is older than a
    /// twentieth of the shortest idle limit (stall, start, GUPP; 6 s with the defaults) — so that
    /// an agent's reads stay reads: the write made every `gt` call, however small, wait for a
    /// durable commit (+0.4–0.6 ms of CPU a call, measured). The witness may therefore see an
    /// agent as idle up to that twentieth longer than it is.
    pub(crate) fn note_activity(&self, a: &super::agents::AgentRow) -> CoreResult<()> {
        let calm = a.status != "stalled" && a.stalled_at.is_none() && a.stall_escalated == 0 && a.pending_nudge.is_none();
        // A record from the future (a clock gone back) is not fresh.
        let age = a.last_activity_at.as_deref().and_then(parse_iso).map(|t| self.now - t).filter(|age| *age >= 0);
        // The limits are read only for a call that might be skipped.
        let fresh = match age {
            Some(age) if calm && age < MAX_ACTIVITY_LAG_MS => {
                let (l, _) = self.witness_limits()?;
                age < l.stall_after.min(l.start_timeout).min(l.gupp_after) / 20
            }
            _ => false,
        };
        if fresh {
            return Ok(());
        }
        self.mark_active(&a.bead_id)
    }

    /// The agent showed a sign of life: its stall (if any) is over.
    pub(crate) fn mark_active(&self, agent_id: &str) -> CoreResult<()> {
        self.db.run(
            "UPDATE agents SET last_activity_at = ?, stalled_at = NULL, stall_escalated = 0, pending_nudge = NULL, \
             status = CASE WHEN status = 'stalled' THEN 'working' ELSE status END WHERE bead_id = ?",
            params![self.now_iso(), agent_id],
        )
    }

    /// Whether the next witness pass needs the container's process list.
    pub(crate) fn witness_needs_container(&self) -> CoreResult<bool> {
        Ok(witness::needs_container(&self.witness_snapshot()?.agents))
    }

    /// The runs as they stand now, to be recorded just before the container is asked for its
    /// list; `None` when nothing should be running (the container is not asked at all).
    pub(crate) fn witness_marks(&self) -> CoreResult<Option<Vec<RunMark>>> {
        let agents = self.witness_snapshot()?.agents;
        Ok(witness::needs_container(&agents).then(|| witness::marks(&agents)))
    }

    /// One witness pass: reconcile with the container's view (`None`: unreachable or not asked),
    /// taken after `asked` was recorded, and apply what it decided.
    pub(crate) fn witness_tick(&self, container: Option<Vec<RunView>>, asked: Option<Vec<RunMark>>) -> CoreResult<Vec<Action>> {
        let mut snapshot = self.witness_snapshot()?;
        snapshot.container = container;
        snapshot.asked = asked;
        let (limits, _) = self.witness_limits()?;
        let actions = witness::reconcile(&snapshot, &limits, self.now);
        // What the actions made due (restarts, re-queued work) is claimed by the drive that follows.
        for a in &actions {
            self.apply_witness(a, snapshot.container.as_deref().unwrap_or_default())?;
        }
        Ok(actions)
    }

    fn apply_witness(&self, action: &Action, runs: &[RunView]) -> CoreResult<()> {
        let sys = Actor::System;
        let now = self.now_iso();
        // Events about an agent go on its hooked bead (where people look), else on the agent.
        let record = |agent_id: &str, ty: EventType, value: &str, meta: serde_json::Value| -> CoreResult<()> {
            let a = self.agent(agent_id)?;
            let on = a.hook_bead_id.clone().unwrap_or_else(|| a.id.clone());
            self.event(&on, a.rig_id.as_deref(), Some(agent_id), &sys, ty, None, Some(value), meta)
        };
        match action {
            Action::Activity { agent_id, activity } => {
                self.db.run("UPDATE agents SET output_seen = ? WHERE bead_id = ?", params![*activity, agent_id.as_str()])?;
                self.mark_active(agent_id)?;
            }
            Action::Restart { agent_id, reason } => {
                record(agent_id, EventType::Redispatched, "restart", json!({"reason": reason}))?;
                self.db.run(
                    "UPDATE agents SET status = 'idle', running_epoch = NULL, next_dispatch_at = NULL, last_error = ?, stalled_at = NULL WHERE bead_id = ?",
                    params![format!("witness: {reason}"), agent_id.as_str()],
                )?;
            }
            Action::Release { agent_id } => {
                self.unhook(agent_id, &sys, false)?;
                self.db.run(
                    "UPDATE agents SET status = 'idle', running_epoch = NULL, next_dispatch_at = NULL, stalled_at = NULL WHERE bead_id = ?",
                    params![agent_id.as_str()],
                )?;
            }
            Action::Stalled { agent_id, idle_secs } => {
                self.db.run(
                    "UPDATE agents SET status = 'stalled', stalled_at = ?, pending_nudge = ? WHERE bead_id = ?",
                    params![now.as_str(), STALL_NUDGE, agent_id.as_str()],
                )?;
                record(agent_id, EventType::AgentStalled, "stalled", json!({"idle_secs": idle_secs}))?;
            }
            Action::EscalateStall { agent_id, idle_secs } => {
                self.db.run("UPDATE agents SET stall_escalated = 1 WHERE bead_id = ?", params![agent_id.as_str()])?;
                let a = self.agent(agent_id)?;
                // What it sits at (a prompt nobody answers, an error) is what a person needs to see.
                let screen = runs.iter().find(|r| &r.agent_id == agent_id).map(|r| r.screen.trim()).unwrap_or_default();
                let seen = if screen.is_empty() { String::new() } else { format!("; the last lines of its screen:\n{screen}") };
                self.raise_escalation(
                    Severity::Medium,
                    "witness",
                    &format!("{} has been silent for {idle_secs} s and did not answer a nudge{seen}", a.name),
                    Some(agent_id),
                    a.rig_id.as_deref(),
                    a.hook_bead_id.as_deref(),
                )?;
            }
            Action::Gupp { agent_id, bead_id, idle_secs } => {
                record(agent_id, EventType::GuppViolation, "redispatch", json!({"bead_id": bead_id, "idle_secs": idle_secs}))?;
                // Touching the activity time keeps the next look from flagging it again at once.
                self.db.run(
                    "UPDATE agents SET status = 'idle', next_dispatch_at = NULL, last_activity_at = ? WHERE bead_id = ?",
                    params![now.as_str(), agent_id.as_str()],
                )?;
            }
            Action::Reopen { bead_id } => {
                let b = self.bead(bead_id)?;
                self.set_status(bead_id, BeadStatus::Open, &sys, Some("witness: no agent held it"))?;
                if let Some(rig) = &b.rig_id {
                    self.enqueue(bead_id, rig, &sys)?;
                }
            }
            Action::RequeueMerge { mr_id, reason } => {
                self.set_status(mr_id, BeadStatus::Open, &sys, Some(&format!("witness: {reason}")))?;
            }
        }
        Ok(())
    }
}
