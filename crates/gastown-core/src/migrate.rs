//! Schema migrations. Each Durable Object class has an ordered list of SQL files under
//! `migrations/<do>/NNNN_name.sql`, embedded at compile time. A DO applies the ones above its
//! recorded version, each in its own transaction. Applied files are never edited: an upgrade
//! adds a file (and a line below).

use crate::db::{Db, DbExt};
use crate::error::CoreResult;
use crate::params;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($dir:literal, $version:literal, $name:literal) => {
        Migration { version: $version, name: $name, sql: include_str!(concat!("../../../migrations/", $dir, "/", $name, ".sql")) }
    };
}

pub const TOWN: &[Migration] = &[
    migration!("town", 1, "0001_init"),
    migration!("town", 2, "0002_dispatch"),
    migration!("town", 3, "0003_stream_tickets"),
    migration!("town", 4, "0004_keep_alive"),
    migration!("town", 5, "0005_witness"),
    migration!("town", 6, "0006_capacity"),
    migration!("town", 7, "0007_merge_owner"),
    migration!("town", 8, "0008_pull_requests"),
    migration!("town", 9, "0009_status_index"),
    migration!("town", 10, "0010_exited_epoch"),
    migration!("town", 11, "0011_beads_by_rig_and_time"),
    migration!("town", 12, "0012_open_work_indexes"),
    migration!("town", 13, "0013_history_lookups"),
    migration!("town", 14, "0014_unfinished_tally"),
    migration!("town", 15, "0015_no_status_index"),
    migration!("town", 16, "0016_fewer_pages_per_bead"),
    migration!("town", 17, "0017_queue_by_rig"),
    migration!("town", 18, "0018_ignored_escalations"),
    migration!("town", 19, "0019_convoys_to_check"),
];
pub const AGENT: &[Migration] = &[migration!("agent", 1, "0001_init")];
pub const USER: &[Migration] = &[migration!("user", 1, "0001_init")];

/// Brings `db` up to the newest migration; returns the resulting schema version.
pub fn apply(db: &dyn Db, migrations: &[Migration], now_iso: &str) -> CoreResult<i64> {
    db.exec_batch("CREATE TABLE IF NOT EXISTS gastown_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")?;
    let start = db.scalar_i64("SELECT COALESCE(MAX(version), 0) FROM gastown_schema", params![])?;
    let pending: Vec<&Migration> = migrations.iter().filter(|m| m.version > start).collect();
    if pending.is_empty() {
        return Ok(start);
    }
    // All pending migrations in one transaction: a new town's whole schema costs one commit, and
    // a failure leaves the storage exactly as it was.
    db.transaction(|| {
        for m in &pending {
            db.exec_batch(m.sql)?;
            db.run("INSERT INTO gastown_schema (version, name, applied_at) VALUES (?, ?, ?)", params![m.version, m.name, now_iso])?;
        }
        Ok(())
    })?;
    Ok(pending.last().map_or(start, |m| m.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::MemDb;

    #[test]
    fn every_file_is_listed_in_order() {
        for (dir, list) in [("town", TOWN), ("agent", AGENT), ("user", USER)] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/");
            let mut files: Vec<String> = std::fs::read_dir(format!("{path}{dir}"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|f| f.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = list.iter().map(|m| format!("{}.sql", m.name)).collect();
            assert_eq!(files, listed, "migrations/{dir} and migrate::{} disagree", dir.to_uppercase());
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1);
                assert!(m.name.starts_with(&format!("{:04}_", m.version)));
            }
        }
    }

    #[test]
    fn applies_once_and_upgrades() {
        // A DO created at schema 1 (with data) upgrades in place to the newest schema.
        let db = MemDb::new();
        assert_eq!(apply(&db, &TOWN[..1], "t").unwrap(), 1);
        db.run(
            "INSERT INTO rigs (rig_id, name, git_url, default_branch, bead_prefix, created_at) VALUES ('r', 'n', 'u', 'main', 'gt', 't')",
            params![],
        )
        .unwrap();
        let latest = TOWN.len() as i64;
        assert_eq!(apply(&db, TOWN, "t").unwrap(), latest);
        assert_eq!(apply(&db, TOWN, "t").unwrap(), latest);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM gastown_schema", params![]).unwrap(), latest);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM rigs", params![]).unwrap(), 1);
        // A town with beads before the tally of unfinished ones (0014) starts it from them.
        let db = MemDb::new();
        apply(&db, &TOWN[..13], "t").unwrap();
        for (id, status) in [("b1", "open"), ("b2", "closed"), ("b3", "in_review"), ("b4", "failed")] {
            db.run(
                "INSERT INTO beads (bead_id, type, status, title, priority, labels, metadata, created_by, created_at, updated_at) \
                 VALUES (?, 'issue', ?, 't', 'medium', '[]', '{}', 'u', 't', 't')",
                params![id, status],
            )
            .unwrap();
        }
        apply(&db, TOWN, "t").unwrap();
        assert_eq!(db.scalar_i64("SELECT unfinished FROM bead_tally", params![]).unwrap(), 2);
    }

    /// The tally of unfinished beads (0014) follows every way a bead can come, go or change
    /// status, whatever statement does it, and an undone write undoes its count.
    #[test]
    fn the_unfinished_tally_follows_every_write() {
        let db = MemDb::new();
        apply(&db, TOWN, "t").unwrap();
        let tally = || db.scalar_i64("SELECT unfinished FROM bead_tally", params![]).unwrap();
        let counted = || db.scalar_i64("SELECT COUNT(*) FROM beads WHERE status NOT IN ('closed', 'failed')", params![]).unwrap();
        let insert = |id: &str, status: &str| {
            db.run(
                "INSERT INTO beads (bead_id, type, status, title, rig_id, priority, labels, metadata, created_by, created_at, updated_at) \
                 VALUES (?, 'issue', ?, 't', 'r', 'medium', '[]', '{}', 'u', 't', 't')",
                params![id, status],
            )
        };
        let set = |sql: &str| db.run(sql, params![]).unwrap();
        type Step<'a> = (&'static str, Box<dyn Fn() + 'a>);
        let steps: Vec<Step> = vec![
            ("inserted open", Box::new(|| insert("a", "open").unwrap())),
            ("inserted closed", Box::new(|| insert("b", "closed").unwrap())),
            ("inserted failed", Box::new(|| insert("c", "failed").unwrap())),
            ("inserted in review", Box::new(|| insert("d", "in_review").unwrap())),
            ("closed to failed", Box::new(|| set("UPDATE beads SET status = 'failed' WHERE bead_id = 'b'"))),
            ("failed to open", Box::new(|| set("UPDATE beads SET status = 'open' WHERE bead_id = 'c'"))),
            ("open to in progress", Box::new(|| set("UPDATE beads SET status = 'in_progress' WHERE bead_id = 'a'"))),
            ("same status again", Box::new(|| set("UPDATE beads SET status = status"))),
            ("a title only", Box::new(|| set("UPDATE beads SET title = 'x' WHERE bead_id = 'a'"))),
            ("all closed at once", Box::new(|| set("UPDATE beads SET status = 'closed' WHERE bead_id IN ('a', 'c')"))),
            ("all reopened at once", Box::new(|| set("UPDATE beads SET status = 'open'"))),
            ("some deleted at once", Box::new(|| set("DELETE FROM beads WHERE bead_id IN ('a', 'b')"))),
            (
                "a closed one deleted",
                Box::new(|| {
                    set("UPDATE beads SET status = 'closed' WHERE bead_id = 'c'");
                    set("DELETE FROM beads WHERE bead_id = 'c'");
                }),
            ),
            (
                "an undone insert and close",
                Box::new(|| {
                    let undone: CoreResult<()> = db.transaction(|| {
                        insert("e", "open")?;
                        db.run("UPDATE beads SET status = 'closed' WHERE bead_id = 'd'", params![])?;
                        Err(crate::error::CoreError::Conflict("undo".into()))
                    });
                    assert!(undone.is_err());
                }),
            ),
        ];
        for (what, step) in &steps {
            step();
            assert_eq!(tally(), counted(), "after: {what}");
        }
        assert_eq!(tally(), 1, "only d is left, open");
        let db = MemDb::new();
        apply(&db, AGENT, "t").unwrap();
        apply(&db, USER, "t").unwrap();
    }
}
