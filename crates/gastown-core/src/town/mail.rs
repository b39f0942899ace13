//! Mail: message beads between agents and the person ("overseer"). Addresses are agent ids or
//! role paths (`mayor`, `<rig>/refinery`, `<rig>/witness`, `<rig>/polecats/<name>`). Unread mail
//! is an open message bead; reading it closes the bead.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::ids::TOWN_PREFIX;
use crate::model::{Agent, AgentRole, BeadStatus, BeadType, EventType, Mail, Priority};
use crate::{params, validate};

/// The person who owns the town, as a mail address.
pub const OVERSEER: &str = "overseer";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMailInput {
    pub to: String,
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub priority: Option<Priority>,
}

#[derive(Deserialize)]
struct MailRow {
    bead_id: String,
    from_address: String,
    to_agent_id: String,
    title: String,
    body: Option<String>,
    read_at: Option<String>,
    created_at: String,
}

impl From<MailRow> for Mail {
    fn from(r: MailRow) -> Mail {
        Mail {
            id: r.bead_id,
            from: r.from_address,
            to_agent_id: r.to_agent_id,
            subject: r.title,
            body: r.body.unwrap_or_default(),
            read: r.read_at.is_some(),
            created_at: r.created_at,
            read_at: r.read_at,
        }
    }
}

const MAIL_SELECT: &str = "SELECT m.bead_id, m.from_address, m.to_agent_id, m.read_at, b.title, b.body, b.created_at FROM mail m JOIN beads b ON b.bead_id = m.bead_id";

impl TownStore<'_> {
    /// Resolves an address to an agent.
    pub(crate) fn resolve_address(&self, to: &str) -> CoreResult<Agent> {
        let not_found = || {
            CoreError::bad("to", format!("no agent at address {to:?}; use an agent id, \"mayor\", \"<rig>/refinery\", \"<rig>/witness\" or \"<rig>/polecats/<name>\""))
        };
        if to == "mayor" {
            return self.ensure_mayor(&Actor::System);
        }
        let parts: Vec<&str> = to.split('/').collect();
        let by_role = |rig_name: &str, role: AgentRole, name: Option<&str>| -> CoreResult<Agent> {
            let rig = self.rig_by_name(rig_name)?.ok_or_else(not_found)?;
            let agents = self.list_agents(&super::AgentFilter { rig_id: Some(rig.id), role: Some(role), status: None })?;
            agents.into_iter().find(|a| name.is_none_or(|n| a.name == n)).ok_or_else(not_found)
        };
        match parts.as_slice() {
            [rig, "refinery"] => by_role(rig, AgentRole::Refinery, None),
            [rig, "witness"] => by_role(rig, AgentRole::Witness, None),
            [rig, "polecats", name] => by_role(rig, AgentRole::Polecat, Some(name)),
            [id] => self.agent(id).map_err(|_| not_found()),
            _ => Err(not_found()),
        }
    }

    pub(crate) fn send_mail(&self, input: SendMailInput, actor: &Actor) -> CoreResult<Mail> {
        validate::text("subject", &input.subject, validate::MAX_TITLE)?;
        validate::text("body", &input.body, validate::MAX_BODY)?;
        validate::text("to", &input.to, 200)?;
        let to = self.resolve_address(&input.to)?;
        let from = match actor {
            Actor::Agent(a) => a.clone(),
            Actor::User(_) => OVERSEER.to_string(),
            Actor::System => "witness".to_string(),
        };
        self.deliver(&from, &to, &input.subject, &input.body, input.priority.unwrap_or(Priority::Medium), actor)
    }

    pub(crate) fn deliver(&self, from: &str, to: &Agent, subject: &str, body: &str, priority: Priority, actor: &Actor) -> CoreResult<Mail> {
        let id = self.insert_bead(
            TOWN_PREFIX,
            BeadType::Message,
            BeadStatus::Open,
            subject,
            Some(body),
            None,
            None,
            Some(&to.id),
            priority,
            &["gt:message".to_string()],
            &json!({"from": from, "to": to.id}),
            actor,
        )?;
        self.db
            .run("INSERT INTO mail (bead_id, from_address, to_agent_id) VALUES (?, ?, ?)", params![id.as_str(), from, to.id.as_str()])?;
        self.event(&id, None, Some(&to.id), actor, EventType::MailSent, Some(from), Some(&to.id), json!({"subject": subject}))?;
        self.mail(&id)
    }

    fn mail(&self, id: &str) -> CoreResult<Mail> {
        self.db
            .query_opt::<MailRow>(&format!("{MAIL_SELECT} WHERE m.bead_id = ?"), params![id])?
            .map(Mail::from)
            .ok_or_else(|| CoreError::not_found("mail", id))
    }

    /// At most 200: the unread first, oldest first (so a queue reads in order), then the read
    /// mail, the most recently read first.
    pub(crate) fn list_mail(&self, agent_id: &str, unread_only: bool) -> CoreResult<Vec<Mail>> {
        self.agent(agent_id)?;
        // Each part walks `idx_mail_to` (to_agent_id, read_at, then the rowid) in order and stops
        // at the page: the unread forwards (a mail's row is written with its bead, so rowid
        // order is the order they were sent in), the read backwards. Sorting by the bead's time
        // read every mail the agent ever had, and the mayor's inbox, which every escalation
        // writes to, keeps the town's whole history.
        let read = format!("{MAIL_SELECT} WHERE m.to_agent_id = ? AND m.read_at IS NOT NULL ORDER BY m.read_at DESC, m.rowid DESC LIMIT ?");
        let mail: Vec<MailRow> = self.open_first(
            &format!("{MAIL_SELECT} WHERE m.to_agent_id = ? AND m.read_at IS NULL ORDER BY m.rowid LIMIT ?"),
            (!unread_only).then_some(read.as_str()),
            params![agent_id],
            200,
        )?;
        Ok(mail.into_iter().map(Mail::from).collect())
    }

    pub(crate) fn read_mail(&self, agent_id: &str, mail_id: &str, actor: &Actor) -> CoreResult<Mail> {
        let m = self.mail(mail_id)?;
        if m.to_agent_id != agent_id {
            return Err(CoreError::not_found("mail", mail_id));
        }
        if !m.read {
            self.db.run("UPDATE mail SET read_at = ? WHERE bead_id = ?", params![self.now_iso(), mail_id])?;
            self.set_status(mail_id, BeadStatus::Closed, actor, Some("read"))?;
        }
        self.mail(mail_id)
    }

    /// Takes the agent's unread mail (at most a page of it, oldest first): each is marked read
    /// and its bead closed with the events `gt mail read` records, and returned as read. One call
    /// where an inbox then a read of each would be many; what is left over comes with the next
    /// check. The whole page is written with a fixed number of statements (the hot path of an
    /// agent polling its inbox): mail, beads and events set-wise.
    pub(crate) fn check_mail(&self, agent_id: &str, actor: &Actor) -> CoreResult<Vec<Mail>> {
        #[derive(Deserialize)]
        struct Unread {
            #[serde(flatten)]
            mail: MailRow,
            status: BeadStatus,
            rig_id: Option<String>,
            assignee_agent_id: Option<String>,
        }
        let unread: Vec<Unread> = self.db.query(
            "SELECT m.bead_id, m.from_address, m.to_agent_id, m.read_at, b.title, b.body, b.created_at, \
             b.status, b.rig_id, b.assignee_agent_id FROM mail m JOIN beads b ON b.bead_id = m.bead_id \
             WHERE m.to_agent_id = ? AND m.read_at IS NULL ORDER BY m.rowid LIMIT 200",
            params![agent_id],
        )?;
        if unread.is_empty() {
            return Ok(vec![]);
        }
        let now = self.now_iso();
        let ids = json!(unread.iter().map(|u| u.mail.bead_id.as_str()).collect::<Vec<_>>()).to_string();
        self.db.run(
            "UPDATE mail SET read_at = ? WHERE read_at IS NULL AND bead_id IN (SELECT value FROM json_each(?))",
            params![now.as_str(), ids.as_str()],
        )?;
        // A message bead someone moved to a state that cannot close (or closed already) is
        // still read: only the bead stays as it is.
        let closing: Vec<&Unread> =
            unread.iter().filter(|u| u.status != BeadStatus::Closed && u.status.can_transition_to(BeadStatus::Closed)).collect();
        if !closing.is_empty() {
            let ids = json!(closing.iter().map(|u| u.mail.bead_id.as_str()).collect::<Vec<_>>()).to_string();
            let rows = json!(closing
                .iter()
                .map(|u| json!({"id": u.mail.bead_id, "rig": u.rig_id, "agent": u.assignee_agent_id, "old": u.status.as_str()}))
                .collect::<Vec<_>>())
            .to_string();
            self.db.run(
                "UPDATE beads SET status = 'closed', updated_at = ?1, closed_at = ?1 WHERE bead_id IN (SELECT value FROM json_each(?2))",
                params![now.as_str(), ids.as_str()],
            )?;
            // Per bead, in this order, what set_status records: the change, then the closing.
            self.db.run(
                concat!(
                    "INSERT INTO bead_events (bead_id, rig_id, agent_id, actor, event_type, old_value, new_value, metadata, created_at) \
                 SELECT json_extract(j.value, '$.id'), json_extract(j.value, '$.rig'), json_extract(j.value, '$.agent'), ?1, e.t, \
                 CASE WHEN e.k = 0 THEN json_extract(j.value, '$.old') END, CASE WHEN e.k = 0 THEN 'closed' END, ?2, ",
                    super::event_stamp!("?3"),
                    " FROM json_each(?4) j CROSS JOIN (SELECT 0 AS k, ?5 AS t UNION ALL SELECT 1, ?6) e ORDER BY j.key, e.k"
                ),
                params![
                    actor.label(),
                    json!({"reason": "read"}).to_string(),
                    now.as_str(),
                    rows.as_str(),
                    EventType::StatusChanged.as_str(),
                    EventType::Closed.as_str()
                ],
            )?;
            // No hook can hold a message bead (`hook` refuses them) and convoys track work, but a
            // `tracks` dependency can be added by hand: such a convoy lands as set_status would.
            #[derive(Deserialize)]
            struct Tracked {
                bead_id: String,
            }
            let tracked: Vec<Tracked> = self.db.query(
                "SELECT DISTINCT d.depends_on_bead_id AS bead_id FROM bead_dependencies d JOIN convoys c ON c.bead_id = d.bead_id \
                 WHERE d.dependency_type = 'tracks' AND d.depends_on_bead_id IN (SELECT value FROM json_each(?))",
                params![ids.as_str()],
            )?;
            for t in tracked {
                self.convoys_on_status(&self.bead(&t.bead_id)?, BeadStatus::Closed, actor)?;
            }
        }
        Ok(unread
            .into_iter()
            .map(|u| {
                let mut m = Mail::from(u.mail);
                m.read = true;
                m.read_at = Some(now.clone());
                m
            })
            .collect())
    }

    /// The town's mail, newest first (what the person sees in the dashboard). A mail's row is
    /// written with its bead, so the table's own order is the order they were sent in: walking
    /// it backwards reads the page alone, where sorting by the bead's time read every mail the
    /// town ever had.
    pub(crate) fn list_town_mail(&self, limit: Option<u32>) -> CoreResult<Vec<Mail>> {
        let limit = super::beads::page_limit(limit, super::beads::MAX_PAGE, super::beads::MAX_PAGE)?;
        Ok(self
            .db
            .query::<MailRow>(&format!("{MAIL_SELECT} ORDER BY m.rowid DESC LIMIT ?"), params![limit])?
            .into_iter()
            .map(Mail::from)
            .collect())
    }

    /// Notices owed to running agents: one per agent however much mail arrived (a flood of mail
    /// is one notice), each mail announced once, plus any notice the witness queued. Agents that
    /// are not running get nothing here: their next run's prompt lists their unread mail.
    pub(crate) fn claim_nudges(&self) -> CoreResult<Vec<super::work::NudgeJob>> {
        #[derive(Deserialize)]
        struct R {
            agent_id: String,
            mail_id: String,
            from_address: String,
        }
        let rows: Vec<R> = self.db.query(
            // The running agents first: an idle agent's unread mail can pile up, and is not
            // this claim's business.
            "SELECT m.to_agent_id AS agent_id, m.bead_id AS mail_id, m.from_address FROM agents a \
             CROSS JOIN mail m ON m.to_agent_id = a.bead_id JOIN beads b ON b.bead_id = m.bead_id \
             WHERE a.status IN ('working', 'stalled') AND a.running_epoch = a.spawn_epoch AND m.read_at IS NULL AND m.nudged_at IS NULL \
             ORDER BY m.to_agent_id, b.created_at, m.rowid",
            params![],
        )?;
        let mut jobs: Vec<super::work::NudgeJob> = vec![];
        let mut i = 0;
        while i < rows.len() {
            let agent = rows[i].agent_id.clone();
            let batch: Vec<&R> = rows[i..].iter().take_while(|r| r.agent_id == agent).collect();
            i += batch.len();
            let last = batch[batch.len() - 1];
            // Typed into the agent's terminal outside any untrusted fence, so nothing the sender
            // wrote (subject, body) goes in: only who sent it, as an address the town assigned.
            let from = if last.from_address == OVERSEER { "the overseer".to_string() } else { address_only(&last.from_address) };
            let text = if batch.len() == 1 {
                format!("New mail from {from} -- run: gt mail inbox")
            } else {
                format!("{} new mails (latest from {from}) -- run: gt mail inbox", batch.len())
            };
            for r in &batch {
                self.db.run("UPDATE mail SET nudged_at = ? WHERE bead_id = ?", params![self.now_iso(), r.mail_id.as_str()])?;
            }
            self.event(&agent, None, Some(&agent), &Actor::System, EventType::Nudged, None, Some("mail"), json!({"mails": batch.len()}))?;
            jobs.push(super::work::NudgeJob { agent_id: agent, key: format!("mail:{}", last.mail_id), text });
        }
        #[derive(Deserialize)]
        struct P {
            bead_id: String,
            pending_nudge: String,
            spawn_epoch: i64,
        }
        let pending: Vec<P> = self.db.query(
            "SELECT bead_id, pending_nudge, spawn_epoch FROM agents WHERE pending_nudge IS NOT NULL \
             AND status IN ('working', 'stalled') AND running_epoch = spawn_epoch",
            params![],
        )?;
        for p in pending {
            self.db.run("UPDATE agents SET pending_nudge = NULL WHERE bead_id = ?", params![p.bead_id.as_str()])?;
            self.event(&p.bead_id, None, Some(&p.bead_id), &Actor::System, EventType::Nudged, None, Some("witness"), json!({}))?;
            jobs.push(super::work::NudgeJob {
                key: format!("witness:{}:{}:{}", p.bead_id, p.spawn_epoch, self.now),
                agent_id: p.bead_id,
                text: p.pending_nudge,
            });
        }
        Ok(jobs)
    }

    /// A message from the person to the mayor (created on first use).
    pub(crate) fn mayor_message(&self, message: &str, actor: &Actor) -> CoreResult<Value> {
        validate::text("message", message, validate::MAX_BODY)?;
        let mayor = self.ensure_mayor(actor)?;
        let subject: String = message.lines().next().unwrap_or("").chars().take(80).collect();
        let mail = self.deliver(OVERSEER, &mayor, &subject, message, Priority::High, actor)?;
        // The first message starts the mayor; it is kept running from then on.
        let status = self.ensure_mayor_running(actor)?;
        Ok(json!({"mail": mail, "mayor": self.agent(&mayor.id)?, "session": status.status}))
    }
}

/// A sender address reduced to the characters an address can have (`rig/polecats/nux`, an
/// agent id), so that a notice never carries free text.
fn address_only(a: &str) -> String {
    let kept: String = a.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')).take(80).collect();
    if kept.is_empty() {
        "an agent".into()
    } else {
        kept
    }
}
