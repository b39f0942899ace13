//! Upper bounds on what one user or one town may accumulate, so no caller (a person's script, a
//! looping agent, a prompt-injected mayor) can grow a Durable Object's storage or its queries
//! without end. Every limit has a default here and can be changed per deployment with a
//! Worker variable; reaching one is a 409 Conflict whose message names the limit and the
//! variable that sets it (the request is fine, the account's state does not allow it now).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Towns one user may own.
    pub max_towns_per_user: u32,
    /// Rigs (repositories) in one town.
    pub max_rigs_per_town: u32,
    /// Beads of one town that are not finished (anything but closed or failed: open work,
    /// mail, agents, escalations, convoys). Closed history does not count.
    pub max_open_beads_per_town: u32,
    /// Agents registered in one rig (polecats and the rig's singletons).
    pub max_agents_per_rig: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_towns_per_user: 50, max_rigs_per_town: 50, max_open_beads_per_town: 10_000, max_agents_per_rig: 100 }
    }
}

/// Which limit, for messages: what it counts and the variable that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    TownsPerUser,
    RigsPerTown,
    OpenBeadsPerTown,
    AgentsPerRig,
}

impl Limit {
    pub const ALL: [Limit; 4] = [Limit::TownsPerUser, Limit::RigsPerTown, Limit::OpenBeadsPerTown, Limit::AgentsPerRig];

    pub fn var(self) -> &'static str {
        match self {
            Limit::TownsPerUser => "GASTOWN_MAX_TOWNS_PER_USER",
            Limit::RigsPerTown => "GASTOWN_MAX_RIGS_PER_TOWN",
            Limit::OpenBeadsPerTown => "GASTOWN_MAX_OPEN_BEADS_PER_TOWN",
            Limit::AgentsPerRig => "GASTOWN_MAX_AGENTS_PER_RIG",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::TownsPerUser => "towns per user",
            Limit::RigsPerTown => "rigs per town",
            Limit::OpenBeadsPerTown => "unfinished beads per town (closed and failed ones do not count)",
            Limit::AgentsPerRig => "agents per rig",
        }
    }
}

impl Limits {
    pub fn get(&self, l: Limit) -> u32 {
        match l {
            Limit::TownsPerUser => self.max_towns_per_user,
            Limit::RigsPerTown => self.max_rigs_per_town,
            Limit::OpenBeadsPerTown => self.max_open_beads_per_town,
            Limit::AgentsPerRig => self.max_agents_per_rig,
        }
    }

    fn slot(&mut self, l: Limit) -> &mut u32 {
        match l {
            Limit::TownsPerUser => &mut self.max_towns_per_user,
            Limit::RigsPerTown => &mut self.max_rigs_per_town,
            Limit::OpenBeadsPerTown => &mut self.max_open_beads_per_town,
            Limit::AgentsPerRig => &mut self.max_agents_per_rig,
        }
    }

    /// The defaults, overridden by whichever variables `var` finds. A value that is not a
    /// positive integer is a misconfiguration (503 naming the variable), never silently ignored.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> CoreResult<Limits> {
        let mut limits = Limits::default();
        for l in Limit::ALL {
            let Some(raw) = var(l.var()).filter(|v| !v.trim().is_empty()) else { continue };
            let n = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| CoreError::Misconfigured(format!("{} must be a positive integer, got {raw:?}", l.var())))?;
            *limits.slot(l) = n;
        }
        Ok(limits)
    }

    /// Refuses (409) adding one more when `current` already reaches the limit.
    pub fn check(&self, l: Limit, current: i64) -> CoreResult<()> {
        let max = self.get(l);
        if current < i64::from(max) {
            return Ok(());
        }
        Err(CoreError::Conflict(format!("limit reached: at most {max} {} (set by {})", l.what(), l.var())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Limits::from_vars(|_| None).unwrap(), Limits::default());
        let l = Limits::from_vars(|v| (v == "GASTOWN_MAX_TOWNS_PER_USER").then(|| " 2 ".to_string())).unwrap();
        assert_eq!(l, Limits { max_towns_per_user: 2, ..Limits::default() });
        for bad in ["0", "-1", "ten", "1.5"] {
            let e = Limits::from_vars(|v| (v == "GASTOWN_MAX_RIGS_PER_TOWN").then(|| bad.to_string())).unwrap_err();
            assert_eq!(e.status(), 503, "{bad}");
            assert!(e.to_string().contains("GASTOWN_MAX_RIGS_PER_TOWN must be a positive integer"), "{e}");
        }
    }

    #[test]
    fn check_names_the_limit() {
        let l = Limits { max_towns_per_user: 2, ..Limits::default() };
        assert!(l.check(Limit::TownsPerUser, 1).is_ok());
        let e = l.check(Limit::TownsPerUser, 2).unwrap_err();
        assert_eq!(e.status(), 409);
        assert_eq!(e.to_string(), "limit reached: at most 2 towns per user (set by GASTOWN_MAX_TOWNS_PER_USER)");
        assert_eq!(l.check(Limit::AgentsPerRig, 100).unwrap_err().status(), 409);
        assert!(l.check(Limit::OpenBeadsPerTown, 9_999).is_ok());
    }
}
