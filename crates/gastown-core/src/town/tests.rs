//! Native tests of the town store on a real SQLite (rusqlite) with the real migrations.

use serde_json::{json, Value};

use super::*;
use crate::db::testing::MemDb;
use crate::model::{Agent, AgentStatus, Bead, BeadEvent, Mail, ReviewEntry, Severity};

const NOW: i64 = 1_800_000_000_000;

struct T {
    db: MemDb,
}

/// Whatever a test did, the tally of unfinished beads SQLite keeps (migration 0014, read by the
/// open-bead limit) still agrees with a count of them.
impl Drop for T {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let kept = self.db.scalar_i64("SELECT unfinished FROM bead_tally", params![]).unwrap();
        let counted = self.db.scalar_i64("SELECT COUNT(*) FROM beads WHERE status NOT IN ('closed', 'failed')", params![]).unwrap();
        assert_eq!(kept, counted, "the tally of unfinished beads drifted from the beads");
    }
}

/// A sling that found a free polecat.
#[derive(serde::Deserialize)]
struct Slung {
    bead: Bead,
    agent: Agent,
}

fn user() -> Actor {
    Actor::User("u1".into())
}

impl T {
    fn new() -> T {
        let db = MemDb::new();
        crate::migrate::apply(&db, crate::migrate::TOWN, "t").unwrap();
        let t = T { db };
        t.ok(TownOp::Init { town_id: "town1".into(), name: "Town".into(), owner_user_id: "u1".into() });
        t.rig("r1", "web");
        t
    }
    fn store(&self) -> TownStore<'_> {
        TownStore::new(&self.db, NOW)
    }
    fn call(&self, op: TownOp, actor: &Actor) -> CoreResult<Value> {
        self.store().handle(op, actor)
    }
    fn ok(&self, op: TownOp) -> Value {
        self.call(op, &user()).unwrap()
    }
    fn err(&self, op: TownOp, actor: &Actor) -> CoreError {
        self.call(op, actor).unwrap_err()
    }
    fn rig(&self, id: &str, name: &str) {
        self.ok(TownOp::AddRig {
            input: AddRigInput {
                rig_id: id.into(),
                name: name.into(),
                git_url: "/tmp/x.git".into(),
                default_branch: "main".into(),
                bead_prefix: None,
                allow_local_git: true,
            },
        });
    }
    fn bead(&self, rig: &str, title: &str) -> Bead {
        let input: CreateBeadInput = serde_json::from_value(json!({"title": title})).unwrap();
        serde_json::from_value(self.ok(TownOp::CreateBead { rig_id: Some(rig.into()), input })).unwrap()
    }
    fn get_bead(&self, id: &str) -> Bead {
        serde_json::from_value(self.ok(TownOp::GetBead { rig_id: None, bead_id: id.into() })).unwrap()
    }
    fn sling(&self, rig: &str, title: &str) -> Slung {
        let input: SlingInput = serde_json::from_value(json!({"title": title, "priority": "high"})).unwrap();
        serde_json::from_value(self.ok(TownOp::Sling { rig_id: rig.into(), input })).unwrap()
    }
    fn agent(&self, id: &str) -> Agent {
        serde_json::from_value(self.ok(TownOp::GetAgent { rig_id: None, agent_id: id.into() })).unwrap()
    }
    fn status(&self, id: &str, s: BeadStatus) -> CoreResult<Value> {
        self.call(TownOp::SetBeadStatus { rig_id: None, bead_id: id.into(), status: s, reason: None }, &user())
    }
    fn events(&self, bead: &str) -> Vec<String> {
        let ev: Vec<BeadEvent> = serde_json::from_value(
            self.ok(TownOp::ListEvents { filter: EventFilter { bead_id: Some(bead.into()), ..Default::default() } }),
        )
        .unwrap();
        ev.into_iter().map(|e| e.event_type).collect()
    }
    fn count(&self, sql: &str) -> i64 {
        self.db.scalar_i64(sql, params![]).unwrap()
    }
}

#[test]
fn uninitialised_town_is_not_found_and_init_is_idempotent() {
    let db = MemDb::new();
    crate::migrate::apply(&db, crate::migrate::TOWN, "t").unwrap();
    let s = TownStore::new(&db, NOW);
    assert_eq!(s.handle(TownOp::GetTown, &user()).unwrap_err().status(), 404);
    let init = |id: &str| s.handle(TownOp::Init { town_id: id.into(), name: "T".into(), owner_user_id: "u".into() }, &user());
    init("a").unwrap();
    init("a").unwrap();
    assert_eq!(init("b").unwrap_err().status(), 409);
}

/// The TownDO checks ownership itself (no call to the user's registry): the owner passes,
/// anyone else — and an uninitialised town — is "not found", never "forbidden".
#[test]
fn only_the_owner_passes_the_owner_check() {
    let t = T::new();
    t.store().check_owner("u1").unwrap();
    assert_eq!(t.store().check_owner("u2").unwrap_err().status(), 404);
    assert_eq!(t.store().check_owner("").unwrap_err().status(), 404);
    let empty = MemDb::new();
    crate::migrate::apply(&empty, crate::migrate::TOWN, "t").unwrap();
    assert_eq!(TownStore::new(&empty, NOW).check_owner("u1").unwrap_err().status(), 404);
}

/// Mail is read through the agent's own rig: the same agent named under another rig is not
/// found, so a rig-scoped caller cannot reach a mailbox outside its rig in one call.
#[test]
fn mail_ops_check_the_agents_rig() {
    let t = T::new();
    t.rig("r2", "api");
    let s = t.sling("r1", "work");
    let list = |rig: &str| t.call(TownOp::ListMail { rig_id: Some(rig.into()), agent_id: s.agent.id.clone(), unread_only: false }, &user());
    assert!(list("r1").is_ok());
    assert_eq!(list("r2").unwrap_err().status(), 404);
    let read = TownOp::ReadMail { rig_id: Some("r2".into()), agent_id: s.agent.id.clone(), mail_id: "nope".into() };
    assert_eq!(t.err(read, &user()).status(), 404);
}

/// Creating or reading beads and mail does not run the drive loop; slinging does.
#[test]
fn op_kinds_decide_what_runs_after() {
    use crate::town::OpKind;
    let input: CreateBeadInput = serde_json::from_value(json!({"title": "x"})).unwrap();
    assert_eq!(TownOp::CreateBead { rig_id: None, input }.kind(), OpKind::Change);
    assert_eq!(TownOp::ListBeads { rig_id: None, filter: Default::default() }.kind(), OpKind::Query);
    assert_eq!(TownOp::ReadMail { rig_id: None, agent_id: "a".into(), mail_id: "m".into() }.kind(), OpKind::Change);
    let sling: SlingInput = serde_json::from_value(json!({"title": "x"})).unwrap();
    assert_eq!(TownOp::Sling { rig_id: "r".into(), input: sling }.kind(), OpKind::MayCreateWork);
}

#[test]
fn beads_have_rig_prefixed_ids_and_events() {
    let t = T::new();
    let b = t.bead("r1", "Fix login");
    assert!(b.id.starts_with("we-"), "{}", b.id);
    assert_eq!(b.status, BeadStatus::Open);
    assert_eq!(b.created_by, "user:u1");
    assert_eq!(t.events(&b.id), vec!["created"]);
    // Town-level beads use hq-.
    let input: CreateBeadInput = serde_json::from_value(json!({"title": "Town chore"})).unwrap();
    let hq: Bead = serde_json::from_value(t.ok(TownOp::CreateBead { rig_id: None, input })).unwrap();
    assert!(hq.id.starts_with("hq-"));
    // Validation names the field.
    let input: CreateBeadInput = serde_json::from_value(json!({"title": " "})).unwrap();
    let e = t.err(TownOp::CreateBead { rig_id: Some("r1".into()), input }, &user());
    assert!(e.to_string().starts_with("title:"), "{e}");
    let input: CreateBeadInput = serde_json::from_value(json!({"title": "x", "type": "message"})).unwrap();
    assert_eq!(t.err(TownOp::CreateBead { rig_id: Some("r1".into()), input }, &user()).status(), 400);
    let input: CreateBeadInput = serde_json::from_value(json!({"title": "x"})).unwrap();
    assert_eq!(t.err(TownOp::CreateBead { rig_id: Some("nope".into()), input }, &user()).status(), 404);
}

#[test]
fn status_machine_is_enforced_with_side_effects() {
    let t = T::new();
    let b = t.bead("r1", "x");
    assert_eq!(t.status(&b.id, BeadStatus::InReview).unwrap_err().status(), 409);
    t.status(&b.id, BeadStatus::Closed).unwrap();
    let closed = t.get_bead(&b.id);
    assert!(closed.closed_at.is_some());
    assert_eq!(t.status(&b.id, BeadStatus::InProgress).unwrap_err().status(), 409);
    t.status(&b.id, BeadStatus::Open).unwrap();
    assert!(t.get_bead(&b.id).closed_at.is_none());
    assert_eq!(t.events(&b.id), vec!["created", "status_changed", "closed", "status_changed", "reopened"]);
}

#[test]
fn sling_creates_hooks_and_allocates_from_the_pool() {
    let t = T::new();
    let s1 = t.sling("r1", "first");
    assert_eq!(s1.bead.status, BeadStatus::InProgress);
    assert_eq!(s1.bead.priority, Priority::High);
    assert_eq!(s1.bead.assignee_agent_id.as_deref(), Some(s1.agent.id.as_str()));
    assert_eq!(s1.agent.hook_bead_id.as_deref(), Some(s1.bead.id.as_str()));
    assert_eq!(s1.agent.name, "nux");
    assert_eq!(s1.agent.role, AgentRole::Polecat);
    assert_eq!(t.events(&s1.bead.id), vec!["created", "assigned", "hooked", "status_changed"]);
    let s2 = t.sling("r1", "second");
    assert_eq!(s2.agent.name, "slit", "a busy polecat is not reused");
    // A freed polecat of the same rig is reused; one of another rig is not.
    t.status(&s1.bead.id, BeadStatus::Closed).unwrap();
    assert_eq!(t.agent(&s1.agent.id).hook_bead_id, None);
    t.rig("r2", "api");
    let s3 = t.sling("r2", "other rig");
    assert_eq!(s3.agent.name, "toast");
    assert_eq!(s3.agent.rig_id.as_deref(), Some("r2"));
    let s4 = t.sling("r1", "reuse");
    assert_eq!(s4.agent.id, s1.agent.id);
}

#[test]
fn sling_is_atomic() {
    let t = T::new();
    let before = t.count("SELECT COUNT(*) FROM beads");
    let input: SlingInput = serde_json::from_value(json!({"title": "x", "labels": vec!["a"; 40]})).unwrap();
    assert_eq!(t.err(TownOp::Sling { rig_id: "r1".into(), input }, &user()).status(), 400);
    // A failure after the first writes rolls all of them back.
    let s = t.store();
    let r: CoreResult<()> = s.tx(|| {
        s.sling("r1", serde_json::from_value(json!({"title": "y"})).unwrap(), &user())?;
        Err(CoreError::Conflict("boom".into()))
    });
    assert!(r.is_err());
    assert_eq!(t.count("SELECT COUNT(*) FROM beads"), before);
    assert_eq!(t.count("SELECT COUNT(*) FROM agents"), 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM bead_events WHERE event_type = 'hooked'"), 0);
}

#[test]
fn hook_rules() {
    let t = T::new();
    let s = t.sling("r1", "held");
    let other = t.bead("r1", "other");
    let hook =
        |agent: &str, bead: &str| t.call(TownOp::Hook { rig_id: "r1".into(), agent_id: agent.into(), bead_id: bead.into() }, &user());
    assert!(hook(&s.agent.id, &s.bead.id).is_ok(), "idempotent");
    assert_eq!(hook(&s.agent.id, &other.id).unwrap_err().status(), 409);
    let p2: Agent = serde_json::from_value(
        t.ok(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(json!({"role": "polecat"})).unwrap() }),
    )
    .unwrap();
    assert_eq!(hook(&p2.id, &s.bead.id).unwrap_err().status(), 409, "held by another agent");
    t.status(&other.id, BeadStatus::Closed).unwrap();
    assert_eq!(hook(&p2.id, &other.id).unwrap_err().status(), 409, "closed bead");
    // Unhook returns unfinished work to open.
    t.ok(TownOp::Unhook { rig_id: "r1".into(), agent_id: s.agent.id.clone() });
    let b = t.get_bead(&s.bead.id);
    assert_eq!((b.status, b.assignee_agent_id), (BeadStatus::Open, None));
    // Agents and beads of another rig are not found through this rig.
    t.rig("r2", "api");
    let foreign = t.bead("r2", "foreign");
    assert_eq!(hook(&p2.id, &foreign.id).unwrap_err().status(), 404);
    assert_eq!(t.err(TownOp::GetBead { rig_id: Some("r1".into()), bead_id: foreign.id.clone() }, &user()).status(), 404);
    assert_eq!(t.err(TownOp::GetAgent { rig_id: Some("r2".into()), agent_id: p2.id.clone() }, &user()).status(), 404);
}

#[test]
fn register_agents_enforces_names_and_singletons() {
    let t = T::new();
    let reg = |v: Value| t.call(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(v).unwrap() }, &user());
    reg(json!({"role": "refinery"})).unwrap();
    assert_eq!(reg(json!({"role": "refinery"})).unwrap_err().status(), 409);
    assert_eq!(reg(json!({"role": "mayor"})).unwrap_err().status(), 400);
    reg(json!({"role": "polecat", "name": "custom"})).unwrap();
    assert_eq!(reg(json!({"role": "polecat", "name": "custom"})).unwrap_err().status(), 409);
    assert_eq!(reg(json!({"role": "polecat", "name": "../x"})).unwrap_err().status(), 400);
    // The pool runs out into the fallback.
    for _ in 0..crate::names::POLECAT_NAMES.len() {
        reg(json!({"role": "polecat"})).unwrap();
    }
    let last: Agent = serde_json::from_value(reg(json!({"role": "polecat"})).unwrap()).unwrap();
    assert_eq!(last.name, "polecat-1");
}

#[test]
fn done_submits_a_merge_request() {
    let t = T::new();
    let s = t.sling("r1", "feature");
    let agent = Actor::Agent(s.agent.id.clone());
    let done = |branch: &str| {
        t.call(
            TownOp::Done {
                rig_id: "r1".into(),
                agent_id: s.agent.id.clone(),
                input: DoneInput { branch: branch.into(), summary: Some("did it".into()), pr_url: None },
            },
            &agent,
        )
    };
    assert_eq!(done("bad branch").unwrap_err().status(), 400);
    // Only the agent's own branch for its hooked bead: never the default or another bead's.
    for other in ["main", "gt/nux/gt-other", "feature/x"] {
        assert_eq!(done(other).unwrap_err().status(), 403, "{other}");
    }
    let own = format!("gt/nux/{}", s.bead.id);
    let mr: ReviewEntry = serde_json::from_value(done(&own).unwrap()).unwrap();
    assert_eq!(mr.status, "pending");
    assert_eq!(mr.source_bead_id, s.bead.id);
    assert_eq!(mr.target_branch, "main");
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::InReview);
    let a = t.agent(&s.agent.id);
    assert_eq!((a.hook_bead_id, a.status), (None, AgentStatus::Idle));
    assert!(t.events(&s.bead.id).contains(&"review_submitted".to_string()));
    // Nothing on the hook any more: a repeat of the same submission gets the same answer, any
    // other branch a refusal.
    let again: ReviewEntry = serde_json::from_value(done(&own).unwrap()).unwrap();
    assert_eq!(again.id, mr.id);
    assert_eq!(done(&format!("gt/nux/{}-2", s.bead.id)).unwrap_err().status(), 409, "nothing on the hook any more");
}

#[test]
fn dependency_cycles_are_refused() {
    let t = T::new();
    let (a, b, c) = (t.bead("r1", "a"), t.bead("r1", "b"), t.bead("r1", "c"));
    let dep = |x: &Bead, y: &Bead| {
        t.call(
            TownOp::AddDependency {
                rig_id: Some("r1".into()),
                bead_id: x.id.clone(),
                depends_on_bead_id: y.id.clone(),
                dependency_type: crate::model::DependencyType::Blocks,
            },
            &user(),
        )
    };
    dep(&a, &b).unwrap();
    dep(&b, &c).unwrap();
    dep(&a, &b).unwrap(); // idempotent
    let e = dep(&c, &a).unwrap_err();
    assert_eq!(e.status(), 409);
    assert!(e.to_string().contains("cycle"));
    assert_eq!(dep(&a, &a).unwrap_err().status(), 409);
    let deps = t.ok(TownOp::ListDependencies { rig_id: Some("r1".into()), bead_id: b.id.clone() });
    assert_eq!(deps["depends_on"].as_array().unwrap().len(), 1);
    assert_eq!(deps["dependents"].as_array().unwrap().len(), 1);
    t.ok(TownOp::RemoveDependency { rig_id: Some("r1".into()), bead_id: b.id.clone(), depends_on_bead_id: c.id.clone() });
    dep(&c, &a).unwrap();
}

#[test]
fn mail_by_address_unread_first() {
    let t = T::new();
    let s = t.sling("r1", "work");
    let refinery: Agent = serde_json::from_value(
        t.ok(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(json!({"role": "refinery"})).unwrap() }),
    )
    .unwrap();
    let polecat = Actor::Agent(s.agent.id.clone());
    let send = |to: &str, subj: &str, actor: &Actor| {
        t.call(TownOp::SendMail { input: SendMailInput { to: to.into(), subject: subj.into(), body: "b".into(), priority: None } }, actor)
    };
    let m1: Mail = serde_json::from_value(send("web/refinery", "one", &polecat).unwrap()).unwrap();
    assert_eq!((m1.from.as_str(), m1.to_agent_id.as_str()), (s.agent.id.as_str(), refinery.id.as_str()));
    send(&refinery.id, "two", &user()).unwrap();
    send("web/polecats/nux", "to nux", &user()).unwrap();
    assert_eq!(send("web/polecats/nobody", "x", &user()).unwrap_err().status(), 400);
    assert_eq!(send("mars/refinery", "x", &user()).unwrap_err().status(), 400);
    t.ok(TownOp::ReadMail { rig_id: None, agent_id: refinery.id.clone(), mail_id: m1.id.clone() });
    let inbox: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: refinery.id.clone(), unread_only: false })).unwrap();
    assert_eq!(inbox.iter().map(|m| (m.subject.as_str(), m.read)).collect::<Vec<_>>(), vec![("two", false), ("one", true)]);
    assert_eq!(inbox[0].from, "overseer");
    // Another agent cannot read someone else's mail.
    assert_eq!(t.err(TownOp::ReadMail { rig_id: None, agent_id: s.agent.id.clone(), mail_id: m1.id.clone() }, &user()).status(), 404);
    // The mayor is created on first mail.
    let r = t.ok(TownOp::MayorMessage { message: "plan the sprint".into() });
    assert_eq!(r["mayor"]["role"], "mayor");
    assert!(r["mail"]["id"].as_str().unwrap().starts_with("hq-"));
    let prime = t.ok(TownOp::Prime { rig_id: Some("r1".into()), agent_id: s.agent.id.clone() });
    assert_eq!(prime["hook"]["id"], json!(s.bead.id));
    assert_eq!(prime["unread_mail"].as_array().unwrap().len(), 1);
    assert_eq!(prime["rig"]["name"], "web");
}

#[test]
fn deleting_an_agent_reopens_only_unfinished_work_and_revokes_it() {
    let t = T::new();
    let s = t.sling("r1", "unfinished");
    let agent_actor = Actor::Agent(s.agent.id.clone());
    t.ok(TownOp::DeleteAgent { rig_id: Some("r1".into()), agent_id: s.agent.id.clone() });
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Open);
    assert_eq!(t.err(TownOp::ListRigs, &agent_actor).status(), 401);

    let s2 = t.sling("r1", "finished");
    t.status(&s2.bead.id, BeadStatus::Closed).unwrap();
    t.ok(TownOp::DeleteAgent { rig_id: None, agent_id: s2.agent.id.clone() });
    assert_eq!(t.get_bead(&s2.bead.id).status, BeadStatus::Closed);
}

#[test]
fn removing_a_rig_cascades() {
    let t = T::new();
    t.rig("r2", "api");
    let s = t.sling("r1", "gone");
    let keep = t.sling("r2", "kept");
    let removed: Vec<String> = serde_json::from_value(t.ok(TownOp::RemoveRig { rig_id: "r1".into() })).unwrap();
    assert_eq!(removed, vec![s.agent.id.clone()]);
    assert_eq!(t.err(TownOp::GetBead { rig_id: None, bead_id: s.bead.id.clone() }, &user()).status(), 404);
    assert_eq!(t.count("SELECT COUNT(*) FROM agents"), 1);
    assert_eq!(t.get_bead(&keep.bead.id).status, BeadStatus::InProgress);
    assert_eq!(t.count("SELECT COUNT(*) FROM bead_events WHERE rig_id = 'r1'"), 0);
    assert_eq!(t.err(TownOp::RemoveRig { rig_id: "r1".into() }, &user()).status(), 404);
}

#[test]
fn deleting_a_bead_takes_its_children_and_keeps_history() {
    let t = T::new();
    let parent = t.bead("r1", "parent");
    let input: CreateBeadInput = serde_json::from_value(json!({"title": "child", "parent_id": parent.id})).unwrap();
    let child: Bead = serde_json::from_value(t.ok(TownOp::CreateBead { rig_id: Some("r1".into()), input })).unwrap();
    let r = t.ok(TownOp::DeleteBead { rig_id: Some("r1".into()), bead_id: parent.id.clone() });
    assert_eq!(r["deleted"], json!([child.id, parent.id]));
    assert_eq!(t.events(&parent.id), vec!["created", "deleted"]);
    assert_eq!(t.count("SELECT COUNT(*) FROM bead_dependencies"), 0);
}

#[test]
fn events_filter_by_rig_and_cursor() {
    let t = T::new();
    t.rig("r2", "api");
    t.bead("r1", "one");
    t.bead("r2", "two");
    let all: Vec<BeadEvent> = serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter::default() })).unwrap();
    let r2: Vec<BeadEvent> =
        serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter { rig_id: Some("r2".into()), ..Default::default() } }))
            .unwrap();
    assert!(all.len() > r2.len());
    assert!(r2.iter().all(|e| e.rig_id.as_deref() == Some("r2")));
    let after: Vec<BeadEvent> =
        serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter { after_id: Some(all[0].id), ..Default::default() } }))
            .unwrap();
    assert_eq!(after.len(), all.len() - 1);
    assert_eq!(
        t.err(TownOp::ListEvents { filter: EventFilter { since: Some("yesterday".into()), ..Default::default() } }, &user()).status(),
        400
    );
}

/// A page of one bead's events, or of a small rig's, reads that bead's or that rig's events
/// through their indexes: it costs the same (in SQLite's steps) whether the town (or the
/// bead's own rig) holds a few other events or thousands, and still pages in event order.
#[test]
fn an_events_page_costs_what_it_returns_not_what_the_town_holds() {
    let t = T::new();
    t.rig("r2", "api");
    let one = t.bead("r2", "one");
    t.status(&one.id, BeadStatus::InProgress).unwrap();
    t.status(&one.id, BeadStatus::Closed).unwrap();
    let page = |filter: EventFilter| -> (Vec<BeadEvent>, u64) {
        let (v, steps) = t.db.steps(|| t.ok(TownOp::ListEvents { filter }));
        (serde_json::from_value(v).unwrap(), steps)
    };
    let of_bead = || EventFilter { bead_id: Some(one.id.clone()), ..Default::default() };
    let of_bead_in_rig = || EventFilter { rig_id: Some("r2".into()), bead_id: Some(one.id.clone()), ..Default::default() };
    let of_rig = || EventFilter { rig_id: Some("r2".into()), ..Default::default() };
    let pages = || [page(of_bead()), page(of_bead_in_rig()), page(of_rig())];
    let first = pages();
    for (events, _) in &first {
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["created", "status_changed", "status_changed", "closed"]);
    }
    // 200 beads, each created and moved twice: in the other rig, then in the bead's own.
    let noise = |rig: &str| {
        for i in 0..200 {
            let b = t.bead(rig, &format!("noise {i}"));
            t.status(&b.id, BeadStatus::InProgress).unwrap();
            t.status(&b.id, BeadStatus::Open).unwrap();
        }
    };
    noise("r1");
    let next_door = pages();
    noise("r2");
    let same_rig = pages();
    // The rig's own page now holds the noise too: only the bead's pages are compared then.
    let compared = first.iter().zip(&next_door).chain(first.iter().zip(&same_rig).take(2));
    for ((old, old_steps), (new, new_steps)) in compared {
        assert_eq!(old.iter().map(|e| e.id).collect::<Vec<_>>(), new.iter().map(|e| e.id).collect::<Vec<_>>());
        // Some slack for the rig check and the page's own bookkeeping; a walk over the noise's
        // 600 events would cost thousands of steps.
        assert!(*new_steps <= old_steps + 50, "{old_steps} steps before the noise's events, {new_steps} after");
    }
    // Paging by cursor within one bead still goes in event order, and a bead named with
    // another rig has no events there.
    let (rest, _) = page(EventFilter { after_id: Some(first[0].0[1].id), limit: Some(1), ..of_bead() });
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), [first[0].0[2].id]);
    let (elsewhere, _) = page(EventFilter { rig_id: Some("r1".into()), ..of_bead() });
    assert!(elsewhere.is_empty());
}

/// An events page narrowed by `since`: exactly the events stamped at or after it, whatever the
/// other filters and the cursor, found without walking the history before it (the cost, in
/// SQLite's steps, of a recent `since` stays put however many older events the town holds).
/// A clock that steps back stamps an event with the newest stamp instead, so stamps never
/// decrease in event order and nothing stamped after `since` is missed.
#[test]
fn an_events_page_since_a_time_is_exact_and_does_not_walk_the_history() {
    let newest = NOW + 13 * 1000;
    // A town with `older` events long before NOW, then beads stamped a second apart (several
    // events sharing one) in two rigs, then one by a clock that stepped back.
    let town = |older: i64| -> (T, Vec<Bead>, Bead) {
        let t = T::new();
        t.rig("r2", "api");
        let at = |ms: i64, rig: &str, title: &str| -> Bead {
            let input: CreateBeadInput = serde_json::from_value(json!({"title": title})).unwrap();
            serde_json::from_value(t.at(ms).handle(TownOp::CreateBead { rig_id: Some(rig.into()), input }, &user()).unwrap()).unwrap()
        };
        let rig = |i: i64| if i % 2 == 0 { "r1" } else { "r2" };
        for i in 0..older {
            at(NOW - 10_000_000 + i, rig(i), &format!("old {i}"));
        }
        let beads = (0..40i64).map(|i| at(NOW + (i / 3) * 1000, rig(i), &format!("b{i}"))).collect();
        let late = at(newest - 5000, "r1", "stamped by a clock that stepped back");
        (t, beads, late)
    };
    let page = |t: &T, filter: EventFilter| -> (Vec<BeadEvent>, u64) {
        let (v, steps) = t.db.steps(|| t.ok(TownOp::ListEvents { filter }));
        (serde_json::from_value(v).unwrap(), steps)
    };
    let since = |ms: i64| Some(crate::time::iso(ms));
    let (t, beads, late) = town(0);
    let all: Vec<BeadEvent> =
        serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter { limit: Some(1000), ..Default::default() } })).unwrap();
    assert_eq!(all.last().unwrap().bead_id, late.id);
    assert_eq!(all.last().unwrap().created_at, crate::time::iso(newest), "the newest stamp, not the clock's");
    assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at), "stamps never decrease");
    // Every cut, alone and with the other filters and a cursor, against the events filtered here.
    let rig_of = |e: &BeadEvent| e.rig_id.clone();
    for ms in (NOW - 1000..=newest + 1000).step_by(500) {
        let cut = since(ms).unwrap();
        for (rig, bead, after) in [
            (None, None, None),
            (Some("r2"), None, None),
            (None, Some(beads[7].id.clone()), None),
            (Some("r1"), Some(late.id.clone()), None),
            (None, None, Some(all[all.len() / 2].id)),
            (None, None, Some(all[all.len() - 2].id)),
            (Some("r1"), None, Some(all[5].id)),
        ] {
            let want: Vec<i64> = all
                .iter()
                .filter(|e| e.created_at >= cut)
                .filter(|e| rig.is_none_or(|r| rig_of(e).as_deref() == Some(r)))
                .filter(|e| bead.as_ref().is_none_or(|b| &e.bead_id == b))
                .filter(|e| after.is_none_or(|a| e.id > a))
                .map(|e| e.id)
                .collect();
            let filter = EventFilter {
                rig_id: rig.map(str::to_string),
                bead_id: bead.clone(),
                after_id: after,
                since: Some(cut.clone()),
                limit: Some(1000),
            };
            let (got, _) = page(&t, filter.clone());
            assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), want, "{filter:?}");
            let (first, _) = page(&t, EventFilter { limit: Some(2), ..filter.clone() });
            assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), want.iter().take(2).copied().collect::<Vec<_>>(), "{filter:?}");
        }
    }
    // The cost of the last second's events, alone and in one rig, before and after 3000 older events.
    let recent = || EventFilter { since: since(newest), ..Default::default() };
    let recent_in_rig = || EventFilter { rig_id: Some("r1".into()), since: since(newest), ..Default::default() };
    let before = [page(&t, recent()), page(&t, recent_in_rig())];
    let (t2, _, _) = town(3000);
    let after = [page(&t2, recent()), page(&t2, recent_in_rig())];
    for ((old, old_steps), (new, new_steps)) in before.iter().zip(&after) {
        assert!(!old.is_empty());
        assert_eq!(old.iter().map(|e| &e.event_type).collect::<Vec<_>>(), new.iter().map(|e| &e.event_type).collect::<Vec<_>>());
        // A bisection grows by one step's seeks per doubling of the events (468 → 822 steps
        // here); walking the 3000 older events costs 9230.
        assert!(*new_steps <= 2 * old_steps, "{old_steps} steps before 3000 older events, {new_steps} after");
    }
}

#[test]
fn config_round_trips_masked() {
    let t = T::new();
    let c = t.ok(TownOp::PatchConfig {
        patch: json!({"git_auth": {"github_token": "ghp_abcdefghijklmnop1234"}, "capacity": {"max_polecats_per_rig": 2}}),
    });
    assert_eq!(c["git_auth"]["github_token"], "****1234");
    assert_eq!(c["capacity"]["max_polecats_per_rig"], 2);
    let e = t.err(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": "two"}}) }, &user());
    assert!(e.to_string().starts_with("capacity.max_polecats_per_rig: invalid type"), "{e}");
    assert_eq!(t.store().config().unwrap().git_auth.github_token.as_deref(), Some("ghp_abcdefghijklmnop1234"));
}

/// A group of settings given as an array (which serde would read field by field) is a 400, and
/// changes nothing (found by the API fuzz test: `{"witness": [null, null]}` was taken).
#[test]
fn config_patch_groups_must_be_objects() {
    let t = T::new();
    let before = serde_json::to_value(t.store().config().unwrap()).unwrap();
    for patch in [json!({"witness": [null, null]}), json!({"capacity": [3, 3]}), json!({"env_vars": "A=1"}), json!({"agent": 1})] {
        let e = t.err(TownOp::PatchConfig { patch: patch.clone() }, &user());
        assert_eq!(e.status(), 400, "{patch}");
        assert!(e.to_string().ends_with("must be an object or null"), "{patch}: {e}");
    }
    assert_eq!(serde_json::to_value(t.store().config().unwrap()).unwrap(), before);
    // An unknown setting is still named as unknown, whatever its shape.
    let e = t.err(TownOp::PatchConfig { patch: json!({"surprise": true}) }, &user());
    assert!(e.to_string().contains("unknown field `surprise`"), "{e}");
    t.ok(TownOp::PatchConfig { patch: json!({"witness": null, "capacity": {"max_polecats_per_rig": 2}}) });
}

/// A setting the town cannot carry to the container (or the container cannot act on) is a 400
/// naming it — never stored and silently ignored.
#[test]
fn config_patch_refuses_settings_the_container_does_not_implement() {
    let t = T::new();
    let before = t.store().config().unwrap();
    for (patch, field) in [
        (json!({"capacity": {"max_agents": 2}}), "capacity"),
        (json!({"git_author_email": "{name}@example.com"}), "git_author_email"),
        (json!({"agent": {"command_template": "run"}}), "agent"),
        (json!({"refinery": {"merge_strategy": "squash"}}), "refinery.merge_strategy"),
        (json!({"agent": {"runtime": "aider"}}), "agent.runtime"),
        (json!({"git_auth": {"ssh_key": "k"}}), "git_auth"),
    ] {
        let e = t.err(TownOp::PatchConfig { patch: patch.clone() }, &user());
        assert_eq!(e.status(), 400, "{patch}: {e}");
        assert!(e.to_string().starts_with(field), "{patch}: {e}");
    }
    assert_eq!(t.store().config().unwrap(), before);
}

// ---- dispatch, capacity, lifecycle, refinery -------------------------------------------------

impl T {
    fn at(&self, now: i64) -> TownStore<'_> {
        TownStore::new(&self.db, now)
    }
    fn claim(&self, now: i64) -> Work {
        serde_json::from_value(self.at(now).handle(TownOp::ClaimWork, &Actor::System).unwrap()).unwrap()
    }
    fn life(&self, now: i64, agent: &str, ev: Lifecycle) -> Value {
        self.at(now).handle(TownOp::Lifecycle { rig_id: None, agent_id: agent.into(), event: ev }, &Actor::System).unwrap()
    }
    fn exited(epoch: i64) -> Lifecycle {
        Lifecycle::Exited { epoch, code: Some(0), signal: None, reason: None, screen: None }
    }
    fn done(&self, agent: &str) -> ReviewEntry {
        let hook = self.agent(agent).hook_bead_id.expect("something on the hook");
        let input = DoneInput { branch: format!("gt/x/{hook}"), summary: None, pr_url: None };
        serde_json::from_value(
            self.call(TownOp::Done { rig_id: "r1".into(), agent_id: agent.into(), input }, &Actor::Agent(agent.into())).unwrap(),
        )
        .unwrap()
    }
    fn merged(&self, mr: &str, outcome: MergeOutcome) -> ReviewEntry {
        serde_json::from_value(self.ok(TownOp::MergeResult { review_id: mr.into(), outcome })).unwrap()
    }
    fn escalations(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM escalations")
    }
}

/// The container reports a run's start and exit separately, so a quick run's exit can arrive
/// first: the start that follows must not mark the agent as running again.
#[test]
fn a_start_reported_after_its_exit_is_ignored() {
    let t = T::new();
    let s = t.sling("r1", "quick");
    assert_eq!(t.claim(NOW).dispatches.len(), 1);
    assert_eq!(t.life(NOW, &s.agent.id, T::exited(1))["applied"], true);
    let r = t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    assert_eq!(r["applied"], false, "{r}");
    assert_eq!(t.agent(&s.agent.id).status, AgentStatus::Idle);
    // The next run's start counts as usual.
    let w = t.claim(NOW + 3_600_000);
    assert_eq!(w.dispatches.len(), 1, "the work is retried");
    assert_eq!(t.life(NOW + 3_600_000, &s.agent.id, Lifecycle::Started { epoch: 2 })["applied"], true);
    assert_eq!(t.agent(&s.agent.id).status, AgentStatus::Working);
}

/// Listing a rig's beads reads a page off an index in list order: no full scan, no sort of
/// every bead the rig holds (the cost of a page does not grow with the rig).
#[test]
fn a_page_of_a_rigs_beads_is_read_off_the_index() {
    let t = T::new();
    let plan = |sql: &str| -> String {
        t.db.exec(&format!("EXPLAIN QUERY PLAN {sql}"), params!["r1", 100i64, 0i64])
            .unwrap()
            .into_iter()
            .flat_map(|row| row.into_iter().filter(|(k, _)| k == "detail").map(|(_, v)| format!("{v:?}")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let p = plan("SELECT bead_id FROM beads WHERE rig_id = ? AND type != 'agent' ORDER BY created_at DESC, bead_id DESC LIMIT ? OFFSET ?");
    assert!(p.contains("idx_beads_rig_created"), "{p}");
    assert!(!p.contains("TEMP B-TREE"), "no sort of the whole rig: {p}");
    // And the store's own query returns newest first.
    t.bead("r1", "first");
    t.bead("r1", "second");
    let beads: Vec<Bead> =
        serde_json::from_value(t.ok(TownOp::ListBeads { rig_id: Some("r1".into()), filter: Default::default() })).unwrap();
    assert_eq!(beads.len(), 2);
}

#[test]
fn claiming_work_starts_each_hooked_polecat_once_with_a_new_epoch() {
    let t = T::new();
    let s = t.sling("r1", "build it");
    let w = t.claim(NOW);
    assert_eq!(w.dispatches.len(), 1);
    let job = &w.dispatches[0];
    assert_eq!((job.agent.id.as_str(), job.bead.as_ref().unwrap().id.as_str(), job.epoch), (s.agent.id.as_str(), s.bead.id.as_str(), 1));
    assert_eq!(job.agent.status, AgentStatus::Working);
    assert!(job.prompt.contains("build it") && job.prompt.contains("gt done"));
    assert_eq!(job.runtime.runtime, Some(crate::config::Runtime::Demo));
    assert_eq!(job.rig.as_ref().unwrap().id, "r1");
    assert!(t.claim(NOW).dispatches.is_empty(), "a claimed run is not claimed twice");
    // Started, then `gt done`, then exit: the agent is free and its attempts reset.
    t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    t.done(&s.agent.id);
    assert_eq!(t.agent(&s.agent.id).status, AgentStatus::Working, "still running until it exits");
    let r = t.life(NOW, &s.agent.id, T::exited(1));
    assert_eq!(r["applied"], true);
    let a = t.agent(&s.agent.id);
    assert_eq!((a.status, a.dispatch_attempts), (AgentStatus::Idle, 0));
}

#[test]
fn stale_lifecycle_reports_are_ignored() {
    let t = T::new();
    let s = t.sling("r1", "w");
    t.claim(NOW);
    t.life(NOW, &s.agent.id, T::exited(1)); // exited without done → retry later
    t.claim(NOW + 60_000); // epoch 2
    assert_eq!(t.agent(&s.agent.id).spawn_epoch, 2);
    let r = t.life(NOW + 60_000, &s.agent.id, T::exited(1));
    assert_eq!(r["applied"], false);
    assert_eq!(t.agent(&s.agent.id).status, AgentStatus::Working, "the old run's exit does not undo the new run");
}

#[test]
fn exit_without_done_retries_with_backoff_then_fails_and_escalates() {
    let t = T::new();
    let s = t.sling("r1", "flaky");
    let mut now = NOW;
    for attempt in 1..=MAX_ATTEMPTS {
        let w = t.claim(now);
        assert_eq!(w.dispatches.len(), 1, "attempt {attempt}");
        assert!(t.claim(now).dispatches.is_empty());
        t.life(now, &s.agent.id, T::exited(attempt));
        let b = t.get_bead(&s.bead.id);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(b.status, BeadStatus::InProgress, "not closed as if done");
            // Not due again until the backoff has passed.
            assert!(t.claim(now + backoff_ms(attempt) - 1).dispatches.is_empty());
            now += backoff_ms(attempt);
        }
    }
    let b = t.get_bead(&s.bead.id);
    assert_eq!(b.status, BeadStatus::Failed);
    let a = t.agent(&s.agent.id);
    assert_eq!((a.status, a.hook_bead_id), (AgentStatus::Idle, None));
    assert_eq!(t.escalations(), 1);
    assert!(t.claim(now + 3_600_000).dispatches.is_empty(), "never an endless loop");
}

#[test]
fn dispatch_failures_back_off_and_give_up() {
    let t = T::new();
    let s = t.sling("r1", "unreachable");
    let mut now = NOW;
    for attempt in 1..=MAX_ATTEMPTS {
        let job = t.claim(now).dispatches.pop().expect("due");
        t.at(now)
            .handle(
                TownOp::DispatchFailed {
                    agent_id: s.agent.id.clone(),
                    epoch: job.epoch,
                    error: "connection refused".into(),
                    permanent: false,
                    unreachable: false,
                },
                &Actor::System,
            )
            .unwrap();
        now += backoff_ms(attempt);
    }
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Failed);
    assert_eq!(t.escalations(), 1);
    // Nothing left to dispatch: the only thing pending is chasing the escalation in 4 hours.
    assert_eq!(
        t.at(now).next_wake().unwrap(),
        Some(t.at(now).escalation(&t.esc_ids()[0]).unwrap().last_escalated_at_ms() + 4 * 3600 * 1000)
    );
    // Backoff doubles and is capped.
    assert_eq!((backoff_ms(1), backoff_ms(2), backoff_ms(3), backoff_ms(30)), (1000, 2000, 4000, 60_000));
}

#[test]
fn a_permanent_dispatch_failure_gives_up_at_once_with_the_reason() {
    let t = T::new();
    let s = t.sling("r1", "needs a real CLI");
    let job = t.claim(NOW).dispatches.pop().expect("due");
    let error = "claude is not installed in this container: build the image with --build-arg INSTALL_CLAUDE=1";
    let op =
        TownOp::DispatchFailed { agent_id: s.agent.id.clone(), epoch: job.epoch, error: error.into(), permanent: true, unreachable: false };
    t.at(NOW).handle(op, &Actor::System).unwrap();
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Failed);
    assert_eq!(t.escalations(), 1);
    let esc = t.at(NOW).escalation(&t.esc_ids()[0]).unwrap();
    assert!(esc.message.contains("INSTALL_CLAUDE=1"), "the escalation names the fix: {}", esc.message);
    assert!(t.claim(NOW + 3_600_000).dispatches.is_empty(), "no retry");
}

#[test]
fn capacity_queues_beads_and_releases_them_by_priority_then_age() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 2}}) });
    let a = t.sling("r1", "a");
    t.sling("r1", "b");
    let slung = |title: &str, priority: &str| -> Value {
        let input: SlingInput = serde_json::from_value(json!({"title": title, "priority": priority})).unwrap();
        t.ok(TownOp::Sling { rig_id: "r1".into(), input })
    };
    let low = slung("low", "low");
    let crit = slung("crit", "critical");
    assert_eq!(low["agent"], Value::Null);
    assert_eq!(crit["bead"]["status"], "open");
    assert_eq!(t.count("SELECT COUNT(*) FROM dispatch_queue"), 2);
    assert_eq!(t.claim(NOW).dispatches.len(), 2);
    // `a` finishes: its slot goes to the critical bead, not the older low one.
    t.done(&a.agent.id);
    t.life(NOW, &a.agent.id, T::exited(1));
    let crit_bead = t.get_bead(crit["bead"]["id"].as_str().unwrap());
    assert_eq!(crit_bead.status, BeadStatus::InProgress);
    assert!(crit_bead.assignee_agent_id.is_some());
    assert_eq!(t.get_bead(low["bead"]["id"].as_str().unwrap()).status, BeadStatus::Open);
    assert_eq!(t.count("SELECT COUNT(*) FROM dispatch_queue"), 1);
}

#[test]
fn merges_run_one_per_rig_and_close_the_source_bead() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"refinery": {"max_batch": 1}}) });
    let s1 = t.sling("r1", "one");
    let s2 = t.sling("r1", "two");
    t.claim(NOW);
    let mr1 = t.done(&s1.agent.id);
    let mr2 = t.done(&s2.agent.id);
    let w = t.claim(NOW);
    assert_eq!(w.merges.len(), 1, "one merge at a time per rig");
    assert_eq!(w.merges[0].review.id, mr1.id);
    assert_eq!(w.merges[0].rig.default_branch, "main");
    let r = t.merged(&mr1.id, MergeOutcome::Merged { commit_sha: "abc123".into() });
    assert_eq!((r.status.as_str(), r.merge_commit.as_deref()), ("merged", Some("abc123")));
    assert_eq!(t.get_bead(&s1.bead.id).status, BeadStatus::Closed);
    assert!(t.events(&s1.bead.id).contains(&"review_completed".to_string()));
    let w = t.claim(NOW);
    assert_eq!(w.merges[0].review.id, mr2.id);
    // A result for a merge that is not running is refused.
    assert_eq!(
        t.err(TownOp::MergeResult { review_id: mr1.id.clone(), outcome: MergeOutcome::Merged { commit_sha: "x".into() } }, &user())
            .status(),
        409
    );
}

#[test]
fn failed_merges_return_the_bead_to_its_polecat_with_a_rework_mail() {
    let t = T::new();
    let s = t.sling("r1", "gated");
    t.claim(NOW);
    t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    let mr = t.done(&s.agent.id);
    t.life(NOW, &s.agent.id, T::exited(1));
    t.claim(NOW);
    let gate = MergeOutcome::GateFailed { gate: "cargo test".into(), exit_code: Some(101), output: "test foo ... FAILED".into() };
    assert_eq!(t.merged(&mr.id, gate).status, "failed");
    let b = t.get_bead(&s.bead.id);
    assert_eq!((b.status, b.assignee_agent_id.as_deref()), (BeadStatus::InProgress, Some(s.agent.id.as_str())));
    assert_eq!(t.agent(&s.agent.id).hook_bead_id.as_deref(), Some(s.bead.id.as_str()));
    let mail: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: s.agent.id.clone(), unread_only: true })).unwrap();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].body.contains("cargo test") && mail[0].body.contains("FAILED"));
    // The next run's prompt carries the rework reason.
    let job = t.claim(NOW).dispatches.pop().unwrap();
    assert!(job.prompt.contains("rework") && job.prompt.contains("test foo ... FAILED"));
}

#[test]
fn unreachable_merges_retry_then_fail_and_escalate() {
    let t = T::new();
    let s = t.sling("r1", "x");
    t.claim(NOW);
    let mr = t.done(&s.agent.id);
    let mut now = NOW;
    for attempt in 1..=MAX_ATTEMPTS {
        let w = t.claim(now);
        assert_eq!(w.merges.len(), 1, "attempt {attempt}");
        t.at(now)
            .handle(
                TownOp::MergeResult { review_id: mr.id.clone(), outcome: MergeOutcome::Unreachable { error: "refused".into() } },
                &user(),
            )
            .unwrap();
        assert!(t.claim(now).merges.is_empty(), "backing off");
        // Slow enough to outlast a container restart: not before 5 s, 10 s, 20 s, …
        assert!(t.claim(now + unreachable_backoff_ms(attempt) - 1).merges.is_empty(), "still backing off");
        now += unreachable_backoff_ms(attempt);
    }
    assert_eq!(t.store().review(&mr.id).unwrap().status, "failed");
    assert_eq!(t.escalations(), 1);
}

#[test]
fn closed_beads_are_never_dispatched() {
    let t = T::new();
    let s = t.sling("r1", "done already");
    // Closing releases the hook, so nothing is due.
    t.status(&s.bead.id, BeadStatus::Closed).unwrap();
    assert!(t.claim(NOW).dispatches.is_empty());
    assert_eq!(t.store().next_wake().unwrap(), None);
}

#[test]
fn rework_cycles_are_bounded() {
    let t = T::new();
    let s = t.sling("r1", "always conflicts");
    for round in 1..=work::MAX_REWORKS {
        let job = t.claim(NOW).dispatches.pop().unwrap_or_else(|| panic!("round {round} dispatches"));
        let mr = t.done(&s.agent.id);
        t.life(NOW, &s.agent.id, T::exited(job.epoch));
        assert_eq!(t.claim(NOW).merges.len(), 1);
        t.merged(&mr.id, MergeOutcome::Conflict { files: vec!["README.md".into()], message: "conflict".into(), files_total: None });
    }
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Failed);
    assert_eq!(t.escalations(), 1);
    assert!(t.claim(NOW).dispatches.is_empty());
}

impl T {
    /// `n` polecats on r1, each with its work submitted: their merge requests, in queue order.
    fn submitted(&self, n: usize) -> Vec<(Slung, ReviewEntry)> {
        self.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 20, "max_polecats_per_town": 40}}) });
        let slung: Vec<Slung> = (0..n).map(|i| self.sling("r1", &format!("work {i}"))).collect();
        self.claim(NOW);
        slung
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                // Distinct creation times keep the queue order explicit.
                let mr = serde_json::from_value(
                    self.at(NOW + i as i64)
                        .handle(
                            TownOp::Done {
                                rig_id: "r1".into(),
                                agent_id: s.agent.id.clone(),
                                input: DoneInput { branch: format!("gt/x/{}", s.bead.id), summary: None, pr_url: None },
                            },
                            &Actor::Agent(s.agent.id.clone()),
                        )
                        .unwrap(),
                )
                .unwrap();
                (s, mr)
            })
            .collect()
    }
    fn results(&self, now: i64, reports: Vec<(&str, MergeOutcome)>) -> Vec<Value> {
        let reports = reports.into_iter().map(|(id, outcome)| MergeReport { review_id: id.into(), outcome }).collect();
        serde_json::from_value(self.at(now).handle(TownOp::MergeResults { reports }, &Actor::System).unwrap()).unwrap()
    }
}

#[test]
fn merge_trains_claim_up_to_max_batch_of_one_rig_in_queue_order() {
    let t = T::new();
    t.rig("r2", "api");
    t.ok(TownOp::PatchConfig { patch: json!({"refinery": {"max_batch": 3}}) });
    let other = t.sling("r2", "elsewhere");
    let subs = t.submitted(5);
    let input = DoneInput { branch: format!("gt/x/{}", other.bead.id), summary: None, pr_url: None };
    let mr_other: ReviewEntry = serde_json::from_value(
        t.call(TownOp::Done { rig_id: "r2".into(), agent_id: other.agent.id.clone(), input }, &Actor::Agent(other.agent.id.clone()))
            .unwrap(),
    )
    .unwrap();
    let w = t.claim(NOW + 10);
    let trains = merge_trains(&w.merges);
    assert_eq!(trains.len(), 2, "one train per rig");
    let r1: Vec<&str> = trains[0].iter().map(|m| m.review.id.as_str()).collect();
    assert_eq!(r1, subs[..3].iter().map(|(_, mr)| mr.id.as_str()).collect::<Vec<_>>(), "the oldest three, in order");
    assert_eq!(trains[1].len(), 1);
    assert_eq!(trains[1][0].review.id, mr_other.id);
    // Nothing more for a rig while its train runs.
    assert!(t.claim(NOW + 10).merges.is_empty());
    let done: Vec<(&str, MergeOutcome)> =
        subs[..3].iter().map(|(_, mr)| (mr.id.as_str(), MergeOutcome::Merged { commit_sha: format!("c-{}", mr.id) })).collect();
    t.results(NOW + 10, done);
    let w = t.claim(NOW + 10);
    assert_eq!(w.merges.iter().map(|m| m.review.id.as_str()).collect::<Vec<_>>(), vec![subs[3].1.id.as_str(), subs[4].1.id.as_str()]);
    // max_batch 1 is one at a time (today's behaviour), and the range is validated.
    assert_eq!(t.err(TownOp::PatchConfig { patch: json!({"refinery": {"max_batch": 0}}) }, &user()).status(), 400);
}

#[test]
fn a_train_applies_each_outcome_on_its_own() {
    let t = T::new();
    let subs = t.submitted(5);
    let w = t.claim(NOW + 10);
    assert_eq!(w.merges.len(), 5, "the default train takes all five");
    let id = |i: usize| subs[i].1.id.as_str();
    let gate = MergeOutcome::GateFailed { gate: "make test".into(), exit_code: Some(2), output: "FAIL: broken by three".into() };
    let out = t.results(
        NOW + 10,
        vec![
            (id(0), MergeOutcome::Merged { commit_sha: "c0".into() }),
            (id(1), MergeOutcome::Conflict { files: vec!["README.md".into()], message: "CONFLICT".into(), files_total: None }),
            (id(2), gate),
            (id(3), MergeOutcome::Deferred { message: "not tested: an earlier branch failed the gates".into() }),
            (id(4), MergeOutcome::PushRejected { message: "! [rejected] main -> main (fetch first)".into() }),
        ],
    );
    let status: Vec<&str> = out.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, vec!["merged", "failed", "failed", "pending", "pending"]);
    assert_eq!(out[0]["merge_commit"], "c0");
    assert_eq!(t.get_bead(&subs[0].0.bead.id).status, BeadStatus::Closed);
    // Conflict and failed gate: back to their polecats with the reason.
    for i in [1, 2] {
        let b = t.get_bead(&subs[i].0.bead.id);
        assert_eq!((b.status, b.assignee_agent_id.as_deref()), (BeadStatus::InProgress, Some(subs[i].0.agent.id.as_str())));
    }
    assert!(out[2]["output"].as_str().unwrap().contains("FAIL: broken by three"));
    // Deferred: nothing was tried, so no attempt counted and no backoff; a rejected push backs off.
    let r3 = t.store().review(id(3)).unwrap();
    assert_eq!(r3.attempts, 0);
    assert_eq!(t.store().review(id(4)).unwrap().attempts, 1);
    let w = t.claim(NOW + 10);
    assert_eq!(w.merges.iter().map(|m| m.review.id.as_str()).collect::<Vec<_>>(), vec![id(3)]);
    t.results(NOW + 10, vec![(id(3), MergeOutcome::Merged { commit_sha: "c3".into() })]);
    let w = t.claim(NOW + 10 + unreachable_backoff_ms(1));
    assert_eq!(w.merges.iter().map(|m| m.review.id.as_str()).collect::<Vec<_>>(), vec![id(4)]);
    // A result for a merge that is no longer running changes nothing.
    let late = t.results(NOW + 20, vec![(id(0), MergeOutcome::Merged { commit_sha: "again".into() })]);
    assert!(late[0]["error"].as_str().unwrap().contains("not running"));
}

#[test]
fn huge_merge_outcomes_are_stored_bounded_with_markers() {
    let t = T::new();
    let subs = t.submitted(2);
    t.claim(NOW + 10);
    let files: Vec<String> = (0..11_000).map(|i| format!("src/generated/module_{i:05}/with/a/long/path.rs")).collect();
    let big_message = "CONFLICT (content): Merge conflict in something\n".repeat(40_000);
    let big_output = format!("{}the real reason at the end", "noise line\n".repeat(500_000));
    let out = t.results(
        NOW + 10,
        vec![
            (subs[0].1.id.as_str(), MergeOutcome::Conflict { files, message: big_message, files_total: None }),
            (subs[1].1.id.as_str(), MergeOutcome::GateFailed { gate: "cargo test".into(), exit_code: Some(1), output: big_output }),
        ],
    );
    let conflict = out[0]["output"].as_str().unwrap();
    assert!(conflict.len() < 70 * 1024, "{}", conflict.len());
    assert!(conflict.contains("src/generated/module_00199/") && !conflict.contains("module_00200/"));
    assert!(conflict.contains("… and 10800 more files"));
    assert!(conflict.contains("bytes omitted]"));
    let gate = out[1]["output"].as_str().unwrap();
    assert!(gate.len() <= crate::bounded::MAX_OUTPUT + 200, "{}", gate.len());
    assert!(gate.contains("bytes omitted]") && gate.ends_with("the real reason at the end"), "the tail is kept");
    // The rework mails are bounded too.
    for (s, _) in &subs {
        let mail: Vec<Mail> =
            serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: s.agent.id.clone(), unread_only: true })).unwrap();
        assert_eq!(mail.len(), 1);
        assert!(mail[0].body.len() < 9 * 1024 && mail[0].body.contains("bytes omitted]"), "{}", mail[0].body.len());
    }
}

#[test]
fn a_merge_result_that_cannot_be_stored_fails_the_merge_instead_of_leaving_it_running() {
    let t = T::new();
    let subs = t.submitted(3);
    t.claim(NOW + 10);
    // Stands in for SQLITE_TOOBIG: storage refuses any output longer than 2000 bytes.
    t.db.exec_batch(
        "CREATE TRIGGER too_big BEFORE UPDATE OF output ON reviews WHEN length(NEW.output) > 2000 \
         BEGIN SELECT RAISE(ABORT, 'string or blob too big'); END;",
    )
    .unwrap();
    let out = t.results(
        NOW + 10,
        vec![
            (subs[0].1.id.as_str(), MergeOutcome::GateFailed { gate: "g".into(), exit_code: Some(1), output: "x".repeat(10_000) }),
            (subs[1].1.id.as_str(), MergeOutcome::Merged { commit_sha: "c1".into() }),
            (subs[2].1.id.as_str(), MergeOutcome::Conflict { files: vec!["a".into()], message: "m".into(), files_total: None }),
        ],
    );
    assert_eq!(out.iter().map(|r| r["status"].as_str().unwrap()).collect::<Vec<_>>(), vec!["failed", "merged", "failed"]);
    let first = t.store().review(&subs[0].1.id).unwrap();
    assert!(first.output.as_deref().unwrap().starts_with("The merge result could not be recorded:"), "{:?}", first.output);
    assert!(first.output.unwrap().contains("too big"));
    assert!(t.events(&subs[0].1.id).contains(&"review_completed".to_string()));
    // The work went back to its polecat, nothing is left running.
    assert_eq!(t.get_bead(&subs[0].0.bead.id).status, BeadStatus::InProgress);
    assert_eq!(t.agent(&subs[0].0.agent.id).hook_bead_id.as_deref(), Some(subs[0].0.bead.id.as_str()));
    assert_eq!(t.count("SELECT COUNT(*) FROM beads WHERE type = 'merge_request' AND status = 'in_progress'"), 0);
    // The DO's own fallback op does the same for a merge whose whole batch could not be recorded.
    let s = t.submitted(1).pop().unwrap();
    t.claim(NOW + 20);
    let r: ReviewEntry =
        serde_json::from_value(t.ok(TownOp::MergeUnrecorded { review_id: s.1.id.clone(), error: "SQLITE_TOOBIG".into() })).unwrap();
    assert_eq!(r.status, "failed");
    assert_eq!(t.get_bead(&s.0.bead.id).status, BeadStatus::InProgress);
    assert_eq!(t.err(TownOp::MergeUnrecorded { review_id: s.1.id, error: "again".into() }, &user()).status(), 409);
}

#[test]
fn stream_tickets_are_single_use() {
    let t = T::new();
    let op = || TownOp::ConsumeTicket { jti: "j1".into(), expires_at: NOW + 60_000 };
    t.ok(op());
    assert_eq!(t.err(op(), &user()).status(), 401);
    t.ok(TownOp::ConsumeTicket { jti: "j2".into(), expires_at: NOW + 60_000 });
    // Expired entries are pruned; the ticket itself would fail its expiry check by then.
    t.at(NOW + 120_000).handle(TownOp::ConsumeTicket { jti: "j3".into(), expires_at: NOW + 180_000 }, &user()).unwrap();
    assert_eq!(t.count("SELECT COUNT(*) FROM used_tickets"), 1);
}

#[test]
fn stream_events_are_typed_sequenced_and_bounded() {
    let t = T::new();
    let s = t.sling("r1", "stream me");
    let v = t.ok(TownOp::StreamEvents { after_id: 0, limit: 1000 });
    let msgs = v["messages"].as_array().unwrap();
    assert!(!v["truncated"].as_bool().unwrap());
    let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "monotonic");
    assert!(msgs.iter().any(|m| m["entity"] == "agent" && m["event"]["bead_id"] == json!(s.agent.id)));
    assert!(msgs.iter().any(|m| m["entity"] == "issue" && m["event"]["event_type"] == "hooked"));
    let v = t.ok(TownOp::StreamEvents { after_id: 0, limit: 2 });
    assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    assert!(v["truncated"].as_bool().unwrap(), "the client is told to refetch");
    assert_eq!(t.ok(TownOp::LastEventId), json!(seqs.last().unwrap()));
}

impl T {
    fn esc_ids(&self) -> Vec<String> {
        let v: Vec<Escalation> = serde_json::from_value(self.ok(TownOp::ListEscalations { acknowledged: None, limit: None })).unwrap();
        v.into_iter().map(|e| e.id).collect()
    }
}

impl Escalation {
    fn last_escalated_at_ms(&self) -> i64 {
        crate::time::parse_iso(&self.last_escalated_at).unwrap()
    }
}

#[test]
fn escalations_are_routed_to_the_mayor_acknowledged_and_reescalated_with_a_bump() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"escalations": {"reescalate_after_secs": 600, "max_reescalations": 2}}) });
    let s = t.sling("r1", "stuck work");
    let agent = Actor::Agent(s.agent.id.clone());
    let input: EscalateInput = serde_json::from_value(json!({"message": "tests need a database", "severity": "medium"})).unwrap();
    let bead: Bead = serde_json::from_value(t.call(TownOp::Escalate { rig_id: Some("r1".into()), input }, &agent).unwrap()).unwrap();
    let list: Vec<Escalation> = serde_json::from_value(t.ok(TownOp::ListEscalations { acknowledged: Some(false), limit: None })).unwrap();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!((e.id.as_str(), e.severity, e.source_agent_id.as_deref()), (bead.id.as_str(), Severity::Medium, Some(s.agent.id.as_str())));
    assert_eq!(e.about.as_deref(), Some(s.bead.id.as_str()), "about the agent's hooked bead");
    // Routed to the mayor as mail.
    let mayor: Vec<Agent> =
        serde_json::from_value(t.ok(TownOp::ListAgents { filter: AgentFilter { role: Some(AgentRole::Mayor), ..Default::default() } }))
            .unwrap();
    let mail: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: mayor[0].id.clone(), unread_only: true })).unwrap();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].subject.starts_with("[Escalation:medium]") && mail[0].from == s.agent.id);
    // Not yet due, then due: bumped once per threshold, at most twice.
    assert!(t.claim(NOW + 599_000).dispatches.len() <= 1);
    assert_eq!(t.store().escalation(&e.id).unwrap().re_escalation_count, 0);
    t.claim(NOW + 600_000);
    let e1 = t.at(NOW + 600_000).escalation(&e.id).unwrap();
    assert_eq!((e1.severity, e1.re_escalation_count), (Severity::High, 1));
    t.claim(NOW + 1_200_000);
    t.claim(NOW + 1_800_000);
    t.claim(NOW + 2_400_000);
    let e2 = t.at(NOW + 2_400_000).escalation(&e.id).unwrap();
    assert_eq!((e2.severity, e2.re_escalation_count), (Severity::Critical, 2), "capped at max_reescalations");
    let mail: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: mayor[0].id.clone(), unread_only: true })).unwrap();
    assert_eq!(mail.iter().filter(|m| m.subject.starts_with("[Re-escalation:")).count(), 2);
    // Acknowledged: closed, idempotent, no longer listed as open, never chased again.
    let acked: Escalation = serde_json::from_value(t.ok(TownOp::AcknowledgeEscalation { escalation_id: e.id.clone() })).unwrap();
    assert!(acked.acknowledged);
    let again: Escalation = serde_json::from_value(t.ok(TownOp::AcknowledgeEscalation { escalation_id: e.id.clone() })).unwrap();
    assert_eq!(again.acknowledged_at, acked.acknowledged_at);
    assert_eq!(t.get_bead(&e.id).status, BeadStatus::Closed);
    let open: Vec<Escalation> = serde_json::from_value(t.ok(TownOp::ListEscalations { acknowledged: Some(false), limit: None })).unwrap();
    assert!(open.is_empty());
    assert_eq!(t.err(TownOp::AcknowledgeEscalation { escalation_id: "hq-nope0".into() }, &user()).status(), 404);
}

#[test]
fn the_mayor_is_started_on_demand_kept_alive_and_backs_off_when_it_keeps_dying() {
    let t = T::new();
    assert_eq!(t.ok(TownOp::MayorStatus)["status"], "idle");
    // The first message starts it.
    let m = t.ok(TownOp::MayorMessage { message: "plan the week".into() });
    assert_eq!(m["session"], "starting");
    let mayor = m["mayor"]["id"].as_str().unwrap().to_string();
    let w = t.claim(NOW);
    let job = w.dispatches.iter().find(|d| d.agent.id == mayor).expect("the mayor is dispatched");
    assert!(job.bead.is_none() && job.rig.is_none());
    assert!(job.prompt.starts_with("You are the mayor") && job.prompt.contains("rigs: web"));
    assert_eq!(t.ok(TownOp::MayorStatus)["status"], "starting");
    t.life(NOW, &mayor, Lifecycle::Started { epoch: 1 });
    assert_eq!(t.ok(TownOp::MayorStatus)["status"], "active");
    assert!(t.claim(NOW).dispatches.is_empty(), "a running mayor is not started twice");
    // A healthy run that ends is restarted at once.
    t.life(NOW + 120_000, &mayor, T::exited(1));
    let job = t.claim(NOW + 120_000).dispatches.pop().expect("restarted");
    assert_eq!(job.epoch, 2);
    // Quick deaths back off and, after the last attempt, stop with an escalation.
    let mut now = NOW + 120_000;
    for epoch in 2..=(1 + MAX_ATTEMPTS) {
        t.life(now, &mayor, T::exited(epoch));
        let attempts = t.agent(&mayor).dispatch_attempts;
        now += backoff_ms(attempts);
        let w = t.claim(now);
        if w.dispatches.is_empty() {
            break;
        }
    }
    assert_eq!(t.escalations(), 1);
    assert_eq!(t.ok(TownOp::MayorStatus)["keep_alive"], false);
    // Ensure starts it again, with a fresh count.
    assert_eq!(t.ok(TownOp::EnsureMayor)["status"], "starting");
    assert_eq!(t.claim(now).dispatches.len(), 1);
}

impl T {
    fn tick(&self, now: i64, runs: Option<Vec<crate::witness::RunView>>) -> Vec<crate::witness::Action> {
        serde_json::from_value(self.at(now).handle(TownOp::WitnessTick { container: runs, asked: None }, &Actor::System).unwrap()).unwrap()
    }
    fn running(agent: &str, epoch: i64, output: i64) -> Vec<crate::witness::RunView> {
        vec![crate::witness::RunView {
            agent_id: agent.into(),
            epoch,
            running: true,
            activity: output,
            screen: "Do you want to use this API key? (y/N)".into(),
        }]
    }
    fn send(&self, to: &str, subject: &str) {
        let input: SendMailInput = serde_json::from_value(json!({"to": to, "subject": subject, "body": "b"})).unwrap();
        self.ok(TownOp::SendMail { input });
    }
}

#[test]
fn the_witness_restarts_a_dead_run_and_the_hook_survives() {
    let t = T::new();
    let s = t.sling("r1", "work");
    t.claim(NOW);
    t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    assert!(t.tick(NOW + 1000, Some(T::running(&s.agent.id, 1, 10))).iter().any(|a| matches!(a, crate::witness::Action::Activity { .. })));
    // The process vanished without a lifecycle report (e.g. the container was killed).
    let actions = t.tick(NOW + 2000, Some(vec![]));
    assert!(matches!(&actions[..], [crate::witness::Action::Restart { .. }]), "{actions:?}");
    let a = t.agent(&s.agent.id);
    assert_eq!((a.status, a.hook_bead_id.as_deref()), (AgentStatus::Idle, Some(s.bead.id.as_str())));
    let w = t.claim(NOW + 2000);
    assert_eq!(w.dispatches.len(), 1);
    assert_eq!(w.dispatches[0].epoch, 2);
    assert!(t.events(&s.bead.id).contains(&"redispatched".to_string()));
    // A late exit report of the old run changes nothing.
    assert_eq!(t.life(NOW + 3000, &s.agent.id, T::exited(1))["applied"], false);
}

#[test]
fn the_witness_never_redispatches_a_closed_bead() {
    let t = T::new();
    let s = t.sling("r1", "work");
    t.claim(NOW);
    t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    t.status(&s.bead.id, BeadStatus::Closed).unwrap();
    t.tick(NOW + 1000, Some(vec![]));
    let a = t.agent(&s.agent.id);
    assert_eq!((a.status, a.hook_bead_id), (AgentStatus::Idle, None));
    assert!(t.claim(NOW + 1000).dispatches.is_empty());
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Closed);
}

#[test]
fn a_silent_agent_is_stalled_nudged_once_then_escalated_and_recovers_on_activity() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"witness": {"stall_after_secs": 60, "escalate_stall_after_secs": 120}}) });
    let s = t.sling("r1", "work");
    let id = s.agent.id.clone();
    t.claim(NOW);
    t.life(NOW, &id, Lifecycle::Started { epoch: 1 });
    assert!(t.tick(NOW + 59_000, Some(T::running(&id, 1, 0))).is_empty());
    t.tick(NOW + 60_000, Some(T::running(&id, 1, 0)));
    assert_eq!(t.agent(&id).status, AgentStatus::Stalled);
    let nudges = t.claim(NOW + 60_000).nudges;
    assert_eq!(nudges.len(), 1);
    assert!(nudges[0].text.contains("gt escalate"));
    assert!(t.claim(NOW + 61_000).nudges.is_empty(), "nudged once");
    assert!(t.tick(NOW + 179_000, Some(T::running(&id, 1, 0))).is_empty());
    t.tick(NOW + 180_000, Some(T::running(&id, 1, 0)));
    assert_eq!(t.escalations(), 1);
    let esc = t.at(NOW).escalation(&t.esc_ids()[0]).unwrap();
    assert!(esc.message.contains("last lines of its screen:\nDo you want to use this API key? (y/N)"), "{}", esc.message);
    t.tick(NOW + 999_000, Some(T::running(&id, 1, 0)));
    assert_eq!(t.escalations(), 1, "escalated once per stall");
    // Any call from the agent is activity.
    t.call(TownOp::Prime { rig_id: Some("r1".into()), agent_id: id.clone() }, &Actor::Agent(id.clone())).unwrap();
    assert_eq!(t.agent(&id).status, AgentStatus::Working);
}

#[test]
fn an_agents_calls_write_its_activity_only_when_the_witness_would_notice() {
    let t = T::new();
    // Shortest idle limit 60 s: the recorded activity may lag a call by 3 s.
    t.ok(TownOp::PatchConfig { patch: json!({"witness": {"stall_after_secs": 60, "escalate_stall_after_secs": 60}}) });
    let s = t.sling("r1", "work");
    let id = s.agent.id.clone();
    let prime = |at: i64| {
        let (r, log) = t
            .db
            .recording(|| t.at(at).handle(TownOp::Prime { rig_id: Some("r1".into()), agent_id: id.clone() }, &Actor::Agent(id.clone())));
        r.unwrap();
        log.iter().any(|s| s.starts_with("UPDATE agents SET last_activity_at"))
    };
    let recorded = || t.agent(&id).last_activity_at.unwrap();
    assert!(prime(NOW + 10_000), "ten seconds after the sling: written");
    let at = recorded();
    assert!(!prime(NOW + 12_999), "2.999 s later: a read only");
    assert_eq!(recorded(), at);
    assert!(prime(NOW + 13_000), "3 s later: written again");
    assert_ne!(recorded(), at);
    // A clock that went back is not trusted to be fresh.
    assert!(prime(NOW + 5_000));
    // A stalled agent's call always ends the stall, however recent its last activity.
    t.db.run("UPDATE agents SET status = 'stalled', stalled_at = ? WHERE bead_id = ?", crate::params![crate::time::iso(NOW), id.as_str()])
        .unwrap();
    assert!(prime(NOW + 5_001));
    assert_eq!(t.agent(&id).status, AgentStatus::Working);
    // So does a pending nudge's.
    t.db.run("UPDATE agents SET pending_nudge = 'x' WHERE bead_id = ?", crate::params![id.as_str()]).unwrap();
    assert!(prime(NOW + 5_002));
    assert!(!prime(NOW + 5_003), "and then it is calm again");
}

#[test]
fn gupp_an_unworked_hook_is_redispatched_and_recorded() {
    let t = T::new();
    let s = t.sling("r1", "work");
    // The agent died and nothing restarted it (say the alarm was lost).
    t.db.run("UPDATE agents SET status = 'dead' WHERE bead_id = ?", crate::params![s.agent.id.as_str()]).unwrap();
    assert!(t.tick(NOW + 29 * 60_000, None).is_empty());
    let actions = t.tick(NOW + 30 * 60_000, None);
    assert!(matches!(&actions[..], [crate::witness::Action::Gupp { .. }]), "{actions:?}");
    assert!(t.events(&s.bead.id).contains(&"gupp_violation".to_string()));
    assert_eq!(t.claim(NOW + 30 * 60_000).dispatches.len(), 1);
}

#[test]
fn work_in_progress_that_nobody_holds_is_reopened_and_slung_again() {
    let t = T::new();
    let s = t.sling("r1", "work");
    // The hook was lost (e.g. the agent was deleted by hand).
    t.db.run("UPDATE agents SET hook_bead_id = NULL, status = 'idle' WHERE bead_id = ?", crate::params![s.agent.id.as_str()]).unwrap();
    t.status(&s.bead.id, BeadStatus::InProgress).unwrap();
    let actions = t.tick(NOW, None);
    assert!(actions.contains(&crate::witness::Action::Reopen { bead_id: s.bead.id.clone() }));
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Open);
    t.claim(NOW);
    let holders = t.count(&format!("SELECT COUNT(*) FROM agents WHERE hook_bead_id = '{}'", s.bead.id));
    assert_eq!(holders, 1, "slung again");
}

#[test]
fn mail_to_a_running_agent_is_announced_once_and_a_flood_is_one_notice() {
    let t = T::new();
    let s = t.sling("r1", "work");
    let id = s.agent.id.clone();
    // Not running yet: nothing to type; its first run's prompt carries the mail instead.
    t.send(&id, "early");
    assert!(t.claim(NOW).nudges.is_empty());
    t.life(NOW, &id, Lifecycle::Started { epoch: 1 });
    assert!(t.claim(NOW).nudges.is_empty(), "the early mail is not announced again");
    t.send(&id, "first");
    let n = t.claim(NOW).nudges;
    assert_eq!(n.len(), 1);
    assert!(n[0].text.starts_with("New mail from ") && n[0].text.contains("gt mail inbox"), "{}", n[0].text);
    assert!(!n[0].text.contains("first"), "the sender's subject never reaches the terminal: {}", n[0].text);
    assert!(t.claim(NOW).nudges.is_empty(), "no duplicate");
    for i in 0..5 {
        t.send(&id, &format!("flood {i}"));
    }
    let n = t.claim(NOW).nudges;
    assert_eq!(n.len(), 1, "one notice for the flood");
    assert!(n[0].text.starts_with("5 new mails") && !n[0].text.contains("flood"), "{}", n[0].text);
}

#[test]
fn an_idle_town_wants_no_witness_and_no_container() {
    let t = T::new();
    assert_eq!(t.ok(TownOp::WitnessNeedsContainer), json!(false));
    assert_eq!(t.ok(TownOp::NextWake), Value::Null);
    let s = t.sling("r1", "work");
    t.claim(NOW);
    assert_eq!(t.ok(TownOp::WitnessNeedsContainer), json!(true));
    t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
    let wake: i64 = serde_json::from_value(t.at(NOW).handle(TownOp::NextWake, &Actor::System).unwrap()).unwrap();
    assert_eq!(wake, NOW + 30_000, "a fast look while work runs");
}

impl T {
    fn convoy(&self, id: &str) -> Convoy {
        serde_json::from_value(self.ok(TownOp::GetConvoy { convoy_id: id.into() })).unwrap()
    }
    fn merge(&self, now: i64, agent: &str) {
        let mr = self.done(agent);
        let w = self.claim(now);
        assert!(w.merges.iter().any(|m| m.review.id == mr.id));
        let outcome = MergeOutcome::Merged { commit_sha: "abc".into() };
        self.at(now).handle(TownOp::MergeResult { review_id: mr.id, outcome }, &Actor::System).unwrap();
    }
}

#[test]
fn a_convoy_lands_only_after_its_last_merge_and_reopens_when_work_is_added() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 5}}) });
    let s: Vec<Slung> = (0..3).map(|i| t.sling("r1", &format!("part {i}"))).collect();
    let input: CreateConvoyInput =
        serde_json::from_value(json!({"title": "release", "bead_ids": [s[0].bead.id, s[1].bead.id, s[2].bead.id]})).unwrap();
    let c: Convoy = serde_json::from_value(t.ok(TownOp::CreateConvoy { input })).unwrap();
    assert_eq!((c.total, c.closed, c.status.as_str()), (3, 0, "open"));
    t.merge(NOW, &s[0].agent.id);
    t.merge(NOW, &s[1].agent.id);
    // The third is done but not merged: in review, not landed.
    t.done(&s[2].agent.id);
    assert_eq!(t.get_bead(&s[2].bead.id).status, BeadStatus::InReview);
    let c2 = t.convoy(&c.id);
    assert_eq!((c2.closed, c2.status.as_str()), (2, "open"));
    let w = t.claim(NOW);
    let mr = &w.merges[0];
    t.at(NOW)
        .handle(
            TownOp::MergeResult { review_id: mr.review.id.clone(), outcome: MergeOutcome::Merged { commit_sha: "c3".into() } },
            &Actor::System,
        )
        .unwrap();
    let landed = t.convoy(&c.id);
    assert_eq!((landed.closed, landed.status.as_str()), (3, "landed"));
    assert!(t.events(&c.id).contains(&"convoy_landed".to_string()));
    // More work: open again.
    let extra = t.bead("r1", "follow-up");
    let input: AddToConvoyInput = serde_json::from_value(json!({"bead_ids": [extra.id]})).unwrap();
    let reopened: Convoy = serde_json::from_value(t.ok(TownOp::AddToConvoy { convoy_id: c.id.clone(), input })).unwrap();
    assert_eq!((reopened.total, reopened.status.as_str()), (4, "open"));
    // Stranded: the follow-up is ready and nobody is on the convoy, so the scheduler feeds it.
    t.claim(NOW);
    assert!(t.count(&format!("SELECT COUNT(*) FROM agents WHERE hook_bead_id = '{}'", extra.id)) == 1, "fed to a polecat");
    // Bad input.
    let bad: CreateConvoyInput = serde_json::from_value(json!({"title": "x", "bead_ids": ["gt-nope0"]})).unwrap();
    assert_eq!(t.err(TownOp::CreateConvoy { input: bad }, &user()).status(), 400);
    assert_eq!(t.err(TownOp::GetConvoy { convoy_id: "hq-nope0".into() }, &user()).status(), 404);
}

/// A convoy is looked at only when one of its beads changes (migration 0019), so each way a
/// convoy can become stranded must note it: here its only ready bead is blocked, and the
/// convoy is fed as soon as the block goes (the blocker closing, or the block removed), and
/// again when its bead is reopened after a polecat let it go; a change to a bead no convoy
/// tracks notes no convoy.
#[test]
fn a_stranded_convoy_is_fed_when_a_bead_of_its_changes() {
    let t = T::new();
    let hooked = |id: &str| t.count(&format!("SELECT COUNT(*) FROM agents WHERE hook_bead_id = '{id}'")) == 1;
    let queued = |id: &str| t.count(&format!("SELECT COUNT(*) FROM dispatch_queue WHERE bead_id = '{id}'")) == 1;
    let blocks = |bead: &str, blocker: &str| {
        t.ok(TownOp::AddDependency {
            rig_id: Some("r1".into()),
            bead_id: bead.into(),
            depends_on_bead_id: blocker.into(),
            dependency_type: serde_json::from_value(json!("blocks")).unwrap(),
        })
    };
    let (work, blocker, other) = (t.bead("r1", "work"), t.bead("r1", "blocker"), t.bead("r1", "other"));
    blocks(&work.id, &blocker.id);
    blocks(&work.id, &other.id);
    let input: CreateConvoyInput = serde_json::from_value(json!({"title": "c", "bead_ids": [work.id]})).unwrap();
    t.ok(TownOp::CreateConvoy { input });
    t.claim(NOW);
    assert!(!hooked(&work.id) && !queued(&work.id), "blocked: nothing to feed");
    assert_eq!(t.count("SELECT COUNT(*) FROM convoys_to_check"), 0, "looked at, and done with");
    // One blocker closes: still blocked by the other.
    t.status(&blocker.id, BeadStatus::Closed).unwrap();
    t.claim(NOW);
    assert!(!hooked(&work.id) && !queued(&work.id));
    // The other block is removed: ready, and the convoy holds nothing, so it is fed.
    t.ok(TownOp::RemoveDependency { rig_id: Some("r1".into()), bead_id: work.id.clone(), depends_on_bead_id: other.id.clone() });
    t.claim(NOW);
    assert!(hooked(&work.id), "fed once the block went");
    // Its polecat lets it go (a person reopens it): stranded again, fed again.
    t.status(&work.id, BeadStatus::InProgress).unwrap();
    t.status(&work.id, BeadStatus::Open).unwrap();
    assert!(!hooked(&work.id) && !queued(&work.id), "reopened: nobody holds it");
    t.claim(NOW);
    assert!(hooked(&work.id) || queued(&work.id), "fed again");
    // Taking it off the queue noted the convoy once more; the next pass finds it held and is
    // done with it. A change to a bead no convoy tracks notes none.
    t.claim(NOW);
    assert_eq!(t.count("SELECT COUNT(*) FROM convoys_to_check"), 0);
    t.status(&t.bead("r1", "untracked").id, BeadStatus::InProgress).unwrap();
    assert_eq!(t.count("SELECT COUNT(*) FROM convoys_to_check"), 0);
}

#[test]
fn a_molecule_is_walked_in_dependency_order_and_closes_with_its_last_step() {
    let t = T::new();
    let input: SlingInput = serde_json::from_value(json!({"title": "ship search", "formula": "feature"})).unwrap();
    let s: Slung = serde_json::from_value(t.ok(TownOp::Sling { rig_id: "r1".into(), input })).unwrap();
    let agent = Actor::Agent(s.agent.id.clone());
    let w = t.claim(NOW);
    assert!(w.dispatches[0].prompt.contains("gt mol current"));
    let mol: Molecule =
        serde_json::from_value(t.ok(TownOp::GetMolecule { rig_id: Some("r1".into()), bead_id: s.bead.id.clone() })).unwrap();
    assert_eq!(mol.steps.len(), 5);
    assert_eq!(mol.steps.iter().filter(|st| st.ready).map(|st| st.step.as_str()).collect::<Vec<_>>(), ["plan"]);
    // Steps are not handed to polecats of their own while blocked.
    let implement = mol.steps.iter().find(|st| st.step == "implement").unwrap();
    let other = t.bead("r1", "other");
    let input: SlingInput = serde_json::from_value(json!({"title": "x"})).unwrap();
    let p: Slung = serde_json::from_value(t.ok(TownOp::Sling { rig_id: "r1".into(), input })).unwrap();
    t.call(TownOp::Unhook { rig_id: "r1".into(), agent_id: p.agent.id.clone() }, &user()).unwrap();
    let e = t.err(TownOp::Hook { rig_id: "r1".into(), agent_id: p.agent.id.clone(), bead_id: implement.bead_id.clone() }, &user());
    assert_eq!(e.status(), 409, "{e}");
    let _ = other;
    let mut walked = vec![];
    let cur = t.call(TownOp::MolCurrent { rig_id: "r1".into(), agent_id: s.agent.id.clone() }, &agent).unwrap();
    walked.push(cur["step_id"].as_str().unwrap().to_string());
    assert_eq!(cur["position"], "1/5");
    loop {
        let next = t.call(TownOp::MolAdvance { rig_id: "r1".into(), agent_id: s.agent.id.clone(), summary: None }, &agent).unwrap();
        if next["complete"] == true {
            break;
        }
        walked.push(next["step_id"].as_str().unwrap().to_string());
    }
    assert_eq!(walked, ["plan", "implement", "test", "document", "finish"]);
    let mol = t.get_bead(&mol.id);
    assert_eq!(mol.status, BeadStatus::Closed, "the molecule closes with its last step");
    assert_ne!(t.get_bead(&s.bead.id).status, BeadStatus::Closed, "the work closes on its merge, not before");
    let e = t.err(TownOp::MolAdvance { rig_id: "r1".into(), agent_id: s.agent.id.clone(), summary: None }, &agent);
    assert_eq!(e.status(), 409);
    // A formula of one's own; a broken one is refused with the reason.
    let b = t.bead("r1", "custom");
    let input: MoleculeInput = serde_json::from_value(
        json!({"formula_toml": "name = 'two'\n[[steps]]\nid = 'a'\ntitle = 'A'\n[[steps]]\nid = 'b'\ntitle = 'B'\nneeds = ['a']"}),
    )
    .unwrap();
    let m: Molecule =
        serde_json::from_value(t.ok(TownOp::CreateMolecule { rig_id: Some("r1".into()), bead_id: b.id.clone(), input })).unwrap();
    assert_eq!(m.steps[1].needs, ["a"]);
    let input: MoleculeInput = serde_json::from_value(json!({"formula": "nope"})).unwrap();
    assert_eq!(t.err(TownOp::CreateMolecule { rig_id: Some("r1".into()), bead_id: b.id.clone(), input }, &user()).status(), 400);
    let input: MoleculeInput = serde_json::from_value(json!({"formula": "bugfix"})).unwrap();
    assert_eq!(
        t.err(TownOp::CreateMolecule { rig_id: Some("r1".into()), bead_id: b.id, input }, &user()).status(),
        409,
        "one molecule per bead"
    );
}

#[test]
fn a_polecat_changes_only_the_beads_it_holds() {
    let t = T::new();
    let mine = t.sling("r1", "mine");
    let theirs = t.sling("r1", "theirs");
    let me = Actor::Agent(mine.agent.id.clone());
    let set = |bead: &str, status: BeadStatus, actor: &Actor| {
        t.call(TownOp::SetBeadStatus { rig_id: Some("r1".into()), bead_id: bead.into(), status, reason: None }, actor)
    };
    let refused = set(&theirs.bead.id, BeadStatus::Closed, &me).unwrap_err();
    assert_eq!(refused.status(), 403, "{refused}");
    assert_eq!(t.get_bead(&theirs.bead.id).status, BeadStatus::InProgress, "nothing changed");
    let dep = t.call(
        TownOp::AddDependency {
            rig_id: Some("r1".into()),
            bead_id: theirs.bead.id.clone(),
            depends_on_bead_id: mine.bead.id.clone(),
            dependency_type: serde_json::from_value(json!("blocks")).unwrap(),
        },
        &me,
    );
    assert_eq!(dep.unwrap_err().status(), 403);
    // Its own bead, and a child of it, it may change; a person may change anything.
    let child: Bead = serde_json::from_value(
        t.call(
            TownOp::CreateBead {
                rig_id: Some("r1".into()),
                input: serde_json::from_value(json!({"title": "a step", "parent_id": mine.bead.id})).unwrap(),
            },
            &me,
        )
        .unwrap(),
    )
    .unwrap();
    let child = child.id;
    set(&child, BeadStatus::Closed, &me).unwrap();
    set(&theirs.bead.id, BeadStatus::Closed, &Actor::User("u".into())).unwrap();
}

/// Issue 11, case 1: town capacity larger than the container's. The container's limit, once
/// known, bounds what is claimed; a "full" answer gives the attempt back; nothing ever fails.
#[test]
fn a_full_container_means_wait_never_a_failed_attempt() {
    let t = T::new();
    let slung: Vec<Slung> = (0..4).map(|i| t.sling("r1", &format!("w{i}"))).collect();
    // The limit is not known yet: every due run is offered; the container takes two.
    let w = t.claim(NOW);
    assert_eq!(w.dispatches.len(), 4);
    assert_eq!(w.container_max_agents, None);
    for job in &w.dispatches[2..] {
        let op = TownOp::DispatchDeferred {
            agent_id: job.agent.id.clone(),
            epoch: job.epoch,
            reason: "capacity reached: 2 agents running (limit 2)".into(),
            container_limit: Some(2),
        };
        t.at(NOW).handle(op, &Actor::System).unwrap();
    }
    for job in &w.dispatches[..2] {
        t.life(NOW, &job.agent.id, Lifecycle::Started { epoch: job.epoch });
    }
    let waiting: Vec<&DispatchJob> = w.dispatches[2..].iter().collect();
    for job in &waiting {
        let a = t.agent(&job.agent.id);
        assert_eq!((a.status, a.dispatch_attempts), (AgentStatus::Idle, 0), "the refusal was not an attempt");
        assert!(
            t.count(&format!(
                "SELECT COUNT(*) FROM agents WHERE bead_id = '{}' AND last_error LIKE 'waiting for a free slot%'",
                job.agent.id
            )) == 1
        );
    }
    // Full: nothing is offered, however often the town looks, and no alarm is armed for it
    // (the exit of a run drives the queue).
    for k in 1..=20 {
        assert!(t.claim(NOW + k * 10_000).dispatches.is_empty());
    }
    let wake = t.at(NOW + 10_000).next_wake().unwrap();
    assert!(wake.is_none_or(|at| at > NOW + 10_000), "{wake:?}");
    // One run ends: exactly one waiting run is offered, with the limit the town now knows.
    let first = &w.dispatches[0];
    t.life(NOW + 300_000, &first.agent.id, T::exited(first.epoch));
    let w2 = t.claim(NOW + 300_000);
    assert_eq!(w2.dispatches.len(), 1);
    assert_eq!(w2.container_max_agents, Some(2));
    assert_eq!(w2.dispatches[0].agent.dispatch_attempts, 1);
    // Many refusals later nothing has failed.
    assert!(slung.iter().all(|s| t.get_bead(&s.bead.id).status == BeadStatus::InProgress));
    assert_eq!(t.escalations(), 0);
    // A stale deferral (an older epoch) changes nothing.
    let second = &w.dispatches[1];
    let op = TownOp::DispatchDeferred { agent_id: second.agent.id.clone(), epoch: 0, reason: "x".into(), container_limit: None };
    t.at(NOW).handle(op, &Actor::System).unwrap();
    assert_eq!(t.agent(&second.agent.id).status, AgentStatus::Working);
}

#[test]
fn the_mayor_is_started_before_polecats_take_the_last_slot() {
    let t = T::new();
    t.ok(TownOp::ContainerCapacity { max_agents: 1 });
    t.sling("r1", "work");
    t.ok(TownOp::EnsureMayor);
    let w = t.claim(NOW);
    assert_eq!(w.dispatches.len(), 1);
    assert_eq!(w.dispatches[0].agent.role, AgentRole::Mayor);
    assert_eq!(t.err(TownOp::ContainerCapacity { max_agents: 0 }, &Actor::System).status(), 400);
}

/// Issue 11, case 3: the dashboard's Retry (`open` on a failed bead) puts it back to work.
#[test]
fn reopening_a_failed_bead_queues_it_for_a_polecat_again() {
    let t = T::new();
    let s = t.sling("r1", "flaky");
    let job = t.claim(NOW).dispatches.pop().unwrap();
    let op = TownOp::DispatchFailed {
        agent_id: s.agent.id.clone(),
        epoch: job.epoch,
        error: "no such CLI".into(),
        permanent: true,
        unreachable: false,
    };
    t.at(NOW).handle(op, &Actor::System).unwrap();
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Failed);
    assert!(t.claim(NOW + 3_600_000).dispatches.is_empty());

    t.status(&s.bead.id, BeadStatus::Open).unwrap();
    let b = t.get_bead(&s.bead.id);
    assert_eq!(b.status, BeadStatus::InProgress, "handed to a polecat at once");
    let w = t.claim(NOW + 1);
    assert_eq!(w.dispatches.len(), 1);
    assert_eq!(w.dispatches[0].bead.as_ref().map(|b| b.id.clone()), Some(s.bead.id.clone()));
    assert_eq!(w.dispatches[0].agent.dispatch_attempts, 1, "a fresh count of attempts");
    assert!(t.events(&s.bead.id).contains(&"queued".to_string()));
    // Reopening something that never failed queues nothing.
    let plain = t.bead("r1", "just a note");
    t.status(&plain.id, BeadStatus::Closed).unwrap();
    t.status(&plain.id, BeadStatus::Open).unwrap();
    assert_eq!(t.get_bead(&plain.id).status, BeadStatus::Open);
    assert_eq!(t.count("SELECT COUNT(*) FROM dispatch_queue"), 0);
}

#[test]
fn the_container_s_start_answers_are_read_as_wait_success_or_failure() {
    use serde_json::json;
    // The container's own reply type, as it sends it.
    let reply = gastown_protocol::StartReply {
        agent: serde_json::from_value(json!({
            "agent_id": "a1", "name": "toast", "role": "polecat", "town_id": "t1", "rig_id": "r1", "bead_id": "gt-1",
            "status": "running", "spawn_epoch": 3, "pid": 42, "cwd": "/w", "started_at_ms": 1, "output_bytes": 0,
            "exit": null, "screen": null, "screen_changes": 0,
        }))
        .unwrap(),
        branch: Some("gt/toast/gt-1".into()),
        max_agents: 8,
        already_running: false,
    };
    assert_eq!(StartOutcome::from_reply(201, &json!({"success": true, "data": reply})), StartOutcome::Started { max_agents: Some(8) });
    // A run that started is started, even when its answer cannot be read.
    assert_eq!(
        StartOutcome::from_reply(200, &json!({"success": true, "data": {"already_running": true}})),
        StartOutcome::Started { max_agents: None }
    );
    let full = json!({"success": false, "code": "capacity_exceeded", "limit": 8, "error": "capacity reached: 8 agents running (limit 8)"});
    assert_eq!(
        StartOutcome::from_reply(409, &full),
        StartOutcome::Full { reason: "capacity reached: 8 agents running (limit 8)".into(), container_limit: Some(8) }
    );
    assert!(matches!(
        StartOutcome::from_reply(409, &json!({"code": "rig_capacity_exceeded", "error": "rig full"})),
        StartOutcome::Full { container_limit: None, .. }
    ));
    assert!(matches!(
        StartOutcome::from_reply(409, &json!({"code": "already_running", "error": "busy"})),
        StartOutcome::Failed { permanent: false, .. }
    ));
    assert!(matches!(
        StartOutcome::from_reply(400, &json!({"code": "runtime_not_installed", "error": "no claude"})),
        StartOutcome::Failed { permanent: true, .. }
    ));
    // The gateway says the container is not there: the slow schedule, not a broken start.
    for status in [502, 503, 504] {
        assert!(matches!(StartOutcome::from_reply(status, &json!({"error": "down"})), StartOutcome::Unreachable { .. }), "{status}");
    }
    assert!(matches!(StartOutcome::from_reply(500, &json!({"error": "bug"})), StartOutcome::Failed { permanent: false, .. }));
}

/// Issue 11, case 4: `gt done` retried after its answer was lost finds its submission; it never
/// creates a second merge request nor is refused.
#[test]
fn a_repeated_done_answers_with_the_same_merge_request() {
    let t = T::new();
    let s = t.sling("r1", "once");
    let branch = format!("gt/x/{}", s.bead.id);
    let me = Actor::Agent(s.agent.id.clone());
    let push = |branch: &str| t.call(TownOp::DonePushJob { rig_id: "r1".into(), agent_id: s.agent.id.clone(), branch: branch.into() }, &me);
    assert_eq!(push(&branch).unwrap()["already_submitted"], false);
    let first = t.done(&s.agent.id);
    let job = push(&branch).unwrap();
    assert_eq!((job["already_submitted"].clone(), job["bead_id"].clone()), (json!(true), json!(s.bead.id)));
    let input = DoneInput { branch: branch.clone(), summary: None, pr_url: None };
    let again: ReviewEntry =
        serde_json::from_value(t.call(TownOp::Done { rig_id: "r1".into(), agent_id: s.agent.id.clone(), input }, &me).unwrap()).unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(t.count("SELECT COUNT(*) FROM reviews"), 1);
    // Another branch is still refused (nothing on the hook), and so is someone else's.
    assert_eq!(push(&format!("gt/x/{}x", s.bead.id)).unwrap_err().status(), 409);
    // After a failed merge the old submission no longer counts: the rework's done is new.
    t.claim(NOW);
    t.merged(&first.id, MergeOutcome::GateFailed { gate: "test".into(), exit_code: Some(1), output: "no".into() });
    assert_eq!(t.agent(&s.agent.id).hook_bead_id.as_deref(), Some(s.bead.id.as_str()));
    assert_eq!(push(&branch).unwrap()["already_submitted"], false);
    let rework = t.done(&s.agent.id);
    assert_ne!(rework.id, first.id);
}

// ---- hardening: deleted rigs, limits ----------------------------------------------------------

#[test]
fn deleting_a_rig_resolves_its_open_escalations() {
    let t = T::new();
    t.rig("r2", "api");
    t.ok(TownOp::PatchConfig { patch: json!({"escalations": {"reescalate_after_secs": 600}}) });
    let escalate = |rig: &str, msg: &str| -> Bead {
        let input: EscalateInput = serde_json::from_value(json!({"message": msg, "severity": "medium"})).unwrap();
        serde_json::from_value(t.ok(TownOp::Escalate { rig_id: Some(rig.into()), input })).unwrap()
    };
    let doomed = escalate("r1", "tests need a database");
    let acked = escalate("r1", "already handled");
    t.ok(TownOp::AcknowledgeEscalation { escalation_id: acked.id.clone() });
    let other = escalate("r2", "the api rig is stuck");

    t.ok(TownOp::RemoveRig { rig_id: "r1".into() });

    // The deleted rig's open escalation is resolved, with the reason recorded…
    let e = t.store().escalation(&doomed.id).unwrap();
    assert!(e.acknowledged, "resolved: {e:?}");
    assert_eq!(t.get_bead(&doomed.id).status, BeadStatus::Closed);
    let ev: Vec<BeadEvent> =
        serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter { bead_id: Some(doomed.id.clone()), ..Default::default() } }))
            .unwrap();
    assert!(ev.iter().any(|e| e.event_type == "closed" && e.metadata["reason"] == "rig deleted"), "{ev:?}");
    // …the acknowledged one keeps its first acknowledgement, and another rig's stays open.
    let open: Vec<Escalation> = serde_json::from_value(t.ok(TownOp::ListEscalations { acknowledged: Some(false), limit: None })).unwrap();
    assert_eq!(open.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [other.id.as_str()]);
    // Nothing about the deleted rig is raised again once the threshold passes.
    t.claim(NOW + 3_600_000);
    assert_eq!(t.at(NOW + 3_600_000).escalation(&doomed.id).unwrap().re_escalation_count, 0);
    assert_eq!(t.at(NOW + 3_600_000).escalation(&other.id).unwrap().re_escalation_count, 1);
}

impl T {
    fn limited(&self, limits: crate::limits::Limits, op: TownOp) -> CoreResult<Value> {
        TownStore::new(&self.db, NOW).with_limits(limits).handle(op, &user())
    }
}

#[test]
fn rigs_agents_and_unfinished_beads_are_limited() {
    use crate::limits::Limits;
    let t = T::new();
    let add = |id: &str, name: &str| TownOp::AddRig {
        input: AddRigInput {
            rig_id: id.into(),
            name: name.into(),
            git_url: "/tmp/x.git".into(),
            default_branch: "main".into(),
            bead_prefix: None,
            allow_local_git: true,
        },
    };
    // Rigs per town: one exists (r1); the second fits a limit of 2, the third does not.
    let two_rigs = Limits { max_rigs_per_town: 2, ..Limits::default() };
    t.limited(two_rigs, add("r2", "api")).unwrap();
    let e = t.limited(two_rigs, add("r3", "docs")).unwrap_err();
    assert_eq!(e.status(), 409);
    assert!(e.to_string().contains("at most 2 rigs per town (set by GASTOWN_MAX_RIGS_PER_TOWN)"), "{e}");
    assert_eq!(t.err(TownOp::GetRig { rig_id: "r3".into() }, &user()).status(), 404);

    // Agents per rig: registering and slinging onto a new polecat both stop at the limit.
    let two_agents = Limits { max_agents_per_rig: 2, ..Limits::default() };
    let register = || TownOp::RegisterAgent { rig_id: "r2".into(), input: serde_json::from_value(json!({"role": "polecat"})).unwrap() };
    t.limited(two_agents, register()).unwrap();
    t.limited(two_agents, register()).unwrap();
    let e = t.limited(two_agents, register()).unwrap_err();
    assert_eq!(e.status(), 409);
    assert!(e.to_string().contains("agents per rig"), "{e}");
    // The mayor belongs to no rig and is not counted.
    t.limited(two_agents, TownOp::EnsureMayor).unwrap();

    // Unfinished beads per town: counted over everything not closed or failed.
    let open_now = t.count("SELECT COUNT(*) FROM beads WHERE status NOT IN ('closed','failed')");
    let cap = Limits { max_open_beads_per_town: open_now as u32 + 1, ..Limits::default() };
    let create = || TownOp::CreateBead { rig_id: Some("r1".into()), input: serde_json::from_value(json!({"title": "one more"})).unwrap() };
    let b: Bead = serde_json::from_value(t.limited(cap, create()).unwrap()).unwrap();
    let e = t.limited(cap, create()).unwrap_err();
    assert_eq!(e.status(), 409);
    assert!(e.to_string().contains("unfinished beads per town"), "{e}");
    let sling = TownOp::Sling { rig_id: "r1".into(), input: serde_json::from_value(json!({"title": "slung"})).unwrap() };
    assert_eq!(t.limited(cap, sling).unwrap_err().status(), 409);
    let mail = TownOp::MayorMessage { message: "hello".into() };
    assert_eq!(t.limited(cap, mail).unwrap_err().status(), 409);
    // Reads and state changes still work at the limit; finishing work frees room.
    t.limited(cap, TownOp::ListBeads { rig_id: Some("r1".into()), filter: BeadFilter::default() }).unwrap();
    t.limited(cap, TownOp::SetBeadStatus { rig_id: None, bead_id: b.id.clone(), status: BeadStatus::Closed, reason: None }).unwrap();
    t.limited(cap, create()).unwrap();
}

/// A container down for half a minute (a restart) outlasts no work; one gone for good fails it
/// within about a minute and a half, with an escalation.
#[test]
fn an_unreachable_container_is_retried_slowly_then_the_work_fails() {
    let t = T::new();
    let s = t.sling("r1", "outlast a restart");
    let mut now = NOW;
    let mut tries = vec![];
    loop {
        let w = t.claim(now);
        if let Some(job) = w.dispatches.first() {
            tries.push((now - NOW) / 1000);
            let op = TownOp::DispatchFailed {
                agent_id: s.agent.id.clone(),
                epoch: job.epoch,
                error: "the container cannot be reached (503)".into(),
                permanent: false,
                unreachable: true,
            };
            t.at(now).handle(op, &Actor::System).unwrap();
        }
        if t.get_bead(&s.bead.id).status == BeadStatus::Failed || now > NOW + 600_000 {
            break;
        }
        now += 1000;
    }
    assert_eq!(tries, vec![0, 5, 15, 35, 75], "attempts spread over 75 s");
    assert_eq!(t.escalations(), 1);
}

/// The Worker restarted while a merge it awaited ran: the answer is gone with the old instance,
/// so the new one puts the merge back in the queue at once instead of after the merge timeout.
#[test]
fn a_merge_claimed_by_an_earlier_instance_is_requeued_at_once() {
    let t = T::new();
    let s = t.sling("r1", "merge across a restart");
    t.claim(NOW);
    let mr = t.done(&s.agent.id);
    let claim = |instance: &str, now: i64| -> Work {
        serde_json::from_value(t.at(now).in_instance(instance).handle(TownOp::ClaimWork, &Actor::System).unwrap()).unwrap()
    };
    let tick = |instance: &str, now: i64| -> Vec<crate::witness::Action> {
        let op = TownOp::WitnessTick { container: None, asked: None };
        serde_json::from_value(t.at(now).in_instance(instance).handle(op, &Actor::System).unwrap()).unwrap()
    };
    assert_eq!(claim("first", NOW).merges.len(), 1);
    // The instance that claimed it is still waiting for the answer: nothing to do.
    assert!(tick("first", NOW + 1000).is_empty());
    // A new instance sees the merge as orphaned and requeues it without waiting for the timeout.
    let actions = tick("second", NOW + 1000);
    assert_eq!(
        actions,
        vec![crate::witness::Action::RequeueMerge { mr_id: mr.id.clone(), reason: "the town restarted while it ran".into() }]
    );
    assert_eq!(t.store().review(&mr.id).unwrap().status, "pending");
    let w = claim("second", NOW + 1000 + unreachable_backoff_ms(1));
    assert_eq!(w.merges.len(), 1);
    t.merged(&mr.id, MergeOutcome::Merged { commit_sha: "abc".into() });
    assert_eq!(t.get_bead(&s.bead.id).status, BeadStatus::Closed);
}

// ---- merge strategy pr: pull requests followed by webhooks and polls -----------------------------

const HOOK_SECRET: &str = "hook-secret-0123456789";

impl T {
    /// A town delivering through GitHub pull requests, with a webhook secret.
    fn pr_town() -> T {
        let t = T::new();
        t.ok(TownOp::PatchConfig {
            patch: json!({"refinery": {"merge_strategy": "pr", "pr_poll_secs": 60}, "git_auth": {"github_token": "ghp_x0123456789", "webhook_secret": HOOK_SECRET}}),
        });
        t.ok(TownOp::PatchRig {
            rig_id: "r1".into(),
            patch: serde_json::from_value(json!({"forge": "github", "forge_repo": "acme/web"})).unwrap(),
        });
        t
    }
    /// Sling, run, `gt done`, gates passed and pull request #7 open: `(bead, agent, mr)`.
    fn open_pr(&self) -> (String, String, ReviewEntry) {
        let s = self.sling("r1", "ship it");
        self.claim(NOW);
        self.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
        let mr = self.done(&s.agent.id);
        let w = self.claim(NOW);
        assert_eq!(w.merges.len(), 1);
        assert_eq!(w.merges[0].strategy, crate::config::MergeStrategy::Pr);
        assert_eq!(w.merges[0].source_title, "ship it");
        let pr = self.pr(7, "h1");
        let r = self.merged(&mr.id, MergeOutcome::PullRequest { pr });
        (s.bead.id, s.agent.id, r)
    }
    fn pr(&self, number: i64, head: &str) -> crate::forge::PullRequest {
        crate::forge::PullRequest {
            forge: crate::forge::ForgeKind::Github,
            repo: "acme/web".into(),
            number,
            url: format!("https://github.com/acme/web/pull/{number}"),
            head_sha: head.into(),
            state: "open".into(),
        }
    }
    fn hook(&self, event: &str, body: Value, signature: Option<&str>) -> CoreResult<Value> {
        let raw = body.to_string();
        let credential = signature.map(|s| s.to_string()).or_else(|| {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
            mac.update(raw.as_bytes());
            Some(format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()))
        });
        let op = TownOp::ForgeWebhook { forge: crate::forge::ForgeKind::Github, event: event.into(), credential, body: raw };
        self.call(op, &Actor::System)
    }
    fn review_of(&self, id: &str) -> ReviewEntry {
        serde_json::from_value(json!(self.store().review(id).unwrap())).unwrap()
    }
}

fn review_event(id: i64, state: &str, body: &str) -> Value {
    json!({"action": "submitted", "repository": {"full_name": "acme/web"}, "pull_request": {"number": 7},
        "review": {"id": id, "state": state, "body": body, "user": {"login": "al"}}})
}

#[test]
fn a_pull_request_waits_in_review_and_changes_requested_rework_it_into_the_same_pull_request() {
    let t = T::pr_town();
    let (bead, agent, mr) = t.open_pr();
    assert_eq!(mr.status, "in_review");
    let pr = mr.pr.clone().unwrap();
    assert_eq!((pr.number, pr.state.as_deref(), pr.head_sha.as_deref()), (7, Some("open"), Some("h1")));
    assert_eq!(t.get_bead(&bead).status, BeadStatus::InReview);
    assert!(t.events(&bead).contains(&"pr_opened".to_string()));
    // An open pull request does not hold up the rig's queue, and its poll is scheduled.
    assert_eq!(pr.next_poll_at, Some(crate::time::iso(NOW + 60_000)));
    let wake: Option<i64> = serde_json::from_value(t.ok(TownOp::NextWake)).unwrap();
    assert!(wake.is_some_and(|w| w <= NOW + 60_000));

    // Unsigned or forged: refused, nothing changes.
    let ev = review_event(100, "changes_requested", "Please rename it.");
    assert_eq!(t.hook("pull_request_review", ev.clone(), Some("")).unwrap_err().status(), 401);
    assert_eq!(t.hook("pull_request_review", ev.clone(), Some("sha256=00")).unwrap_err().status(), 401);
    assert_eq!(t.review_of(&mr.id).status, "in_review");

    // Changes requested by webhook: the pull request is read back at once (the review's inline
    // comments are separate deliveries), and that read-back sends the work back with the review
    // and every comment on its lines fenced.
    t.hook("pull_request_review", ev.clone(), None).unwrap();
    assert_eq!(t.review_of(&mr.id).status, "in_review");
    let w = t.claim(NOW);
    assert_eq!(w.pr_polls.len(), 1, "a read-back is due now");
    let mut reviews = vec![crate::forge::ReviewNote {
        id: 100,
        kind: crate::forge::ReviewKind::ChangesRequested,
        author: "al".into(),
        body: "Please rename it.".into(),
        commit_sha: Some("h1".into()),
        url: None,
    }];
    crate::forge::attach_review_comments(
        &mut reviews,
        &json!([{"pull_request_review_id": 100, "path": "src/lib.rs", "line": 12, "body": "call it `spin`"},
                {"pull_request_review_id": 99, "path": "x", "line": 1, "body": "another review's"}]),
    );
    let seen = crate::forge::PrObservation {
        pr: crate::forge::PrSnapshot { number: 7, state: "open".into(), head_sha: "h1".into(), ..Default::default() },
        reviews,
        ..Default::default()
    };
    t.at(NOW).handle(TownOp::PrObserved { review_id: mr.id.clone(), observation: Ok(seen) }, &Actor::System).unwrap();
    let failed = t.review_of(&mr.id);
    assert_eq!(failed.status, "failed");
    let out = failed.output.as_deref().unwrap();
    assert!(out.contains("<untrusted kind=\"review\" id=\"100\">\nPlease rename it.\n\nOn src/lib.rs:12:\ncall it `spin`"), "{out}");
    assert!(!out.contains("another review's"));
    assert_eq!(t.agent(&agent).hook_bead_id.as_deref(), Some(bead.as_str()));
    let mails: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: agent.clone(), unread_only: true })).unwrap();
    assert!(mails.iter().any(|m| m.subject.starts_with("Rework needed") && m.body.contains("Please rename it.")));
    // The same review again (a redelivery, or the poll seeing it) acts on nothing.
    t.hook("pull_request_review", ev, None).unwrap();

    // The rework's `gt done` delivers through the same pull request.
    t.claim(NOW + 1000);
    t.life(NOW + 1000, &agent, Lifecycle::Started { epoch: 2 });
    let mr2 = t.done(&agent);
    assert_eq!(mr2.pr.as_ref().map(|p| p.number), Some(7), "carried over");
    let w = t.claim(NOW + 2000);
    assert_eq!(w.merges[0].pr.as_ref().map(|p| p.number), Some(7));
    let r2 = t.merged(&mr2.id, MergeOutcome::PullRequest { pr: t.pr(7, "h2") });
    assert_eq!((r2.status.as_str(), r2.pr.as_ref().unwrap().head_sha.as_deref()), ("in_review", Some("h2")));
    // An approval is recorded; the merge closes everything with the forge's merge commit.
    t.hook("pull_request_review", review_event(101, "approved", "ok"), None).unwrap();
    assert_eq!(t.review_of(&mr2.id).pr.unwrap().review.as_deref(), Some("approved"));
    let merged = json!({"action": "closed", "repository": {"full_name": "acme/web"}, "pull_request": {"number": 7, "merged": true, "merge_commit_sha": "m7"}});
    t.hook("pull_request", merged, None).unwrap();
    let done = t.review_of(&mr2.id);
    assert_eq!((done.status.as_str(), done.merge_commit.as_deref()), ("merged", Some("m7")));
    assert_eq!(t.get_bead(&bead).status, BeadStatus::Closed);
}

#[test]
fn the_fallback_poll_sees_the_merge_and_backs_off_while_nothing_changes() {
    let t = T::pr_town();
    let (bead, _, mr) = t.open_pr();
    assert!(t.claim(NOW + 59_000).pr_polls.is_empty(), "not due yet");
    let w = t.claim(NOW + 60_000);
    assert_eq!(w.pr_polls.len(), 1);
    assert!(t.claim(NOW + 60_000).pr_polls.is_empty(), "claimed once");
    let open = crate::forge::PrObservation {
        pr: crate::forge::PrSnapshot { number: 7, state: "open".into(), head_sha: "h1".into(), ..Default::default() },
        ..Default::default()
    };
    let observe = |now: i64, o: crate::forge::PrObservation| {
        t.at(now).handle(TownOp::PrObserved { review_id: mr.id.clone(), observation: Ok(o) }, &Actor::System).unwrap()
    };
    observe(NOW + 60_000, open.clone());
    // First poll: checks went from pending to none (changed); the second finds nothing new.
    observe(NOW + 60_000, open.clone());
    assert_eq!(t.review_of(&mr.id).pr.unwrap().next_poll_at, Some(crate::time::iso(NOW + 60_000 + 120_000)));
    let mut merged = open.clone();
    merged.pr.state = "merged".into();
    merged.pr.merge_sha = Some("m9".into());
    observe(NOW + 200_000, merged);
    assert_eq!(t.review_of(&mr.id).merge_commit.as_deref(), Some("m9"));
    assert_eq!(t.get_bead(&bead).status, BeadStatus::Closed);
}

#[test]
fn closed_unmerged_fails_and_escalates_and_a_failing_check_is_reworked_by_name() {
    let t = T::pr_town();
    let (bead, _, mr) = t.open_pr();
    // A failing check on another commit is not this head's.
    let check = |sha: &str| {
        json!({"action": "completed", "repository": {"full_name": "acme/web"},
        "check_run": {"name": "ci/test", "head_sha": sha, "conclusion": "failure", "details_url": "https://ci/9", "pull_requests": [{"number": 7}]}})
    };
    t.hook("check_run", check("other"), None).unwrap();
    assert_eq!(t.review_of(&mr.id).status, "in_review");
    t.hook("check_run", check("h1"), None).unwrap();
    let r = t.review_of(&mr.id);
    assert_eq!(r.status, "failed");
    assert!(r.output.as_deref().unwrap().contains("`ci/test` failed") && r.output.as_deref().unwrap().contains("https://ci/9"));
    assert_eq!(t.get_bead(&bead).status, BeadStatus::InProgress, "back for rework");

    let t = T::pr_town();
    let (bead, _, mr) = t.open_pr();
    let before = t.escalations();
    let closed = json!({"action": "closed", "repository": {"full_name": "ACME/web"}, "pull_request": {"number": 7, "merged": false}});
    t.hook("pull_request", closed, None).unwrap();
    assert_eq!(t.review_of(&mr.id).status, "failed");
    assert_eq!(t.get_bead(&bead).status, BeadStatus::Failed);
    assert_eq!(t.escalations(), before + 1);
}

#[test]
fn a_rig_overrides_the_towns_merge_strategy() {
    let t = T::new();
    let rig: Value =
        t.ok(TownOp::PatchRig { rig_id: "r1".into(), patch: serde_json::from_value(json!({"merge_strategy": "pr"})).unwrap() });
    assert_eq!(rig["merge_strategy"], "pr");
    let e = t.err(
        TownOp::PatchRig {
            rig_id: "r1".into(),
            patch: serde_json::from_value(json!({"forge": "github", "forge_repo": "a/../b"})).unwrap(),
        },
        &user(),
    );
    assert_eq!(e.status(), 400);
    assert!(serde_json::from_value::<RigPatch>(json!({"merge_strategy": "squash"})).is_err());
    // Two finished beads: with pull requests each is gated alone.
    let slung = [t.sling("r1", "one"), t.sling("r1", "two")];
    t.claim(NOW);
    for s in &slung {
        t.life(NOW, &s.agent.id, Lifecycle::Started { epoch: 1 });
        t.done(&s.agent.id);
    }
    let w = t.claim(NOW);
    assert_eq!(w.merges.len(), 1);
    assert_eq!(w.merges[0].strategy, crate::config::MergeStrategy::Pr);
    // Back to the town's (direct): a train again.
    t.ok(TownOp::PatchRig { rig_id: "r1".into(), patch: serde_json::from_value(json!({"merge_strategy": null})).unwrap() });
    assert_eq!(t.ok(TownOp::GetRig { rig_id: "r1".into() })["merge_strategy"], Value::Null);
}

#[test]
fn a_sling_may_pick_the_model_for_its_work() {
    let t = T::new();
    let input: SlingInput = serde_json::from_value(json!({"title": "fast one", "metadata": {"model": "small-model-1"}})).unwrap();
    let s: Slung = serde_json::from_value(t.ok(TownOp::Sling { rig_id: "r1".into(), input })).unwrap();
    let w = t.claim(NOW);
    let job = w.dispatches.iter().find(|d| d.agent.id == s.agent.id).unwrap();
    assert_eq!(job.runtime.model.as_deref(), Some("small-model-1"));
    // Not a model name: ignored (it would reach an agent CLI's argv).
    let input: SlingInput = serde_json::from_value(json!({"title": "odd one", "metadata": {"model": "x; rm -rf /"}})).unwrap();
    let s2: Slung = serde_json::from_value(t.ok(TownOp::Sling { rig_id: "r1".into(), input })).unwrap();
    let w = t.claim(NOW);
    if let Some(job) = w.dispatches.iter().find(|d| d.agent.id == s2.agent.id) {
        assert_eq!(job.runtime.model, None);
    }
}

// The drift table shared with the container's validator tests.
include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../gastown-protocol/testdata/drift_cases.rs"));

/// A rig the container could not use is refused when it is created (400 naming the field),
/// rather than created and then failing every dispatch.
#[test]
fn add_rig_refuses_what_the_container_refuses() {
    let t = T::new();
    let add = |i: usize, field: &str, value: &str| TownOp::AddRig {
        input: AddRigInput {
            rig_id: format!("drift{i}"),
            name: format!("drift{i}"),
            git_url: if field == "git_url" { value.into() } else { "https://github.com/o/r.git".into() },
            default_branch: if field == "default_branch" { value.into() } else { "main".into() },
            bead_prefix: None,
            allow_local_git: true,
        },
    };
    for (i, (field, value)) in DRIFT_REFUSED.iter().enumerate() {
        let e = t.err(add(i, field, value), &user());
        assert_eq!(e.status(), 400, "{field} {value:?}: {e}");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{field} {value:?}: {e}");
    }
    for (i, (field, value)) in BOTH_ACCEPT.iter().enumerate() {
        t.ok(add(100 + i, field, value));
    }
    // Local repositories are a development convenience only.
    let mut prod = add(200, "git_url", "/srv/git/repo.git");
    let TownOp::AddRig { input } = &mut prod else { unreachable!() };
    input.allow_local_git = false;
    let e = t.err(prod, &user());
    assert_eq!(e.status(), 400);
    assert!(e.to_string().starts_with("git_url: ") && e.to_string().contains("only in development"), "{e}");
}

/// Merged (or closed) by hand on the forge while the work was back with its polecat for rework:
/// the bead ends accordingly instead of a second pull request being opened later.
#[test]
fn a_pull_request_merged_or_closed_during_rework_ends_the_bead() {
    for (merged, end) in [(true, BeadStatus::Closed), (false, BeadStatus::Failed)] {
        let t = T::pr_town();
        let (bead, agent, mr) = t.open_pr();
        let fail = crate::forge::PrObservation {
            pr: crate::forge::PrSnapshot {
                number: 7,
                state: "open".into(),
                head_sha: "h1".into(),
                conflict: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        t.at(NOW).handle(TownOp::PrObserved { review_id: mr.id.clone(), observation: Ok(fail) }, &Actor::System).unwrap();
        assert_eq!(t.review_of(&mr.id).status, "failed", "back for rework");
        assert_eq!(t.agent(&agent).hook_bead_id.as_deref(), Some(bead.as_str()));
        let pr = json!({"number": 7, "merged": merged, "merge_commit_sha": if merged { json!("m7") } else { json!(null) }});
        let ev = json!({"action": "closed", "repository": {"full_name": "acme/web"}, "pull_request": pr});
        let out = t.hook("pull_request", ev, None).unwrap();
        assert_eq!(out["merge_requests"][0]["while"], "failed", "{out}");
        assert_eq!(t.get_bead(&bead).status, end);
        assert_eq!(t.agent(&agent).hook_bead_id, None, "the rework is called off");
        assert_eq!(t.escalations(), if merged { 0 } else { 1 });
    }
}

/// SQL statements are most of what an op costs in a Durable Object: the hot ops are held to
/// a budget, and a drive loop with nothing due is two statements, however big the town.
#[test]
fn hot_ops_and_an_idle_drive_stay_within_their_statement_budgets() {
    let t = T::new();
    let b = t.bead("r1", "x");
    for i in 0..50 {
        let done = t.bead("r1", &format!("done {i}"));
        t.status(&done.id, BeadStatus::Closed).unwrap();
    }
    let count = |f: &dyn Fn()| t.db.recording(f).1;
    let get = count(&|| {
        t.get_bead(&b.id);
    });
    assert_eq!(get.len(), 2, "get bead: {get:#?}");
    let status = count(&|| {
        t.status(&b.id, BeadStatus::InProgress).unwrap();
    });
    // The meta row, the bead, the update (which returns the row written) and the event.
    assert!(status.len() <= 4, "set status: {status:#?}");
    let claim = count(&|| {
        let w: Work = serde_json::from_value(t.ok(TownOp::ClaimWork)).unwrap();
        assert!(w.is_empty());
    });
    // The meta row (read once per op) and the one `work_may_be_due` statement; what follows is
    // the tests' own cross-check (`total_changes()`, then the full claim), not the claim's work.
    assert!(claim[0].contains("FROM town_meta") && claim[1].starts_with("SELECT EXISTS"), "idle claim: {claim:#?}");
    assert_eq!(claim[2], "SELECT total_changes()", "idle claim: {claim:#?}");
    // When the alarm should next ring: the meta row, two statements for the deadlines kept in
    // columns, and the witness's three.
    let wake = count(&|| {
        t.ok(TownOp::NextWake);
    });
    assert!(wake.len() <= 6, "next wake: {wake:#?}");
}

/// The queue behind a full rig is not scanned: with the rig's polecats (4 by default) all
/// working, a claim with forty beads queued costs what an idle town's does.
#[test]
fn a_long_queue_behind_a_full_rig_costs_the_drive_nothing() {
    let t = T::new();
    for i in 0..44 {
        let input: SlingInput = serde_json::from_value(json!({"title": format!("s{i}")})).unwrap();
        t.ok(TownOp::Sling { rig_id: "r1".into(), input });
    }
    let first: Work = serde_json::from_value(t.ok(TownOp::ClaimWork)).unwrap();
    assert_eq!(first.dispatches.len(), 4, "the rig's four polecats start");
    let queued = t.db.scalar_i64("SELECT COUNT(*) FROM dispatch_queue", params![]).unwrap();
    assert_eq!(queued, 40);
    let (_, log) = t.db.recording(|| {
        let w: Work = serde_json::from_value(t.ok(TownOp::ClaimWork)).unwrap();
        assert!(w.is_empty());
    });
    assert!(log[1].starts_with("SELECT EXISTS") && log[2] == "SELECT total_changes()", "{log:#?}");
}

/// `gt mail check` writes a page of mail set-wise; what it leaves must be what reading each
/// mail in turn leaves: the same events in the same order, the beads closed, the mail read. A
/// message bead someone failed by hand (it cannot close) is still taken and read, not a 409 that
/// would block the inbox for good. And the cost does not grow with the page.
#[test]
fn checking_mail_leaves_what_reading_each_mail_leaves_in_a_fixed_number_of_statements() {
    let t = T::new();
    let register = |role: &str| -> Agent {
        serde_json::from_value(
            t.ok(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(json!({"role": role})).unwrap() }),
        )
        .unwrap()
    };
    let (reader, checker) = (register("refinery"), register("witness"));
    let send = |to: &Agent, subject: &str| -> Mail {
        let input = SendMailInput { to: to.id.clone(), subject: subject.into(), body: format!("about {subject}"), priority: None };
        serde_json::from_value(t.ok(TownOp::SendMail { input })).unwrap()
    };
    let subjects = ["one", "two", "three"];
    let read_each: Vec<Mail> = subjects.iter().map(|s| send(&reader, s)).collect();
    let checked: Vec<Mail> = subjects.iter().map(|s| send(&checker, s)).collect();
    let actor = |a: &Agent| Actor::Agent(a.id.clone());
    for m in &read_each {
        t.call(TownOp::ReadMail { rig_id: Some("r1".into()), agent_id: reader.id.clone(), mail_id: m.id.clone() }, &actor(&reader))
            .unwrap();
    }
    let check = || -> Vec<Mail> {
        serde_json::from_value(
            t.call(TownOp::CheckMail { rig_id: Some("r1".into()), agent_id: checker.id.clone() }, &actor(&checker)).unwrap(),
        )
        .unwrap()
    };
    let (taken, log) = t.db.recording(check);
    assert_eq!(taken.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), subjects, "oldest first");
    assert!(taken.iter().all(|m| m.read && m.read_at.is_some()));
    // The agent's sign of life is written on its first call only (see `note_activity`).
    let statements = |log: &[String]| log.iter().filter(|s| !s.starts_with("UPDATE agents SET last_activity_at")).count();
    let writes = statements(&log);
    // What each side left, with the ids taken out: events per mail and the bead.
    let trail = |m: &Mail, who: &Agent| {
        let ev: Vec<BeadEvent> =
            serde_json::from_value(t.ok(TownOp::ListEvents { filter: EventFilter { bead_id: Some(m.id.clone()), ..Default::default() } }))
                .unwrap();
        let b = t.get_bead(&m.id);
        let ev: Vec<_> =
            ev.into_iter().map(|e| (e.event_type, e.old_value, e.new_value, e.metadata, e.actor, e.rig_id, e.agent_id)).collect();
        // The recipient's id is the one thing that differs between the two sides.
        (format!("{ev:?}").replace(&who.id, "<me>"), b.status, b.closed_at.is_some())
    };
    for (r, c) in read_each.iter().zip(&checked) {
        assert_eq!(trail(c, &checker), trail(r, &reader), "{}", r.subject);
        assert_eq!(trail(c, &checker).1, BeadStatus::Closed);
    }
    let inbox: Vec<Mail> =
        serde_json::from_value(t.ok(TownOp::ListMail { rig_id: None, agent_id: checker.id.clone(), unread_only: true })).unwrap();
    assert!(inbox.is_empty());
    assert!(check().is_empty(), "nothing left to take");

    // Three times the mail, the same statements.
    for i in 0..9 {
        send(&checker, &format!("more {i}"));
    }
    let (taken, log) = t.db.recording(check);
    assert_eq!(taken.len(), 9);
    assert_eq!(statements(&log), writes, "{log:#?}");

    // A message bead failed by hand cannot close; it is still read and taken.
    let odd = send(&checker, "odd");
    t.status(&odd.id, BeadStatus::Failed).unwrap();
    let taken = check();
    assert_eq!((taken.len(), taken[0].read), (1, true));
    assert_eq!(t.get_bead(&odd.id).status, BeadStatus::Failed);
}

/// Pages of beads and events, and a single bead, are built as JSON by SQLite for the API; they
/// must be exactly what decoding the rows and encoding them again gives (the same objects, the
/// same order), for every filter, whatever the text holds (quotes, escapes, control characters,
/// non-ASCII) and whatever the metadata nests.
#[test]
fn pages_built_in_sql_are_the_typed_pages() {
    let t = T::new();
    t.rig("r2", "api");
    let tricky = "quote \" backslash \\ tab \t newline \n bell \u{7} del \u{7f} ü 漢 🚀 </script>";
    let parent = t.bead("r1", "parent");
    const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];
    for i in 0..12 {
        let input: CreateBeadInput = serde_json::from_value(json!({
            "title": format!("{tricky} {i}"),
            "body": if i % 3 == 0 { Value::Null } else { json!(format!("body {i}\r\n{tricky}")) },
            "labels": if i % 2 == 0 { json!([]) } else { json!(["a\"b", "ü", format!("n{i}")]) },
            "metadata": json!({"n": 1.5, "i": -3, "big": 9_007_199_254_740_993_i64, "z": i, "arr": [1, {"x": null}, "s\n"], "b": true, "s": tricky}),
            "priority": PRIORITIES[i % 4],
            "parent_id": if i % 4 == 1 && i < 8 { json!(parent.id) } else { Value::Null },
        }))
        .unwrap();
        let b: Bead =
            serde_json::from_value(t.ok(TownOp::CreateBead { rig_id: Some(if i < 8 { "r1" } else { "r2" }.into()), input })).unwrap();
        if i % 5 == 2 {
            t.status(&b.id, BeadStatus::Closed).unwrap();
        } else if i % 5 == 3 {
            t.status(&b.id, BeadStatus::InProgress).unwrap();
        }
    }
    let agent: Agent = serde_json::from_value(
        t.ok(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(json!({"role": "polecat"})).unwrap() }),
    )
    .unwrap();
    let s = t.store();
    let filters = [
        json!({}),
        json!({"limit": 5}),
        json!({"limit": 4, "offset": 3}),
        json!({"status": "closed"}),
        json!({"status": "in_review"}),
        json!({"type": "agent"}),
        json!({"parent_id": parent.id}),
        json!({"offset": 100}),
    ];
    for rig in [None, Some("r1"), Some("r2")] {
        for f in &filters {
            let f: BeadFilter = serde_json::from_value(f.clone()).unwrap();
            let typed = serde_json::to_string(&s.list_beads(rig, &f).unwrap()).unwrap();
            let built = s.list_beads_json(rig, &f).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&built).unwrap(), serde_json::from_str::<Value>(&typed).unwrap(), "{rig:?} {f:?}");
            assert_eq!(built, typed, "byte for byte, {rig:?} {f:?}");
        }
    }
    let beads = s.list_beads(None, &BeadFilter { limit: Some(100), ..Default::default() }).unwrap();
    assert!(beads.len() > 12, "{}", beads.len());
    for b in &beads {
        let own = b.rig_id.as_deref();
        for rig in [None, own] {
            let typed = serde_json::to_string(&s.bead_in(rig, &b.id).unwrap()).unwrap();
            assert_eq!(s.bead_in_json(rig, &b.id).unwrap(), typed, "byte for byte, {} via {rig:?}", b.id);
        }
        // Through another rig's route, a bead is not found, as `bead_in` has it.
        let other = if own == Some("r1") { "r2" } else { "r1" };
        assert!(matches!(s.bead_in(Some(other), &b.id), Err(CoreError::NotFound(_))));
        assert!(matches!(s.bead_in_json(Some(other), &b.id), Err(CoreError::NotFound(_))), "{} via {other}", b.id);
    }
    // An agent's own bead (no page lists those) too.
    for rig in [None, Some("r1")] {
        let typed = serde_json::to_string(&s.bead_in(rig, &agent.id).unwrap()).unwrap();
        assert_eq!(s.bead_in_json(rig, &agent.id).unwrap(), typed, "the agent's bead via {rig:?}");
    }
    assert!(matches!(s.bead_in_json(None, "gt-nope"), Err(CoreError::NotFound(_))));
    let all = s.list_events(&EventFilter { limit: Some(1000), ..Default::default() }).unwrap();
    assert!(all.len() > 20, "{}", all.len());
    let events = [
        json!({}),
        json!({"limit": 3}),
        json!({"rig_id": "r2"}),
        json!({"bead_id": parent.id}),
        json!({"after_id": all[5].id, "limit": 7}),
        json!({"since": "2020-01-01T00:00:00Z", "limit": 1000}),
        json!({"after_id": all.last().unwrap().id}),
    ];
    for f in events {
        let f: EventFilter = serde_json::from_value(f).unwrap();
        let typed = serde_json::to_string(&s.list_events(&f).unwrap()).unwrap();
        let built = s.list_events_json(&f).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&built).unwrap(), serde_json::from_str::<Value>(&typed).unwrap(), "{f:?}");
        assert_eq!(built, typed, "byte for byte, {f:?}");
    }
    // Bad filters are refused the same way.
    let bad: BeadFilter = serde_json::from_value(json!({"limit": 0})).unwrap();
    assert!(matches!(s.list_beads_json(None, &bad), Err(CoreError::BadRequest { .. })));
    assert!(matches!(s.list_beads_json(Some("nope"), &BeadFilter::default()), Err(CoreError::NotFound(_))));
    let bad = EventFilter { since: Some("yesterday".into()), ..Default::default() };
    assert!(matches!(s.list_events_json(&bad), Err(CoreError::BadRequest { .. })));
}

/// The Durable Object keeps the town's row between ops ([`MetaCache`]): an op after the first
/// does not read it again, a change to it is seen by the next op, and a write whose transaction
/// is undone is not served from it afterwards.
#[test]
fn the_towns_row_is_kept_between_ops_until_it_changes_or_an_op_fails() {
    let t = T::new();
    let cache = MetaCache::default();
    let store = || TownStore::new(&t.db, NOW).with_meta_cache(&cache);
    let reads_meta = |log: &[String]| log.iter().filter(|s| s.contains("FROM town_meta")).count();
    let get_config = || store().handle(TownOp::GetConfig, &user()).unwrap();

    let (_, log) = t.db.recording(get_config);
    assert_eq!(reads_meta(&log), 1, "the first op reads it");
    let (_, log) = t.db.recording(get_config);
    assert_eq!(reads_meta(&log), 0, "the next one does not: {log:#?}");

    // A change is seen by the next op, through the same cache.
    store().handle(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 3}}) }, &user()).unwrap();
    assert_eq!(get_config()["capacity"]["max_polecats_per_rig"], 3);
    store().handle(TownOp::ContainerCapacity { max_agents: 7 }, &Actor::System).unwrap();
    assert_eq!(store().meta().unwrap().container_max_agents, Some(7));

    // A write to the row read back inside a transaction that is then undone: the kept row
    // is the one before it.
    let s = store();
    let undone = s.tx(|| {
        assert_eq!(s.set_container_capacity(9)?, Some(9), "read back inside the transaction");
        Err::<(), _>(CoreError::Conflict("undone".into()))
    });
    assert!(undone.is_err());
    assert_eq!(store().meta().unwrap().container_max_agents, Some(7));
    // A refused op drops it too: the next op reads the row again.
    let bad = store().handle(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": "many"}}) }, &user());
    assert!(matches!(bad, Err(CoreError::BadRequest { .. })), "{bad:?}");
    let (config, log) = t.db.recording(get_config);
    assert_eq!(reads_meta(&log), 1, "{log:#?}");
    assert_eq!(config["capacity"]["max_polecats_per_rig"], 3);

    // Another person's town stays not found, from the kept row as from a read one.
    assert!(matches!(store().check_owner("u2"), Err(CoreError::NotFound(_))));
    store().check_owner("u1").unwrap();
    cache.clear();
    let (_, log) = t.db.recording(get_config);
    assert_eq!(reads_meta(&log), 1, "cleared: {log:#?}");
}

/// An agent's own mail and molecule calls check the agent is of the route's rig from the row
/// read as its call came in, not from a second read; another rig's route is still not found,
/// and a person asking about the agent gets the same answers.
#[test]
fn an_agents_calls_about_itself_read_its_row_once() {
    let t = T::new();
    t.rig("r2", "api");
    let a: Agent = serde_json::from_value(
        t.ok(TownOp::RegisterAgent { rig_id: "r1".into(), input: serde_json::from_value(json!({"role": "polecat"})).unwrap() }),
    )
    .unwrap();
    let me = Actor::Agent(a.id.clone());
    let check = |rig: &str, actor: &Actor| t.call(TownOp::CheckMail { rig_id: Some(rig.into()), agent_id: a.id.clone() }, actor);
    let (taken, log) = t.db.recording(|| check("r1", &me));
    assert_eq!(taken.unwrap(), json!([]));
    assert_eq!(log.iter().filter(|s| s.contains("FROM agents a JOIN beads")).count(), 1, "{log:#?}");
    for actor in [&me, &user()] {
        assert!(matches!(check("r2", actor), Err(CoreError::NotFound(_))), "{actor:?}");
        assert!(matches!(check("nope", actor), Err(CoreError::NotFound(_))), "{actor:?}");
    }
    // A person's call has no row of its own read: the check reads the agent's.
    let (r, log) = t.db.recording(|| check("r1", &user()));
    r.unwrap();
    assert_eq!(log.iter().filter(|s| s.contains("FROM agents a JOIN beads")).count(), 1, "{log:#?}");
}

/// The walks over a whole table that grows with the town's history (beads, mail, events,
/// dependencies, reviews, escalations, convoys) in the plan SQLite picks for `q`. Plans do not
/// depend on how many rows there are (no ANALYZE), so a small town shows them.
fn whole_table_reads(db: &MemDb, q: &str) -> Vec<String> {
    let history = ["beads", "mail", "bead_events", "bead_dependencies", "reviews", "escalations", "convoys"];
    let keywords = ["WHERE", "ON", "JOIN", "LEFT", "INNER", "CROSS", "SET", "ORDER", "GROUP", "LIMIT", "USING", "VALUES", "SELECT"];
    // The names a statement gives each history table it reads: the table's own, and its alias
    // ("FROM mail m", "JOIN beads AS b", "UPDATE mail SET", "FROM beads b, reviews r").
    let names = |q: &str| -> Vec<String> {
        let words: Vec<String> = q
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .flat_map(|w| w.split_inclusive(','))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let mut out = vec![];
        for (k, w) in words.iter().enumerate() {
            let w = w.trim_end_matches(',');
            if !history.contains(&w) {
                continue;
            }
            let before = k.checked_sub(1).map(|j| words[j].to_uppercase());
            let table_position =
                matches!(before.as_deref(), Some("FROM" | "JOIN" | "UPDATE" | "INTO")) || before.is_some_and(|b| b.ends_with(','));
            if !table_position {
                continue;
            }
            out.push(w.to_string());
            if words[k].ends_with(',') {
                continue;
            }
            let mut next = words.get(k + 1).map(|n| n.trim_end_matches(','));
            if next.is_some_and(|n| n.eq_ignore_ascii_case("AS")) {
                next = words.get(k + 2).map(|n| n.trim_end_matches(','));
            }
            if let Some(alias) =
                next.filter(|n| !keywords.contains(&n.to_uppercase().as_str()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                out.push(alias.to_string());
            }
        }
        out
    };
    // The walks over a whole history table in the plan: "SCAN t" or "SCAN t USING [COVERING]
    // INDEX i", unless i is partial (it holds only the open rows), and automatic indexes. A
    // plain "SCAN t" in the statement's order (`ORDER BY t.rowid`, nothing sorted) up to a
    // `LIMIT` is a page read in the table's own order: it stops at the page, provided what it
    // skips on the way is bounded — so the statement's own conditions on t (its last WHERE, in
    // the statements here) may only be `t.col IS NOT NULL`, which skips the open rows (the
    // ones the partial indexes hold). The lists' step test holds such pages to their cost too.
    let numbered = (1..=9).rev().find(|k| q.contains(&format!("?{k}")));
    let n = numbered.unwrap_or_else(|| q.matches('?').count());
    let plan: Vec<String> = db
        .exec(&format!("EXPLAIN QUERY PLAN {q}"), vec![crate::db::SqlValue::Null; n])
        .unwrap()
        .into_iter()
        .filter_map(|row| match row.into_iter().find(|(k, _)| k == "detail") {
            Some((_, crate::db::SqlValue::Text(detail))) => Some(detail),
            _ => None,
        })
        .collect();
    // "USE TEMP B-TREE FOR [LAST TERM OF | RIGHT PART OF] ORDER BY", not an aggregate's own
    // "… FOR json_group_array(ORDER BY)".
    let sorted = plan.iter().any(|d| d.contains("TEMP B-TREE") && d.ends_with(" ORDER BY"));
    let own_conditions = q.rsplit_once(" WHERE ").map_or("", |(_, w)| w.split(" ORDER BY ").next().unwrap_or(w));
    let skips_only_open = |t: &str| {
        own_conditions
            .split(" AND ")
            .filter(|c| c.split(|ch: char| ch.is_whitespace() || ch == '(').any(|w| w.starts_with(&format!("{t}."))))
            .all(|c| c.trim().ends_with("IS NOT NULL"))
    };
    let paged_in_order = |t: &str| !sorted && q.contains(&format!("ORDER BY {t}.rowid")) && q.contains(" LIMIT ") && skips_only_open(t);
    let mut found = vec![];
    for detail in plan.iter() {
        // A SEARCH through an index SQLite builds for the statement reads the whole table
        // to build it, as a SCAN does.
        let rest = match (detail.strip_prefix("SCAN "), detail.strip_prefix("SEARCH ")) {
            (Some(rest), _) => rest,
            (None, Some(rest)) if rest.contains("AUTOMATIC") => rest,
            _ => continue,
        };
        let scanned = rest.split_whitespace().next().unwrap_or_default();
        let index = rest.split_once("INDEX ").map(|(_, i)| i.split_whitespace().next().unwrap_or_default());
        let partial = !rest.contains("AUTOMATIC")
            && index.is_some_and(|i| {
                db.scalar_i64("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ? AND sql LIKE '% WHERE %'", params![i])
                    .unwrap()
                    > 0
            });
        let in_order = rest == scanned && paged_in_order(scanned);
        if !partial && !in_order && names(q).iter().any(|name| name == scanned) {
            found.push(format!("{detail}\n    in {q}"));
        }
    }
    found
}

/// The statements the drive loop and the alarm run on every pass, with the plan SQLite picks
/// for each: none may read a whole table that grows with the town's history (beads, mail,
/// events, dependencies, reviews, escalations, convoys) — only what is open, due or running,
/// so a pass costs the same in a town with years of closed work. Plans do not depend on how
/// many rows there are (no ANALYZE), so a small town shows them.
#[test]
fn the_drive_loop_and_the_alarm_read_no_table_whole() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 5}, "refinery": {"auto_merge": true}}) });
    let s: Vec<Slung> = (0..3).map(|i| t.sling("r1", &format!("part {i}"))).collect();
    let input: CreateConvoyInput = serde_json::from_value(json!({"title": "release", "bead_ids": [s[0].bead.id, s[1].bead.id]})).unwrap();
    t.ok(TownOp::CreateConvoy { input });
    let agent = Actor::Agent(s[2].agent.id.clone());
    let input: EscalateInput = serde_json::from_value(json!({"message": "stuck", "severity": "medium"})).unwrap();
    t.call(TownOp::Escalate { rig_id: Some("r1".into()), input }, &agent).unwrap();
    let input = SendMailInput { to: s[2].agent.id.clone(), subject: "s".into(), body: "b".into(), priority: None };
    t.ok(TownOp::SendMail { input });
    t.merge(NOW, &s[0].agent.id);
    let later = TownStore::new(&t.db, NOW + 3_600_000);
    let (_, mut log) = t.db.recording(|| {
        later.handle(TownOp::ClaimWork, &Actor::System).unwrap();
        later.handle(TownOp::NextWake, &Actor::System).unwrap();
        let asked = later.handle(TownOp::WitnessMarks, &Actor::System).unwrap();
        let asked = serde_json::from_value(asked).unwrap();
        later.handle(TownOp::WitnessTick { container: Some(vec![]), asked }, &Actor::System).unwrap();
    });
    log.sort();
    log.dedup();

    // The check itself catches a whole-table read however the table is named.
    for q in [
        "SELECT COUNT(*) FROM mail AS m WHERE m.from_address = 'x'",
        "select 1 from beads b, reviews r where r.output = b.title",
        "UPDATE escalations SET category = 'x' WHERE category IS NULL",
        "SELECT 1 FROM agents a JOIN convoys c ON c.landed_at = a.name",
    ] {
        assert!(!whole_table_reads(&t.db, q).is_empty(), "not flagged: {q}");
    }
    // The passes did ask about each kind of open work (else this proves nothing about it).
    for table in ["mail", "reviews", "escalations", "convoys", "dispatch_queue"] {
        assert!(
            log.iter().any(|q| q.contains(&format!("FROM {table} ")) || q.contains(&format!("JOIN {table} "))),
            "no statement read {table}"
        );
    }
    assert!(log.iter().any(|q| q.contains("r.pr_review = 'approved' AND r.pr_checks")), "the auto-merge claim did not run");
    let whole: Vec<String> = log.iter().flat_map(|q| whole_table_reads(&t.db, q)).collect();
    assert!(whole.is_empty(), "{} whole-table reads:\n{}", whole.len(), whole.join("\n"));
}

/// A webhook names a pull request, a rework counts its bead's failed merges and carries its
/// pull request over, a repeated `gt done` finds the merge request it already made, a retry
/// resets the count: each finds its rows through an index, not by reading every merge request
/// the town has had.
#[test]
fn lookups_of_merge_requests_read_no_table_whole() {
    let t = T::pr_town();
    let (bead, agent, mr) = t.open_pr();
    let other = t.sling("r1", "doomed");
    let (_, log) = t.db.recording(|| {
        t.hook("pull_request_review", review_event(100, "changes_requested", "Rename it."), None).unwrap();
        let review = crate::forge::ReviewNote {
            id: 100,
            kind: crate::forge::ReviewKind::ChangesRequested,
            author: "al".into(),
            body: "Rename it.".into(),
            commit_sha: Some("h1".into()),
            url: None,
        };
        let seen = crate::forge::PrObservation {
            pr: crate::forge::PrSnapshot { number: 7, state: "open".into(), head_sha: "h1".into(), ..Default::default() },
            reviews: vec![review],
            ..Default::default()
        };
        t.at(NOW).handle(TownOp::PrObserved { review_id: mr.id.clone(), observation: Ok(seen) }, &Actor::System).unwrap();
        assert_eq!(t.review_of(&mr.id).status, "failed");
        t.claim(NOW + 1000);
        t.life(NOW + 1000, &agent, Lifecycle::Started { epoch: 2 });
        let mr2 = t.done(&agent);
        assert_eq!(mr2.pr.as_ref().map(|p| p.number), Some(7), "carried over");
        // The same `gt done` again (its answer lost): the same merge request.
        let input = DoneInput { branch: format!("gt/x/{bead}"), summary: None, pr_url: None };
        let again: ReviewEntry = serde_json::from_value(
            t.call(TownOp::Done { rig_id: "r1".into(), agent_id: agent.clone(), input }, &Actor::Agent(agent.clone())).unwrap(),
        )
        .unwrap();
        assert_eq!(again.id, mr2.id);
        // A failed bead retried by a person.
        t.status(&other.bead.id, BeadStatus::Failed).unwrap();
        t.status(&other.bead.id, BeadStatus::Open).unwrap();
        // Merged by hand while the rework's submission waits in the queue: found by number.
        let pr = json!({"number": 7, "merged": true, "merge_commit_sha": "m7"});
        let out = t.hook("pull_request", json!({"action": "closed", "repository": {"full_name": "acme/web"}, "pull_request": pr}), None);
        assert_eq!(out.unwrap()["merge_requests"][0]["merge_request"], json!(mr2.id));
    });
    for asked in [
        "lower(r.pr_repo) = lower(?2)",
        "r.agent_id = ? AND r.branch = ?",
        "p.source_bead_id = ?1",
        "r.source_bead_id = ? AND",
        "r.source_bead_id = ?1 AND",
    ] {
        assert!(log.iter().any(|q| q.contains(asked)), "no statement asked {asked}");
    }
    let whole: Vec<String> = log.iter().flat_map(|q| whole_table_reads(&t.db, q)).collect();
    assert!(whole.is_empty(), "{} whole-table reads:\n{}", whole.len(), whole.join("\n"));
}

/// What each request and each pass of the drive loop costs (in SQLite's steps) stays the same
/// as the town's history grows: the same ops, with answers of the same size, in a town of 120
/// beads and then after 2000 more (half of them closed), 300 mails sent and read, 200
/// escalations handled and a second rig's work. Plans alone miss a walk through an index over a growing set (every open bead by
/// status, every mail of an agent); this catches those.
#[test]
fn an_ops_cost_does_not_grow_with_the_towns_history() {
    let t = T::new();
    t.rig("r2", "api");
    let s = t.sling("r1", "hooked");
    let agent = s.agent.id.clone();
    let me = Actor::Agent(agent.clone());
    // One polecat per rig: r1 is full from here on, so what is slung waits in the queue. An
    // escalation is raised again once, after four hours, then stays open until acknowledged.
    t.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 1}, "escalations": {"max_reescalations": 1}}) });
    let queue = |rig: &str, title: &str| {
        let input: SlingInput = serde_json::from_value(json!({"title": title})).unwrap();
        t.ok(TownOp::Sling { rig_id: rig.into(), input })
    };
    let flip = t.bead("r1", "flip");
    for i in 0..120 {
        t.bead("r1", &format!("base {i}"));
    }
    let mail = |subject: &str| {
        let input = SendMailInput { to: agent.clone(), subject: subject.into(), body: "b".into(), priority: None };
        t.ok(TownOp::SendMail { input })
    };
    let check = || t.call(TownOp::CheckMail { rig_id: Some("r1".into()), agent_id: agent.clone() }, &me).unwrap();
    let escalate = |msg: &str| -> Bead {
        let input: EscalateInput = serde_json::from_value(json!({"message": msg, "severity": "low"})).unwrap();
        serde_json::from_value(t.ok(TownOp::Escalate { rig_id: Some("r1".into()), input })).unwrap()
    };
    escalate("still open");
    type Op<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let ops: Vec<Op> = vec![
        ("create bead", Box::new(|| drop(t.bead("r1", "c")))),
        ("get bead", Box::new(|| drop(t.get_bead(&flip.id)))),
        ("status to in_progress", Box::new(|| drop(t.status(&flip.id, BeadStatus::InProgress).unwrap()))),
        ("status to open", Box::new(|| drop(t.status(&flip.id, BeadStatus::Open).unwrap()))),
        ("send mail", Box::new(|| drop(mail("x")))),
        ("check mail", Box::new(|| assert_eq!(check().as_array().unwrap().len(), 1))),
        ("sling (queued)", Box::new(|| drop(queue("r1", "y")))),
        ("claim", Box::new(|| drop(t.ok(TownOp::ClaimWork)))),
        ("next wake", Box::new(|| drop(t.ok(TownOp::NextWake)))),
        ("prime", Box::new(|| drop(t.call(TownOp::Prime { rig_id: Some("r1".into()), agent_id: agent.clone() }, &me).unwrap()))),
        ("rig page", Box::new(|| drop(t.ok(TownOp::ListBeads { rig_id: Some("r1".into()), filter: BeadFilter::default() })))),
        (
            "rig page, open",
            Box::new(|| {
                let filter = BeadFilter { status: Some(BeadStatus::Open), limit: Some(50), ..Default::default() };
                drop(t.ok(TownOp::ListBeads { rig_id: Some("r1".into()), filter }))
            }),
        ),
        (
            "rig page, in review (none)",
            Box::new(|| {
                let filter = BeadFilter { status: Some(BeadStatus::InReview), ..Default::default() };
                assert_eq!(t.ok(TownOp::ListBeads { rig_id: Some("r1".into()), filter }), json!([]));
            }),
        ),
        ("town events", Box::new(|| drop(t.ok(TownOp::ListEvents { filter: EventFilter::default() })))),
        (
            "open escalations",
            Box::new(|| {
                let open = t.ok(TownOp::ListEscalations { acknowledged: Some(false), limit: Some(1) });
                assert_eq!(open.as_array().unwrap().len(), 1);
            }),
        ),
        (
            "witness",
            Box::new(|| {
                let asked = serde_json::from_value(t.ok(TownOp::WitnessMarks)).unwrap();
                drop(t.ok(TownOp::WitnessTick { container: Some(vec![]), asked }))
            }),
        ),
    ];
    let costs = || -> Vec<u64> { ops.iter().map(|(_, op)| t.db.steps(op).1).collect() };
    let small = costs();
    for i in 0..2000 {
        let b = t.bead(if i % 4 == 0 { "r2" } else { "r1" }, &format!("history {i}"));
        if i % 2 == 0 {
            t.status(&b.id, BeadStatus::Closed).unwrap();
        }
    }
    for i in 0..300 {
        mail(&format!("old {i}"));
    }
    check();
    check();
    for i in 0..200 {
        let e = escalate(&format!("handled {i}"));
        t.ok(TownOp::AcknowledgeEscalation { escalation_id: e.id });
    }
    // Escalations nobody acknowledged, raised a day ago and again since: done re-escalating,
    // still open, and older than any that is due.
    const HOUR: i64 = 3_600_000;
    for i in 0..300 {
        let input: EscalateInput = serde_json::from_value(json!({"message": format!("ignored {i}"), "severity": "low"})).unwrap();
        t.at(NOW - 24 * HOUR).handle(TownOp::Escalate { rig_id: Some("r1".into()), input }, &user()).unwrap();
    }
    t.claim(NOW - 19 * HOUR);
    assert_eq!(t.count("SELECT COUNT(*) FROM escalations WHERE acknowledged_at IS NULL AND re_escalation_count = 1"), 300);
    // A backlog behind two full rigs (r2's first bead takes its one polecat).
    for i in 0..400 {
        queue(if i % 4 == 0 { "r2" } else { "r1" }, &format!("waiting {i}"));
    }
    // Work in flight in 50 convoys of 10 beads, fed to the queue by a claim.
    for i in 0..50 {
        let ids: Vec<String> = (0..10).map(|j| t.bead("r1", &format!("tracked {i} {j}")).id).collect();
        let input: CreateConvoyInput = serde_json::from_value(json!({"title": format!("in flight {i}"), "bead_ids": ids})).unwrap();
        t.ok(TownOp::CreateConvoy { input });
    }
    t.claim(NOW);
    assert_eq!(t.count("SELECT COUNT(*) FROM convoys WHERE landed_at IS NULL"), 50);
    assert!(t.count("SELECT COUNT(*) FROM dispatch_queue") >= 800, "the convoys' beads wait in the queue");
    let big = costs();
    let grown: Vec<String> = ops
        .iter()
        .zip(small.iter().zip(&big))
        .filter(|(_, (s, b))| **b > **s + **s / 4 + 60)
        .map(|((name, _), (s, b))| format!("{name}: {s} steps, then {b}"))
        .collect();
    assert!(grown.is_empty(), "ops that cost more in the older town:\n{}", grown.join("\n"));
}

/// The person's lists — the town's mail, the merge queue, convoys, escalations (all, the
/// acknowledged, the open), an agent's whole mailbox — are the newest `limit`, newest first,
/// and cost what they return: a page of two costs the same after the town made 80 more merge
/// requests, 60 more convoys, 300 more mails and 150 more escalations, and no statement reads a
/// whole history table (each used to sort all of it, and the queue and the convoys then ran
/// statements per row).
#[test]
fn the_towns_lists_cost_what_they_return() {
    let t = T::new();
    // Mail goes to a polecat of its own rig (an escalation also mails the mayor).
    t.rig("r2", "api");
    let to = t.sling("r2", "inbox").agent.id;
    // Every write a second after the last, as in a real town.
    let clock = std::cell::Cell::new(NOW);
    let tick = || {
        clock.set(clock.get() + 1000);
        t.at(clock.get())
    };
    let merge_request = || -> String {
        let s = t.sling("r1", "work");
        let input = DoneInput { branch: format!("gt/x/{}", s.bead.id), summary: None, pr_url: None };
        let op = TownOp::Done { rig_id: "r1".into(), agent_id: s.agent.id.clone(), input };
        let mr: ReviewEntry = serde_json::from_value(tick().handle(op, &Actor::Agent(s.agent.id.clone())).unwrap()).unwrap();
        mr.id
    };
    // A landed convoy's only bead is closed.
    let convoy = |land: bool| -> String {
        let b = t.bead("r1", "tracked");
        let input: CreateConvoyInput = serde_json::from_value(json!({"title": "c", "bead_ids": [b.id]})).unwrap();
        let c = serde_json::from_value::<Convoy>(tick().handle(TownOp::CreateConvoy { input }, &user()).unwrap()).unwrap().id;
        if land {
            t.status(&b.id, BeadStatus::Closed).unwrap();
            assert_eq!(t.convoy(&c).status, "landed");
        }
        c
    };
    let mail = |read: bool| -> String {
        let input = SendMailInput { to: to.clone(), subject: "s".into(), body: "b".into(), priority: None };
        let m: Mail = serde_json::from_value(tick().handle(TownOp::SendMail { input }, &user()).unwrap()).unwrap();
        if read {
            tick()
                .handle(TownOp::ReadMail { rig_id: None, agent_id: to.clone(), mail_id: m.id.clone() }, &Actor::Agent(to.clone()))
                .unwrap();
        }
        m.id
    };
    let escalation = |acknowledge: bool| -> String {
        let input: EscalateInput = serde_json::from_value(json!({"message": "m", "severity": "low"})).unwrap();
        let e: Bead =
            serde_json::from_value(tick().handle(TownOp::Escalate { rig_id: Some("r1".into()), input }, &user()).unwrap()).unwrap();
        if acknowledge {
            tick().handle(TownOp::AcknowledgeEscalation { escalation_id: e.id.clone() }, &user()).unwrap();
        }
        e.id
    };
    // The ids a list answers, in its order.
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let ids = |v: Value| -> Vec<String> { v.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect() };
    let limit = Some(2);
    type List<'a> = (&'static str, Box<dyn Fn() -> TownOp + 'a>);
    let lists: Vec<List> = vec![
        ("town mail", Box::new(|| TownOp::ListTownMail { limit })),
        ("merge queue", Box::new(|| TownOp::ListMergeQueue { limit })),
        ("convoys", Box::new(|| TownOp::ListConvoys { limit })),
        ("escalations", Box::new(|| TownOp::ListEscalations { acknowledged: None, limit })),
        ("acknowledged escalations", Box::new(|| TownOp::ListEscalations { acknowledged: Some(true), limit })),
        ("open escalations", Box::new(|| TownOp::ListEscalations { acknowledged: Some(false), limit })),
        ("a mailbox", Box::new(|| TownOp::ListMail { rig_id: None, agent_id: to.clone(), unread_only: false })),
    ];
    // What was made, oldest first: read mail, merge requests, landed convoys, acknowledged
    // escalations; then one of each still open (and a mail read only at the end).
    let mut made = vec![vec![]; 4];
    let read_last = mail(false);
    for _ in 0..3 {
        made[0].push(mail(true));
        made[1].push(merge_request());
        made[2].push(convoy(true));
        made[3].push(escalation(true));
    }
    let (unread, open, open_convoy) = (mail(false), escalation(false), convoy(false));
    let costs = || -> Vec<(Vec<String>, u64)> { lists.iter().map(|(_, op)| t.db.steps(|| ids(t.call(op(), &user()).unwrap()))).collect() };
    let small = costs();
    // Newest first, two of each (the town's mail also holds what escalations sent the mayor:
    // the answer is the newest as the bead's time says); the open convoy comes before the
    // landed ones; the mailbox starts with its unread mail, oldest first, then the most
    // recently read; the open escalation alone is open.
    let newest_mail = || -> Vec<String> {
        let q = "SELECT m.bead_id AS id FROM mail m JOIN beads b ON b.bead_id = m.bead_id ORDER BY b.created_at DESC, m.rowid DESC LIMIT 2";
        t.db.query::<Id>(q, params![]).unwrap().into_iter().map(|r| r.id).collect()
    };
    let newest = |v: &[String]| -> Vec<String> { v.iter().rev().take(2).cloned().collect() };
    let want = |made: &[Vec<String>]| {
        vec![
            newest_mail(),
            newest(&made[1]),
            [vec![open_convoy.clone()], newest(&made[2])[..1].to_vec()].concat(),
            newest(&[&made[3][..], std::slice::from_ref(&open)].concat()),
            newest(&made[3]),
            vec![open.clone()],
        ]
    };
    let got: Vec<Vec<String>> = small.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(got[..6], want(&made)[..]);
    assert_eq!(got[6][..2], [read_last.clone(), unread.clone()]);
    assert_eq!(got[6][2..5], made[0].iter().rev().cloned().collect::<Vec<_>>()[..]);
    // Years of history later (80 merge requests, 60 convoys, 300 mails, 150 escalations).
    let mut later = made.clone();
    let mut full_mailbox = 0;
    for i in 0..300 {
        if i == 200 {
            // The mailbox answers a whole page (200) from here on: its cost is compared with
            // this one's.
            full_mailbox = t.db.steps(|| ids(t.call(lists[6].1(), &user()).unwrap())).1;
        }
        later[0].push(mail(true));
        if i < 80 {
            later[1].push(merge_request());
        }
        if i < 60 {
            later[2].push(convoy(true));
        }
        if i < 150 {
            later[3].push(escalation(true));
        }
    }
    // The oldest mail is read last: the most recently read, it comes straight after the unread.
    let op = TownOp::ReadMail { rig_id: None, agent_id: to.clone(), mail_id: read_last.clone() };
    tick().handle(op, &Actor::Agent(to.clone())).unwrap();
    let (big, log) = t.db.recording(costs);
    let got: Vec<Vec<String>> = big.iter().map(|(v, _)| v.clone()).collect();
    // The unread mail, the open escalation and the open convoy are older than all of it now.
    assert_eq!(got[..3], want(&later)[..3]);
    assert_eq!(got[3], newest(&later[3]));
    assert_eq!(got[4..6], want(&later)[4..6]);
    assert_eq!(got[6].len(), 200);
    assert_eq!(got[6][..2], [unread.clone(), read_last.clone()]);
    assert_eq!(got[6][2..4], newest(&later[0])[..]);
    let mut small: Vec<u64> = small.iter().map(|(_, s)| *s).collect();
    small[6] = full_mailbox;
    let grown: Vec<String> = lists
        .iter()
        .zip(small.iter().zip(&big))
        .filter(|(_, (s, (_, b)))| *b > **s + **s / 4 + 60)
        .map(|((name, _), (s, (_, b)))| format!("{name}: {s} steps, then {b}"))
        .collect();
    assert!(grown.is_empty(), "lists that cost more in the older town:\n{}", grown.join("\n"));
    let whole: Vec<String> = log.iter().flat_map(|q| whole_table_reads(&t.db, q)).collect();
    assert!(whole.is_empty(), "{} whole-table reads:\n{}", whole.len(), whole.join("\n"));
    // A page's size is checked.
    for bad in [0, 501] {
        let e = t.err(TownOp::ListTownMail { limit: Some(bad) }, &user());
        assert!(matches!(&e, CoreError::BadRequest { .. }) && e.to_string().starts_with("limit: must be between 1 and 500"), "{e:?}");
    }
}

/// Every read a person, the mayor or an agent makes (each `Query` op the routes send, with the
/// filters they take; the drive loop's are in `the_drive_loop_and_the_alarm_read_no_table_whole`)
/// in a town with some of everything: none reads a whole table that grows with the town's
/// history.
#[test]
fn every_read_reads_no_table_whole() {
    let t = T::new();
    t.ok(TownOp::PatchConfig { patch: json!({"capacity": {"max_polecats_per_rig": 5}}) });
    let s: Vec<Slung> = (0..3).map(|i| t.sling("r1", &format!("part {i}"))).collect();
    let input: CreateConvoyInput = serde_json::from_value(json!({"title": "release", "bead_ids": [s[0].bead.id, s[1].bead.id]})).unwrap();
    let convoy: Convoy = serde_json::from_value(t.ok(TownOp::CreateConvoy { input })).unwrap();
    let agent = s[2].agent.id.clone();
    let me = Actor::Agent(agent.clone());
    let input: EscalateInput = serde_json::from_value(json!({"message": "stuck", "severity": "medium"})).unwrap();
    t.call(TownOp::Escalate { rig_id: Some("r1".into()), input }, &me).unwrap();
    let input = SendMailInput { to: agent.clone(), subject: "s".into(), body: "b".into(), priority: None };
    t.ok(TownOp::SendMail { input });
    t.merge(NOW, &s[0].agent.id);
    let b = t.bead("r1", "with steps");
    let input: MoleculeInput = serde_json::from_value(json!({"formula": "bugfix"})).unwrap();
    t.ok(TownOp::CreateMolecule { rig_id: Some("r1".into()), bead_id: b.id.clone(), input });
    let r1 = || Some("r1".to_string());
    let bead = s[1].bead.id.clone();
    let mayor = t.ok(TownOp::EnsureMayor)["agent"]["id"].as_str().unwrap().to_string();
    let statuses = [BeadStatus::Open, BeadStatus::InProgress, BeadStatus::InReview, BeadStatus::Closed, BeadStatus::Failed];
    let mut reads = vec![
        TownOp::GetTown,
        TownOp::ListAgentIds,
        TownOp::GetRig { rig_id: "r1".into() },
        TownOp::ListRigs,
        TownOp::GetConfig,
        TownOp::GetBead { rig_id: r1(), bead_id: bead.clone() },
        TownOp::ListDependencies { rig_id: r1(), bead_id: bead.clone() },
        TownOp::ListAgents { filter: AgentFilter::default() },
        TownOp::ListAgents { filter: AgentFilter { rig_id: r1(), ..Default::default() } },
        TownOp::GetAgent { rig_id: r1(), agent_id: agent.clone() },
        TownOp::Prime { rig_id: r1(), agent_id: agent.clone() },
        TownOp::ListMail { rig_id: r1(), agent_id: agent.clone(), unread_only: false },
        TownOp::ListMail { rig_id: r1(), agent_id: agent.clone(), unread_only: true },
        TownOp::ListMail { rig_id: None, agent_id: mayor.clone(), unread_only: false },
        TownOp::DonePushJob { rig_id: "r1".into(), agent_id: agent.clone(), branch: format!("gt/x/{}", s[2].bead.id) },
        TownOp::WitnessNeedsContainer,
        TownOp::StreamEvents { after_id: 0, limit: 100 },
        TownOp::LastEventId,
        TownOp::ListEscalations { acknowledged: None, limit: None },
        TownOp::ListEscalations { acknowledged: Some(true), limit: None },
        TownOp::ListEscalations { acknowledged: Some(false), limit: None },
        TownOp::MayorStatus,
        TownOp::ListConvoys { limit: None },
        TownOp::GetConvoy { convoy_id: convoy.id.clone() },
        TownOp::GetMolecule { rig_id: r1(), bead_id: b.id.clone() },
        TownOp::ListFormulas,
        TownOp::ListMergeQueue { limit: None },
        TownOp::ListTownMail { limit: None },
        TownOp::ListEvents { filter: EventFilter::default() },
        TownOp::ListEvents { filter: EventFilter { rig_id: r1(), ..Default::default() } },
        TownOp::ListEvents { filter: EventFilter { bead_id: Some(bead.clone()), ..Default::default() } },
        TownOp::ListEvents { filter: EventFilter { after_id: Some(3), limit: Some(5), ..Default::default() } },
        TownOp::ListEvents { filter: EventFilter { since: Some(crate::time::iso(NOW)), ..Default::default() } },
        TownOp::ListEvents { filter: EventFilter { rig_id: r1(), since: Some(crate::time::iso(NOW)), ..Default::default() } },
        TownOp::ListEvents {
            filter: EventFilter { bead_id: Some(bead.clone()), since: Some(crate::time::iso(NOW)), ..Default::default() },
        },
        TownOp::ListBeads { rig_id: r1(), filter: BeadFilter::default() },
        TownOp::ListBeads { rig_id: r1(), filter: BeadFilter { assignee_agent_id: Some(agent.clone()), ..Default::default() } },
        TownOp::ListBeads { rig_id: r1(), filter: BeadFilter { parent_id: Some(b.id.clone()), ..Default::default() } },
        TownOp::ListBeads { rig_id: r1(), filter: BeadFilter { bead_type: Some(BeadType::MergeRequest), ..Default::default() } },
    ];
    for status in statuses {
        reads.push(TownOp::ListBeads { rig_id: r1(), filter: BeadFilter { status: Some(status), ..Default::default() } });
    }
    let (_, mut log) = t.db.recording(|| {
        for op in reads {
            assert_eq!(op.kind(), OpKind::Query, "{op:?}");
            let name = format!("{op:?}");
            let actor = if matches!(op, TownOp::DonePushJob { .. }) { me.clone() } else { user() };
            t.call(op, &actor).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    });
    log.sort();
    log.dedup();
    let whole: Vec<String> = log.iter().flat_map(|q| whole_table_reads(&t.db, q)).collect();
    assert!(whole.is_empty(), "{} whole-table reads:\n{}", whole.len(), whole.join("\n"));
}
