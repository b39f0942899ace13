//! Beads proper: create, read, list, the status machine with its side effects, deletion, the
//! dependency graph (cycles refused) and the audit log.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::model::{Bead, BeadEvent, BeadStatus, BeadType, Dependency, DependencyType, EventType, Priority};
use crate::{ids, params, validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBeadInput {
    #[serde(rename = "type", default = "default_type")]
    pub bead_type: BeadType,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub parent_id: Option<String>,
}

fn default_type() -> BeadType {
    BeadType::Issue
}

impl CreateBeadInput {
    pub fn validate(&self) -> CoreResult<()> {
        validate::text("title", &self.title, validate::MAX_TITLE)?;
        validate::optional_text("body", self.body.as_deref(), validate::MAX_BODY)?;
        validate::labels(&self.labels)?;
        if let Some(m) = &self.metadata {
            validate::metadata("metadata", m)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BeadFilter {
    pub status: Option<BeadStatus>,
    #[serde(rename = "type")]
    pub bead_type: Option<BeadType>,
    pub assignee_agent_id: Option<String>,
    pub parent_id: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub rig_id: Option<String>,
    pub bead_id: Option<String>,
    /// Only events with a larger id (a cursor from an earlier page).
    pub after_id: Option<i64>,
    /// Only events at or after this ISO-8601 time.
    pub since: Option<String>,
    pub limit: Option<u32>,
}

pub const MAX_PAGE: u32 = 500;

/// A page's size as asked (`?limit=`), `default` when not: between 1 and `max`.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> CoreResult<u32> {
    match limit.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(CoreError::bad("limit", format!("must be between 1 and {max}"))),
    }
}

/// Adds to a page's conditions (and parameters) those of `filters` whose value is given. A page
/// names only what was asked: `? IS NULL OR col = ?` would keep SQLite off the index for `col`.
fn given<'a, const N: usize>(conds: &mut Vec<&'a str>, params: &mut Vec<crate::db::SqlValue>, filters: [(&'a str, Option<&str>); N]) {
    for (cond, value) in filters {
        if let Some(v) = value {
            conds.push(cond);
            params.push(v.into());
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct BeadRow {
    id: String,
    bead_type: String,
    status: String,
    title: String,
    body: Option<String>,
    rig_id: Option<String>,
    parent_id: Option<String>,
    assignee_agent_id: Option<String>,
    priority: String,
    labels: String,
    metadata: String,
    created_by: String,
    created_at: String,
    updated_at: String,
    closed_at: Option<String>,
}

impl BeadRow {
    pub(crate) fn into_bead(self) -> CoreResult<Bead> {
        Ok(Bead {
            bead_type: BeadType::parse("type", &self.bead_type)?,
            status: BeadStatus::parse("status", &self.status)?,
            priority: Priority::parse("priority", &self.priority)?,
            labels: serde_json::from_str(&self.labels)?,
            metadata: serde_json::from_str(&self.metadata)?,
            id: self.id,
            title: self.title,
            body: self.body,
            rig_id: self.rig_id,
            parent_id: self.parent_id,
            assignee_agent_id: self.assignee_agent_id,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
        })
    }
}

#[derive(Deserialize)]
struct EventRow {
    id: i64,
    bead_id: String,
    rig_id: Option<String>,
    agent_id: Option<String>,
    actor: String,
    event_type: String,
    old_value: Option<String>,
    new_value: Option<String>,
    metadata: String,
    created_at: String,
}

impl TownStore<'_> {
    pub(crate) fn bead_opt(&self, bead_id: &str) -> CoreResult<Option<Bead>> {
        self.db
            .query_opt::<BeadRow>(&format!("SELECT {} FROM beads WHERE bead_id = ?", Self::bead_columns()), params![bead_id])?
            .map(BeadRow::into_bead)
            .transpose()
    }

    pub(crate) fn bead(&self, bead_id: &str) -> CoreResult<Bead> {
        self.bead_opt(bead_id)?.ok_or_else(|| CoreError::not_found("bead", bead_id))
    }

    /// A bead seen through a rig-scoped route: one of another rig (or of the town) is not found.
    pub(crate) fn bead_in(&self, rig_id: Option<&str>, bead_id: &str) -> CoreResult<Bead> {
        let b = self.bead(bead_id)?;
        match rig_id {
            Some(r) if b.rig_id.as_deref() != Some(r) => Err(CoreError::not_found("bead", bead_id)),
            _ => Ok(b),
        }
    }

    /// [`TownStore::bead_in`] as the API answers it: the object SQLite builds, as it builds a
    /// page's (a test holds the two to the same bytes).
    pub(crate) fn bead_in_json(&self, rig_id: Option<&str>, bead_id: &str) -> CoreResult<String> {
        let sql = format!("SELECT {} FROM beads WHERE bead_id = ?1 AND (?2 IS NULL OR rig_id = ?2)", super::BEAD_JSON);
        self.db.text(&sql, params![bead_id, rig_id])?.ok_or_else(|| CoreError::not_found("bead", bead_id))
    }

    /// Bead authority: a polecat changes only what it holds — the bead on its hook or assigned
    /// to it, and their descendants. People, the mayor and the other roles keep their rights
    /// (the route already limited an agent to its own town and rig).
    pub(crate) fn may_change(&self, actor: &Actor, bead_id: &str) -> CoreResult<()> {
        let Actor::Agent(agent_id) = actor else { return Ok(()) };
        let agent = self.agent(agent_id)?;
        if agent.role != crate::model::AgentRole::Polecat {
            return Ok(());
        }
        let mut next = Some(bead_id.to_string());
        // Parent chains are short; the bound only guards against a corrupted cycle.
        for _ in 0..64 {
            let Some(id) = next else { break };
            let b = self.bead(&id)?;
            if agent.hook_bead_id.as_deref() == Some(b.id.as_str()) || b.assignee_agent_id.as_deref() == Some(agent_id.as_str()) {
                return Ok(());
            }
            next = b.parent_id.clone();
        }
        Err(CoreError::Forbidden(format!("{} may change only the bead it holds (and its children), not {bead_id}", agent.name)))
    }

    pub(crate) fn create_bead_checked(&self, rig_id: Option<&str>, input: CreateBeadInput, actor: &Actor) -> CoreResult<Bead> {
        input.validate()?;
        if input.bead_type != BeadType::Issue {
            return Err(CoreError::bad(
                "type",
                format!("{} beads are created by their own routes (mail, sling, done, agents); this route creates issues", input.bead_type),
            ));
        }
        let prefix = match rig_id {
            Some(r) => self.rig(r)?.bead_prefix,
            None => ids::TOWN_PREFIX.to_string(),
        };
        if let Some(p) = &input.parent_id {
            self.bead_in(rig_id, p).map_err(|_| CoreError::bad("parent_id", format!("no bead {p} in this rig")))?;
        }
        let id = self.insert_bead(
            &prefix,
            input.bead_type,
            BeadStatus::Open,
            input.title.trim(),
            input.body.as_deref(),
            rig_id,
            input.parent_id.as_deref(),
            None,
            input.priority.unwrap_or(Priority::Medium),
            &input.labels,
            &input.metadata.unwrap_or_else(|| json!({})),
            actor,
        )?;
        if let Some(p) = &input.parent_id {
            self.db.run(
                "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, 'parent-child', ?)",
                params![id.as_str(), p.as_str(), self.now_iso()],
            )?;
        }
        self.bead(&id)
    }

    pub(crate) fn list_beads(&self, rig_id: Option<&str>, f: &BeadFilter) -> CoreResult<Vec<Bead>> {
        let (cond, params) = self.bead_page(rig_id, f)?;
        let rows: Vec<BeadRow> = self.db.query(
            &format!("SELECT {} FROM beads WHERE {cond} ORDER BY created_at DESC, bead_id DESC LIMIT ? OFFSET ?", Self::bead_columns()),
            params,
        )?;
        rows.into_iter().map(BeadRow::into_bead).collect()
    }

    /// [`TownStore::list_beads`] as the API answers it: the page as one JSON array SQLite builds
    /// (the same objects, in the same order: a test holds the two to it).
    pub(crate) fn list_beads_json(&self, rig_id: Option<&str>, f: &BeadFilter) -> CoreResult<String> {
        let (cond, params) = self.bead_page(rig_id, f)?;
        self.json_page(
            super::BEAD_JSON,
            &format!("created_at, bead_id FROM beads WHERE {cond} ORDER BY created_at DESC, bead_id DESC LIMIT ? OFFSET ?"),
            "created_at DESC, bead_id DESC",
            params,
        )
    }

    /// A page of beads: its condition and parameters (the limit and offset last), checked.
    fn bead_page(&self, rig_id: Option<&str>, f: &BeadFilter) -> CoreResult<(String, Vec<crate::db::SqlValue>)> {
        if let Some(r) = rig_id {
            self.rig(r)?;
        }
        let limit = page_limit(f.limit, 100, MAX_PAGE)?;
        // Only the filters given, so SQLite can walk `idx_beads_rig_created` (with a status,
        // `idx_beads_rig_status_created`) backwards from the newest bead and stop at the page: a
        // page costs what it returns, not what the rig holds.
        let mut conds: Vec<&str> = vec![];
        let mut params = params![];
        given(
            &mut conds,
            &mut params,
            [
                ("rig_id = ?", rig_id),
                ("status = ?", f.status.map(|s| s.as_str())),
                ("type = ?", f.bead_type.map(|t| t.as_str())),
                ("assignee_agent_id = ?", f.assignee_agent_id.as_deref()),
                ("parent_bead_id = ?", f.parent_id.as_deref()),
            ],
        );
        if f.bead_type.is_none() {
            conds.push("type != 'agent'");
        }
        params.push(limit.into());
        params.push(f.offset.unwrap_or(0).into());
        Ok((conds.join(" AND "), params))
    }

    /// The one place a bead changes status. Closing or failing releases any agent hooked to it;
    /// reopening clears the assignee so the scheduler can hand it out again.
    pub(crate) fn set_status(&self, bead_id: &str, to: BeadStatus, actor: &Actor, reason: Option<&str>) -> CoreResult<Bead> {
        self.set_status_of(self.bead(bead_id)?, to, actor, reason)
    }

    /// [`TownStore::set_status`] of a bead the caller has just read.
    pub(crate) fn set_status_of(&self, b: Bead, to: BeadStatus, actor: &Actor, reason: Option<&str>) -> CoreResult<Bead> {
        validate::optional_text("reason", reason, 2000)?;
        let bead_id = b.id.as_str();
        if b.status == to {
            return Ok(b);
        }
        if b.bead_type == BeadType::Agent {
            return Err(CoreError::Conflict("an agent's status is managed through the agent routes".into()));
        }
        b.status.check_transition(to)?;
        let now = self.now_iso();
        let closed_at = if to.is_terminal() { Some(now.clone()) } else { None };
        let clear_assignee = to == BeadStatus::Open;
        // The row as written comes back with the write: what follows changes hooks, convoys
        // and events, never this row, so it is the answer.
        let updated = self
            .db
            .query_opt::<BeadRow>(
                &format!(
                    "UPDATE beads SET status = ?, updated_at = ?, closed_at = ?, assignee_agent_id = CASE WHEN ? THEN NULL ELSE assignee_agent_id END \
                     WHERE bead_id = ? RETURNING {}",
                    Self::bead_columns()
                ),
                params![to.as_str(), now.as_str(), closed_at, clear_assignee, bead_id],
            )?
            .ok_or_else(|| CoreError::not_found("bead", bead_id))?
            .into_bead()?;
        let meta = reason.map_or_else(|| json!({}), |r| json!({"reason": r}));
        self.event(
            bead_id,
            b.rig_id.as_deref(),
            b.assignee_agent_id.as_deref(),
            actor,
            EventType::StatusChanged,
            Some(b.status.as_str()),
            Some(to.as_str()),
            meta.clone(),
        )?;
        match to {
            BeadStatus::Closed => {
                self.event(bead_id, b.rig_id.as_deref(), b.assignee_agent_id.as_deref(), actor, EventType::Closed, None, None, meta)?
            }
            BeadStatus::Open if b.status.is_terminal() => {
                self.event(bead_id, b.rig_id.as_deref(), None, actor, EventType::Reopened, None, None, meta)?
            }
            _ => {}
        }
        if to.is_terminal() || to == BeadStatus::Open {
            self.release_hooks_on(bead_id, actor)?;
        }
        if to == BeadStatus::Closed || b.status == BeadStatus::Closed {
            self.convoys_on_status(&b, to, actor)?;
        }
        Ok(updated)
    }

    pub(crate) fn delete_bead(&self, rig_id: Option<&str>, bead_id: &str, actor: &Actor) -> CoreResult<Value> {
        let b = self.bead_in(rig_id, bead_id)?;
        if b.bead_type == BeadType::Agent {
            return Err(CoreError::Conflict("delete agents through the agent routes".into()));
        }
        let mut deleted = vec![];
        self.delete_tree(&b, actor, &mut deleted)?;
        Ok(json!({"deleted": deleted}))
    }

    fn delete_tree(&self, b: &Bead, actor: &Actor, deleted: &mut Vec<String>) -> CoreResult<()> {
        let children: Vec<BeadRow> =
            self.db.query(&format!("SELECT {} FROM beads WHERE parent_bead_id = ?", Self::bead_columns()), params![b.id.as_str()])?;
        for c in children {
            let c = c.into_bead()?;
            self.delete_tree(&c, actor, deleted)?;
        }
        self.release_hooks_on(&b.id, actor)?;
        for table in ["mail", "reviews", "escalations", "convoys"] {
            self.db.run(&format!("DELETE FROM {table} WHERE bead_id = ?"), params![b.id.as_str()])?;
        }
        self.db.run("DELETE FROM bead_dependencies WHERE bead_id = ?1 OR depends_on_bead_id = ?1", params![b.id.as_str()])?;
        self.db.run("DELETE FROM beads WHERE bead_id = ?", params![b.id.as_str()])?;
        // The audit trail outlives the bead: earlier events stay, and the deletion is recorded.
        self.event(
            &b.id,
            b.rig_id.as_deref(),
            None,
            actor,
            EventType::Deleted,
            Some(b.status.as_str()),
            None,
            json!({"title": b.title, "type": b.bead_type.as_str()}),
        )?;
        deleted.push(b.id.clone());
        Ok(())
    }

    pub(crate) fn add_dependency(
        &self,
        rig_id: Option<&str>,
        bead_id: &str,
        depends_on: &str,
        t: DependencyType,
        actor: &Actor,
    ) -> CoreResult<Dependency> {
        let b = self.bead_in(rig_id, bead_id)?;
        // The target may live in another rig or at town level (convoys track across rigs).
        self.bead(depends_on).map_err(|_| CoreError::bad("depends_on_bead_id", format!("no bead {depends_on} in this town")))?;
        if bead_id == depends_on {
            return Err(CoreError::Conflict("a bead cannot depend on itself".into()));
        }
        // Each type is its own graph: a parent blocked by its own child is fine, but a `blocks`
        // loop is a deadlock and a `parent-child` loop makes a bead its own ancestor.
        let reaches = self.db.scalar_i64(
            "WITH RECURSIVE reach(id) AS (SELECT ?1 UNION SELECT d.depends_on_bead_id FROM bead_dependencies d JOIN reach r ON d.bead_id = r.id WHERE d.dependency_type = ?3) \
             SELECT COUNT(*) FROM reach WHERE id = ?2",
            params![depends_on, bead_id, t.as_str()],
        )?;
        if reaches > 0 {
            return Err(CoreError::Conflict(format!("{bead_id} → {depends_on} would make a dependency cycle")));
        }
        let exists = self.db.scalar_i64(
            "SELECT COUNT(*) FROM bead_dependencies WHERE bead_id = ? AND depends_on_bead_id = ? AND dependency_type = ?",
            params![bead_id, depends_on, t.as_str()],
        )?;
        if exists == 0 {
            self.db.run(
                "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, ?, ?)",
                params![bead_id, depends_on, t.as_str(), self.now_iso()],
            )?;
            self.event(
                bead_id,
                b.rig_id.as_deref(),
                None,
                actor,
                EventType::DependencyAdded,
                None,
                Some(depends_on),
                json!({"type": t.as_str()}),
            )?;
        }
        Ok(Dependency { bead_id: bead_id.into(), depends_on_bead_id: depends_on.into(), dependency_type: t, created_at: self.now_iso() })
    }

    pub(crate) fn remove_dependency(&self, rig_id: Option<&str>, bead_id: &str, depends_on: &str, actor: &Actor) -> CoreResult<Value> {
        let b = self.bead_in(rig_id, bead_id)?;
        let n = self.db.scalar_i64(
            "SELECT COUNT(*) FROM bead_dependencies WHERE bead_id = ? AND depends_on_bead_id = ?",
            params![bead_id, depends_on],
        )?;
        if n == 0 {
            return Err(CoreError::NotFound(format!("{bead_id} does not depend on {depends_on}")));
        }
        self.db.run("DELETE FROM bead_dependencies WHERE bead_id = ? AND depends_on_bead_id = ?", params![bead_id, depends_on])?;
        self.event(bead_id, b.rig_id.as_deref(), None, actor, EventType::DependencyRemoved, Some(depends_on), None, json!({}))?;
        Ok(json!({"removed": true}))
    }

    /// Both directions: what this bead depends on, and what depends on it.
    pub(crate) fn list_dependencies(&self, rig_id: Option<&str>, bead_id: &str) -> CoreResult<Value> {
        self.bead_in(rig_id, bead_id)?;
        let q = |col: &str| -> CoreResult<Vec<Dependency>> {
            #[derive(Deserialize)]
            struct R {
                bead_id: String,
                depends_on_bead_id: String,
                dependency_type: String,
                created_at: String,
            }
            self.db
                .query::<R>(&format!("SELECT * FROM bead_dependencies WHERE {col} = ? ORDER BY created_at"), params![bead_id])?
                .into_iter()
                .map(|r| {
                    Ok(Dependency {
                        dependency_type: DependencyType::parse("type", &r.dependency_type)?,
                        bead_id: r.bead_id,
                        depends_on_bead_id: r.depends_on_bead_id,
                        created_at: r.created_at,
                    })
                })
                .collect()
        };
        Ok(json!({"depends_on": q("bead_id")?, "dependents": q("depends_on_bead_id")?}))
    }

    /// Events after `after_id` as stream messages `{type, seq, entity, event}`, oldest first. When
    /// more than `limit` are waiting, the reply says so and the client should refetch instead.
    pub(crate) fn stream_events(&self, after_id: i64, limit: u32) -> CoreResult<Value> {
        let events =
            self.list_events(&EventFilter { after_id: Some(after_id), limit: Some(limit.clamp(1, 1000)), ..Default::default() })?;
        let newest = self.db.scalar_i64("SELECT COALESCE(MAX(event_id), 0) FROM bead_events", params![])?;
        let truncated = events.last().is_some_and(|e| e.id < newest);
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            #[derive(Deserialize)]
            struct T {
                #[serde(rename = "type")]
                t: String,
            }
            let entity = self
                .db
                .query_opt::<T>("SELECT type FROM beads WHERE bead_id = ?", params![e.bead_id.as_str()])?
                .map(|r| r.t)
                .unwrap_or_else(|| "deleted".into());
            out.push(json!({"type": "event", "seq": e.id, "entity": entity, "event": e}));
        }
        Ok(json!({"messages": out, "truncated": truncated, "newest": newest}))
    }

    pub(crate) fn list_events(&self, f: &EventFilter) -> CoreResult<Vec<BeadEvent>> {
        let (page, params) = self.event_page(f)?;
        let rows: Vec<EventRow> = self.db.query(
            &format!(
                "SELECT event_id AS id, bead_id, rig_id, agent_id, actor, event_type, old_value, new_value, metadata, created_at {page}"
            ),
            params,
        )?;
        rows.into_iter()
            .map(|r| {
                Ok(BeadEvent {
                    metadata: serde_json::from_str(&r.metadata)?,
                    id: r.id,
                    bead_id: r.bead_id,
                    rig_id: r.rig_id,
                    agent_id: r.agent_id,
                    actor: r.actor,
                    event_type: r.event_type,
                    old_value: r.old_value,
                    new_value: r.new_value,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    /// [`TownStore::list_events`] as the API answers it, built by SQLite as
    /// [`TownStore::list_beads_json`] is.
    pub(crate) fn list_events_json(&self, f: &EventFilter) -> CoreResult<String> {
        let (page, params) = self.event_page(f)?;
        self.json_page(super::EVENT_JSON, &format!("event_id {page}"), "event_id", params)
    }

    /// A page of events for `f` (its rows after the columns: `FROM … LIMIT ?`) and its
    /// parameters, checked. Only the filters given (see [`given`]): a bead's or a rig's events
    /// are read through `idx_bead_events_bead` or `idx_bead_events_rig` from the cursor on, in
    /// event order, and `since` moves the cursor to its first event, so the page costs what it
    /// returns (plus a bisection's seeks for `since`).
    fn event_page(&self, f: &EventFilter) -> CoreResult<(String, Vec<crate::db::SqlValue>)> {
        if let Some(r) = &f.rig_id {
            self.rig(r)?;
        }
        let limit = page_limit(f.limit, 100, 1000)?;
        if let Some(s) = &f.since {
            crate::time::parse_iso(s).ok_or_else(|| CoreError::bad("since", "must be an ISO-8601 timestamp"))?;
        }
        let since = f.since.as_deref().and_then(crate::time::parse_iso).map(crate::time::iso);
        let after = f.after_id.unwrap_or(0);
        let (mut conds, mut params) = match since.as_deref() {
            // The page starts at the first event stamped at or after `since`, found by bisection,
            // so an old cursor with a recent `since` does not walk the history between them.
            Some(s) => (vec![super::EVENTS_SINCE], params![after.saturating_add(1), s, s]),
            None => (vec!["event_id > ?"], params![after]),
        };
        // With a bead named, its rig is only checked (`+` keeps SQLite off the rig's index):
        // walking the rig's events would cost what the rig holds.
        let rig = if f.bead_id.is_some() { "+rig_id = ?" } else { "rig_id = ?" };
        given(
            &mut conds,
            &mut params,
            [(rig, f.rig_id.as_deref()), ("bead_id = ?", f.bead_id.as_deref()), ("created_at >= ?", since.as_deref())],
        );
        params.push(limit.into());
        Ok((format!("FROM bead_events WHERE {} ORDER BY event_id LIMIT ?", conds.join(" AND ")), params))
    }
}
