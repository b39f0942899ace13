//! Molecules: a formula instantiated on a piece of work. The molecule is a `molecule` bead under
//! the work bead; each step is a child issue bead (metadata `step`), and each `needs` is a
//! `blocks` dependency. The agent holding the work walks the steps with `gt mol current` /
//! `gt mol advance`; only a step with no open blocker is ever handed out, and the molecule
//! closes with its last step (the work itself closes when its merge lands, as any work does).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Actor, TownStore};
use crate::db::DbExt;
use crate::error::{CoreError, CoreResult};
use crate::formulas::{self, Formula};
use crate::model::{Bead, BeadStatus, BeadType, EventType};
use crate::params;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MoleculeInput {
    /// A built-in formula's name…
    #[serde(default)]
    pub formula: Option<String>,
    /// …or a formula of the caller's own, as TOML.
    #[serde(default)]
    pub formula_toml: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MoleculeStep {
    pub bead_id: String,
    pub step: String,
    pub title: String,
    pub status: BeadStatus,
    pub needs: Vec<String>,
    /// Open with every step it needs closed.
    pub ready: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Molecule {
    pub id: String,
    pub root_bead_id: String,
    pub formula: String,
    pub status: BeadStatus,
    pub steps: Vec<MoleculeStep>,
}

impl TownStore<'_> {
    pub(crate) fn resolve_formula(&self, input: &MoleculeInput) -> CoreResult<Formula> {
        match (&input.formula, &input.formula_toml) {
            (Some(name), None) => formulas::builtin_named(name).ok_or_else(|| {
                let names: Vec<String> = formulas::builtin().into_iter().map(|f| f.name).collect();
                CoreError::bad("formula", format!("no built-in formula {name:?}; built in: {}", names.join(", ")))
            }),
            (None, Some(text)) => formulas::parse(text),
            _ => Err(CoreError::bad("formula", "give either formula (a built-in name) or formula_toml")),
        }
    }

    /// Creates the molecule and its step beads on `root_id` (work in a rig, not finished, without
    /// a molecule yet).
    pub(crate) fn instantiate(&self, rig_id: Option<&str>, root_id: &str, formula: &Formula, actor: &Actor) -> CoreResult<Molecule> {
        let root = self.bead_in(rig_id, root_id)?;
        let Some(rig) = root.rig_id.clone() else {
            return Err(CoreError::bad("bead_id", "a molecule needs work in a rig"));
        };
        if root.bead_type != BeadType::Issue || root.status.is_terminal() || root.metadata.get("step").is_some() {
            return Err(CoreError::Conflict(format!("{root_id} is not open work that can take a molecule")));
        }
        if let Some(m) = root.metadata.get("molecule_id").and_then(Value::as_str) {
            return Err(CoreError::Conflict(format!("{root_id} already has molecule {m}")));
        }
        let prefix = self.rig(&rig)?.bead_prefix;
        let mol = self.insert_bead(
            &prefix,
            BeadType::Molecule,
            BeadStatus::Open,
            &format!("{}: {}", formula.name, root.title).chars().take(crate::validate::MAX_TITLE).collect::<String>(),
            Some(&formula.description),
            Some(&rig),
            Some(root_id),
            None,
            root.priority,
            &["gt:molecule".to_string()],
            &json!({"formula": formula.name, "root": root_id}),
            actor,
        )?;
        let mut ids: Vec<(String, String)> = vec![];
        for i in formulas::order(formula) {
            let s = &formula.steps[i];
            let id = self.insert_bead(
                &prefix,
                BeadType::Issue,
                BeadStatus::Open,
                &s.title,
                Some(&s.instructions),
                Some(&rig),
                Some(&mol),
                None,
                root.priority,
                &["gt:step".to_string()],
                &json!({"step": s.id, "molecule": mol}),
                actor,
            )?;
            for n in &s.needs {
                let (_, blocker) = ids.iter().find(|(sid, _)| sid == n).expect("ordered: needs come first");
                self.db.run(
                    "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, 'blocks', ?)",
                    params![id.as_str(), blocker.as_str(), self.now_iso()],
                )?;
            }
            self.db.run(
                "INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type, created_at) VALUES (?, ?, 'parent-child', ?)",
                params![id.as_str(), mol.as_str(), self.now_iso()],
            )?;
            ids.push((s.id.clone(), id));
        }
        self.db
            .run("UPDATE beads SET metadata = json_set(metadata, '$.molecule_id', ?) WHERE bead_id = ?", params![mol.as_str(), root_id])?;
        self.event(
            root_id,
            Some(&rig),
            None,
            actor,
            EventType::MoleculeCreated,
            None,
            Some(&mol),
            json!({"formula": formula.name, "steps": ids.len()}),
        )?;
        self.molecule(&mol)
    }

    pub(crate) fn molecule(&self, mol_id: &str) -> CoreResult<Molecule> {
        let m = self.bead(mol_id)?;
        if m.bead_type != BeadType::Molecule {
            return Err(CoreError::not_found("molecule", mol_id));
        }
        #[derive(Deserialize)]
        struct S {
            bead_id: String,
            step: String,
            title: String,
            status: String,
        }
        let rows: Vec<S> = self.db.query(
            "SELECT bead_id, json_extract(metadata, '$.step') AS step, title, status FROM beads \
             WHERE parent_bead_id = ? AND json_extract(metadata, '$.step') IS NOT NULL ORDER BY rowid",
            params![mol_id],
        )?;
        #[derive(Deserialize)]
        struct D {
            bead_id: String,
            blocker: String,
        }
        let deps: Vec<D> = self.db.query(
            "SELECT d.bead_id, d.depends_on_bead_id AS blocker FROM bead_dependencies d JOIN beads b ON b.bead_id = d.bead_id \
             WHERE b.parent_bead_id = ? AND d.dependency_type = 'blocks'",
            params![mol_id],
        )?;
        let status_of = |id: &str| rows.iter().find(|r| r.bead_id == id).map(|r| r.status.as_str());
        let step_of = |id: &str| rows.iter().find(|r| r.bead_id == id).map(|r| r.step.clone());
        let mut steps = vec![];
        for r in &rows {
            let mut blockers: Vec<&D> = deps.iter().filter(|d| d.bead_id == r.bead_id).collect();
            // In the formula's order (the rows are), not the dependency table's.
            blockers.sort_by_key(|d| rows.iter().position(|x| x.bead_id == d.blocker));
            let status = BeadStatus::parse("status", &r.status)?;
            steps.push(MoleculeStep {
                ready: status == BeadStatus::Open && blockers.iter().all(|d| status_of(&d.blocker) == Some("closed")),
                needs: blockers.iter().filter_map(|d| step_of(&d.blocker)).collect(),
                bead_id: r.bead_id.clone(),
                step: r.step.clone(),
                title: r.title.clone(),
                status,
            });
        }
        Ok(Molecule {
            id: m.id.clone(),
            root_bead_id: m.parent_id.clone().unwrap_or_default(),
            formula: m.metadata["formula"].as_str().unwrap_or_default().to_string(),
            status: m.status,
            steps,
        })
    }

    /// The molecule on a work bead, if it has one.
    pub(crate) fn molecule_of(&self, bead: &Bead) -> CoreResult<Option<Molecule>> {
        bead.metadata.get("molecule_id").and_then(Value::as_str).map(|m| self.molecule(m)).transpose()
    }

    fn hooked_molecule(&self, agent_id: &str) -> CoreResult<Molecule> {
        let a = self.agent(agent_id)?;
        let hook = a.hook_bead_id.ok_or_else(|| CoreError::Conflict("nothing is on your hook".into()))?;
        self.molecule_of(&self.bead(&hook)?)?.ok_or_else(|| CoreError::Conflict(format!("{hook} has no molecule; just do the work")))
    }

    /// The step to work on: the one in progress, else the first ready one (now in progress).
    fn current_step(&self, mol: &Molecule, actor: &Actor) -> CoreResult<Value> {
        let done = mol.steps.iter().filter(|s| s.status == BeadStatus::Closed).count();
        let step = match mol.steps.iter().find(|s| s.status == BeadStatus::InProgress) {
            Some(s) => Some(s.clone()),
            None => match mol.steps.iter().find(|s| s.ready) {
                Some(s) => {
                    self.set_status(&s.bead_id, BeadStatus::InProgress, actor, Some("current step"))?;
                    Some(s.clone())
                }
                None => None,
            },
        };
        Ok(match step {
            Some(s) => json!({
                "complete": false,
                "molecule_id": mol.id,
                "position": format!("{}/{}", done + 1, mol.steps.len()),
                "step": self.bead(&s.bead_id)?,
                "step_id": s.step,
            }),
            None if done == mol.steps.len() => {
                json!({"complete": true, "molecule_id": mol.id, "message": "every step is done: run gt done"})
            }
            // Open steps remain but all are blocked by steps someone else failed or reopened.
            None => return Err(CoreError::Conflict("no step is ready: the remaining steps are blocked".into())),
        })
    }

    /// `gt mol current`.
    pub(crate) fn mol_current(&self, agent_id: &str, actor: &Actor) -> CoreResult<Value> {
        let mol = self.hooked_molecule(agent_id)?;
        self.current_step(&mol, actor)
    }

    /// `gt mol advance`: the step in progress is done; the next ready one starts.
    pub(crate) fn mol_advance(&self, agent_id: &str, summary: Option<&str>, actor: &Actor) -> CoreResult<Value> {
        let mol = self.hooked_molecule(agent_id)?;
        let Some(cur) = mol.steps.iter().find(|s| s.status == BeadStatus::InProgress) else {
            return Err(CoreError::Conflict("no step is in progress; run gt mol current first".into()));
        };
        self.set_status(&cur.bead_id, BeadStatus::Closed, actor, Some(summary.unwrap_or("step done")))?;
        let mol = self.molecule(&mol.id)?;
        if mol.steps.iter().all(|s| s.status == BeadStatus::Closed) {
            self.set_status(&mol.id, BeadStatus::Closed, actor, Some("its last step is done"))?;
        }
        self.current_step(&self.molecule(&mol.id)?, actor)
    }

    /// Open `blocks` dependencies of a bead: work that must not be handed out yet.
    pub(crate) fn open_blockers(&self, bead_id: &str) -> CoreResult<i64> {
        self.db.scalar_i64(
            "SELECT COUNT(*) FROM bead_dependencies d JOIN beads b ON b.bead_id = d.depends_on_bead_id \
             WHERE d.bead_id = ? AND d.dependency_type = 'blocks' AND b.status != 'closed'",
            params![bead_id],
        )
    }
}
