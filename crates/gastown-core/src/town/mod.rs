//! The TownDO's state: one store over the town's SQLite database. `TownStore::handle` is the
//! whole interface the Durable Object exposes — a typed [`TownOp`] in, JSON out — so the DO
//! class stays thin glue and every rule here is unit-tested natively.
//!
//! Operations that belong together (sling: bead + polecat + hook + events) run in one
//! transaction; nothing is half-applied when a step fails.

mod agents;
mod beads;
mod convoys;
mod escalations;
mod mail;
mod molecules;
mod pulls;
mod rigs;
#[cfg(test)]
mod tests;
mod witness;
mod work;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::{Db, DbExt};
use crate::error::{CoreError, CoreResult};
use crate::limits::{Limit, Limits};
use crate::model::{AgentRole, BeadStatus, BeadType, DependencyType, EventType, Priority};
use crate::params;
use crate::time::{iso, Millis};

pub use agents::{AgentFilter, DoneInput, DonePushJob, RegisterAgentInput, SlingInput, SlingResult};
pub use beads::{BeadFilter, CreateBeadInput, EventFilter};
pub use convoys::{AddToConvoyInput, Convoy, ConvoyDetail, CreateConvoyInput};
pub use escalations::Escalation;
pub use mail::SendMailInput;
pub use molecules::{Molecule, MoleculeInput, MoleculeStep};
pub use pulls::{PrMergeJob, PrPollJob};
pub use rigs::{AddRigInput, RigPatch, TownInfo};
pub use work::{
    backoff_ms, merge_trains, unreachable_backoff_ms, DispatchJob, EscalateInput, Lifecycle, MergeJob, MergeOutcome, MergeReport, NudgeJob,
    StartOutcome, Work, MAX_ATTEMPTS,
};
pub use work::{MayorState, MayorStatus};

/// Who performs an operation; recorded as `created_by` and on every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    User(String),
    Agent(String),
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User(u) => format!("user:{u}"),
            Actor::Agent(a) => format!("agent:{a}"),
            Actor::System => "system".into(),
        }
    }

    pub(crate) fn agent_id(&self) -> Option<&str> {
        match self {
            Actor::Agent(a) => Some(a),
            _ => None,
        }
    }
}

/// What an op may do to the town (see [`TownOp::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Reads only: nothing to push to live streams, nothing to drive.
    Query,
    /// Writes (events to push to live streams), but no work becomes due and no deadline moves.
    Change,
    /// May queue, free or retry work, or set a deadline: the drive loop runs after it.
    MayCreateWork,
}

/// Everything a TownDO can be asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TownOp {
    Init {
        town_id: String,
        name: String,
        owner_user_id: String,
    },
    GetTown,
    /// Wipes nothing itself; returns the agent ids whose AgentDOs the caller must destroy
    /// before the DO deletes its storage.
    ListAgentIds,
    AddRig {
        input: AddRigInput,
    },
    RemoveRig {
        rig_id: String,
    },
    GetRig {
        rig_id: String,
    },
    /// A rig's own settings (merge strategy, forge).
    PatchRig {
        rig_id: String,
        patch: RigPatch,
    },
    ListRigs,
    GetConfig,
    PatchConfig {
        patch: Value,
    },
    CreateBead {
        rig_id: Option<String>,
        input: CreateBeadInput,
    },
    GetBead {
        rig_id: Option<String>,
        bead_id: String,
    },
    ListBeads {
        rig_id: Option<String>,
        filter: BeadFilter,
    },
    SetBeadStatus {
        rig_id: Option<String>,
        bead_id: String,
        status: BeadStatus,
        reason: Option<String>,
    },
    DeleteBead {
        rig_id: Option<String>,
        bead_id: String,
    },
    AddDependency {
        rig_id: Option<String>,
        bead_id: String,
        depends_on_bead_id: String,
        dependency_type: DependencyType,
    },
    RemoveDependency {
        rig_id: Option<String>,
        bead_id: String,
        depends_on_bead_id: String,
    },
    ListDependencies {
        rig_id: Option<String>,
        bead_id: String,
    },
    ListEvents {
        filter: EventFilter,
    },
    Sling {
        rig_id: String,
        input: SlingInput,
    },
    RegisterAgent {
        rig_id: String,
        input: RegisterAgentInput,
    },
    ListAgents {
        filter: AgentFilter,
    },
    GetAgent {
        rig_id: Option<String>,
        agent_id: String,
    },
    DeleteAgent {
        rig_id: Option<String>,
        agent_id: String,
    },
    Hook {
        rig_id: String,
        agent_id: String,
        bead_id: String,
    },
    Unhook {
        rig_id: String,
        agent_id: String,
    },
    Prime {
        rig_id: Option<String>,
        agent_id: String,
    },
    Checkpoint {
        rig_id: String,
        agent_id: String,
        data: Value,
    },
    Done {
        rig_id: String,
        agent_id: String,
        input: DoneInput,
    },
    /// What the container must push before a `Done` is recorded: the agent's own branch for its
    /// hooked bead (read only; see `TownDO`).
    DonePushJob {
        rig_id: String,
        agent_id: String,
        branch: String,
    },
    SendMail {
        input: SendMailInput,
    },
    /// An agent's mailbox (`rig_id`: the agent must be of this rig).
    ListMail {
        #[serde(default)]
        rig_id: Option<String>,
        agent_id: String,
        unread_only: bool,
    },
    ReadMail {
        #[serde(default)]
        rig_id: Option<String>,
        agent_id: String,
        mail_id: String,
    },
    /// `gt mail check`: the agent's unread mail, oldest first, marked read in the same call.
    CheckMail {
        #[serde(default)]
        rig_id: Option<String>,
        agent_id: String,
    },
    MayorMessage {
        message: String,
    },
    /// Claims the dispatches and merges that are due (the DO performs them).
    ClaimWork,
    DispatchFailed {
        agent_id: String,
        epoch: i64,
        error: String,
        /// Retrying cannot help (the container refused the request itself, e.g. the agent CLI is
        /// not installed or its key is missing): give up now, with the reason in the escalation.
        #[serde(default)]
        permanent: bool,
        /// The container could not be reached at all: the slower retry schedule.
        #[serde(default)]
        unreachable: bool,
    },
    /// The container had no room for run `epoch` (its own limit, or the rig's): the run waits
    /// for a slot and the attempt is not counted. `container_limit` is the container's limit on
    /// agents running at once when it said so.
    DispatchDeferred {
        agent_id: String,
        epoch: i64,
        reason: String,
        #[serde(default)]
        container_limit: Option<i64>,
    },
    /// The container reported its limit on agents running at once (on a successful start).
    ContainerCapacity {
        max_agents: i64,
    },
    Lifecycle {
        rig_id: Option<String>,
        agent_id: String,
        event: Lifecycle,
    },
    MergeResult {
        review_id: String,
        outcome: MergeOutcome,
    },
    /// A merge train's outcomes, one per merge request, each applied on its own (see
    /// `merge_results`).
    MergeResults {
        reports: Vec<MergeReport>,
    },
    /// Recording a merge's result failed: the merge fails with this short error instead of
    /// staying running.
    MergeUnrecorded {
        review_id: String,
        error: String,
    },
    /// When the alarm should next fire (`null`: nothing pending).
    NextWake,
    /// What a poll of an open pull request found (or why it could not be read).
    PrObserved {
        review_id: String,
        observation: Result<crate::forge::PrObservation, String>,
    },
    /// The forge was asked to merge an approved, green pull request (`refinery.auto_merge`).
    PrMergeAsked {
        review_id: String,
        error: Option<String>,
    },
    /// A webhook from a forge, as received: verified against the town's secret here.
    ForgeWebhook {
        forge: crate::forge::ForgeKind,
        /// `X-GitHub-Event` / `X-Gitlab-Event`.
        event: String,
        /// `X-Hub-Signature-256` / `X-Gitlab-Token`.
        credential: Option<String>,
        body: String,
    },
    Escalate {
        rig_id: Option<String>,
        input: EscalateInput,
    },
    /// The live-stream view of events after `after_id`: each event with the type of bead it
    /// concerns, at most `limit`, plus whether more were missed than that.
    StreamEvents {
        after_id: i64,
        limit: u32,
    },
    /// The newest event id (the stream's current sequence number).
    LastEventId,
    /// Newest first, at most `limit` (default and most [`beads::MAX_PAGE`]).
    ListEscalations {
        acknowledged: Option<bool>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Creates the mayor if needed and keeps it running from now on.
    EnsureMayor,
    MayorStatus,
    AcknowledgeEscalation {
        escalation_id: String,
    },
    CreateConvoy {
        input: CreateConvoyInput,
    },
    /// Newest first, at most `limit` (default and most [`beads::MAX_PAGE`]).
    ListConvoys {
        #[serde(default)]
        limit: Option<u32>,
    },
    GetConvoy {
        convoy_id: String,
    },
    AddToConvoy {
        convoy_id: String,
        input: AddToConvoyInput,
    },
    /// Instantiates a formula on a work bead.
    CreateMolecule {
        rig_id: Option<String>,
        bead_id: String,
        input: MoleculeInput,
    },
    /// The molecule on a work bead.
    GetMolecule {
        rig_id: Option<String>,
        bead_id: String,
    },
    ListFormulas,
    /// `gt mol current`: the hooked molecule's step to work on (started if it was only ready).
    MolCurrent {
        rig_id: String,
        agent_id: String,
    },
    /// `gt mol advance`: closes the step in progress and starts the next ready one.
    MolAdvance {
        rig_id: String,
        agent_id: String,
        summary: Option<String>,
    },
    /// The town's merge requests, newest first, at most `limit` (default and most
    /// [`beads::MAX_PAGE`]).
    ListMergeQueue {
        #[serde(default)]
        limit: Option<u32>,
    },
    /// A failed merge request back in the queue, as it was.
    RetryMerge {
        mr_id: String,
    },
    /// The town's mail, newest first (the person's view), at most `limit` (default and most
    /// [`beads::MAX_PAGE`]).
    ListTownMail {
        #[serde(default)]
        limit: Option<u32>,
    },
    /// One witness pass with the container's process list (`None`: unreachable or not asked).
    WitnessTick {
        container: Option<Vec<crate::witness::RunView>>,
        /// The runs as they stood just before the list was asked for (see [`TownOp::WitnessMarks`]).
        #[serde(default)]
        asked: Option<Vec<crate::witness::RunMark>>,
    },
    /// Whether the witness must ask the container for its processes before a pass.
    WitnessNeedsContainer,
    /// The runs to judge the container's list against, recorded before asking for it (`None`:
    /// nothing should run, so the container is not asked).
    WitnessMarks,
    /// Marks a stream ticket used; a second use is refused.
    ConsumeTicket {
        jti: String,
        expires_at: Millis,
    },
}

impl TownOp {
    /// Ops by which a caller (a person or an agent) adds beads to the town; each is refused
    /// once the town holds its limit of unfinished beads. Beads the town makes itself
    /// (escalations, notices to the mayor) are never refused: they report problems.
    pub fn adds_beads(&self) -> bool {
        matches!(
            self,
            TownOp::CreateBead { .. }
                | TownOp::Sling { .. }
                | TownOp::RegisterAgent { .. }
                | TownOp::SendMail { .. }
                | TownOp::MayorMessage { .. }
                | TownOp::Escalate { .. }
                | TownOp::CreateConvoy { .. }
                | TownOp::CreateMolecule { .. }
        )
    }

    /// What the op may do, decided op by op with no catch-all arm, so that a new op does not
    /// compile until someone says which kind it is.
    pub fn kind(&self) -> OpKind {
        use OpKind::*;
        match self {
            TownOp::GetTown
            | TownOp::ListAgentIds
            | TownOp::GetRig { .. }
            | TownOp::ListRigs
            | TownOp::GetConfig
            | TownOp::GetBead { .. }
            | TownOp::ListBeads { .. }
            | TownOp::ListDependencies { .. }
            | TownOp::ListEvents { .. }
            | TownOp::ListAgents { .. }
            | TownOp::GetAgent { .. }
            | TownOp::Prime { .. }
            | TownOp::DonePushJob { .. }
            | TownOp::ListMail { .. }
            | TownOp::NextWake
            | TownOp::StreamEvents { .. }
            | TownOp::LastEventId
            | TownOp::ListEscalations { .. }
            | TownOp::MayorStatus
            | TownOp::ListConvoys { .. }
            | TownOp::GetConvoy { .. }
            | TownOp::GetMolecule { .. }
            | TownOp::ListFormulas
            | TownOp::ListMergeQueue { .. }
            | TownOp::ListTownMail { .. }
            | TownOp::WitnessNeedsContainer
            | TownOp::WitnessMarks => Query,
            // Changes that can neither make work due nor move the alarm.
            TownOp::Init { .. }
            | TownOp::AddRig { .. }
            | TownOp::PatchRig { .. }
            | TownOp::CreateBead { .. }
            | TownOp::Checkpoint { .. }
            | TownOp::ReadMail { .. }
            | TownOp::CheckMail { .. }
            | TownOp::AcknowledgeEscalation { .. }
            | TownOp::ConsumeTicket { .. } => Change,
            // Everything that can queue, free or retry work, or set a deadline the alarm keeps.
            TownOp::RemoveRig { .. }
            | TownOp::PatchConfig { .. }
            | TownOp::SetBeadStatus { .. }
            | TownOp::DeleteBead { .. }
            | TownOp::AddDependency { .. }
            | TownOp::RemoveDependency { .. }
            | TownOp::Sling { .. }
            | TownOp::RegisterAgent { .. }
            | TownOp::DeleteAgent { .. }
            | TownOp::Hook { .. }
            | TownOp::Unhook { .. }
            | TownOp::Done { .. }
            | TownOp::SendMail { .. }
            | TownOp::MayorMessage { .. }
            | TownOp::ClaimWork
            | TownOp::DispatchFailed { .. }
            | TownOp::DispatchDeferred { .. }
            | TownOp::ContainerCapacity { .. }
            | TownOp::Lifecycle { .. }
            | TownOp::MergeResult { .. }
            | TownOp::MergeResults { .. }
            | TownOp::MergeUnrecorded { .. }
            | TownOp::PrObserved { .. }
            | TownOp::PrMergeAsked { .. }
            | TownOp::ForgeWebhook { .. }
            | TownOp::Escalate { .. }
            | TownOp::EnsureMayor
            | TownOp::CreateConvoy { .. }
            | TownOp::AddToConvoy { .. }
            | TownOp::CreateMolecule { .. }
            | TownOp::MolCurrent { .. }
            | TownOp::MolAdvance { .. }
            | TownOp::RetryMerge { .. }
            | TownOp::WitnessTick { .. } => MayCreateWork,
        }
    }
}

pub struct TownStore<'a> {
    pub(crate) db: &'a dyn Db,
    pub(crate) now: Millis,
    pub(crate) limits: Limits,
    /// The DO instance this store runs in (see [`TownStore::in_instance`]).
    pub(crate) instance: Option<String>,
    /// A development deployment (`ENVIRONMENT=development`): forge URLs may be loopback `http://`.
    pub(crate) development: bool,
    /// `town_meta`'s row once read (see [`TownStore::meta`]): the store's own, or one the
    /// Durable Object keeps across its requests ([`TownStore::with_meta_cache`]).
    meta: MetaSlot<'a>,
    /// The calling agent: its id and rig, as its row was read when the call came in (see
    /// [`TownStore::check_agent_in`]).
    caller: std::cell::RefCell<Option<(String, Option<String>)>>,
}

/// `town_meta`'s row kept between the ops of one Durable Object instance. Every op reads the
/// row first (owner, config, capacity); it changes only through a store's own writes, each of
/// which drops it first ([`TownStore::forget_meta`]), so a later read sees the write. A
/// transaction that is undone drops it again ([`TownStore::tx`]), as does any failed op, so a
/// write that did not last is never served from here.
#[derive(Default)]
pub struct MetaCache(std::cell::RefCell<Option<rigs::MetaRow>>);

impl MetaCache {
    /// Forgets the row (the object's storage was deleted).
    pub fn clear(&self) {
        self.0.borrow_mut().take();
    }
}

enum MetaSlot<'a> {
    Own(MetaCache),
    Shared(&'a MetaCache),
}

impl MetaSlot<'_> {
    fn cell(&self) -> &std::cell::RefCell<Option<rigs::MetaRow>> {
        match self {
            MetaSlot::Own(c) => &c.0,
            MetaSlot::Shared(c) => &c.0,
        }
    }
}

const BEAD_COLUMNS: &str = "bead_id AS id, type AS bead_type, status, title, body, rig_id, parent_bead_id AS parent_id, \
     assignee_agent_id, priority, labels, metadata, created_by, created_at, updated_at, closed_at";

/// A bead row as the API's JSON object ([`Bead`]'s fields, in its order), built by SQLite: a page
/// of them goes to the client without being decoded and encoded again in between.
const BEAD_JSON: &str = "json_object('id', bead_id, 'type', type, 'status', status, 'title', title, 'body', body, \
     'rig_id', rig_id, 'parent_id', parent_bead_id, 'assignee_agent_id', assignee_agent_id, 'priority', priority, \
     'labels', json(labels), 'metadata', json(metadata), 'created_by', created_by, 'created_at', created_at, \
     'updated_at', updated_at, 'closed_at', closed_at)";

/// A `bead_events` row as the API's JSON object ([`crate::model::BeadEvent`]), as [`BEAD_JSON`].
const EVENT_JSON: &str = "json_object('id', event_id, 'bead_id', bead_id, 'rig_id', rig_id, 'agent_id', agent_id, \
     'actor', actor, 'event_type', event_type, 'old_value', old_value, 'new_value', new_value, \
     'metadata', json(metadata), 'created_at', created_at)";

/// An event's `created_at`: `$clock` (the op's clock parameter), or the newest event's stamp
/// when the clock stands behind it (a clock stepped back, a Durable Object moved to a machine
/// whose clock is behind). Stamps so never decrease in event order, which lets a page narrowed by
/// `since` find its first event by bisection over `event_id` ([`EVENTS_SINCE`]) instead of
/// walking the history; the look-up is a seek to the table's last row. A macro, so that the
/// statements that write events stay literals built at compile time.
macro_rules! event_stamp {
    ($clock:literal) => {
        concat!(
            "MAX(",
            $clock,
            ", COALESCE((SELECT created_at FROM bead_events WHERE event_id = (SELECT MAX(event_id) FROM bead_events)), ''))"
        )
    };
}
pub(crate) use event_stamp;

/// The condition of an events page that starts at the first event at or after the first
/// parameter (the cursor plus one) stamped at or after the second (the third is the second
/// again); past the newest event when none is. The start is found by a binary search over
/// `event_id` in one statement, each step one seek; exact because stamps never decrease in
/// event order ([`event_stamp`]). The cast keeps the midpoints whole: the Durable Object's SQL
/// API binds every JS number, so every integer the Worker passes, as REAL.
pub(crate) const EVENTS_SINCE: &str = "event_id >= (WITH RECURSIVE s(lo, hi) AS (\
     SELECT CAST(? AS INTEGER), (SELECT COALESCE(MAX(event_id), 0) + 1 FROM bead_events) \
     UNION ALL \
     SELECT CASE WHEN (SELECT created_at FROM bead_events WHERE event_id >= (lo + hi) / 2 ORDER BY event_id LIMIT 1) >= ? \
     THEN lo ELSE (lo + hi) / 2 + 1 END, \
     CASE WHEN (SELECT created_at FROM bead_events WHERE event_id >= (lo + hi) / 2 ORDER BY event_id LIMIT 1) >= ? \
     THEN (lo + hi) / 2 ELSE hi END \
     FROM s WHERE lo < hi) SELECT MAX(lo) FROM s)";

impl<'a> TownStore<'a> {
    pub fn new(db: &'a dyn Db, now: Millis) -> Self {
        TownStore {
            db,
            now,
            limits: Limits::default(),
            instance: None,
            development: false,
            meta: MetaSlot::Own(MetaCache::default()),
            caller: Default::default(),
        }
    }

    /// Keeps `town_meta`'s row in `cache`, which outlives the store (see [`MetaCache`]).
    pub fn with_meta_cache(mut self, cache: &'a MetaCache) -> Self {
        self.meta = MetaSlot::Shared(cache);
        self
    }

    /// Names the DO instance (one per process lifetime of the object). Work it performs and
    /// awaits — a merge — is recorded as its own, so that a later instance knows the answer
    /// died with the earlier one.
    pub fn in_instance(mut self, instance: &str) -> Self {
        self.instance = Some(instance.to_string());
        self
    }

    /// Marks the deployment as a development one (see [`TownStore::development`]).
    pub fn with_development(mut self, development: bool) -> Self {
        self.development = development;
        self
    }

    /// The deployment's limits (the defaults otherwise).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub(crate) fn now_iso(&self) -> String {
        iso(self.now)
    }

    /// Runs one operation. Every op except `Init` needs an initialised town, and an agent actor
    /// must still exist: a deleted agent's token stops working at once.
    pub fn handle(&self, op: TownOp, actor: &Actor) -> CoreResult<Value> {
        let json = self.handle_json(op, actor)?;
        Ok(serde_json::from_str(&json)?)
    }

    /// [`TownStore::handle`] with the reply as JSON text: the result is serialised once, here,
    /// and passed through the Durable Object and the Worker to the client as it is.
    pub fn handle_json(&self, op: TownOp, actor: &Actor) -> CoreResult<String> {
        let result = self.run_op(op, actor);
        if result.is_err() {
            // Belt and braces for a kept row (see `MetaCache`): `tx` already drops it when a
            // transaction that may have written it is undone; this covers a failed op that
            // undid a write some other way. Costs one read after a refused call.
            self.forget_meta();
        }
        result
    }

    fn run_op(&self, op: TownOp, actor: &Actor) -> CoreResult<String> {
        self.caller.borrow_mut().take();
        if !matches!(op, TownOp::Init { .. }) {
            self.meta()?;
            if let Some(a) = actor.agent_id() {
                let Some(row) = self.agent_row(a)? else {
                    return Err(CoreError::Unauthorized("this agent no longer exists".into()));
                };
                *self.caller.borrow_mut() = Some((row.bead_id.clone(), row.rig_id.clone()));
                // Anything an agent asks of the town is a sign of life (the container's lifecycle
                // reports travel with the agent's token too, but are not the agent acting).
                if !matches!(op, TownOp::Lifecycle { .. }) {
                    self.note_activity(&row)?;
                }
            }
            if op.adds_beads() {
                self.check_open_beads()?;
            }
        }
        let v = |x: &dyn erased::Ser| x.to_json();
        Ok(match op {
            TownOp::Init { town_id, name, owner_user_id } => v(&self.init(&town_id, &name, &owner_user_id)?),
            TownOp::GetTown => v(&self.town_info()?),
            TownOp::ListAgentIds => v(&self.all_agent_ids()?),
            TownOp::AddRig { input } => v(&self.tx(|| self.add_rig(input.clone(), actor))?),
            TownOp::RemoveRig { rig_id } => v(&self.tx(|| self.remove_rig(&rig_id, actor))?),
            TownOp::GetRig { rig_id } => v(&self.rig(&rig_id)?),
            TownOp::PatchRig { rig_id, patch } => v(&self.tx(|| self.patch_rig(&rig_id, patch.clone()))?),
            TownOp::ListRigs => v(&self.list_rigs()?),
            TownOp::GetConfig => v(&self.config()?.masked()),
            TownOp::PatchConfig { patch } => v(&self.tx(|| self.patch_config(patch.clone()))?.masked()),
            TownOp::CreateBead { rig_id, input } => v(&self.tx(|| self.create_bead_checked(rig_id.as_deref(), input.clone(), actor))?),
            TownOp::GetBead { rig_id, bead_id } => self.bead_in_json(rig_id.as_deref(), &bead_id)?,
            TownOp::ListBeads { rig_id, filter } => self.list_beads_json(rig_id.as_deref(), &filter)?,
            TownOp::SetBeadStatus { rig_id, bead_id, status, reason } => v(&self.tx(|| {
                let bead = self.bead_in(rig_id.as_deref(), &bead_id)?;
                let before = bead.status;
                self.may_change(actor, &bead_id)?;
                let b = self.set_status_of(bead, status, actor, reason.as_deref())?;
                if before == BeadStatus::Failed && status == BeadStatus::Open {
                    // Retry: failed work that was slung goes back in the queue for a polecat.
                    self.requeue_failed(&b, actor)?;
                    return self.bead(&bead_id);
                }
                Ok(b)
            })?),
            TownOp::DeleteBead { rig_id, bead_id } => v(&self.tx(|| self.delete_bead(rig_id.as_deref(), &bead_id, actor))?),
            TownOp::AddDependency { rig_id, bead_id, depends_on_bead_id, dependency_type } => {
                self.may_change(actor, &bead_id)?;
                v(&self.tx(|| self.add_dependency(rig_id.as_deref(), &bead_id, &depends_on_bead_id, dependency_type, actor))?)
            }
            TownOp::RemoveDependency { rig_id, bead_id, depends_on_bead_id } => {
                self.may_change(actor, &bead_id)?;
                v(&self.tx(|| self.remove_dependency(rig_id.as_deref(), &bead_id, &depends_on_bead_id, actor))?)
            }
            TownOp::ListDependencies { rig_id, bead_id } => v(&self.list_dependencies(rig_id.as_deref(), &bead_id)?),
            TownOp::ListEvents { filter } => self.list_events_json(&filter)?,
            TownOp::Sling { rig_id, input } => v(&self.tx(|| self.sling(&rig_id, input.clone(), actor))?),
            TownOp::RegisterAgent { rig_id, input } => v(&self.tx(|| self.register_agent(&rig_id, input.clone(), actor))?),
            TownOp::ListAgents { filter } => v(&self.list_agents(&filter)?),
            TownOp::GetAgent { rig_id, agent_id } => v(&self.agent_in(rig_id.as_deref(), &agent_id)?),
            TownOp::DeleteAgent { rig_id, agent_id } => v(&self.tx(|| self.delete_agent(rig_id.as_deref(), &agent_id, actor))?),
            TownOp::Hook { rig_id, agent_id, bead_id } => v(&self.tx(|| {
                self.check_agent_in(Some(&rig_id), &agent_id)?;
                self.hook(&agent_id, &bead_id, actor)
            })?),
            TownOp::Unhook { rig_id, agent_id } => v(&self.tx(|| {
                self.check_agent_in(Some(&rig_id), &agent_id)?;
                self.unhook(&agent_id, actor, true)
            })?),
            TownOp::Prime { rig_id, agent_id } => v(&self.prime(rig_id.as_deref(), &agent_id)?),
            TownOp::Checkpoint { rig_id, agent_id, data } => v(&self.tx(|| self.checkpoint(&rig_id, &agent_id, &data))?),
            TownOp::DonePushJob { rig_id, agent_id, branch } => v(&self.done_push_job(&rig_id, &agent_id, &branch)?),
            TownOp::Done { rig_id, agent_id, input } => v(&self.tx(|| self.done(&rig_id, &agent_id, input.clone(), actor))?),
            TownOp::SendMail { input } => v(&self.tx(|| self.send_mail(input.clone(), actor))?),
            TownOp::ListMail { rig_id, agent_id, unread_only } => {
                self.check_agent_in(rig_id.as_deref(), &agent_id)?;
                v(&self.list_mail(&agent_id, unread_only)?)
            }
            TownOp::ReadMail { rig_id, agent_id, mail_id } => v(&self.tx(|| {
                self.check_agent_in(rig_id.as_deref(), &agent_id)?;
                self.read_mail(&agent_id, &mail_id, actor)
            })?),
            TownOp::CheckMail { rig_id, agent_id } => v(&self.tx(|| {
                self.check_agent_in(rig_id.as_deref(), &agent_id)?;
                self.check_mail(&agent_id, actor)
            })?),
            TownOp::MayorMessage { message } => v(&self.tx(|| self.mayor_message(&message, actor))?),
            TownOp::ClaimWork => v(&self.tx(|| self.claim_work())?),
            TownOp::DispatchFailed { agent_id, epoch, error, permanent, unreachable } => {
                v(&self.tx(|| self.dispatch_failed(&agent_id, epoch, &error, permanent, unreachable))?)
            }
            TownOp::DispatchDeferred { agent_id, epoch, reason, container_limit } => {
                v(&self.tx(|| self.dispatch_deferred(&agent_id, epoch, &reason, container_limit))?)
            }
            TownOp::ContainerCapacity { max_agents } => v(&self.tx(|| self.set_container_capacity(max_agents))?),
            TownOp::Lifecycle { rig_id, agent_id, event } => v(&self.tx(|| {
                self.check_agent_in(rig_id.as_deref(), &agent_id)?;
                self.lifecycle(&agent_id, &event)
            })?),
            TownOp::MergeResult { review_id, outcome } => v(&self.tx(|| self.merge_result(&review_id, &outcome))?),
            // Each outcome in a transaction of its own, so one that cannot be stored fails alone.
            TownOp::MergeResults { reports } => v(&self.merge_results(&reports)?),
            TownOp::MergeUnrecorded { review_id, error } => v(&self.tx(|| self.merge_unrecorded(&review_id, &error))?),
            TownOp::NextWake => v(&self.next_wake()?),
            TownOp::PrObserved { review_id, observation } => v(&self.tx(|| self.pr_observed(&review_id, observation.clone()))?),
            TownOp::PrMergeAsked { review_id, error } => v(&self.tx(|| self.pr_merge_asked(&review_id, error.as_deref()))?),
            TownOp::ForgeWebhook { forge, event, credential, body } => {
                v(&self.tx(|| self.forge_webhook(forge, &event, credential.as_deref(), &body))?)
            }
            TownOp::EnsureMayor => v(&self.tx(|| self.ensure_mayor_running(actor))?),
            TownOp::MayorStatus => v(&self.mayor_status()?),
            TownOp::ListEscalations { acknowledged, limit } => v(&self.list_escalations(acknowledged, limit)?),
            TownOp::AcknowledgeEscalation { escalation_id } => v(&self.tx(|| self.acknowledge_escalation(&escalation_id, actor))?),
            TownOp::StreamEvents { after_id, limit } => v(&self.stream_events(after_id, limit)?),
            TownOp::LastEventId => v(&self.db.scalar_i64("SELECT COALESCE(MAX(event_id), 0) FROM bead_events", params![])?),
            TownOp::CreateConvoy { input } => v(&self.tx(|| self.create_convoy(input.clone(), actor))?),
            TownOp::ListConvoys { limit } => v(&self.list_convoys(limit)?),
            TownOp::GetConvoy { convoy_id } => v(&self.convoy_detail(&convoy_id)?),
            TownOp::AddToConvoy { convoy_id, input } => v(&self.tx(|| self.add_to_convoy(&convoy_id, input.clone(), actor))?),
            TownOp::CreateMolecule { rig_id, bead_id, input } => v(&self.tx(|| {
                self.may_change(actor, &bead_id)?;
                let f = self.resolve_formula(&input)?;
                self.instantiate(rig_id.as_deref(), &bead_id, &f, actor)
            })?),
            TownOp::GetMolecule { rig_id, bead_id } => {
                let b = self.bead_in(rig_id.as_deref(), &bead_id)?;
                v(&self.molecule_of(&b)?.ok_or_else(|| CoreError::not_found("molecule on", &bead_id))?)
            }
            TownOp::ListFormulas => v(&crate::formulas::builtin()),
            TownOp::MolCurrent { rig_id, agent_id } => v(&self.tx(|| {
                self.check_agent_in(Some(&rig_id), &agent_id)?;
                self.mol_current(&agent_id, actor)
            })?),
            TownOp::MolAdvance { rig_id, agent_id, summary } => v(&self.tx(|| {
                self.check_agent_in(Some(&rig_id), &agent_id)?;
                self.mol_advance(&agent_id, summary.as_deref(), actor)
            })?),
            TownOp::ListMergeQueue { limit } => v(&self.list_merge_queue(limit)?),
            TownOp::RetryMerge { mr_id } => v(&self.tx(|| self.retry_merge(&mr_id, actor))?),
            TownOp::ListTownMail { limit } => v(&self.list_town_mail(limit)?),
            TownOp::WitnessTick { container, asked } => v(&self.tx(|| self.witness_tick(container.clone(), asked.clone()))?),
            TownOp::WitnessNeedsContainer => v(&self.witness_needs_container()?),
            TownOp::WitnessMarks => v(&self.witness_marks()?),
            TownOp::ConsumeTicket { jti, expires_at } => v(&self.tx(|| self.consume_ticket(&jti, expires_at))?),
            TownOp::Escalate { rig_id, input } => v(&self.tx(|| self.escalate(rig_id.as_deref(), input.clone(), actor))?),
        })
    }

    /// Refuses (409) one more bead when the town already holds its limit of unfinished ones.
    fn check_open_beads(&self) -> CoreResult<()> {
        // The tally SQLite keeps (migration 0014): counting walked every unfinished bead.
        let open = self.db.scalar_i64("SELECT unfinished FROM bead_tally", params![])?;
        self.limits.check(Limit::OpenBeadsPerTown, open)
    }

    /// Runs `f` in a transaction (the closure may be retried by nothing; it runs once).
    pub(crate) fn tx<T>(&self, f: impl Fn() -> CoreResult<T>) -> CoreResult<T> {
        let result = self.db.transaction(f);
        if result.is_err() {
            // A rolled-back write to town_meta may have been read back into the cache (an op
            // that goes on after a failed transaction must not see it).
            self.forget_meta();
        }
        result
    }

    /// Appends to the audit log; returns the event id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &self,
        bead_id: &str,
        rig_id: Option<&str>,
        agent_id: Option<&str>,
        actor: &Actor,
        event_type: EventType,
        old_value: Option<&str>,
        new_value: Option<&str>,
        metadata: Value,
    ) -> CoreResult<()> {
        self.db.run(
            concat!(
                "INSERT INTO bead_events (bead_id, rig_id, agent_id, actor, event_type, old_value, new_value, metadata, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ",
                event_stamp!("?"),
                ")"
            ),
            params![
                bead_id,
                rig_id,
                agent_id,
                actor.label(),
                event_type.as_str(),
                old_value,
                new_value,
                metadata.to_string(),
                self.now_iso()
            ],
        )
    }

    /// Inserts a bead row with a fresh id under `prefix`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_bead(
        &self,
        prefix: &str,
        bead_type: BeadType,
        status: BeadStatus,
        title: &str,
        body: Option<&str>,
        rig_id: Option<&str>,
        parent: Option<&str>,
        assignee: Option<&str>,
        priority: Priority,
        labels: &[String],
        metadata: &Value,
        actor: &Actor,
    ) -> CoreResult<String> {
        let id = self.fresh_bead_id(prefix)?;
        let now = self.now_iso();
        self.db.run(
            &format!(
                "INSERT INTO beads (bead_id, type, status, title, body, rig_id, parent_bead_id, assignee_agent_id, priority, labels, metadata, created_by, created_at, updated_at, closed_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {})",
                if status.is_terminal() { "?" } else { "NULL" }
            ),
            {
                let mut p = params![id.as_str(), bead_type.as_str(), status.as_str(), title, body, rig_id, parent, assignee,
                    priority.as_str(), serde_json::to_string(labels)?, metadata.to_string(), actor.label(), now.as_str(), now.as_str()];
                if status.is_terminal() {
                    p.push(now.as_str().into());
                }
                p
            },
        )?;
        self.event(
            &id,
            rig_id,
            assignee,
            actor,
            EventType::Created,
            None,
            Some(status.as_str()),
            json!({"type": bead_type.as_str(), "title": title}),
        )?;
        Ok(id)
    }

    fn fresh_bead_id(&self, prefix: &str) -> CoreResult<String> {
        // 36^5 ≈ 60M ids per prefix; collisions are rare, and a longer suffix ends any streak.
        for attempt in 0..12 {
            let id = crate::ids::bead_id(prefix, crate::ids::SUFFIX_LEN + attempt / 4);
            if self.db.scalar_i64("SELECT COUNT(*) FROM beads WHERE bead_id = ?", params![id.as_str()])? == 0 {
                return Ok(id);
            }
        }
        Err(CoreError::Internal("could not find a free bead id".into()))
    }

    fn consume_ticket(&self, jti: &str, expires_at: Millis) -> CoreResult<bool> {
        self.db.run("DELETE FROM used_tickets WHERE expires_at < ?", params![self.now_iso()])?;
        if self.db.scalar_i64("SELECT COUNT(*) FROM used_tickets WHERE jti = ?", params![jti])? > 0 {
            return Err(CoreError::Unauthorized("this ticket was already used".into()));
        }
        self.db.run("INSERT INTO used_tickets (jti, expires_at) VALUES (?, ?)", params![jti, iso(expires_at)])?;
        Ok(true)
    }

    pub(crate) fn bead_columns() -> &'static str {
        BEAD_COLUMNS
    }

    /// A page of at most `limit` rows: those of `open` (the open ones, e.g. unread mail), then if
    /// there is room those of `rest` (the finished ones). Each statement ends in `LIMIT ?` and
    /// takes `params` before it, so each part stops at what is left of the page.
    pub(crate) fn open_first<T: serde::de::DeserializeOwned>(
        &self,
        open: &str,
        rest: Option<&str>,
        params: Vec<crate::db::SqlValue>,
        limit: u32,
    ) -> CoreResult<Vec<T>> {
        let with_limit = |n: usize| params.iter().cloned().chain([(n as i64).into()]).collect::<Vec<_>>();
        let limit = limit as usize;
        let mut rows: Vec<T> = self.db.query(open, with_limit(limit))?;
        if let Some(rest) = rest.filter(|_| rows.len() < limit) {
            rows.extend(self.db.query::<T>(rest, with_limit(limit - rows.len()))?);
        }
        Ok(rows)
    }

    /// The JSON array of `object` (an SQL expression building one JSON object per row) over the
    /// rows of `page` (a SELECT that also yields the columns `order` sorts by), in that order:
    /// one string SQLite builds, which the reply then is. `[]` when there are none.
    pub(crate) fn json_page(&self, object: &str, page: &str, order: &str, params: Vec<crate::db::SqlValue>) -> CoreResult<String> {
        // Joined as text: each object is JSON text already, and `json_group_array` would parse
        // every one again (1.2 ms of a 500-row page, measured on workerd).
        let sql = format!("SELECT '[' || COALESCE(group_concat(j, ',' ORDER BY {order}), '') || ']' FROM (SELECT {object} AS j, {page})");
        Ok(self.db.text(&sql, params)?.unwrap_or_else(|| "[]".into()))
    }
}

/// Object-safe serialisation so `handle` can return any result type through one closure.
mod erased {
    pub trait Ser {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> String {
            // Only maps with non-string keys fail, and no reply type has one.
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}

pub(crate) fn role_is_rig_scoped(role: AgentRole) -> bool {
    role != AgentRole::Mayor
}
