//! The witness: the town's deterministic health check. [`reconcile`] is a pure function from a
//! snapshot of the town (and, while agents run, the container's view of its processes) and the
//! time to the actions that restore health. It decides; `town::witness` loads the snapshot and
//! applies the actions; the TownDO alarm calls both. No model is asked anything here.

use serde::{Deserialize, Serialize};

use crate::config::WitnessConfig;
use crate::model::{AgentRole, AgentStatus, BeadStatus};
use crate::time::Millis;

/// One agent as the witness sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub role: AgentRole,
    pub status: AgentStatus,
    /// The hooked bead and its status.
    pub hook: Option<(String, BeadStatus)>,
    pub spawn_epoch: i64,
    /// The run that reported it started (`== spawn_epoch` once the current run is up).
    pub running_epoch: Option<i64>,
    pub last_activity: Option<Millis>,
    pub stalled_at: Option<Millis>,
    pub stall_escalated: bool,
    /// Terminal output bytes the witness saw at its last look (more now = activity).
    pub output_seen: i64,
    pub keep_alive: bool,
}

/// One process as the container reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunView {
    pub agent_id: String,
    pub epoch: i64,
    pub running: bool,
    /// Grows whenever the terminal's screen changed, counters and spinners aside (an agent that
    /// only animates is not making progress).
    pub activity: i64,
    /// The last lines of its terminal, as plain text (quoted when it is escalated).
    #[serde(default)]
    pub screen: String,
}

/// A merge the refinery started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MergeView {
    pub id: String,
    pub started_at: Option<Millis>,
    /// Claimed by an earlier instance of the town's DO: nobody awaits its answer any more.
    #[serde(default)]
    pub orphaned: bool,
}

/// What the town said about one agent's run just before the container was asked for its list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunMark {
    pub agent_id: String,
    pub spawn_epoch: i64,
    pub running_epoch: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Snapshot {
    pub agents: Vec<AgentView>,
    /// `in_progress` work beads that no agent holds.
    pub orphans: Vec<String>,
    pub running_merges: Vec<MergeView>,
    /// The container's processes; `None` when it could not be reached (or was not asked because
    /// nothing runs).
    pub container: Option<Vec<RunView>>,
    /// The agents' runs as they stood before the container was asked (`None`: not recorded).
    /// The container's list is compared only with runs that have not changed since: a run
    /// started or reported in while the list was on its way is judged at the next look.
    #[serde(default)]
    pub asked: Option<Vec<RunMark>>,
    /// The container has no room for another run: hooked work waiting for a slot is not idle.
    #[serde(default)]
    pub container_full: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The terminal printed since the last look: the agent is alive (clears a stall).
    Activity { agent_id: String, activity: i64 },
    /// The run is gone (process or container): start it again; the hook stays.
    Restart { agent_id: String, reason: String },
    /// The run is gone and its hooked bead is finished: free the agent, never re-dispatch.
    Release { agent_id: String },
    /// Silent while working: mark stalled and nudge it.
    Stalled { agent_id: String, idle_secs: i64 },
    /// Still silent after the nudge: tell a person.
    EscalateStall { agent_id: String, idle_secs: i64 },
    /// Work on a hook with nobody running it for too long: re-dispatch and record it.
    Gupp { agent_id: String, bead_id: String, idle_secs: i64 },
    /// `in_progress` with no holder: back to `open` and slung again.
    Reopen { bead_id: String },
    /// Running past the refinery's timeout, or its answer lost with an earlier instance of the
    /// town: back to the merge queue.
    RequeueMerge { mr_id: String, reason: String },
}

/// The thresholds in milliseconds, with the refinery's merge timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub stall_after: Millis,
    pub escalate_stall_after: Millis,
    pub gupp_after: Millis,
    pub start_timeout: Millis,
    pub merge_timeout: Millis,
}

impl Limits {
    pub fn new(w: &WitnessConfig, merge_timeout_ms: Millis) -> Self {
        let ms = |s: u32| s as Millis * 1000;
        Limits {
            stall_after: ms(w.stall_after_secs),
            escalate_stall_after: ms(w.escalate_stall_after_secs),
            gupp_after: ms(w.gupp_after_secs),
            start_timeout: ms(w.start_timeout_secs),
            merge_timeout: merge_timeout_ms,
        }
    }
}

fn is_running(status: AgentStatus) -> bool {
    matches!(status, AgentStatus::Working | AgentStatus::Stalled)
}

/// Whether the container must be asked before reconciling: only while some agent is supposed to
/// run. An idle town makes no container call (and so never wakes a sleeping container).
pub fn needs_container(agents: &[AgentView]) -> bool {
    agents.iter().any(|a| is_running(a.status))
}

/// The runs to compare the container's list with, recorded just before asking for it.
pub fn marks(agents: &[AgentView]) -> Vec<RunMark> {
    agents
        .iter()
        .filter(|a| is_running(a.status))
        .map(|a| RunMark { agent_id: a.id.clone(), spawn_epoch: a.spawn_epoch, running_epoch: a.running_epoch })
        .collect()
}

/// The actions that bring the town back to health at `now`.
pub fn reconcile(s: &Snapshot, limits: &Limits, now: Millis) -> Vec<Action> {
    let mut out = vec![];
    for a in &s.agents {
        let id = a.id.clone();
        let hook_open = a.hook.as_ref().is_some_and(|(_, st)| !st.is_terminal());
        let since = |t: Option<Millis>| now - t.unwrap_or(now);
        if is_running(a.status) {
            let moved = s.asked.as_ref().is_some_and(|marks| {
                !marks.iter().any(|m| m.agent_id == a.id && m.spawn_epoch == a.spawn_epoch && m.running_epoch == a.running_epoch)
            });
            if moved && s.container.is_some() {
                // The list predates this run's latest news: judging it by that list would
                // restart a live run.
                continue;
            }
            let started = a.running_epoch == Some(a.spawn_epoch);
            let run = s.container.as_ref().map(|runs| runs.iter().find(|r| r.agent_id == a.id && r.epoch == a.spawn_epoch && r.running));
            let gone = match run {
                Some(Some(_)) => false,
                // Not in the container's list (or the container is unreachable): gone once it
                // had started, or once it has had long enough to start.
                _ => started || since(a.last_activity) >= limits.start_timeout,
            };
            if gone {
                let why = match (&s.container, started) {
                    (None, _) => "the container is gone",
                    (Some(_), true) => "its process is gone",
                    (Some(_), false) => "its run never started",
                };
                out.push(if hook_open || (a.hook.is_none() && a.keep_alive) {
                    Action::Restart { agent_id: id, reason: why.to_string() }
                } else {
                    Action::Release { agent_id: id }
                });
                continue;
            }
            // New output is a sign of work — but not once the agent was nudged: the terminal
            // echoes the nudge itself, so only a `gt` call (any request) clears a stall.
            if let (Some(Some(r)), AgentStatus::Working) = (run, a.status) {
                if r.activity != a.output_seen {
                    out.push(Action::Activity { agent_id: id.clone(), activity: r.activity });
                    continue;
                }
            }
            // Only agents with work are expected to keep busy; the mayor waits for people.
            if !hook_open {
                continue;
            }
            let idle = since(a.last_activity);
            match a.status {
                AgentStatus::Working if idle >= limits.stall_after => {
                    out.push(Action::Stalled { agent_id: id, idle_secs: idle / 1000 });
                }
                AgentStatus::Stalled if !a.stall_escalated && since(a.stalled_at) >= limits.escalate_stall_after => {
                    out.push(Action::EscalateStall { agent_id: id, idle_secs: idle / 1000 });
                }
                _ => {}
            }
        } else if let (Some((bead, _)), true) = (&a.hook, hook_open) {
            // Hooked, nobody running it. The dispatcher normally starts it at once; this catches
            // whatever kept it from doing so (a lost alarm, a dead agent).
            let idle = since(a.last_activity);
            if idle >= limits.gupp_after && !s.container_full {
                out.push(Action::Gupp { agent_id: id, bead_id: bead.clone(), idle_secs: idle / 1000 });
            }
        }
    }
    out.extend(s.orphans.iter().map(|b| Action::Reopen { bead_id: b.clone() }));
    for m in &s.running_merges {
        if m.orphaned {
            out.push(Action::RequeueMerge { mr_id: m.id.clone(), reason: "the town restarted while it ran".into() });
        } else if m.started_at.is_none_or(|t| now - t > limits.merge_timeout) {
            out.push(Action::RequeueMerge { mr_id: m.id.clone(), reason: "the merge ran past its timeout".into() });
        }
    }
    out
}

/// When the witness should look next: every tick while anything is active, never when idle.
pub fn next_look(s: &Snapshot, limits: &Limits, tick: Millis, now: Millis) -> Option<Millis> {
    let mut times = vec![];
    if needs_container(&s.agents) || !s.running_merges.is_empty() || !s.orphans.is_empty() {
        times.push(now + tick);
    }
    for a in &s.agents {
        if !is_running(a.status) && a.hook.as_ref().is_some_and(|(_, st)| !st.is_terminal()) {
            times.push(a.last_activity.unwrap_or(now) + limits.gupp_after);
        }
    }
    times.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;
    const T0: Millis = 1_000_000_000;

    fn limits() -> Limits {
        Limits::new(&WitnessConfig::default(), 10 * MIN)
    }

    fn polecat(id: &str, status: AgentStatus) -> AgentView {
        AgentView {
            id: id.into(),
            name: id.into(),
            role: AgentRole::Polecat,
            status,
            hook: Some((format!("b-{id}"), BeadStatus::InProgress)),
            spawn_epoch: 3,
            running_epoch: Some(3),
            last_activity: Some(T0),
            stalled_at: None,
            stall_escalated: false,
            output_seen: 100,
            keep_alive: false,
        }
    }

    fn run(id: &str, epoch: i64, output: i64) -> RunView {
        RunView { agent_id: id.into(), epoch, running: true, activity: output, screen: String::new() }
    }

    fn snap(agents: Vec<AgentView>, runs: Option<Vec<RunView>>) -> Snapshot {
        Snapshot { agents, container: runs, ..Default::default() }
    }

    #[test]
    fn a_healthy_running_agent_needs_nothing() {
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![run("a", 3, 100)]));
        assert_eq!(reconcile(&s, &limits(), T0 + MIN), vec![]);
    }

    #[test]
    fn a_dead_process_is_restarted_and_keeps_its_hook() {
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![]));
        assert_eq!(reconcile(&s, &limits(), T0 + 1), vec![Action::Restart { agent_id: "a".into(), reason: "its process is gone".into() }]);
        // An older run still listed does not count as this run.
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![run("a", 2, 100)]));
        assert!(matches!(reconcile(&s, &limits(), T0 + 1)[..], [Action::Restart { .. }]));
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![RunView { running: false, ..run("a", 3, 100) }]));
        assert!(matches!(reconcile(&s, &limits(), T0 + 1)[..], [Action::Restart { .. }]));
    }

    /// The 200-bead run's false restarts: the list was asked for while a run was starting and
    /// its `started` report landed before the list was judged.
    #[test]
    fn a_list_older_than_the_run_is_not_held_against_it() {
        let a = polecat("a", AgentStatus::Working);
        let before = RunMark { agent_id: "a".into(), spawn_epoch: 3, running_epoch: None };
        let s = Snapshot { asked: Some(vec![before.clone()]), ..snap(vec![a.clone()], Some(vec![])) };
        assert_eq!(reconcile(&s, &limits(), T0 + 1), vec![]);
        // A run claimed after the marks (no mark at all) is not judged either.
        let s = Snapshot { asked: Some(vec![]), ..snap(vec![a.clone()], Some(vec![])) };
        assert_eq!(reconcile(&s, &limits(), T0 + 1), vec![]);
        // Unchanged since the marks: the list is trusted and the gone run restarted.
        let s = Snapshot { asked: Some(marks(std::slice::from_ref(&a))), ..snap(vec![a.clone()], Some(vec![])) };
        assert!(matches!(reconcile(&s, &limits(), T0 + 1)[..], [Action::Restart { .. }]));
        // No list (container unreachable): the marks do not matter.
        let s = Snapshot { asked: Some(vec![before]), ..snap(vec![a], None) };
        assert!(matches!(reconcile(&s, &limits(), T0 + 1)[..], [Action::Restart { .. }]));
    }

    #[test]
    fn work_waiting_for_a_full_container_is_not_a_gupp_violation() {
        let mut a = polecat("a", AgentStatus::Idle);
        a.running_epoch = None;
        let late = T0 + limits().gupp_after + 1;
        assert!(matches!(reconcile(&snap(vec![a.clone()], None), &limits(), late)[..], [Action::Gupp { .. }]));
        let s = Snapshot { container_full: true, ..snap(vec![a], None) };
        assert_eq!(reconcile(&s, &limits(), late), vec![]);
    }

    #[test]
    fn a_gone_container_restarts_what_had_started() {
        let s = snap(vec![polecat("a", AgentStatus::Working)], None);
        assert_eq!(
            reconcile(&s, &limits(), T0 + 1),
            vec![Action::Restart { agent_id: "a".into(), reason: "the container is gone".into() }]
        );
    }

    #[test]
    fn a_run_still_starting_gets_its_start_timeout() {
        let mut a = polecat("a", AgentStatus::Working);
        a.running_epoch = Some(2);
        let s = snap(vec![a], Some(vec![]));
        assert_eq!(reconcile(&s, &limits(), T0 + MIN), vec![]);
        assert_eq!(
            reconcile(&s, &limits(), T0 + 2 * MIN),
            vec![Action::Restart { agent_id: "a".into(), reason: "its run never started".into() }]
        );
    }

    #[test]
    fn a_closed_bead_is_never_redispatched() {
        let mut a = polecat("a", AgentStatus::Working);
        a.hook = Some(("b".into(), BeadStatus::Closed));
        let s = snap(vec![a.clone()], Some(vec![]));
        assert_eq!(reconcile(&s, &limits(), T0 + 1), vec![Action::Release { agent_id: "a".into() }]);
        // Idle with a finished bead on the hook: no GUPP either.
        a.status = AgentStatus::Idle;
        assert_eq!(reconcile(&snap(vec![a], None), &limits(), T0 + 99 * MIN), vec![]);
    }

    #[test]
    fn the_kept_alive_mayor_is_restarted_but_never_stalls() {
        let mut m = polecat("m", AgentStatus::Working);
        m.role = AgentRole::Mayor;
        m.hook = None;
        m.keep_alive = true;
        let s = snap(vec![m.clone()], Some(vec![run("m", 3, 100)]));
        assert_eq!(reconcile(&s, &limits(), T0 + 99 * MIN), vec![]);
        let s = snap(vec![m], Some(vec![]));
        assert!(matches!(reconcile(&s, &limits(), T0)[..], [Action::Restart { .. }]));
    }

    #[test]
    fn silence_stalls_then_escalates_once() {
        let l = limits();
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![run("a", 3, 100)]));
        assert_eq!(reconcile(&s, &l, T0 + l.stall_after - 1), vec![]);
        assert_eq!(reconcile(&s, &l, T0 + l.stall_after), vec![Action::Stalled { agent_id: "a".into(), idle_secs: 600 }]);
        let mut a = polecat("a", AgentStatus::Stalled);
        a.stalled_at = Some(T0 + l.stall_after);
        let s = snap(vec![a.clone()], Some(vec![run("a", 3, 100)]));
        assert_eq!(reconcile(&s, &l, T0 + l.stall_after + l.escalate_stall_after - 1), vec![]);
        assert_eq!(
            reconcile(&s, &l, T0 + l.stall_after + l.escalate_stall_after),
            vec![Action::EscalateStall { agent_id: "a".into(), idle_secs: 1200 }]
        );
        a.stall_escalated = true;
        assert_eq!(reconcile(&snap(vec![a], Some(vec![run("a", 3, 100)])), &l, T0 + 99 * MIN), vec![]);
    }

    #[test]
    fn terminal_output_counts_as_activity_until_the_nudge() {
        let s = snap(vec![polecat("a", AgentStatus::Working)], Some(vec![run("a", 3, 250)]));
        assert_eq!(reconcile(&s, &limits(), T0 + 99 * MIN), vec![Action::Activity { agent_id: "a".into(), activity: 250 }]);
        // Stalled: the echo of the nudge is output too, so output no longer clears it.
        let mut a = polecat("a", AgentStatus::Stalled);
        a.stalled_at = Some(T0 + 10 * MIN);
        let s = snap(vec![a], Some(vec![run("a", 3, 250)]));
        assert!(matches!(reconcile(&s, &limits(), T0 + 20 * MIN)[..], [Action::EscalateStall { .. }]));
    }

    #[test]
    fn gupp_after_thirty_minutes_on_an_unworked_hook() {
        let l = limits();
        let a = polecat("a", AgentStatus::Idle);
        let s = snap(vec![a], None);
        assert_eq!(reconcile(&s, &l, T0 + 30 * MIN - 1), vec![]);
        assert_eq!(reconcile(&s, &l, T0 + 30 * MIN), vec![Action::Gupp { agent_id: "a".into(), bead_id: "b-a".into(), idle_secs: 1800 }]);
        assert_eq!(next_look(&s, &l, 30_000, T0), Some(T0 + 30 * MIN));
    }

    #[test]
    fn orphans_reopen_and_stuck_merges_requeue() {
        let l = limits();
        let s = Snapshot {
            orphans: vec!["gt-1".into()],
            running_merges: vec![
                MergeView { id: "mr-1".into(), started_at: Some(T0), orphaned: false },
                MergeView { id: "mr-2".into(), started_at: Some(T0 + MIN), orphaned: false },
            ],
            ..Default::default()
        };
        assert_eq!(
            reconcile(&s, &l, T0 + l.merge_timeout + 1),
            vec![
                Action::Reopen { bead_id: "gt-1".into() },
                Action::RequeueMerge { mr_id: "mr-1".into(), reason: "the merge ran past its timeout".into() }
            ]
        );
    }

    #[test]
    fn an_idle_town_is_not_looked_at_and_asks_no_container() {
        let mut idle = polecat("a", AgentStatus::Idle);
        idle.hook = None;
        let s = snap(vec![idle], None);
        assert!(!needs_container(&s.agents));
        assert_eq!(next_look(&s, &limits(), 30_000, T0), None);
        assert_eq!(reconcile(&s, &limits(), T0 + 999 * MIN), vec![]);
        let busy = snap(vec![polecat("a", AgentStatus::Working)], None);
        assert!(needs_container(&busy.agents));
        assert_eq!(next_look(&busy, &limits(), 30_000, T0), Some(T0 + 30_000));
    }
}
