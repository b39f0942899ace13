//! Escalations: problems that need a person. Each is an escalation bead with its satellite row,
//! raised by `gt escalate`, by dispatch failures and by the refinery; it is routed to the mayor as
//! mail, listed for the person, acknowledged, and — while unacknowledged — raised again after a
//! threshold with its severity bumped, at most N times.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::model::{BeadStatus, BeadType, EventType, Priority, Severity};
use crate::params;
use crate::time::{iso, Millis};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Escalation {
    pub id: String,
    pub severity: Severity,
    pub category: Option<String>,
    pub message: String,
    pub source_agent_id: Option<String>,
    pub rig_id: Option<String>,
    /// The bead the escalation is about, if any.
    pub about: Option<String>,
    pub acknowledged: bool,
    pub acknowledged_at: Option<String>,
    pub re_escalation_count: i64,
    pub created_at: String,
    pub last_escalated_at: String,
}

#[derive(Deserialize)]
struct Row {
    bead_id: String,
    severity: String,
    category: Option<String>,
    source_agent_id: Option<String>,
    acknowledged_at: Option<String>,
    re_escalation_count: i64,
    last_escalated_at: String,
    body: Option<String>,
    title: String,
    metadata: String,
    created_at: String,
}

/// What a [`Row`] reads, from `escalations e` as the caller names it (with an index or not).
macro_rules! select_from {
    ($escalations:literal) => {
        concat!("SELECT e.*, b.body, b.title, b.metadata, b.created_at FROM ", $escalations, " JOIN beads b ON b.bead_id = e.bead_id")
    };
}
const SELECT: &str = select_from!("escalations e");
/// [`SELECT`] of the open escalations due to be raised again, through the index that reads only
/// those raised fewer times than the limit (`idx_escalations_open` would match `acknowledged_at
/// IS NULL` as an equality and walk every open one, the ignored ones included).
const SELECT_DUE: &str = concat!(
    select_from!("escalations e INDEXED BY idx_escalations_due"),
    " WHERE e.acknowledged_at IS NULL AND e.re_escalation_count < ? AND e.last_escalated_at <= ?"
);

fn priority(s: Severity) -> Priority {
    match s {
        Severity::Critical => Priority::Critical,
        Severity::High => Priority::High,
        Severity::Medium => Priority::Medium,
        Severity::Low => Priority::Low,
    }
}

impl Row {
    fn into_escalation(self) -> CoreResult<Escalation> {
        let meta: serde_json::Value = serde_json::from_str(&self.metadata)?;
        Ok(Escalation {
            severity: Severity::parse("severity", &self.severity)?,
            message: self.body.unwrap_or(self.title),
            rig_id: meta["rig_id"].as_str().map(str::to_string),
            about: meta["about"].as_str().map(str::to_string),
            acknowledged: self.acknowledged_at.is_some(),
            id: self.bead_id,
            category: self.category,
            source_agent_id: self.source_agent_id,
            acknowledged_at: self.acknowledged_at,
            re_escalation_count: self.re_escalation_count,
            created_at: self.created_at,
            last_escalated_at: self.last_escalated_at,
        })
    }
}

impl TownStore<'_> {
    /// Records an escalation and routes it to the mayor as mail.
    pub(crate) fn raise_escalation(
        &self,
        severity: Severity,
        category: &str,
        message: &str,
        source_agent: Option<&str>,
        rig_id: Option<&str>,
        about: Option<&str>,
    ) -> CoreResult<String> {
        let title: String = format!("Escalation: {}", message.chars().take(100).collect::<String>());
        let labels = ["gt:escalation".to_string(), format!("severity:{severity}")];
        let id = self.insert_bead(
            crate::ids::TOWN_PREFIX,
            BeadType::Escalation,
            BeadStatus::Open,
            &title,
            Some(message),
            None,
            None,
            None,
            priority(severity),
            &labels,
            &json!({"rig_id": rig_id, "about": about}),
            &Actor::System,
        )?;
        self.db.run(
            "INSERT INTO escalations (bead_id, severity, category, source_agent_id, last_escalated_at) VALUES (?, ?, ?, ?, ?)",
            params![id.as_str(), severity.as_str(), category, source_agent, self.now_iso()],
        )?;
        if let Some(b) = about {
            self.event(
                b,
                rig_id,
                source_agent,
                &Actor::System,
                EventType::Escalated,
                None,
                Some(&id),
                json!({"severity": severity.as_str()}),
            )?;
        }
        self.notify_mayor(&id, severity, message, source_agent, "Escalation")?;
        Ok(id)
    }

    fn notify_mayor(&self, id: &str, severity: Severity, message: &str, source: Option<&str>, kind: &str) -> CoreResult<()> {
        let mayor = self.ensure_mayor(&Actor::System)?;
        let subject: String = format!("[{kind}:{severity}] {}", message.lines().next().unwrap_or("").chars().take(80).collect::<String>());
        let body = format!("{message}\n\nEscalation {id}. Acknowledge it with `gt escalation ack {id}` once it is handled.");
        self.deliver(source.unwrap_or("witness"), &mayor, &subject, &body, priority(severity), &Actor::System)?;
        Ok(())
    }

    pub(crate) fn escalation(&self, id: &str) -> CoreResult<Escalation> {
        self.db
            .query_opt::<Row>(&format!("{SELECT} WHERE e.bead_id = ?"), params![id])?
            .ok_or_else(|| CoreError::not_found("escalation", id))?
            .into_escalation()
    }

    /// Newest first; `acknowledged` narrows to one side.
    pub(crate) fn list_escalations(&self, acknowledged: Option<bool>, limit: Option<u32>) -> CoreResult<Vec<Escalation>> {
        let limit = super::beads::page_limit(limit, super::beads::MAX_PAGE, super::beads::MAX_PAGE)?;
        // Newest first is the table's own order (an escalation's row is written with its bead,
        // so it is the order they were raised in), walked backwards to the page: the open ones
        // through `idx_escalations_open`, which holds only them in that order (ignored ones pile
        // up, migration 0018), the others through the table, where sorting by the bead's time
        // read every escalation the town ever had.
        let q = match acknowledged {
            Some(false) => format!("{SELECT} WHERE e.acknowledged_at IS NULL ORDER BY e.rowid DESC LIMIT ?"),
            Some(true) => format!("{SELECT} WHERE e.acknowledged_at IS NOT NULL ORDER BY e.rowid DESC LIMIT ?"),
            None => format!("{SELECT} ORDER BY e.rowid DESC LIMIT ?"),
        };
        self.db.query::<Row>(&q, params![limit])?.into_iter().map(Row::into_escalation).collect()
    }

    /// Idempotent: acknowledging twice keeps the first time.
    pub(crate) fn acknowledge_escalation(&self, id: &str, actor: &Actor) -> CoreResult<Escalation> {
        let e = self.escalation(id)?;
        if !e.acknowledged {
            self.db.run("UPDATE escalations SET acknowledged_at = ? WHERE bead_id = ?", params![self.now_iso(), id])?;
            self.set_status(id, BeadStatus::Closed, actor, Some("acknowledged"))?;
        }
        self.escalation(id)
    }

    /// Resolves the open escalations about a rig that is being deleted: acknowledged and closed
    /// with the reason "rig deleted", so they leave the person's open list and are never
    /// re-raised. Returns how many there were.
    pub(crate) fn resolve_rig_escalations(&self, rig_id: &str, actor: &Actor) -> CoreResult<usize> {
        let open: Vec<Row> = self.db.query(&format!("{SELECT} WHERE e.acknowledged_at IS NULL"), params![])?;
        let mut n = 0;
        for r in open {
            let e = r.into_escalation()?;
            if e.rig_id.as_deref() != Some(rig_id) {
                continue;
            }
            self.db.run("UPDATE escalations SET acknowledged_at = ? WHERE bead_id = ?", params![self.now_iso(), e.id.as_str()])?;
            if !self.bead(&e.id)?.status.is_terminal() {
                self.set_status(&e.id, BeadStatus::Closed, actor, Some("rig deleted"))?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Raises again every unacknowledged escalation whose threshold has passed, one severity
    /// higher, until it has been raised `max_reescalations` times.
    pub(crate) fn reescalate_due(&self) -> CoreResult<usize> {
        let cfg = self.config()?.escalations;
        let due_before = iso(self.now - cfg.reescalate_after_secs as Millis * 1000);
        let due: Vec<Row> = self.db.query(SELECT_DUE, params![cfg.max_reescalations, due_before])?;
        let n = due.len();
        for r in due {
            let e = r.into_escalation()?;
            let severity = e.severity.bumped();
            self.db.run(
                "UPDATE escalations SET severity = ?, re_escalation_count = re_escalation_count + 1, last_escalated_at = ? WHERE bead_id = ?",
                params![severity.as_str(), self.now_iso(), e.id.as_str()],
            )?;
            self.db.run(
                "UPDATE beads SET priority = ?, updated_at = ? WHERE bead_id = ?",
                params![priority(severity).as_str(), self.now_iso(), e.id.as_str()],
            )?;
            self.event(
                &e.id,
                e.rig_id.as_deref(),
                None,
                &Actor::System,
                EventType::Escalated,
                Some(e.severity.as_str()),
                Some(severity.as_str()),
                json!({"re_escalation": e.re_escalation_count + 1}),
            )?;
            self.notify_mayor(&e.id, severity, &e.message, e.source_agent_id.as_deref(), "Re-escalation")?;
        }
        Ok(n)
    }
}
