//! Convoys: a batch of beads, possibly across rigs, tracked until every one has landed. A convoy
//! is a `convoy` bead with `tracks` dependencies on its beads. It lands when the last tracked
//! bead closes — work closes only when its merge lands, so a convoy never lands on `gt done`
//! alone — and adding a bead to a landed convoy reopens it. A convoy whose ready work nobody is
//! on ("stranded") is fed to the dispatch queue by the scheduler.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::ids::TOWN_PREFIX;
use crate::model::{Bead, BeadStatus, BeadType, DependencyType, EventType, Priority};
use crate::{params, validate};

/// A convoy with its progress (`closed` of `total` tracked beads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Convoy {
    pub id: String,
    pub title: String,
    /// `open` or `landed`.
    pub status: String,
    pub total: i64,
    pub closed: i64,
    pub bead_ids: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub landed_at: Option<String>,
}

/// A convoy with its tracked beads (`GET …/convoys/:convoyId`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConvoyDetail {
    #[serde(flatten)]
    pub convoy: Convoy,
    pub beads: Vec<Bead>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateConvoyInput {
    pub title: String,
    #[serde(default)]
    pub bead_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AddToConvoyInput {
    pub bead_ids: Vec<String>,
}

/// A convoy with its tracked beads (in the order they were added) and how many of them are
/// closed, each from the convoy's own dependencies (`bead_dependencies`' key starts with the
/// convoy), so a page of convoys costs what they track. Followed by `FROM convoys c … JOIN
/// beads b ON b.bead_id = c.bead_id`.
const CONVOY_COLUMNS: &str = "SELECT c.bead_id, b.title, b.created_by, b.created_at, c.landed_at, \
     (SELECT json_group_array(d.depends_on_bead_id ORDER BY d.created_at, d.depends_on_bead_id) \
      FROM bead_dependencies d JOIN beads t ON t.bead_id = d.depends_on_bead_id WHERE d.bead_id = c.bead_id AND d.dependency_type = 'tracks') AS bead_ids, \
     (SELECT COUNT(*) FROM bead_dependencies d JOIN beads t ON t.bead_id = d.depends_on_bead_id \
      WHERE d.bead_id = c.bead_id AND d.dependency_type = 'tracks' AND t.status = 'closed') AS closed";

#[derive(Deserialize)]
struct ConvoyRow {
    bead_id: String,
    title: String,
    created_by: String,
    created_at: String,
    landed_at: Option<String>,
    bead_ids: String,
    closed: i64,
}

impl ConvoyRow {
    fn into_convoy(self) -> CoreResult<Convoy> {
        let bead_ids: Vec<String> = serde_json::from_str(&self.bead_ids)?;
        Ok(Convoy {
            status: if self.landed_at.is_some() { "landed" } else { "open" }.to_string(),
            total: bead_ids.len() as i64,
            closed: self.closed,
            bead_ids,
            id: self.bead_id,
            title: self.title,
            created_by: self.created_by,
            created_at: self.created_at,
            landed_at: self.landed_at,
        })
    }
}

/// The most beads one request may add (a convoy may grow past it over several requests).
const MAX_BATCH: usize = 200;

impl TownStore<'_> {
    pub(crate) fn create_convoy(&self, input: CreateConvoyInput, actor: &Actor) -> CoreResult<Convoy> {
        validate::text("title", &input.title, validate::MAX_TITLE)?;
        self.check_batch(&input.bead_ids)?;
        let id = self.insert_bead(
            TOWN_PREFIX,
            BeadType::Convoy,
            BeadStatus::Open,
            &input.title,
            None,
            None,
            None,
            None,
            Priority::Medium,
            &["gt:convoy".to_string()],
            &json!({}),
            actor,
        )?;
        self.db.run("INSERT INTO convoys (bead_id) VALUES (?)", params![id.as_str()])?;
        for b in &input.bead_ids {
            self.track(&id, b, actor)?;
        }
        self.convoy(&id)
    }

    pub(crate) fn add_to_convoy(&self, convoy_id: &str, input: AddToConvoyInput, actor: &Actor) -> CoreResult<Convoy> {
        self.convoy(convoy_id)?;
        self.check_batch(&input.bead_ids)?;
        if input.bead_ids.is_empty() {
            return Err(CoreError::bad("bead_ids", "name at least one bead"));
        }
        for b in &input.bead_ids {
            self.track(convoy_id, b, actor)?;
        }
        self.convoy(convoy_id)
    }

    fn check_batch(&self, ids: &[String]) -> CoreResult<()> {
        if ids.len() > MAX_BATCH {
            return Err(CoreError::bad("bead_ids", format!("at most {MAX_BATCH} beads per request")));
        }
        for (i, id) in ids.iter().enumerate() {
            let b = self.bead_opt(id)?.ok_or_else(|| CoreError::bad(&format!("bead_ids[{i}]"), format!("no bead {id} in this town")))?;
            if b.bead_type != BeadType::Issue || b.rig_id.is_none() {
                return Err(CoreError::bad(&format!("bead_ids[{i}]"), format!("{id} is a {}, not work in a rig", b.bead_type)));
            }
        }
        Ok(())
    }

    /// Adds one bead to a convoy; a landed convoy that gains unfinished work is open again.
    pub(crate) fn track(&self, convoy_id: &str, bead_id: &str, actor: &Actor) -> CoreResult<()> {
        let added = self.db.scalar_i64(
            "SELECT COUNT(*) FROM bead_dependencies WHERE bead_id = ? AND depends_on_bead_id = ? AND dependency_type = 'tracks'",
            params![convoy_id, bead_id],
        )? == 0;
        if !added {
            return Ok(());
        }
        self.db.run(
            "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, 'tracks', ?)",
            params![convoy_id, bead_id, self.now_iso()],
        )?;
        self.event(
            convoy_id,
            None,
            None,
            actor,
            EventType::DependencyAdded,
            None,
            Some(bead_id),
            json!({"type": DependencyType::Tracks.as_str()}),
        )?;
        let bead = self.bead(bead_id)?;
        if bead.status != BeadStatus::Closed {
            self.reopen_convoy(convoy_id, &format!("{bead_id} was added"), actor)?;
        }
        Ok(())
    }

    fn reopen_convoy(&self, convoy_id: &str, why: &str, actor: &Actor) -> CoreResult<()> {
        let landed =
            self.db.scalar_i64("SELECT COUNT(*) FROM convoys WHERE bead_id = ? AND landed_at IS NOT NULL", params![convoy_id])? > 0;
        if landed {
            self.db.run("UPDATE convoys SET landed_at = NULL WHERE bead_id = ?", params![convoy_id])?;
            self.set_status(convoy_id, BeadStatus::Open, actor, Some(why))?;
            self.event(convoy_id, None, None, actor, EventType::ConvoyReopened, None, None, json!({"reason": why}))?;
        }
        Ok(())
    }

    /// A tracked bead changed status: land its convoys when it was the last one, reopen landed
    /// ones when it left `closed`.
    pub(crate) fn convoys_on_status(&self, bead: &Bead, to: BeadStatus, actor: &Actor) -> CoreResult<()> {
        #[derive(Deserialize)]
        struct C {
            bead_id: String,
        }
        let convoys: Vec<C> = self.db.query(
            "SELECT d.bead_id FROM bead_dependencies d JOIN convoys c ON c.bead_id = d.bead_id \
             WHERE d.depends_on_bead_id = ? AND d.dependency_type = 'tracks'",
            params![bead.id.as_str()],
        )?;
        for c in convoys {
            if to != BeadStatus::Closed {
                self.reopen_convoy(&c.bead_id, &format!("{} is {} again", bead.id, to), actor)?;
                continue;
            }
            let convoy = self.convoy(&c.bead_id)?;
            if convoy.landed_at.is_none() && convoy.closed == convoy.total {
                self.db.run("UPDATE convoys SET landed_at = ? WHERE bead_id = ?", params![self.now_iso(), c.bead_id.as_str()])?;
                self.set_status(&c.bead_id, BeadStatus::Closed, &Actor::System, Some("landed"))?;
                self.event(&c.bead_id, None, None, &Actor::System, EventType::ConvoyLanded, None, None, json!({"total": convoy.total}))?;
            }
        }
        Ok(())
    }

    pub(crate) fn convoy(&self, id: &str) -> CoreResult<Convoy> {
        self.db
            .query_opt::<ConvoyRow>(
                &format!("{CONVOY_COLUMNS} FROM convoys c JOIN beads b ON b.bead_id = c.bead_id WHERE c.bead_id = ?"),
                params![id],
            )?
            .map(ConvoyRow::into_convoy)
            .transpose()?
            .ok_or_else(|| CoreError::not_found("convoy", id))
    }

    /// At most `limit`: the open convoys first, then the landed ones, each newest first, so an
    /// open convoy never falls off the page behind newer landed ones. The open ones are read
    /// through `idx_convoys_unlanded` and sorted (they are the town's open work; without
    /// `INDEXED BY` SQLite walks the whole table backwards for the rowid order); the landed are
    /// walked backwards in the table's own order — a convoy's row is written with its bead, so
    /// that is the order they were made in — and the walk stops at the page.
    pub(crate) fn list_convoys(&self, limit: Option<u32>) -> CoreResult<Vec<Convoy>> {
        let limit = super::beads::page_limit(limit, super::beads::MAX_PAGE, super::beads::MAX_PAGE)?;
        let landed = format!(
            "{CONVOY_COLUMNS} FROM convoys c JOIN beads b ON b.bead_id = c.bead_id WHERE c.landed_at IS NOT NULL ORDER BY c.rowid DESC LIMIT ?"
        );
        let rows: Vec<ConvoyRow> = self.open_first(
            &format!(
                "{CONVOY_COLUMNS} FROM convoys c INDEXED BY idx_convoys_unlanded JOIN beads b ON b.bead_id = c.bead_id \
                 WHERE c.landed_at IS NULL ORDER BY c.rowid DESC LIMIT ?"
            ),
            Some(&landed),
            params![],
            limit,
        )?;
        rows.into_iter().map(ConvoyRow::into_convoy).collect()
    }

    /// A convoy with its tracked beads, for the detail view.
    pub(crate) fn convoy_detail(&self, id: &str) -> CoreResult<ConvoyDetail> {
        let convoy = self.convoy(id)?;
        let beads: Vec<Bead> = convoy.bead_ids.iter().map(|b| self.bead(b)).collect::<CoreResult<_>>()?;
        Ok(ConvoyDetail { convoy, beads })
    }

    /// Feeds stranded convoys: open convoys with ready work (open, unblocked, not held, not
    /// queued) and nothing of theirs held or queued get their ready beads queued for polecats.
    /// Only the convoys SQLite noted since the last pass are read (migration 0019: one becomes
    /// stranded only when one of its beads changes), so convoys in flight cost a pass nothing.
    pub(crate) fn feed_stranded_convoys(&self) -> CoreResult<()> {
        #[derive(Deserialize)]
        struct R {
            bead_id: String,
            rig_id: String,
        }
        // CROSS JOIN keeps SQLite to this order, from the noted convoys out: left to itself it
        // started from every open bead of the town.
        let ready: Vec<R> = self.db.query(
            "SELECT b.bead_id, b.rig_id FROM convoys_to_check k CROSS JOIN convoys c ON c.bead_id = k.convoy_id \
             CROSS JOIN bead_dependencies d ON d.bead_id = c.bead_id AND d.dependency_type = 'tracks' \
             CROSS JOIN beads b ON b.bead_id = d.depends_on_bead_id \
             WHERE c.landed_at IS NULL AND b.status = 'open' AND b.rig_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM bead_dependencies x JOIN beads y ON y.bead_id = x.depends_on_bead_id \
                             WHERE x.bead_id = b.bead_id AND x.dependency_type = 'blocks' AND y.status != 'closed') \
             AND NOT EXISTS (SELECT 1 FROM bead_dependencies d2 JOIN beads t ON t.bead_id = d2.depends_on_bead_id \
                             WHERE d2.bead_id = c.bead_id AND d2.dependency_type = 'tracks' \
                             AND (EXISTS (SELECT 1 FROM agents a WHERE a.hook_bead_id = t.bead_id) \
                                  OR EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.bead_id = t.bead_id))) \
             ORDER BY d.created_at, b.bead_id",
            params![],
        )?;
        self.db.run("DELETE FROM convoys_to_check", params![])?;
        for r in ready {
            self.enqueue(&r.bead_id, &r.rig_id, &Actor::System)?;
        }
        Ok(())
    }
}
