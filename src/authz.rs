//! Who may call which route: a pure decision over the route's [`Access`] level, the
//! authenticated caller and the path's parameters. No I/O happens here. The one fact this module
//! cannot know — whether a town belongs to the calling person — is answered as
//! [`Grant::IfOwner`], which the TownDO checks inside the very call the handler makes (it knows
//! its owner), so ownership costs no extra Durable Object round trip.
//! Unit-tested natively against every row of the route table.

use gastown_core::auth::check_agent_scope;
use gastown_core::model::AgentRole;
use gastown_core::{CoreError, CoreResult};

use crate::auth::Principal;
use crate::router::{Access, Params};

/// What the caller may do on this route.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    Allow,
    /// Allowed if the town named by the path is this user's; otherwise the town is "not found"
    /// (never "forbidden": another person's town does not exist for the caller).
    IfOwner(String),
}

pub fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Decides whether `principal` may call a route of level `access` with these path parameters.
/// `Terminal` with a stream ticket never gets here: the ticket is its own proof (see router).
pub fn decide(access: Access, principal: Option<&Principal>, params: &Params) -> CoreResult<Grant> {
    use Access::*;
    if matches!(access, Public | Webhook) {
        return Ok(Grant::Allow);
    }
    let p = principal.ok_or_else(|| CoreError::Unauthorized("authentication required".into()))?;
    let town = param(params, "townId");
    match (access, p) {
        (Public | Webhook | Authenticated, _) => Ok(Grant::Allow),
        (UserSelf, Principal::Dev { .. }) => Ok(Grant::Allow),
        (UserSelf, Principal::User(u)) if u.user_id == param(params, "userId") => Ok(Grant::Allow),
        (UserSelf, _) => Err(CoreError::Forbidden("you may only act for yourself".into())),
        (_, Principal::Agent(c)) => match access {
            RigMember => check_agent_scope(c, town, Some(param(params, "rigId")), None).map(|_| Grant::Allow),
            AgentSelf => check_agent_scope(c, town, Some(param(params, "rigId")), Some(param(params, "agentId"))).map(|_| Grant::Allow),
            Mayor if c.role == AgentRole::Mayor => check_agent_scope(c, town, None, None).map(|_| Grant::Allow),
            Mayor => Err(CoreError::Forbidden("only the mayor may use the mayor's tools".into())),
            Terminal => Err(CoreError::Forbidden("agents do not open terminals".into())),
            _ => Err(CoreError::Forbidden("agents may not use this route".into())),
        },
        // The dev operator acts for every owner; the TownDO still answers 404 for unknown towns.
        (_, Principal::Dev { .. }) => Ok(Grant::Allow),
        (_, Principal::User(u)) => Ok(Grant::IfOwner(u.user_id.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::ROUTES;
    use gastown_core::auth::{AccessIdentity, AgentClaims};

    const TOWN: &str = "t-1";
    const RIG: &str = "r-1";
    const AGENT: &str = "a-1";
    const USER: &str = "alice";

    /// The parameters a request on `pattern` would carry, every id the one above.
    fn params_for(pattern: &str) -> Params {
        pattern
            .split('/')
            .filter_map(|s| s.strip_prefix(':'))
            .map(|name| {
                let v = match name {
                    "townId" => TOWN,
                    "rigId" => RIG,
                    "agentId" => AGENT,
                    "userId" => USER,
                    _ => "x-1",
                };
                (name.to_string(), v.to_string())
            })
            .collect()
    }

    fn user(id: &str) -> Principal {
        Principal::User(AccessIdentity { user_id: id.into(), email: None, service: false })
    }

    fn agent(town: &str, rig: Option<&str>, id: &str, role: AgentRole) -> Principal {
        Principal::Agent(AgentClaims { town_id: town.into(), rig_id: rig.map(str::to_string), agent_id: id.into(), role })
    }

    fn status(r: &CoreResult<Grant>) -> u16 {
        r.as_ref().map_or_else(CoreError::status, |_| 200)
    }

    /// Every row of the table, every kind of caller: the outcome follows from the row's access
    /// level alone, and a change of level shows up here as a changed expectation.
    #[test]
    fn every_route_admits_exactly_its_callers() {
        let polecat = agent(TOWN, Some(RIG), AGENT, AgentRole::Polecat);
        let other_agent = agent(TOWN, Some(RIG), "a-2", AgentRole::Polecat);
        let other_rig = agent(TOWN, Some("r-2"), AGENT, AgentRole::Polecat);
        let other_town = agent("t-2", Some(RIG), AGENT, AgentRole::Polecat);
        let mayor = agent(TOWN, None, "m-1", AgentRole::Mayor);
        let foreign_mayor = agent("t-2", None, "m-1", AgentRole::Mayor);
        let dev = Principal::Dev { user_id: "dev".into() };
        for route in ROUTES {
            let params = params_for(route.path);
            let d = |p: Option<&Principal>| decide(route.access, p, &params);
            let what = format!("{} {}", route.method, route.path);
            use Access::*;
            match route.access {
                Public | Webhook => {
                    for p in [None, Some(&polecat), Some(&user("bob"))] {
                        assert_eq!(d(p), Ok(Grant::Allow), "{what}");
                    }
                    continue;
                }
                _ => assert_eq!(status(&d(None)), 401, "{what}: anonymous"),
            }
            assert_eq!(d(Some(&dev)), Ok(Grant::Allow), "{what}: dev operator");
            let as_user = d(Some(&user(USER)));
            let as_bob = d(Some(&user("bob")));
            match route.access {
                Authenticated => assert_eq!((as_user.clone(), as_bob.clone()), (Ok(Grant::Allow), Ok(Grant::Allow)), "{what}"),
                UserSelf => assert_eq!((status(&as_user), status(&as_bob)), (200, 403), "{what}"),
                // Another person's town is decided by the TownDO, which knows its owner.
                _ => assert_eq!(
                    (as_user.clone(), as_bob.clone()),
                    (Ok(Grant::IfOwner(USER.into())), Ok(Grant::IfOwner("bob".into()))),
                    "{what}"
                ),
            }
            let agents = [&polecat, &other_agent, &other_rig, &other_town, &mayor, &foreign_mayor].map(|a| status(&d(Some(a))));
            let expected = match route.access {
                Authenticated => [200, 200, 200, 200, 200, 200],
                RigMember => [200, 200, 403, 403, 403, 403],
                AgentSelf => [200, 403, 403, 403, 403, 403],
                Mayor => [403, 403, 403, 403, 200, 403],
                _ => [403; 6],
            };
            assert_eq!(agents, expected, "{what}: polecat, other agent, other rig, other town, mayor, other town's mayor");
        }
    }

    /// Rules about the table itself, so a new row cannot quietly open a hole.
    #[test]
    fn the_table_keeps_its_rules() {
        use Access::*;
        for r in ROUTES {
            let what = format!("{} {}", r.method, r.path);
            if r.path.contains(":userId") {
                assert_eq!(r.access, UserSelf, "{what}: a user's registry is only that user's");
            }
            if r.path.starts_with("/api/mayor/") {
                assert_eq!(r.access, Mayor, "{what}");
            }
            if r.path.contains(":townId") && !r.path.contains(":userId") {
                assert!(
                    !matches!(r.access, Public | Authenticated | UserSelf),
                    "{what}: a town route needs the town's owner or its agents"
                );
            }
            if r.method == worker::Method::Delete && (r.path.ends_with(":beadId") || r.path.ends_with(":agentId")) {
                assert_eq!(r.access, TownOwner, "{what}: only the owner deletes beads and agents");
            }
            if r.access == Webhook {
                assert_eq!(r.method, worker::Method::Post, "{what}");
            }
        }
    }
}
