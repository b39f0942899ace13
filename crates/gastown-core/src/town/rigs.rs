//! The town itself: its identity row, its rigs (one git repository each) and its config.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Actor, TownStore};
use crate::config::{ConfigPatch, MergeStrategy, TownConfig};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::forge::ForgeKind;
use crate::limits::Limit;
use crate::model::Rig;
use crate::{ids, params, validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AddRigInput {
    pub rig_id: String,
    pub name: String,
    pub git_url: String,
    pub default_branch: String,
    pub bead_prefix: Option<String>,
    /// Local repositories (file://, paths) are refused in production.
    pub allow_local_git: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TownInfo {
    pub id: String,
    pub name: String,
    pub owner_user_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub rigs: Vec<Rig>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct MetaRow {
    pub town_id: String,
    pub name: String,
    pub owner_user_id: String,
    pub config: String,
    pub created_at: String,
    pub updated_at: String,
    /// The container's limit on runs at once, once it has told us.
    #[serde(default)]
    pub container_max_agents: Option<i64>,
}

const RIG_COLUMNS: &str = "rig_id AS id, name, git_url, default_branch, bead_prefix, created_at, merge_strategy, forge, forge_repo";

/// `PATCH /api/towns/:townId/rigs/:rigId`: a rig's own settings; `null` clears one (back to the
/// town's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RigPatch {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub merge_strategy: Option<Option<MergeStrategy>>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub forge: Option<Option<ForgeKind>>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub forge_repo: Option<Option<String>>,
}

fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl TownStore<'_> {
    /// The town's one row, read once per store (or once per Durable Object instance, see
    /// [`super::MetaCache`]): an op and the drive loop consult it many times (config, capacity,
    /// owner). Every write to `town_meta` goes through [`TownStore::forget_meta`].
    pub(crate) fn meta(&self) -> CoreResult<MetaRow> {
        if let Some(m) = self.meta.cell().borrow().as_ref() {
            return Ok(m.clone());
        }
        let m: MetaRow = self
            .db
            .query_opt("SELECT * FROM town_meta WHERE id = 1", params![])?
            .ok_or_else(|| CoreError::NotFound("town not found".into()))?;
        *self.meta.cell().borrow_mut() = Some(m.clone());
        Ok(m)
    }

    pub(crate) fn forget_meta(&self) {
        self.meta.cell().borrow_mut().take();
    }

    /// Idempotent for the same town id; a DO can never be re-initialised as another town.
    pub(crate) fn init(&self, town_id: &str, name: &str, owner: &str) -> CoreResult<TownInfo> {
        validate::display_name("name", name)?;
        match self.db.query_opt::<MetaRow>("SELECT * FROM town_meta WHERE id = 1", params![])? {
            Some(m) if m.town_id == town_id => {}
            Some(_) => return Err(CoreError::Conflict("this town storage belongs to another town".into())),
            None => {
                let now = self.now_iso();
                self.forget_meta();
                self.db.run(
                    "INSERT INTO town_meta (id, town_id, name, owner_user_id, config, created_at, updated_at) VALUES (1, ?, ?, ?, '{}', ?, ?)",
                    params![town_id, name, owner, now.as_str(), now.as_str()],
                )?;
            }
        }
        self.town_info()
    }

    /// The town exists and belongs to `user_id`; otherwise, to that user, it does not exist.
    pub fn check_owner(&self, user_id: &str) -> CoreResult<()> {
        match self.meta() {
            Ok(m) if m.owner_user_id == user_id => Ok(()),
            Ok(_) | Err(CoreError::NotFound(_)) => Err(CoreError::NotFound("town not found".into())),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn town_info(&self) -> CoreResult<TownInfo> {
        let m = self.meta()?;
        Ok(TownInfo {
            id: m.town_id,
            name: m.name,
            owner_user_id: m.owner_user_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
            rigs: self.list_rigs()?,
        })
    }

    pub(crate) fn all_agent_ids(&self) -> CoreResult<Vec<String>> {
        #[derive(Deserialize)]
        struct R {
            bead_id: String,
        }
        Ok(self.db.query::<R>("SELECT bead_id FROM agents", params![])?.into_iter().map(|r| r.bead_id).collect())
    }

    /// The unmasked config: for the DO's own use (container requests), never for a response.
    pub fn config(&self) -> CoreResult<TownConfig> {
        let raw = self.meta()?.config;
        serde_json::from_str(&raw).map_err(|e| CoreError::Internal(format!("stored config: {e}")))
    }

    pub(crate) fn patch_config(&self, patch: Value) -> CoreResult<TownConfig> {
        // serde reads a struct from an array too, field by field in order: every group of
        // settings must be an object (or null), as documented. Unknown names are left to serde,
        // which refuses them by name.
        const GROUPS: [&str; 7] = ["agent", "env_vars", "git_auth", "refinery", "capacity", "escalations", "witness"];
        for (group, v) in patch.as_object().into_iter().flatten() {
            if GROUPS.contains(&group.as_str()) && !(v.is_object() || v.is_null()) {
                return Err(CoreError::bad_request(format!("{group}: must be an object or null")));
            }
        }
        let patch: ConfigPatch = crate::json::from_value("", patch)?;
        let mut cfg = self.config()?;
        cfg.apply_patch_in(patch, self.development)?;
        self.forget_meta();
        self.db
            .run("UPDATE town_meta SET config = ?, updated_at = ? WHERE id = 1", params![serde_json::to_string(&cfg)?, self.now_iso()])?;
        Ok(cfg)
    }

    pub(crate) fn add_rig(&self, input: AddRigInput, _actor: &Actor) -> CoreResult<Rig> {
        validate::name("name", &input.name)?;
        validate::git_url("git_url", &input.git_url, input.allow_local_git)?;
        validate::branch("default_branch", &input.default_branch)?;
        let prefix = match input.bead_prefix {
            Some(p) => {
                ids::validate_prefix(&p)?;
                p
            }
            None => ids::derive_prefix(&input.name),
        };
        if self.db.scalar_i64("SELECT COUNT(*) FROM rigs WHERE name = ?", params![input.name.as_str()])? > 0 {
            return Err(CoreError::Conflict(format!("this town already has a rig named {:?}", input.name)));
        }
        if self.db.scalar_i64("SELECT COUNT(*) FROM rigs WHERE rig_id = ?", params![input.rig_id.as_str()])? > 0 {
            return Err(CoreError::Conflict("rig id already exists".into()));
        }
        self.limits.check(Limit::RigsPerTown, self.db.scalar_i64("SELECT COUNT(*) FROM rigs", params![])?)?;
        self.db.run(
            "INSERT INTO rigs (rig_id, name, git_url, default_branch, bead_prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            params![
                input.rig_id.as_str(),
                input.name.as_str(),
                input.git_url.as_str(),
                input.default_branch.as_str(),
                prefix.as_str(),
                self.now_iso()
            ],
        )?;
        self.rig(&input.rig_id)
    }

    /// Changes a rig's own settings (its merge strategy and forge).
    pub(crate) fn patch_rig(&self, rig_id: &str, patch: RigPatch) -> CoreResult<Rig> {
        let rig = self.rig(rig_id)?;
        let strategy = patch.merge_strategy.unwrap_or(rig.merge_strategy);
        let forge = patch.forge.unwrap_or(rig.forge);
        let repo = patch.forge_repo.unwrap_or(rig.forge_repo);
        if let Some(r) = &repo {
            crate::forge::check_repo(forge.unwrap_or(ForgeKind::Gitlab), r).map_err(|e| CoreError::bad_request(e.to_string()))?;
        }
        let strategy_s = strategy.map(|s| match s {
            MergeStrategy::Direct => "direct",
            MergeStrategy::Pr => "pr",
        });
        self.db.run(
            "UPDATE rigs SET merge_strategy = ?, forge = ?, forge_repo = ? WHERE rig_id = ?",
            params![strategy_s, forge.map(|f| f.as_str()), repo.as_deref(), rig_id],
        )?;
        self.rig(rig_id)
    }

    pub(crate) fn rig(&self, rig_id: &str) -> CoreResult<Rig> {
        self.db
            .query_opt(&format!("SELECT {RIG_COLUMNS} FROM rigs WHERE rig_id = ?"), params![rig_id])?
            .ok_or_else(|| CoreError::not_found("rig", rig_id))
    }

    pub(crate) fn rig_by_name(&self, name: &str) -> CoreResult<Option<Rig>> {
        self.db.query_opt(&format!("SELECT {RIG_COLUMNS} FROM rigs WHERE name = ?"), params![name])
    }

    pub(crate) fn list_rigs(&self) -> CoreResult<Vec<Rig>> {
        self.db.query(&format!("SELECT {RIG_COLUMNS} FROM rigs ORDER BY created_at, name"), params![])
    }

    /// Removes the rig and everything in it; returns the ids of the agents that went with it.
    /// Escalations about the rig are town-level beads and stay as history, but the open ones
    /// are resolved ("rig deleted"): nobody can act on them any more, and left open they would
    /// be re-raised to the mayor for a rig that no longer exists.
    pub(crate) fn remove_rig(&self, rig_id: &str, actor: &Actor) -> CoreResult<Vec<String>> {
        self.rig(rig_id)?;
        self.resolve_rig_escalations(rig_id, actor)?;
        #[derive(Deserialize)]
        struct R {
            bead_id: String,
        }
        let agents: Vec<String> =
            self.db.query::<R>("SELECT bead_id FROM agents WHERE rig_id = ?", params![rig_id])?.into_iter().map(|r| r.bead_id).collect();
        let in_rig = "SELECT bead_id FROM beads WHERE rig_id = ?1";
        for table in ["agents", "mail", "reviews", "escalations", "convoys"] {
            self.db.run(&format!("DELETE FROM {table} WHERE bead_id IN ({in_rig})"), params![rig_id])?;
        }
        self.db.run(
            &format!("DELETE FROM bead_dependencies WHERE bead_id IN ({in_rig}) OR depends_on_bead_id IN ({in_rig})"),
            params![rig_id],
        )?;
        // Town-level beads (mail, convoys) that pointed at this rig's agents keep their history but lose the link.
        self.db.run(&format!("UPDATE beads SET assignee_agent_id = NULL WHERE assignee_agent_id IN ({in_rig})"), params![rig_id])?;
        self.db.run("DELETE FROM beads WHERE rig_id = ?", params![rig_id])?;
        self.db.run("DELETE FROM bead_events WHERE rig_id = ?", params![rig_id])?;
        self.db.run("DELETE FROM rigs WHERE rig_id = ?", params![rig_id])?;
        Ok(agents)
    }
}
