//! Polecat names. Gas Town's workers are named from a themed pool (the war-boys and wives of
//! Fury Road's Citadel); names are unique per town, and once the pool is used up new polecats
//! get `polecat-<n>` with the smallest free n.

pub const POLECAT_NAMES: &[&str] = &[
    "nux",
    "slit",
    "toast",
    "capable",
    "cheedo",
    "dag",
    "angharad",
    "furiosa",
    "rictus",
    "ace",
    "morsov",
    "keeper",
    "valkyrie",
    "max",
    "corpus",
    "organic",
    "scrotus",
    "dementus",
    "jack",
    "praetorian",
    "vuvalini",
    "bullet",
    "gastown",
    "citadel",
];

/// The first pool name not in `taken`, else the first free `polecat-<n>`.
pub fn allocate<'a>(taken: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let is_taken = |n: &str| taken.clone().into_iter().any(|t| t == n);
    if let Some(name) = POLECAT_NAMES.iter().find(|n| !is_taken(n)) {
        return name.to_string();
    }
    (1..).map(|i| format!("polecat-{i}")).find(|n| !is_taken(n)).expect("an unbounded range always has a free name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn pool_names_are_unique() {
        let set: HashSet<_> = POLECAT_NAMES.iter().collect();
        assert_eq!(set.len(), POLECAT_NAMES.len());
    }

    #[test]
    fn allocates_in_order_then_falls_back() {
        let mut taken: Vec<String> = vec![];
        for expected in POLECAT_NAMES {
            let n = allocate(taken.iter().map(String::as_str));
            assert_eq!(&n, expected);
            taken.push(n);
        }
        assert_eq!(allocate(taken.iter().map(String::as_str)), "polecat-1");
        taken.push("polecat-1".into());
        taken.push("polecat-3".into());
        assert_eq!(allocate(taken.iter().map(String::as_str)), "polecat-2");
        // A freed pool name is reused before the fallback.
        taken.retain(|n| n != "slit");
        assert_eq!(allocate(taken.iter().map(String::as_str)), "slit");
    }
}
