//! AgentDO's state: one agent's append-only event log, bounded by count and bytes (oldest
//! trimmed first). A payload too big to store sensibly is replaced by a marker with a preview,
//! so one huge event can never fail the append or push out the whole log.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::{Db, DbExt};
use crate::error::{CoreError, CoreResult};
use crate::params;
use crate::time::{iso, Millis};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: i64,
    pub max_bytes: i64,
    /// Far below SQLite's (and the DO's) 2 MB row limit.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_events: 10_000, max_bytes: 16 * 1024 * 1024, max_payload: 64 * 1024 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentEvent {
    pub id: i64,
    pub event_type: String,
    pub data: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AgentLogOp {
    Append { event_type: String, data: Value },
    List { after_id: Option<i64>, limit: Option<u32> },
    Destroy,
}

pub struct AgentLog<'a> {
    db: &'a dyn Db,
    now: Millis,
    limits: Limits,
}

impl<'a> AgentLog<'a> {
    pub fn new(db: &'a dyn Db, now: Millis) -> Self {
        AgentLog { db, now, limits: Limits::default() }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn handle(&self, op: AgentLogOp) -> CoreResult<Value> {
        match op {
            AgentLogOp::Append { event_type, data } => Ok(json!({"id": self.append(&event_type, data)?})),
            AgentLogOp::List { after_id, limit } => Ok(serde_json::to_value(self.list(after_id.unwrap_or(0), limit.unwrap_or(100))?)?),
            AgentLogOp::Destroy => Ok(json!({"destroyed": true})),
        }
    }

    pub fn append(&self, event_type: &str, data: Value) -> CoreResult<i64> {
        crate::validate::text("event_type", event_type, 100)?;
        let mut text = data.to_string();
        if text.len() > self.limits.max_payload {
            let mut cut = (self.limits.max_payload / 2).min(4096).min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text = json!({"truncated": true, "original_bytes": text.len(), "preview": &text[..cut]}).to_string();
        }
        let bytes = text.len() as i64;
        self.db.transaction(|| {
            self.db.run(
                "INSERT INTO agent_events (event_type, data, bytes, created_at) VALUES (?, ?, ?, ?)",
                params![event_type, text.as_str(), bytes, iso(self.now)],
            )?;
            let id = self.db.scalar_i64("SELECT MAX(id) FROM agent_events", params![])?;
            self.trim()?;
            Ok(id)
        })
    }

    fn trim(&self) -> CoreResult<()> {
        let count = self.db.scalar_i64("SELECT COUNT(*) FROM agent_events", params![])?;
        if count > self.limits.max_events {
            self.db.run(
                "DELETE FROM agent_events WHERE id IN (SELECT id FROM agent_events ORDER BY id LIMIT ?)",
                params![count - self.limits.max_events],
            )?;
        }
        let total = self.db.scalar_i64("SELECT COALESCE(SUM(bytes), 0) FROM agent_events", params![])?;
        if total > self.limits.max_bytes {
            // Delete the oldest rows whose running total covers the excess.
            self.db.run(
                "DELETE FROM agent_events WHERE id IN (SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY id) AS run FROM agent_events) WHERE run - bytes < ?) AND id < (SELECT MAX(id) FROM agent_events)",
                params![total - self.limits.max_bytes],
            )?;
        }
        Ok(())
    }

    pub fn list(&self, after_id: i64, limit: u32) -> CoreResult<Vec<AgentEvent>> {
        if limit == 0 || limit > 1000 {
            return Err(CoreError::bad("limit", "must be between 1 and 1000"));
        }
        if after_id < 0 {
            return Err(CoreError::bad("after_id", "must not be negative"));
        }
        #[derive(Deserialize)]
        struct R {
            id: i64,
            event_type: String,
            data: String,
            created_at: String,
        }
        self.db
            .query::<R>(
                "SELECT id, event_type, data, created_at FROM agent_events WHERE id > ? ORDER BY id LIMIT ?",
                params![after_id, limit],
            )?
            .into_iter()
            .map(|r| Ok(AgentEvent { id: r.id, event_type: r.event_type, data: serde_json::from_str(&r.data)?, created_at: r.created_at }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::MemDb;

    fn log(db: &MemDb) -> AgentLog<'_> {
        crate::migrate::apply(db, crate::migrate::AGENT, "t").unwrap();
        AgentLog::new(db, 5).with_limits(Limits { max_events: 5, max_bytes: 400, max_payload: 200 })
    }

    #[test]
    fn cursor_reads_in_order() {
        let db = MemDb::new();
        let l = log(&db);
        let ids: Vec<i64> = (0..3).map(|i| l.append("tick", json!({"i": i})).unwrap()).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        let page = l.list(1, 10).unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(page[0].data, json!({"i": 1}));
        assert_eq!(l.list(0, 1).unwrap().len(), 1);
        assert_eq!(l.list(0, 0).unwrap_err().status(), 400);
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let db = MemDb::new();
        let l = log(&db);
        for i in 0..8 {
            l.append("tick", json!({"i": i})).unwrap();
        }
        let all = l.list(0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
        // Each ~150-byte payload: 400 bytes hold two of them.
        for _ in 0..3 {
            l.append("big", json!({"s": "x".repeat(140)})).unwrap();
        }
        let all = l.list(0, 100).unwrap();
        let total: usize = all.iter().map(|e| e.data.to_string().len()).sum();
        assert!(total <= 400, "{total}");
        assert_eq!(all.last().unwrap().id, 11, "the newest event always survives");
    }

    #[test]
    fn oversized_payload_is_truncated_with_marker() {
        let db = MemDb::new();
        let l = log(&db);
        let id = l.append("huge", json!({"s": "é".repeat(5000)})).unwrap();
        let e = &l.list(id - 1, 1).unwrap()[0];
        assert_eq!(e.data["truncated"], json!(true));
        assert!(e.data["original_bytes"].as_u64().unwrap() > 10_000);
        assert!(!e.data["preview"].as_str().unwrap().is_empty());
    }
}
