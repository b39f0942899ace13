//! Agents and the work they hold: registration, the name pool, the hook (the one bead an agent
//! must work on), sling (create + allocate + hook in one step), prime, checkpoints and `done`,
//! which hands the work to the review queue.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{role_is_rig_scoped, Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::model::{Agent, AgentRole, AgentStatus, Bead, BeadStatus, BeadType, EventType, Priority, ReviewEntry};
use crate::{names, params, validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentInput {
    pub role: AgentRole,
    /// Polecats only; the next free pool name when absent.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentFilter {
    pub rig_id: Option<String>,
    pub role: Option<AgentRole>,
    pub status: Option<AgentStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SlingInput {
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Track the new bead in this convoy.
    #[serde(default)]
    pub convoy_id: Option<String>,
    /// Instantiate this built-in formula on the new bead (its polecat walks the steps).
    #[serde(default)]
    pub formula: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SlingResult {
    pub bead: Bead,
    /// `None` when every polecat slot is taken: the bead waits in the queue.
    pub agent: Option<Agent>,
}

/// The push that precedes a `Done` (the container checks the branch is the agent's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DonePushJob {
    pub rig_id: String,
    pub git_url: String,
    pub agent_id: String,
    pub agent_name: String,
    pub bead_id: String,
    /// This very submission was already recorded (a `gt done` repeated because its answer was
    /// lost): nothing is pushed again and the `Done` answers with the existing merge request.
    #[serde(default)]
    pub already_submitted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DoneInput {
    pub branch: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub pr_url: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct AgentRow {
    pub bead_id: String,
    pub role: String,
    pub name: String,
    pub rig_id: Option<String>,
    pub status: String,
    pub hook_bead_id: Option<String>,
    pub dispatch_attempts: i64,
    pub spawn_epoch: i64,
    pub checkpoint: Option<String>,
    pub last_activity_at: Option<String>,
    pub created_at: String,
    // The witness's marks, which an agent's call clears (see `TownStore::note_activity`).
    pub stalled_at: Option<String>,
    pub stall_escalated: i64,
    pub pending_nudge: Option<String>,
}

impl AgentRow {
    fn into_agent(self) -> CoreResult<Agent> {
        Ok(Agent {
            role: AgentRole::parse("role", &self.role)?,
            status: AgentStatus::parse("status", &self.status)?,
            checkpoint: self.checkpoint.as_deref().map(serde_json::from_str).transpose()?,
            id: self.bead_id,
            rig_id: self.rig_id,
            name: self.name,
            hook_bead_id: self.hook_bead_id,
            dispatch_attempts: self.dispatch_attempts,
            spawn_epoch: self.spawn_epoch,
            last_activity_at: self.last_activity_at,
            created_at: self.created_at,
        })
    }
}

const AGENT_SELECT: &str = "SELECT a.*, b.created_at AS created_at FROM agents a JOIN beads b ON b.bead_id = a.bead_id";

impl TownStore<'_> {
    pub(crate) fn agent_row(&self, agent_id: &str) -> CoreResult<Option<AgentRow>> {
        self.db.query_opt(&format!("{AGENT_SELECT} WHERE a.bead_id = ?"), params![agent_id])
    }

    pub(crate) fn agent(&self, agent_id: &str) -> CoreResult<Agent> {
        self.agent_row(agent_id)?.ok_or_else(|| CoreError::not_found("agent", agent_id))?.into_agent()
    }

    /// An agent seen through a rig-scoped route: one of another rig is not found.
    pub(crate) fn agent_in(&self, rig_id: Option<&str>, agent_id: &str) -> CoreResult<Agent> {
        let a = self.agent(agent_id)?;
        match rig_id {
            Some(r) if a.rig_id.as_deref() != Some(r) => Err(CoreError::not_found("agent", agent_id)),
            _ => Ok(a),
        }
    }

    /// [`TownStore::agent_in`] as a check only. An agent asking about itself (its mail, its
    /// molecule, its lifecycle reports) had its row read as its call came in: that answers,
    /// without a second read.
    pub(crate) fn check_agent_in(&self, rig_id: Option<&str>, agent_id: &str) -> CoreResult<()> {
        if let Some((id, rig)) = self.caller.borrow().as_ref().filter(|(id, _)| id == agent_id) {
            return match rig_id {
                Some(r) if rig.as_deref() != Some(r) => Err(CoreError::not_found("agent", id)),
                _ => Ok(()),
            };
        }
        self.agent_in(rig_id, agent_id).map(|_| ())
    }

    pub(crate) fn list_agents(&self, f: &AgentFilter) -> CoreResult<Vec<Agent>> {
        if let Some(r) = &f.rig_id {
            self.rig(r)?;
        }
        self.db
            .query::<AgentRow>(
                &format!(
                    "{AGENT_SELECT} WHERE (?1 IS NULL OR a.rig_id = ?1) AND (?2 IS NULL OR a.role = ?2) AND (?3 IS NULL OR a.status = ?3) \
                     ORDER BY b.created_at, a.name"
                ),
                params![f.rig_id.as_deref(), f.role.map(|r| r.as_str()), f.status.map(|s| s.as_str())],
            )?
            .into_iter()
            .map(AgentRow::into_agent)
            .collect()
    }

    fn create_agent(&self, rig_id: Option<&str>, role: AgentRole, name: &str, actor: &Actor) -> CoreResult<Agent> {
        let prefix = match rig_id {
            Some(r) => {
                let prefix = self.rig(r)?.bead_prefix;
                let agents = self.db.scalar_i64("SELECT COUNT(*) FROM agents WHERE rig_id = ?", params![r])?;
                self.limits.check(crate::limits::Limit::AgentsPerRig, agents)?;
                prefix
            }
            None => crate::ids::TOWN_PREFIX.into(),
        };
        let id = self.insert_bead(
            &prefix,
            BeadType::Agent,
            BeadStatus::Open,
            name,
            None,
            rig_id,
            None,
            None,
            Priority::Medium,
            &[format!("role:{role}")],
            &json!({"role": role.as_str()}),
            actor,
        )?;
        self.db.run(
            "INSERT INTO agents (bead_id, role, name, rig_id, status) VALUES (?, ?, ?, ?, 'idle')",
            params![id.as_str(), role.as_str(), name, rig_id],
        )?;
        self.event(&id, rig_id, Some(&id), actor, EventType::AgentRegistered, None, Some(role.as_str()), json!({"name": name}))?;
        self.agent(&id)
    }

    fn next_polecat_name(&self) -> CoreResult<String> {
        #[derive(Deserialize)]
        struct R {
            name: String,
        }
        let taken: Vec<String> =
            self.db.query::<R>("SELECT name FROM agents WHERE role = 'polecat'", params![])?.into_iter().map(|r| r.name).collect();
        Ok(names::allocate(taken.iter().map(String::as_str)))
    }

    pub(crate) fn register_agent(&self, rig_id: &str, input: RegisterAgentInput, actor: &Actor) -> CoreResult<Agent> {
        self.rig(rig_id)?;
        let role = input.role;
        if !role_is_rig_scoped(role) {
            return Err(CoreError::bad("role", "the mayor belongs to the town, not a rig; it is created by the mayor routes"));
        }
        let name = match (role, input.name) {
            (AgentRole::Polecat, Some(n)) => {
                validate::name("name", &n)?;
                let taken = self.db.scalar_i64("SELECT COUNT(*) FROM agents WHERE role = 'polecat' AND name = ?", params![n.as_str()])?;
                if taken > 0 {
                    return Err(CoreError::Conflict(format!("a polecat named {n:?} already exists in this town")));
                }
                n
            }
            (AgentRole::Polecat, None) => self.next_polecat_name()?,
            (_, Some(_)) => return Err(CoreError::bad("name", format!("a {role} is named after its role; omit name"))),
            (_, None) => {
                let exists =
                    self.db.scalar_i64("SELECT COUNT(*) FROM agents WHERE rig_id = ? AND role = ?", params![rig_id, role.as_str()])?;
                if exists > 0 {
                    return Err(CoreError::Conflict(format!("this rig already has a {role}")));
                }
                role.as_str().to_string()
            }
        };
        self.create_agent(Some(rig_id), role, &name, actor)
    }

    /// The town's mayor, created on first use.
    pub(crate) fn ensure_mayor(&self, actor: &Actor) -> CoreResult<Agent> {
        match self.db.query_opt::<AgentRow>(&format!("{AGENT_SELECT} WHERE a.role = 'mayor'"), params![])? {
            Some(r) => r.into_agent(),
            None => self.create_agent(None, AgentRole::Mayor, "mayor", actor),
        }
    }

    /// Deletes the agent; unfinished work it held goes back to `open` (finished work keeps its
    /// state and history). Returns the id so the caller can destroy the agent's event log.
    pub(crate) fn delete_agent(&self, rig_id: Option<&str>, agent_id: &str, actor: &Actor) -> CoreResult<Value> {
        let a = self.agent_in(rig_id, agent_id)?;
        if a.hook_bead_id.is_some() {
            self.unhook(agent_id, actor, true)?;
        }
        #[derive(Deserialize)]
        struct R {
            bead_id: String,
        }
        let held: Vec<R> = self.db.query(
            "SELECT bead_id FROM beads WHERE assignee_agent_id = ? AND status IN ('in_progress') AND type = 'issue'",
            params![agent_id],
        )?;
        for r in held {
            self.set_status(&r.bead_id, BeadStatus::Open, actor, Some("agent deleted"))?;
        }
        self.db.run("DELETE FROM agents WHERE bead_id = ?", params![agent_id])?;
        self.db.run("DELETE FROM beads WHERE bead_id = ?", params![agent_id])?;
        self.event(agent_id, a.rig_id.as_deref(), Some(agent_id), actor, EventType::Deleted, None, None, json!({"name": a.name}))?;
        Ok(json!({"deleted": agent_id}))
    }

    /// Puts `bead_id` on the agent's hook. Idempotent for the same bead; refuses a second bead,
    /// a bead someone else holds, a finished bead and a bead from another rig.
    pub(crate) fn hook(&self, agent_id: &str, bead_id: &str, actor: &Actor) -> CoreResult<Agent> {
        let a = self.agent(agent_id)?;
        let b = self.bead(bead_id).map_err(|_| CoreError::not_found("bead", bead_id))?;
        if a.hook_bead_id.as_deref() == Some(bead_id) {
            return Ok(a);
        }
        if let Some(h) = &a.hook_bead_id {
            return Err(CoreError::Conflict(format!("{} already has {h} on its hook; unhook it first", a.name)));
        }
        if a.rig_id.is_some() && b.rig_id != a.rig_id {
            return Err(CoreError::not_found("bead", bead_id));
        }
        if !matches!(b.bead_type, BeadType::Issue | BeadType::Molecule | BeadType::MergeRequest | BeadType::Convoy) {
            return Err(CoreError::Conflict(format!("a {} bead cannot be put on a hook", b.bead_type)));
        }
        if b.status.is_terminal() {
            return Err(CoreError::Conflict(format!("{bead_id} is {}; reopen it before hooking", b.status)));
        }
        let blockers = self.open_blockers(bead_id)?;
        if blockers > 0 {
            return Err(CoreError::Conflict(format!("{bead_id} is blocked by {blockers} unfinished bead(s)")));
        }
        let holder =
            self.db.scalar_i64("SELECT COUNT(*) FROM agents WHERE hook_bead_id = ? AND bead_id != ?", params![bead_id, agent_id])?;
        if holder > 0 {
            return Err(CoreError::Conflict(format!("{bead_id} is already on another agent's hook")));
        }
        self.db.run(
            "UPDATE agents SET hook_bead_id = ?, status = 'idle', dispatch_attempts = 0, last_activity_at = ? WHERE bead_id = ?",
            params![bead_id, self.now_iso(), agent_id],
        )?;
        self.db
            .run("UPDATE beads SET assignee_agent_id = ?, updated_at = ? WHERE bead_id = ?", params![agent_id, self.now_iso(), bead_id])?;
        if b.assignee_agent_id.as_deref() != Some(agent_id) {
            self.event(
                bead_id,
                b.rig_id.as_deref(),
                Some(agent_id),
                actor,
                EventType::Assigned,
                b.assignee_agent_id.as_deref(),
                Some(agent_id),
                json!({}),
            )?;
        }
        self.event(
            bead_id,
            b.rig_id.as_deref(),
            Some(agent_id),
            actor,
            EventType::Hooked,
            None,
            Some(agent_id),
            json!({"agent_name": a.name}),
        )?;
        if b.status == BeadStatus::Open {
            self.set_status(bead_id, BeadStatus::InProgress, actor, None)?;
        }
        self.agent(agent_id)
    }

    /// Takes the bead off the agent's hook. With `reopen`, unfinished work goes back to `open`
    /// (so it is not stranded `in_progress` with nobody on it).
    pub(crate) fn unhook(&self, agent_id: &str, actor: &Actor, reopen: bool) -> CoreResult<Agent> {
        let a = self.agent(agent_id)?;
        let Some(bead_id) = a.hook_bead_id.clone() else {
            return Ok(a);
        };
        // The hook is the work; the status is the process. Unhooking leaves a running process
        // running (it reports its own exit), so the agent is not handed new work meanwhile.
        self.db.run("UPDATE agents SET hook_bead_id = NULL, next_dispatch_at = NULL WHERE bead_id = ?", params![agent_id])?;
        let b = self.bead_opt(&bead_id)?;
        self.event(
            &bead_id,
            b.as_ref().and_then(|b| b.rig_id.as_deref()),
            Some(agent_id),
            actor,
            EventType::Unhooked,
            Some(agent_id),
            None,
            json!({}),
        )?;
        if let Some(b) = b {
            if reopen && b.status == BeadStatus::InProgress {
                self.set_status(&bead_id, BeadStatus::Open, actor, Some("unhooked"))?;
            }
        }
        self.agent(agent_id)
    }

    /// Clears every hook holding `bead_id` (the bead finished, failed, was reopened or deleted).
    pub(crate) fn release_hooks_on(&self, bead_id: &str, actor: &Actor) -> CoreResult<()> {
        #[derive(Deserialize)]
        struct R {
            bead_id: String,
        }
        let holders: Vec<R> = self.db.query("SELECT bead_id FROM agents WHERE hook_bead_id = ?", params![bead_id])?;
        for h in holders {
            self.unhook(&h.bead_id, actor, false)?;
        }
        Ok(())
    }

    /// An idle polecat of this rig with nothing on its hook, or a new one from the name pool.
    fn allocate_polecat(&self, rig_id: &str, actor: &Actor) -> CoreResult<Agent> {
        let idle = self.db.query_opt::<AgentRow>(
            &format!("{AGENT_SELECT} WHERE a.role = 'polecat' AND a.rig_id = ? AND a.status = 'idle' AND a.hook_bead_id IS NULL ORDER BY b.created_at LIMIT 1"),
            params![rig_id],
        )?;
        match idle {
            Some(r) => r.into_agent(),
            None => {
                let name = self.next_polecat_name()?;
                self.create_agent(Some(rig_id), AgentRole::Polecat, &name, actor)
            }
        }
    }

    pub(crate) fn sling(&self, rig_id: &str, input: SlingInput, actor: &Actor) -> CoreResult<SlingResult> {
        if let Some(c) = &input.convoy_id {
            self.convoy(c).map_err(|_| CoreError::bad("convoy_id", format!("no convoy {c} in this town")))?;
        }
        let formula = input
            .formula
            .as_ref()
            .map(|f| self.resolve_formula(&super::MoleculeInput { formula: Some(f.clone()), formula_toml: None }))
            .transpose()?;
        let bead = self.create_bead_checked(
            Some(rig_id),
            super::CreateBeadInput {
                bead_type: BeadType::Issue,
                title: input.title,
                body: input.body,
                priority: input.priority,
                labels: input.labels,
                metadata: input.metadata,
                parent_id: None,
            },
            actor,
        )?;
        if let Some(f) = &formula {
            self.instantiate(Some(rig_id), &bead.id, f, actor)?;
        }
        if let Some(c) = &input.convoy_id {
            self.track(c, &bead.id, actor)?;
        }
        if !self.has_polecat_slot(rig_id)? {
            self.enqueue(&bead.id, rig_id, actor)?;
            return Ok(SlingResult { bead: self.bead(&bead.id)?, agent: None });
        }
        let agent = self.assign_polecat(rig_id, &bead.id, actor)?;
        Ok(SlingResult { bead: self.bead(&bead.id)?, agent: Some(agent) })
    }

    /// Hooks `bead_id` on a free polecat of the rig (reused or new).
    pub(crate) fn assign_polecat(&self, rig_id: &str, bead_id: &str, actor: &Actor) -> CoreResult<Agent> {
        let agent = self.allocate_polecat(rig_id, actor)?;
        self.hook(&agent.id, bead_id, actor)
    }

    /// Everything an agent needs at the start of a session.
    pub(crate) fn prime(&self, rig_id: Option<&str>, agent_id: &str) -> CoreResult<Value> {
        let a = self.agent_in(rig_id, agent_id)?;
        let hook = a.hook_bead_id.as_deref().map(|h| self.bead(h)).transpose()?;
        let rig = a.rig_id.as_deref().map(|r| self.rig(r)).transpose()?;
        let mail = self.list_mail(agent_id, true)?;
        let molecule = match &hook {
            Some(h) => self.molecule_of(h)?,
            None => None,
        };
        let open_beads = match &a.rig_id {
            Some(r) => {
                self.list_beads(Some(r), &super::BeadFilter { status: Some(BeadStatus::Open), limit: Some(20), ..Default::default() })?
            }
            None => vec![],
        };
        let town = self.meta()?;
        Ok(json!({
            "agent": a,
            "town": {"id": town.town_id, "name": town.name},
            "rig": rig,
            "hook": hook,
            "molecule": molecule,
            "unread_mail": mail,
            "open_beads": open_beads,
        }))
    }

    pub(crate) fn checkpoint(&self, rig_id: &str, agent_id: &str, data: &Value) -> CoreResult<Agent> {
        let a = self.agent_in(Some(rig_id), agent_id)?;
        let s = data.to_string();
        if s.len() > 64 * 1024 {
            return Err(CoreError::bad("data", "checkpoint is larger than 64 KiB"));
        }
        self.db.run("UPDATE agents SET checkpoint = ?, last_activity_at = ? WHERE bead_id = ?", params![s, self.now_iso(), agent_id])?;
        if let Some(h) = &a.hook_bead_id {
            self.event(
                h,
                a.rig_id.as_deref(),
                Some(agent_id),
                &Actor::Agent(agent_id.into()),
                EventType::Checkpoint,
                None,
                None,
                json!({}),
            )?;
        }
        self.agent(agent_id)
    }

    /// What `gt done` makes the container push: the agent's branch for the bead on its hook.
    /// Everything that can be refused without the container is refused here, before any push.
    pub(crate) fn done_push_job(&self, rig_id: &str, agent_id: &str, branch: &str) -> CoreResult<DonePushJob> {
        validate::branch("branch", branch)?;
        let a = self.agent_in(Some(rig_id), agent_id)?;
        let rig = self.rig(rig_id)?;
        if a.hook_bead_id.is_none() {
            if let Some(r) = self.submitted(agent_id, branch)? {
                let (agent_id, agent_name, bead_id) = (a.id, a.name, r.source_bead_id);
                return Ok(DonePushJob { rig_id: rig.id, git_url: rig.git_url, agent_id, agent_name, bead_id, already_submitted: true });
            }
        }
        let bead_id = a.hook_bead_id.clone().ok_or_else(|| CoreError::Conflict(format!("{} has nothing on its hook", a.name)))?;
        own_branch(branch, &bead_id)?;
        Ok(DonePushJob { rig_id: rig.id, git_url: rig.git_url, agent_id: a.id, agent_name: a.name, bead_id, already_submitted: false })
    }

    /// The merge request this agent already submitted from `branch` and that has not failed:
    /// a repeated `gt done` (its first answer lost on the way) finds it instead of a refusal.
    fn submitted(&self, agent_id: &str, branch: &str) -> CoreResult<Option<ReviewEntry>> {
        #[derive(Deserialize)]
        struct Id {
            bead_id: String,
        }
        let id: Option<Id> = self.db.query_opt(
            "SELECT r.bead_id FROM reviews r JOIN beads b ON b.bead_id = r.bead_id \
             WHERE r.agent_id = ? AND r.branch = ? AND b.status != 'failed' ORDER BY b.created_at DESC, r.rowid DESC LIMIT 1",
            params![agent_id, branch],
        )?;
        id.map(|i| self.review(&i.bead_id)).transpose()
    }

    /// The agent finished its hooked bead on `branch`: a merge request joins the review queue,
    /// the bead waits `in_review`, and the agent is free.
    pub(crate) fn done(&self, rig_id: &str, agent_id: &str, input: DoneInput, actor: &Actor) -> CoreResult<ReviewEntry> {
        validate::branch("branch", &input.branch)?;
        validate::optional_text("summary", input.summary.as_deref(), validate::MAX_BODY)?;
        validate::optional_text("pr_url", input.pr_url.as_deref(), 2048)?;
        let a = self.agent_in(Some(rig_id), agent_id)?;
        if a.hook_bead_id.is_none() {
            // Idempotent: the same agent submitting the same branch again gets the same answer.
            if let Some(r) = self.submitted(agent_id, &input.branch)? {
                return Ok(r);
            }
        }
        let source_id = a.hook_bead_id.clone().ok_or_else(|| CoreError::Conflict(format!("{} has nothing on its hook", a.name)))?;
        own_branch(&input.branch, &source_id)?;
        let source = self.bead(&source_id)?;
        let rig = self.rig(rig_id)?;
        let mr = self.insert_bead(
            &rig.bead_prefix,
            BeadType::MergeRequest,
            BeadStatus::Open,
            &format!("Merge {}", input.branch),
            input.summary.as_deref(),
            Some(rig_id),
            None,
            Some(agent_id),
            source.priority,
            &["gt:merge-request".to_string()],
            &json!({"source_bead_id": source_id}),
            actor,
        )?;
        self.db.run(
            "INSERT INTO reviews (bead_id, source_bead_id, agent_id, branch, target_branch, pr_url) VALUES (?, ?, ?, ?, ?, ?)",
            params![mr.as_str(), source_id.as_str(), agent_id, input.branch.as_str(), rig.default_branch.as_str(), input.pr_url.as_deref()],
        )?;
        self.db.run(
            "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, 'tracks', ?)",
            params![mr.as_str(), source_id.as_str(), self.now_iso()],
        )?;
        // Rework of work whose pull request is still open: the new merge request delivers
        // through the same pull request (the push updates it), never a second one.
        self.db.run(
            "UPDATE reviews SET (pr_forge, pr_repo, pr_number, pr_url, pr_head_sha, pr_state, pr_review, pr_cursor) =                (SELECT p.pr_forge, p.pr_repo, p.pr_number, p.pr_url, p.pr_head_sha, p.pr_state, p.pr_review, p.pr_cursor FROM reviews p                 WHERE p.source_bead_id = ?1 AND p.bead_id != ?2 AND p.pr_number IS NOT NULL AND p.pr_state = 'open' ORDER BY p.rowid DESC LIMIT 1)              WHERE bead_id = ?2 AND EXISTS (SELECT 1 FROM reviews p WHERE p.source_bead_id = ?1 AND p.bead_id != ?2 AND p.pr_number IS NOT NULL AND p.pr_state = 'open')",
            params![source_id.as_str(), mr.as_str()],
        )?;
        if source.status == BeadStatus::Open {
            self.set_status(&source_id, BeadStatus::InProgress, actor, None)?;
        }
        self.set_status(&source_id, BeadStatus::InReview, actor, None)?;
        self.event(
            &source_id,
            Some(rig_id),
            Some(agent_id),
            actor,
            EventType::ReviewSubmitted,
            None,
            Some(&input.branch),
            json!({"merge_request": mr, "branch": input.branch}),
        )?;
        self.unhook(agent_id, actor, false)?;
        self.review(&mr)
    }

    pub(crate) fn review(&self, mr_id: &str) -> CoreResult<ReviewEntry> {
        self.db
            .query_opt::<ReviewRow>(&format!("{REVIEW_SELECT} WHERE r.bead_id = ?"), params![mr_id])?
            .map(ReviewRow::into_entry)
            .ok_or_else(|| CoreError::not_found("merge request", mr_id))
    }
}

/// A merge request as the queue shows it: its row, its bead's columns and its pull request's
/// (one reading for [`TownStore::review`] and the queue's list).
pub(crate) const REVIEW_SELECT: &str =
    "SELECT r.*, b.rig_id, b.status, b.body, b.created_at FROM reviews r JOIN beads b ON b.bead_id = r.bead_id";

#[derive(Deserialize)]
pub(crate) struct ReviewRow {
    bead_id: String,
    rig_id: Option<String>,
    source_bead_id: String,
    agent_id: String,
    branch: String,
    target_branch: String,
    status: String,
    body: Option<String>,
    merge_commit: Option<String>,
    output: Option<String>,
    attempts: i64,
    created_at: String,
    #[serde(flatten)]
    pr: super::pulls::PrColumns,
}

impl ReviewRow {
    pub(crate) fn into_entry(self) -> ReviewEntry {
        let status = match self.status.as_str() {
            "open" => "pending",
            "in_progress" => "running",
            // Gated, and its pull request is open on the forge.
            "in_review" => "in_review",
            "closed" => "merged",
            _ => "failed",
        };
        ReviewEntry {
            id: self.bead_id,
            rig_id: self.rig_id,
            source_bead_id: self.source_bead_id,
            agent_id: self.agent_id,
            branch: self.branch,
            target_branch: self.target_branch,
            status: status.into(),
            summary: self.body,
            merge_commit: self.merge_commit,
            output: self.output,
            attempts: self.attempts,
            created_at: self.created_at,
            pr: self.pr.view(),
        }
    }
}

/// Only the agent's own branch for its hooked bead can become a merge request. The container,
/// which pushes it, checks the exact name (`gt/<agent slug>/<bead>`); this keeps every other
/// branch (the default one, another bead's) out regardless.
fn own_branch(branch: &str, bead_id: &str) -> CoreResult<()> {
    if branch.starts_with("gt/") && branch.ends_with(&format!("/{bead_id}")) && branch.matches('/').count() == 2 {
        return Ok(());
    }
    Err(CoreError::Forbidden(format!("an agent submits only its own branch gt/<agent>/{bead_id}, not {branch}")))
}
