//! Formulas: multi-step work described in TOML (steps with ids, titles, instructions and the
//! steps each `needs`), validated into a DAG. A few ship built in (`formulas/*.toml`); a caller
//! may also send its own. `town::molecules` turns one into step beads on a piece of work.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Formula {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub needs: Vec<String>,
}

const MAX_STEPS: usize = 50;
const MAX_FORMULA_BYTES: usize = 64 * 1024;

const BUILTIN: &[&str] =
    &[include_str!("../formulas/review-fix.toml"), include_str!("../formulas/feature.toml"), include_str!("../formulas/bugfix.toml")];

/// The formulas every town has.
pub fn builtin() -> Vec<Formula> {
    BUILTIN.iter().map(|t| parse(t).expect("built-in formulas are valid (tested)")).collect()
}

pub fn builtin_named(name: &str) -> Option<Formula> {
    builtin().into_iter().find(|f| f.name == name)
}

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::bad("formula_toml", msg.into())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses and validates a formula: named, 1–50 steps with unique lowercase ids, `needs` naming
/// earlier-or-later steps of the same formula, and no cycle.
pub fn parse(text: &str) -> CoreResult<Formula> {
    if text.len() > MAX_FORMULA_BYTES {
        return Err(bad(format!("at most {MAX_FORMULA_BYTES} bytes")));
    }
    let f: Formula = toml::from_str(text).map_err(|e| bad(format!("not a valid formula: {}", e.message())))?;
    if !is_ident(&f.name) {
        return Err(bad("name: use 1-40 lowercase letters, digits, - or _"));
    }
    if f.steps.is_empty() || f.steps.len() > MAX_STEPS {
        return Err(bad(format!("a formula has 1 to {MAX_STEPS} steps")));
    }
    let mut index = HashMap::new();
    for (i, s) in f.steps.iter().enumerate() {
        if !is_ident(&s.id) {
            return Err(bad(format!("steps[{i}].id: use 1-40 lowercase letters, digits, - or _")));
        }
        crate::validate::text(&format!("steps[{i}].title"), &s.title, crate::validate::MAX_TITLE)?;
        crate::validate::optional_text(&format!("steps[{i}].instructions"), Some(&s.instructions), crate::validate::MAX_BODY)?;
        if index.insert(s.id.as_str(), i).is_some() {
            return Err(bad(format!("step id {:?} is used twice", s.id)));
        }
    }
    for s in &f.steps {
        for n in &s.needs {
            if !index.contains_key(n.as_str()) {
                return Err(bad(format!("step {:?} needs {n:?}, which is not a step of this formula", s.id)));
            }
            if n == &s.id {
                return Err(bad(format!("step {:?} needs itself", s.id)));
            }
        }
    }
    if order(&f).len() != f.steps.len() {
        return Err(bad("the steps' needs form a cycle"));
    }
    Ok(f)
}

/// Step indices in an order where every step comes after the steps it needs (stable: among
/// ready steps, the one written first). Shorter than the formula when there is a cycle.
pub fn order(f: &Formula) -> Vec<usize> {
    let mut done: Vec<bool> = vec![false; f.steps.len()];
    let mut out = vec![];
    loop {
        let next = f
            .steps
            .iter()
            .enumerate()
            .find(|(i, s)| !done[*i] && s.needs.iter().all(|n| f.steps.iter().position(|x| &x.id == n).is_some_and(|j| done[j])));
        match next {
            Some((i, _)) => {
                done[i] = true;
                out.push(i);
            }
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_are_ordered() {
        let all = builtin();
        assert_eq!(all.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["review-fix", "feature", "bugfix"]);
        let feature = builtin_named("feature").unwrap();
        let ids: Vec<&str> = order(&feature).into_iter().map(|i| feature.steps[i].id.as_str()).collect();
        assert_eq!(ids, ["plan", "implement", "test", "document", "finish"]);
    }

    #[test]
    fn bad_formulas_are_refused_with_the_reason() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("name = 'x'\nsteps = []").contains("1 to 50 steps"));
        assert!(err("name = 'x'\n[[steps]]\nid = 'a'\ntitle = 'A'\nneeds = ['b']").contains("not a step"));
        assert!(err("name = 'x'\n[[steps]]\nid = 'a'\ntitle = 'A'\nneeds = ['b']\n[[steps]]\nid = 'b'\ntitle = 'B'\nneeds = ['a']")
            .contains("cycle"));
        assert!(err("name = 'x'\n[[steps]]\nid = 'a'\ntitle = 'A'\n[[steps]]\nid = 'a'\ntitle = 'B'").contains("twice"));
        assert!(err("name = 'X Y'\n[[steps]]\nid = 'a'\ntitle = 'A'").contains("name"));
        assert!(err("name = 'x'\n[[steps]]\nid = 'a'\ntitle = 'A'\nbogus = 1").contains("not a valid formula"));
        assert!(err("this is not toml =").contains("not a valid formula"));
    }
}
