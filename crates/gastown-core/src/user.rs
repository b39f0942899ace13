//! GastownUserDO's state: the towns and rigs one user owns. This is the ownership source of
//! truth — a town route is allowed only if the caller's own registry lists the town.

use serde::{Deserialize, Serialize};

use crate::db::{Db, DbExt};
use crate::error::{CoreError, CoreResult};
use crate::limits::{Limit, Limits};
use crate::time::{iso, Millis};
use crate::{params, validate};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UserTown {
    pub id: String,
    pub name: String,
    pub owner_user_id: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UserRig {
    pub id: String,
    pub town_id: String,
    pub name: String,
    pub git_url: String,
    pub default_branch: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserOp {
    CreateTown {
        town_id: String,
        name: String,
    },
    ListTowns,
    GetTown {
        town_id: String,
    },
    /// Removes the town and its rigs from the registry; returns the removed rigs.
    DeleteTown {
        town_id: String,
    },
    CreateRig {
        rig: UserRig,
    },
    GetRig {
        rig_id: String,
    },
    ListRigs {
        town_id: Option<String>,
    },
    DeleteRig {
        rig_id: String,
    },
}

pub struct UserStore<'a> {
    db: &'a dyn Db,
    user_id: String,
    now: Millis,
    limits: Limits,
}

const TOWN_COLS: &str = "town_id AS id, name, ? AS owner_user_id, created_at, updated_at";
const RIG_COLS: &str = "rig_id AS id, town_id, name, git_url, default_branch, created_at, updated_at";

impl<'a> UserStore<'a> {
    pub fn new(db: &'a dyn Db, user_id: &str, now: Millis) -> Self {
        UserStore { db, user_id: user_id.to_string(), now, limits: Limits::default() }
    }

    /// The deployment's limits (the defaults otherwise).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn handle(&self, op: UserOp) -> CoreResult<serde_json::Value> {
        let j = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(CoreError::from);
        match op {
            UserOp::CreateTown { town_id, name } => j(serde_json::to_value(self.create_town(&town_id, &name)?)),
            UserOp::ListTowns => j(serde_json::to_value(self.list_towns()?)),
            UserOp::GetTown { town_id } => j(serde_json::to_value(self.town(&town_id)?)),
            UserOp::DeleteTown { town_id } => j(serde_json::to_value(self.delete_town(&town_id)?)),
            UserOp::CreateRig { rig } => j(serde_json::to_value(self.create_rig(rig)?)),
            UserOp::GetRig { rig_id } => j(serde_json::to_value(self.rig(&rig_id)?)),
            UserOp::ListRigs { town_id } => j(serde_json::to_value(self.list_rigs(town_id.as_deref())?)),
            UserOp::DeleteRig { rig_id } => j(serde_json::to_value(self.delete_rig(&rig_id)?)),
        }
    }

    pub fn create_town(&self, town_id: &str, name: &str) -> CoreResult<UserTown> {
        validate::display_name("name", name)?;
        if self.db.scalar_i64("SELECT COUNT(*) FROM user_towns WHERE name = ?", params![name])? > 0 {
            return Err(CoreError::Conflict(format!("you already have a town named {name:?}")));
        }
        self.limits.check(Limit::TownsPerUser, self.db.scalar_i64("SELECT COUNT(*) FROM user_towns", params![])?)?;
        let now = iso(self.now);
        self.db.run(
            "INSERT INTO user_towns (town_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            params![town_id, name, now.as_str(), now.as_str()],
        )?;
        self.town(town_id)
    }

    pub fn list_towns(&self) -> CoreResult<Vec<UserTown>> {
        self.db.query(&format!("SELECT {TOWN_COLS} FROM user_towns ORDER BY created_at DESC, name"), params![self.user_id.as_str()])
    }

    pub fn town(&self, town_id: &str) -> CoreResult<UserTown> {
        self.db
            .query_opt(&format!("SELECT {TOWN_COLS} FROM user_towns WHERE town_id = ?"), params![self.user_id.as_str(), town_id])?
            .ok_or_else(|| CoreError::not_found("town", town_id))
    }

    pub fn delete_town(&self, town_id: &str) -> CoreResult<Vec<UserRig>> {
        self.town(town_id)?;
        let rigs = self.list_rigs(Some(town_id))?;
        self.db.transaction(|| {
            self.db.run("DELETE FROM user_rigs WHERE town_id = ?", params![town_id])?;
            self.db.run("DELETE FROM user_towns WHERE town_id = ?", params![town_id])
        })?;
        Ok(rigs)
    }

    pub fn create_rig(&self, rig: UserRig) -> CoreResult<UserRig> {
        self.town(&rig.town_id).map_err(|_| CoreError::bad("town_id", format!("you have no town {}", rig.town_id)))?;
        let dup = self.db.scalar_i64(
            "SELECT COUNT(*) FROM user_rigs WHERE town_id = ? AND name = ?",
            params![rig.town_id.as_str(), rig.name.as_str()],
        )?;
        if dup > 0 {
            return Err(CoreError::Conflict(format!("this town already has a rig named {:?}", rig.name)));
        }
        let now = iso(self.now);
        self.db.run(
            "INSERT INTO user_rigs (rig_id, town_id, name, git_url, default_branch, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                rig.id.as_str(),
                rig.town_id.as_str(),
                rig.name.as_str(),
                rig.git_url.as_str(),
                rig.default_branch.as_str(),
                now.as_str(),
                now.as_str()
            ],
        )?;
        self.rig(&rig.id)
    }

    pub fn rig(&self, rig_id: &str) -> CoreResult<UserRig> {
        self.db
            .query_opt(&format!("SELECT {RIG_COLS} FROM user_rigs WHERE rig_id = ?"), params![rig_id])?
            .ok_or_else(|| CoreError::not_found("rig", rig_id))
    }

    pub fn list_rigs(&self, town_id: Option<&str>) -> CoreResult<Vec<UserRig>> {
        self.db.query(
            &format!("SELECT {RIG_COLS} FROM user_rigs WHERE (?1 IS NULL OR town_id = ?1) ORDER BY created_at DESC, name"),
            params![town_id],
        )
    }

    pub fn delete_rig(&self, rig_id: &str) -> CoreResult<UserRig> {
        let r = self.rig(rig_id)?;
        self.db.run("DELETE FROM user_rigs WHERE rig_id = ?", params![rig_id])?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::MemDb;

    fn rig(id: &str, town: &str, name: &str) -> UserRig {
        UserRig {
            id: id.into(),
            town_id: town.into(),
            name: name.into(),
            git_url: "https://x/y.git".into(),
            default_branch: "main".into(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn towns_and_rigs_cascade() {
        let db = MemDb::new();
        crate::migrate::apply(&db, crate::migrate::USER, "t").unwrap();
        let s = UserStore::new(&db, "u1", 1000);
        let t = s.create_town("t1", "Alpha").unwrap();
        assert_eq!(t.owner_user_id, "u1");
        assert_eq!(s.create_town("t2", "Alpha").unwrap_err().status(), 409);
        s.create_town("t2", "Beta").unwrap();
        s.create_rig(rig("r1", "t1", "web")).unwrap();
        assert_eq!(s.create_rig(rig("r2", "t1", "web")).unwrap_err().status(), 409);
        assert_eq!(s.create_rig(rig("r3", "nope", "web")).unwrap_err().status(), 400);
        s.create_rig(rig("r4", "t2", "web")).unwrap();
        assert_eq!(s.list_rigs(Some("t1")).unwrap().len(), 1);
        assert_eq!(s.list_rigs(None).unwrap().len(), 2);
        let removed = s.delete_town("t1").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(s.town("t1").unwrap_err().status(), 404);
        assert_eq!(s.rig("r1").unwrap_err().status(), 404);
        assert!(s.rig("r4").is_ok());
    }

    #[test]
    fn towns_per_user_are_limited() {
        let db = MemDb::new();
        crate::migrate::apply(&db, crate::migrate::USER, "t").unwrap();
        let s = UserStore::new(&db, "u1", 1000).with_limits(Limits { max_towns_per_user: 2, ..Limits::default() });
        s.create_town("t1", "One").unwrap();
        s.create_town("t2", "Two").unwrap();
        let e = s.create_town("t3", "Three").unwrap_err();
        assert_eq!(e.status(), 409);
        assert!(e.to_string().contains("at most 2 towns per user"), "{e}");
        assert_eq!(s.town("t3").unwrap_err().status(), 404, "nothing was recorded");
        // Deleting one frees a place.
        s.delete_town("t1").unwrap();
        s.create_town("t3", "Three").unwrap();
    }
}
