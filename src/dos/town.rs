//! TownDO: one per town, all control-plane state. `POST /op` runs a [`TownOp`]; `POST /destroy`
//! wipes the town. An op that may create work runs the drive loop (agent starts, merges) right
//! after answering, so dispatch is event-driven with no polling delay; the alarm is the safety net
//! that retries with backoff, armed only while something is pending (an idle town costs nothing).

use std::cell::Cell;
use std::rc::Rc;

use futures_util::future::join_all;
use gastown_core::config::TownConfig;
use gastown_core::limits::Limits;
use gastown_core::migrate;
use gastown_core::town::{
    merge_trains, Actor, DonePushJob, MergeJob, MergeOutcome, MergeReport, MetaCache, OpKind, StartOutcome, TownOp, TownStore, Work,
};
use gastown_core::user::{UserOp, UserTown};
use gastown_core::witness::{RunMark, RunView};
use gastown_core::{CoreError, CoreResult};
use gastown_protocol::{AgentSnapshot, CheckReply, PushReply, RemoteCheck};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::forge::Forge;
use super::sql::DoSql;
use super::user::UserCall;
use super::work::ContainerClient;
use super::{decode_op, ensure_schema, rpc_reply};
use crate::http::now_ms;

/// Rounds of claim → perform per alarm (each round may free slots for the next).
const MAX_ROUNDS: usize = 8;

/// See [`Core::schedule`].
const RECOMPUTE_WINDOW_MS: i64 = 2_000;

#[derive(Serialize, Deserialize)]
pub struct TownCall {
    pub actor: Actor,
    pub op: TownOp,
    /// The person who must own this town for the call to go ahead (see `crate::authz::Grant`):
    /// checked here, in the same call, so ownership costs no extra round trip.
    #[serde(default)]
    pub owner: Option<String>,
    /// The town as the Worker routed it, and the person calling: a town that has no storage
    /// yet is looked up in that person's registry (see [`Core::materialize`]).
    #[serde(default)]
    pub town_id: Option<String>,
    #[serde(default)]
    pub registry: Option<String>,
}

#[durable_object]
pub struct TownDO {
    core: Rc<Core>,
}

/// The DO's state and logic, shareable with work that outlives a request (`wait_until`).
struct Core {
    state: State,
    env: Env,
    migrated: Cell<bool>,
    /// The alarm as this instance last read or set it (`None`: not known): the drive loop runs
    /// after every op that may create work, and reading the alarm is a storage round trip.
    /// Only this object sets its alarm; the runtime clears it when it fires ([`TownDO::alarm`]
    /// forgets it then).
    alarm_at: Cell<Option<Option<i64>>>,
    /// See [`Core::settings`].
    settings: Cell<Option<(Limits, bool)>>,
    /// This instance of the object (new on every start of the runtime or eviction): merges it
    /// awaits are recorded as its own, see `TownStore::in_instance`.
    instance: String,
    /// The town's row between ops: every op reads it first, and only this object writes it.
    meta: MetaCache,
}

/// A town the dev operator created for another user id, not used yet: its identity, kept as
/// one key-value entry until [`Core::materialize`] gives it its schema. (A town created by its
/// owner has no entry here: its owner's registry row is all it is until it is used.)
#[derive(Serialize, Deserialize)]
struct PendingTown {
    town_id: String,
    name: String,
    owner_user_id: String,
    created_at: i64,
}

const PENDING_TOWN: &str = "gastown:pending-town";

/// The most missed events a reconnecting client is sent; beyond that it is told to refetch.
const REPLAY_LIMIT: u32 = 1000;

impl Core {
    /// One call from the Worker (over RPC): `/op` runs a [`TownCall`]; `/destroy`, `/witness`
    /// and `/alarm` are the town's housekeeping.
    async fn call(self: &Rc<Self>, path: &str, body: &str) -> CoreResult<String> {
        match path {
            "/destroy" => {
                let storage = self.state.storage();
                self.alarm_at.set(None);
                storage.delete_alarm().await.map_err(internal)?;
                storage.delete_all().await.map_err(internal)?;
                self.migrated.set(false);
                self.meta.clear();
                return Ok(r#"{"destroyed":true}"#.into());
            }
            "/witness" => {
                self.materialize(None).await?;
                // Runs the witness now (what the alarm does), then performs what it made due.
                let result = self.witness().await?;
                self.drive().await.map_err(internal)?;
                return Ok(result.to_string());
            }
            "/alarm" => {
                let at = self.state.storage().get_alarm().await.map_err(internal)?;
                let watching = self.run(TownOp::WitnessNeedsContainer, &Actor::System)?;
                return Ok(serde_json::json!({"alarm_at": at, "watching": watching}).to_string());
            }
            "/op" => {}
            _ => return Err(CoreError::NotFound(format!("no town call {path}"))),
        }
        let mut call: TownCall = decode_op(body)?;
        if let TownOp::Init { town_id, name, owner_user_id } = &call.op {
            return self.init(town_id, name, owner_user_id).await;
        }
        self.materialize(call.town_id.as_deref().zip(call.registry.as_deref())).await?;
        if let Some(owner) = &call.owner {
            // Before anything else (a `done` pushes a branch before it is recorded).
            self.check_owner(owner)?;
        }
        if let TownOp::Done { rig_id, agent_id, input } = &mut call.op {
            // The agent holds no push credential: the container pushes its branch first, and
            // only a pushed branch becomes a merge request.
            input.branch = self.push_for_done(rig_id, agent_id, &input.branch).await?;
        }
        // A new rig's repository is checked through the container (`git ls-remote` with the
        // town's credentials) when the container can be reached; otherwise the rig is accepted
        // and the answer says it was not checked.
        let git_note = match &call.op {
            TownOp::AddRig { input } => self.check_git_url(&input.git_url).await?,
            _ => None,
        };
        let creates_work = call.op.kind() == OpKind::MayCreateWork;
        let finished = match &call.op {
            TownOp::Done { agent_id, .. } => Some(agent_id.clone()),
            _ => None,
        };
        let json = self.run_json(call.op, &call.actor)?;
        if let Some(agent_id) = finished {
            // The work is submitted: an interactive CLI would otherwise sit open after its turn,
            // holding one of the container's slots. Its run ends a few seconds later.
            let core = Rc::clone(self);
            self.state.wait_until(async move { core.end_run_after_done(&agent_id).await });
        }
        if creates_work {
            // Answer now; perform what became due (claims are transactional, so a concurrent
            // alarm or request never performs the same work twice). On a timer, not straight
            // after: started in this turn, its first statements (and the alarm it sets, which
            // the runtime must confirm before any answer leaves) ran before the answer did —
            // about 0.8 ms of every status change and sling.
            let core = Rc::clone(self);
            self.state.wait_until(async move {
                worker::Delay::from(std::time::Duration::ZERO).await;
                if let Err(e) = core.drive().await {
                    worker::console_error!("drive: {e}");
                }
            });
        }
        match git_note {
            // Only a new rig's reply gets the note: the one reply read here rather than passed on.
            Some(note) => {
                let mut v: Value = serde_json::from_str(&json)?;
                v["git_check"] = Value::String(note);
                Ok(v.to_string())
            }
            None => Ok(json),
        }
    }

    /// Creates the town: only its [`PendingTown`] record while it has no schema. Idempotent for
    /// the same town id; a DO never becomes another town.
    async fn init(&self, town_id: &str, name: &str, owner_user_id: &str) -> CoreResult<String> {
        gastown_core::validate::display_name("name", name)?;
        let init = TownOp::Init { town_id: town_id.into(), name: name.into(), owner_user_id: owner_user_id.into() };
        if self.has_schema()? {
            return self.run_json(init, &Actor::System);
        }
        let storage = self.state.storage();
        let pending = match storage.get::<PendingTown>(PENDING_TOWN).await.map_err(internal)? {
            Some(p) if p.town_id == town_id => p,
            Some(_) => return Err(CoreError::Conflict("this town storage belongs to another town".into())),
            None => {
                let p =
                    PendingTown { town_id: town_id.into(), name: name.into(), owner_user_id: owner_user_id.into(), created_at: now_ms() };
                storage.put(PENDING_TOWN, &p).await.map_err(internal)?;
                p
            }
        };
        let at = gastown_core::time::iso(pending.created_at);
        let info = gastown_core::town::TownInfo {
            id: pending.town_id,
            name: pending.name,
            owner_user_id: pending.owner_user_id,
            created_at: at.clone(),
            updated_at: at,
            rigs: vec![],
        };
        Ok(serde_json::to_string(&info)?)
    }

    fn has_schema(&self) -> CoreResult<bool> {
        Ok(self.migrated.get() || DoSql::new(self.state.storage()).has_table("town_meta")?)
    }

    /// Gives a town that has no storage yet its schema and its row, dated as of its creation.
    /// Creating a town writes only its owner's registry row (the GastownUserDO), so the first
    /// call for it finds the town there: `lookup` is (town id, the caller's user id). Another
    /// person's registry does not list it, so a stranger's call leaves the object without
    /// storage and is answered "town not found" by the owner check that follows. Calls with no
    /// person behind them (agents, the container, the alarm) only reach towns already in use:
    /// agents exist only in a town with storage. A [`PendingTown`] entry (made when the dev
    /// operator creates a town for another user id) is the other way in.
    async fn materialize(&self, lookup: Option<(&str, &str)>) -> CoreResult<()> {
        if self.has_schema()? {
            return Ok(());
        }
        let storage = self.state.storage();
        let pending = storage.get::<PendingTown>(PENDING_TOWN).await.map_err(internal)?;
        let had_entry = pending.is_some();
        let (town_id, name, owner_user_id, created_at) = match pending {
            Some(p) => (p.town_id, p.name, p.owner_user_id, p.created_at),
            None => {
                let Some((town_id, user_id)) = lookup else { return Ok(()) };
                let call = UserCall { user_id: user_id.into(), op: UserOp::GetTown { town_id: town_id.into() } };
                let town: UserTown = match super::call(&self.env, "GASTOWN_USER", user_id, "/op", &call).await {
                    Ok(v) => serde_json::from_value(v)?,
                    Err(CoreError::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
                // The call above let other requests in: one of them may have done this already.
                if self.has_schema()? {
                    return Ok(());
                }
                let created = gastown_core::time::parse_iso(&town.created_at).unwrap_or_else(now_ms);
                (town.id, town.name, user_id.to_string(), created)
            }
        };
        let db = DoSql::new(self.state.storage());
        ensure_schema(&db, &self.migrated, migrate::TOWN)?;
        TownStore::new(&db, created_at)
            .with_meta_cache(&self.meta)
            .handle_json(TownOp::Init { town_id, name, owner_user_id }, &Actor::System)?;
        if had_entry {
            storage.delete(PENDING_TOWN).await.map_err(internal)?;
        }
        Ok(())
    }

    /// Runs an op; if it may have changed anything and clients are watching, pushes the events it
    /// produced to every live-stream socket.
    fn run(&self, op: TownOp, actor: &Actor) -> CoreResult<Value> {
        Ok(serde_json::from_str(&self.run_json(op, actor)?)?)
    }

    /// [`Core::run`] with the reply as JSON text, as the client will get it.
    fn run_json(&self, op: TownOp, actor: &Actor) -> CoreResult<String> {
        let sockets = if op.kind() == OpKind::Query { vec![] } else { self.state.get_websockets() };
        let before = if sockets.is_empty() { None } else { self.apply(TownOp::LastEventId, &Actor::System).ok() };
        let result = self.apply_json(op, actor);
        if let Some(before) = before.and_then(|v| v.as_i64()) {
            self.push(&sockets, before);
        }
        result
    }

    /// Sends every event after `after` to `sockets` (a socket that fails is closed by the runtime).
    fn push(&self, sockets: &[WebSocket], after: i64) {
        let Ok(v) = self.apply(TownOp::StreamEvents { after_id: after, limit: REPLAY_LIMIT }, &Actor::System) else { return };
        for m in v["messages"].as_array().into_iter().flatten() {
            let text = m.to_string();
            for ws in sockets {
                let _ = ws.send_with_str(&text);
            }
        }
    }

    /// `GET /events/ws?since=<seq>`: a hibernating socket that first gets what it missed.
    fn open_stream(&self, since: Option<i64>) -> Result<Response> {
        if self.apply(TownOp::LastEventId, &Actor::System).is_err() {
            return Response::error("town not found", 404);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let newest = self.apply(TownOp::LastEventId, &Actor::System).ok().and_then(|v| v.as_i64()).unwrap_or(0);
        if let Some(since) = since {
            let v = self.apply(TownOp::StreamEvents { after_id: since, limit: REPLAY_LIMIT }, &Actor::System).map_err(err)?;
            for m in v["messages"].as_array().into_iter().flatten() {
                pair.server.send_with_str(m.to_string())?;
            }
            if v["truncated"].as_bool() == Some(true) {
                pair.server.send_with_str(serde_json::json!({"type": "refetch", "seq": newest}).to_string())?;
            }
        }
        pair.server.send_with_str(serde_json::json!({"type": "ready", "seq": newest}).to_string())?;
        Response::from_websocket(pair.client)
    }

    /// Another person's town is "not found" (an unknown town is too).
    fn check_owner(&self, user_id: &str) -> CoreResult<()> {
        let db = DoSql::new(self.state.storage());
        if !self.migrated.get() && !db.has_table("town_meta")? {
            return Err(CoreError::NotFound("town not found".into()));
        }
        TownStore::new(&db, now_ms()).with_meta_cache(&self.meta).check_owner(user_id)
    }

    fn apply(&self, op: TownOp, actor: &Actor) -> CoreResult<Value> {
        Ok(serde_json::from_str(&self.apply_json(op, actor)?)?)
    }

    fn apply_json(&self, op: TownOp, actor: &Actor) -> CoreResult<String> {
        let db = DoSql::new(self.state.storage());
        // An id nobody initialised stays storage-free: only Init creates the schema.
        if !matches!(op, TownOp::Init { .. }) && !self.migrated.get() && !db.has_table("town_meta")? {
            return Err(CoreError::NotFound("town not found".into()));
        }
        ensure_schema(&db, &self.migrated, migrate::TOWN)?;
        let (limits, development) = self.settings()?;
        TownStore::new(&db, now_ms())
            .with_meta_cache(&self.meta)
            .with_limits(limits)
            .in_instance(&self.instance)
            .with_development(development)
            .handle_json(op, actor)
    }

    /// The deployment's limits and whether it is a development one: read from the environment
    /// once per instance (each read is a call into JS, and every op needs them).
    fn settings(&self) -> CoreResult<(Limits, bool)> {
        if let Some(s) = self.settings.get() {
            return Ok(s);
        }
        let s = (super::limits(&self.env)?, crate::auth::is_development(&self.env));
        self.settings.set(Some(s));
        Ok(s)
    }

    /// Arms the alarm for the earliest pending work (never later than an alarm already set).
    /// With the alarm about to ring anyway, nothing is computed: it computes the next one
    /// itself when it rings, and work due now was claimed before this was called, so a later
    /// deadline is at most [`RECOMPUTE_WINDOW_MS`] late. A town busy with retries would
    /// otherwise pay the whole computation after every op.
    async fn schedule(&self) -> Result<()> {
        if let Some(Some(at)) = self.alarm_at.get() {
            if at <= now_ms() + RECOMPUTE_WINDOW_MS {
                return Ok(());
            }
        }
        let next: Option<i64> = match self.run(TownOp::NextWake, &Actor::System) {
            Ok(v) => serde_json::from_value(v).unwrap_or(None),
            Err(CoreError::NotFound(_)) => return Ok(()),
            Err(e) => {
                worker::console_error!("computing the next alarm: {e}");
                return Ok(());
            }
        };
        let storage = self.state.storage();
        if let Some(at) = next {
            let current = match self.alarm_at.get() {
                Some(known) => known,
                None => storage.get_alarm().await?,
            };
            if current.is_none_or(|c| c > at) {
                self.alarm_at.set(None);
                storage.set_alarm((at - now_ms()).max(0)).await?;
                self.alarm_at.set(Some(Some(at)));
            } else {
                self.alarm_at.set(Some(current));
            }
        }
        Ok(())
    }

    fn town_and_config(&self) -> Result<(String, gastown_core::config::TownConfig)> {
        let db = DoSql::new(self.state.storage());
        let store = TownStore::new(&db, now_ms()).with_meta_cache(&self.meta);
        let info: gastown_core::town::TownInfo = serde_json::from_value(store.handle(TownOp::GetTown, &Actor::System).map_err(err)?)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok((info.id, store.config().map_err(err)?))
    }

    /// One witness pass. The container is asked for its processes only while some agent is
    /// supposed to be running, so an idle town never wakes its container.
    /// The runs are recorded before the container is asked, so that a run that starts or
    /// reports in while the list is on its way is not judged by a list older than it.
    async fn witness(&self) -> CoreResult<Value> {
        let asked: Option<Vec<RunMark>> = serde_json::from_value(self.run(TownOp::WitnessMarks, &Actor::System)?)?;
        let container = if asked.is_some() { self.container_runs().await } else { None };
        self.run(TownOp::WitnessTick { container, asked }, &Actor::System)
    }

    /// The container's processes, or `None` when it cannot be reached.
    async fn container_runs(&self) -> Option<Vec<RunView>> {
        let (town_id, _) = self.town_and_config().ok()?;
        match ContainerClient::bare(&self.env, &town_id).get("/sessions").await {
            Ok((200, list)) => match gastown_core::container::reply::<Vec<AgentSnapshot>>(list) {
                Ok(sessions) => Some(gastown_core::container::run_views(&sessions)),
                Err(e) => {
                    worker::console_warn!("witness: {e}");
                    None
                }
            },
            Ok((status, e)) => {
                worker::console_warn!("witness: the container answered {status}: {e}");
                None
            }
            Err(e) => {
                worker::console_warn!("witness: the container is unreachable: {e}");
                None
            }
        }
    }

    /// Asks the container to end the agent's current run shortly (it just submitted its work).
    async fn end_run_after_done(&self, agent_id: &str) {
        let Ok((town_id, _)) = self.town_and_config() else { return };
        let epoch = self
            .run(TownOp::GetAgent { rig_id: None, agent_id: agent_id.into() }, &Actor::System)
            .ok()
            .and_then(|a| a["spawn_epoch"].as_i64());
        let body = gastown_core::container::stop_after_done_request(epoch);
        if let Err(e) = ContainerClient::bare(&self.env, &town_id).post(&format!("/agents/{agent_id}/stop"), &body).await {
            worker::console_warn!("ending {agent_id}'s run after done: {e}");
        }
    }

    /// Can the town's container reach `git_url`? `Err` (400, one line, no git output) when the
    /// remote answered that there is no such repository or no access; `Ok(Some(note))` when it
    /// could not be checked (container or host unreachable), `Ok(None)` when it is reachable.
    async fn check_git_url(&self, git_url: &str) -> CoreResult<Option<String>> {
        let (town_id, cfg) = self.town_and_config().map_err(|e| CoreError::Internal(e.to_string()))?;
        let body = gastown_core::container::check_request(git_url, &cfg);
        match ContainerClient::new(&self.env, &town_id, &cfg).post("/git/check", &body).await {
            Ok((s, data)) if s < 300 => match gastown_core::container::reply::<CheckReply>(data).map(|r| r.result) {
                Ok(RemoteCheck::Reachable) => Ok(None),
                Ok(RemoteCheck::NotFound) => Err(CoreError::BadRequest {
                    field: Some("git_url".into()),
                    message: format!("cannot reach {git_url}: repository not found or no access"),
                }),
                _ => Ok(Some(format!("not checked: the container could not reach the host of {git_url}"))),
            },
            Ok((s, _)) => Ok(Some(format!("not checked: the town's container answered {s}"))),
            Err(_) => Ok(Some("not checked: the town's container is not reachable".into())),
        }
    }

    /// Has the container push the agent's own branch for its hooked bead; returns the branch.
    async fn push_for_done(&self, rig_id: &str, agent_id: &str, claimed: &str) -> CoreResult<String> {
        let job: DonePushJob = serde_json::from_value(
            self.run(TownOp::DonePushJob { rig_id: rig_id.into(), agent_id: agent_id.into(), branch: claimed.into() }, &Actor::System)?,
        )?;
        if job.already_submitted {
            return Ok(claimed.to_string());
        }
        let (town_id, cfg) = self.town_and_config().map_err(|e| CoreError::Internal(e.to_string()))?;
        let body = gastown_core::container::push_request(&job, claimed, &cfg);
        match ContainerClient::new(&self.env, &town_id, &cfg).post("/git/push", &body).await {
            Ok((s, data)) if s < 300 => Ok(gastown_core::container::reply::<PushReply>(data)?.branch),
            Ok((403, e)) => Err(CoreError::Forbidden(text_of(&e))),
            Ok((s, e)) if (400..500).contains(&s) => Err(CoreError::Conflict(format!("the branch could not be pushed: {}", text_of(&e)))),
            Ok((s, e)) => {
                Err(CoreError::Upstream(format!("the container could not push the branch ({s}), nothing was submitted: {}", text_of(&e))))
            }
            Err(e) => Err(CoreError::Upstream(format!("the town's container is unreachable, nothing was pushed: {e}"))),
        }
    }

    /// Opens the pull request for gated work (or finds its open one), titled after the bead,
    /// described by the polecat's summary with every configured secret redacted.
    async fn deliver_pr(&self, town_id: &str, cfg: &TownConfig, job: &MergeJob, head_sha: &str) -> MergeOutcome {
        let forge = match Forge::for_rig(&job.rig, cfg, crate::auth::is_development(&self.env)) {
            Ok(f) => f,
            Err(e) => return MergeOutcome::Unreachable { error: format!("no pull request opened: {e}") },
        };
        let link = crate::auth::var(&self.env, "GASTOWN_API_URL").map(|base| {
            let (rig, bead) = (&job.rig.id, &job.review.source_bead_id);
            format!("{}/#/towns/{town_id}/rigs/{rig}?d=bead:{rig}:{bead}", base.trim_end_matches('/'))
        });
        let summary = job.review.summary.as_deref().map(|s| gastown_core::forge::redact(s, cfg));
        let body = gastown_core::forge::pr_body(
            &job.review.source_bead_id,
            &job.source_title,
            summary.as_deref(),
            &job.agent_name,
            link.as_deref(),
        );
        forge.deliver(job, head_sha, &body).await
    }

    /// Records a train's outcomes. Should recording fail as a whole, each merge is recorded as
    /// failed with a short error instead, so that none stays `running` until the witness's timeout.
    fn record_merges(&self, reports: impl Iterator<Item = MergeReport>) {
        let reports: Vec<MergeReport> = reports.collect();
        let ids: Vec<String> = reports.iter().map(|r| r.review_id.clone()).collect();
        match self.run(TownOp::MergeResults { reports }, &Actor::System) {
            Ok(v) => {
                for r in v.as_array().into_iter().flatten().filter(|r| r.get("error").is_some()) {
                    worker::console_warn!("merge result of {} not applied: {}", r["id"], r["error"]);
                }
            }
            Err(e) => {
                worker::console_error!("recording merge results: {e}");
                let error: String = e.to_string().chars().take(500).collect();
                for review_id in ids {
                    if let Err(e) = self.run(TownOp::MergeUnrecorded { review_id, error: error.clone() }, &Actor::System) {
                        worker::console_error!("recording a merge as failed: {e}");
                    }
                }
            }
        }
    }

    async fn drive(&self) -> Result<()> {
        for _ in 0..MAX_ROUNDS {
            let work: Work = match self.run(TownOp::ClaimWork, &Actor::System) {
                Ok(v) => serde_json::from_value(v).map_err(|e| worker::Error::RustError(e.to_string()))?,
                Err(e) => {
                    worker::console_error!("claiming work: {e}");
                    break;
                }
            };
            if work.is_empty() {
                break;
            }
            let (town_id, cfg) = self.town_and_config()?;
            let client = ContainerClient::new(&self.env, &town_id, &cfg);
            // Notices first: they are short, and an agent about to be restarted is not among them.
            for n in &work.nudges {
                let body = gastown_core::container::nudge_request(n);
                if let Err(e) = client.post(&format!("/agents/{}/nudge", n.agent_id), &body).await {
                    worker::console_warn!("nudging {}: {e}", n.agent_id);
                }
            }
            let starts = join_all(work.dispatches.iter().map(|d| client.start(d))).await;
            let mut reported_max = None;
            for (job, result) in work.dispatches.iter().zip(starts) {
                let (agent_id, epoch) = (job.agent.id.clone(), job.epoch);
                let op = match result {
                    StartOutcome::Started { max_agents } => {
                        reported_max = max_agents.or(reported_max);
                        continue;
                    }
                    StartOutcome::Full { reason, container_limit } => TownOp::DispatchDeferred { agent_id, epoch, reason, container_limit },
                    StartOutcome::Failed { error, permanent } => {
                        worker::console_warn!("dispatch of {} failed: {error}", job.agent.id);
                        TownOp::DispatchFailed { agent_id, epoch, error, permanent, unreachable: false }
                    }
                    StartOutcome::Unreachable { error } => {
                        worker::console_warn!("dispatch of {}: {error}", job.agent.id);
                        TownOp::DispatchFailed { agent_id, epoch, error, permanent: false, unreachable: true }
                    }
                };
                if let Err(e) = self.run(op, &Actor::System) {
                    worker::console_error!("recording a dispatch outcome: {e}");
                }
            }
            if let Some(max_agents) = reported_max.filter(|m| Some(*m) != work.container_max_agents) {
                if let Err(e) = self.run(TownOp::ContainerCapacity { max_agents }, &Actor::System) {
                    worker::console_error!("recording the container's capacity: {e}");
                }
            }
            let trains = merge_trains(&work.merges);
            let outcomes = join_all(trains.iter().map(|t| client.merge_batch(t))).await;
            for (train, outcomes) in trains.iter().zip(outcomes) {
                let mut reports = vec![];
                for (j, outcome) in train.iter().zip(outcomes) {
                    // Strategy `pr`: gated work becomes a pull request (or updates its open one).
                    let outcome = match outcome {
                        MergeOutcome::Gated { head_sha } => self.deliver_pr(&town_id, &cfg, j, &head_sha).await,
                        o => o,
                    };
                    reports.push(MergeReport { review_id: j.review.id.clone(), outcome });
                }
                self.record_merges(reports.into_iter());
            }
            let dev = crate::auth::is_development(&self.env);
            let polls = join_all(work.pr_polls.iter().map(|p| async {
                match Forge::for_rig(&p.rig, &cfg, dev) {
                    Ok(f) => f.observe(&p.pr).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }))
            .await;
            for (p, observation) in work.pr_polls.iter().zip(polls) {
                if let Err(e) = self.run(TownOp::PrObserved { review_id: p.review_id.clone(), observation }, &Actor::System) {
                    worker::console_error!("recording a pull request poll: {e}");
                }
            }
            for m in &work.pr_merges {
                let error = match Forge::for_rig(&m.rig, &cfg, dev) {
                    Ok(f) => f.merge(&m.pr).await.err().map(|e| e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                if let Err(e) = self.run(TownOp::PrMergeAsked { review_id: m.review_id.clone(), error }, &Actor::System) {
                    worker::console_error!("recording an auto-merge: {e}");
                }
            }
        }
        self.schedule().await
    }
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl TownDO {
    /// The Worker's calls, by JS RPC (see `crate::dos`): resolves to `[status, text]`.
    #[wasm_bindgen(js_name = gastownCall)]
    pub async fn gastown_call(&self, path: String, body: String) -> js_sys::Array {
        rpc_reply(self.core.call(&path, &body).await)
    }
}

fn text_of(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn err(e: CoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

fn internal(e: worker::Error) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl DurableObject for TownDO {
    fn new(state: State, env: Env) -> Self {
        let instance = format!("{:x}-{:08x}", now_ms(), (js_sys::Math::random() * u32::MAX as f64) as u32);
        TownDO {
            core: Rc::new(Core {
                state,
                env,
                migrated: Cell::new(false),
                alarm_at: Cell::new(None),
                settings: Cell::new(None),
                instance,
                meta: MetaCache::default(),
            }),
        }
    }

    /// Only the live event stream: every op comes by RPC ([`TownDO::gastown_call`]).
    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == "/events/ws" {
            let since = req.url()?.query_pairs().find(|(k, _)| k == "since").and_then(|(_, v)| v.parse::<i64>().ok());
            self.core.materialize(None).await.map_err(err)?;
            return self.core.open_stream(since);
        }
        Response::error("not found", 404)
    }

    async fn alarm(&self) -> Result<Response> {
        self.core.alarm_at.set(None);
        if let Err(e) = self.core.witness().await {
            worker::console_error!("witness: {e}");
        }
        self.core.drive().await?;
        Response::ok("")
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        super::answer_ping(&ws, message)
    }

    async fn websocket_close(&self, _ws: WebSocket, _code: usize, _reason: String, _clean: bool) -> Result<()> {
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }
}
