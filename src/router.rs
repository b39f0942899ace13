//! Every route of the Worker, in one table ([`ROUTES`]): method, path pattern, who may call it,
//! the handler, and the types it reads and answers. Authentication happens once in [`handle`];
//! [`crate::authz::decide`] checks each row's [`Access`] level before any handler runs, so no
//! handler can forget it. The OpenAPI document and the dashboard's types are derived from the
//! same rows (`crate::openapi`).

use futures_util::future::LocalBoxFuture;
use gastown_core::town::{
    AddToConvoyInput, CreateBeadInput, CreateConvoyInput, DoneInput, EscalateInput, Lifecycle, MoleculeInput, RegisterAgentInput, RigPatch,
    SendMailInput, SlingInput,
};
use gastown_core::web::{self, Credential, OriginCheck};
use gastown_core::{CoreError, CoreResult};
use worker::worker_sys::web_sys;
use worker::{Env, Method, Response};
// Types that only the OpenAPI document reads (what each route answers).
#[cfg(not(target_arch = "wasm32"))]
use {
    gastown_core::agent_log::AgentEvent,
    gastown_core::config::TownConfig,
    gastown_core::model::{Agent, Bead, BeadEvent, Mail, ReviewEntry, Rig},
    gastown_core::town::{Convoy, ConvoyDetail, Escalation, MayorStatus, Molecule, SlingResult, TownInfo},
    gastown_core::user::{UserRig, UserTown},
    serde_json::Value,
};

use crate::auth;
use crate::authz::{self, Grant};
use crate::handlers::{self as h, Ctx, Reply};
use crate::http;

/// A route's `:name` captures, in pattern order.
pub type Params = Vec<(String, String)>;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Access {
    /// No credentials needed.
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// `/api/users/:userId/…`: that user (or the dev operator).
    UserSelf,
    /// The town's owner (or the dev operator). Agents never.
    TownOwner,
    /// The town's owner, or an agent whose token is for this town and `:rigId`.
    RigMember,
    /// The town's owner, or the agent named by `:agentId` (token for this town, rig and agent).
    AgentSelf,
    /// The town's owner, or the town's mayor.
    Mayor,
    /// The town's owner, or whoever presents an unused stream ticket for this very terminal.
    Terminal,
    /// A forge's webhook: no cookie, no bearer; the TownDO verifies its signature (GitHub's
    /// HMAC, GitLab's token) against the town's secret before reading it. Being signed, it needs
    /// no Origin check (a browser cannot sign it).
    Webhook,
}

/// How a route answers: JSON in the `{"success": …}` envelope, or a finished response (the
/// WebSocket relays, and `/health`'s bare JSON for load balancers).
#[derive(Clone, Copy)]
pub enum Run {
    Json(fn(Ctx) -> LocalBoxFuture<'static, Reply>),
    /// JSON without the envelope (`/health` for load balancers, the OpenAPI document).
    Bare(fn(Ctx) -> LocalBoxFuture<'static, Reply>),
    Raw(fn(Ctx) -> LocalBoxFuture<'static, CoreResult<Response>>),
}

/// One row of the table. `doc` (native builds only, so the Worker's wasm carries none of it) is
/// what the OpenAPI document says about the route: the types come from the same tokens the
/// handler is called with, so the document cannot describe a body the handler does not decode.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub run: Run,
    #[cfg(not(target_arch = "wasm32"))]
    pub doc: crate::openapi::Doc,
}

/// `route!(Post rig!("/beads"), RigMember, beads::create(body: CreateBeadInput) -> 201 Bead, "…")`:
/// decodes the query string and the body into the named types (400 with the field on bad input),
/// calls the handler with them, and records the same types, the success status and the reply
/// type for the OpenAPI document. `ws` rows answer with a raw response (WebSocket upgrades).
macro_rules! route {
    (bare $m:ident $($rest:tt)*) => { route!(@row Bare $m $($rest)*) };
    (ws $m:ident $path:expr, $access:ident, $($h:ident)::+ $(query: $q:ty)?, $summary:literal) => {
        Route {
            method: Method::$m,
            path: $path,
            access: $access,
            run: Run::Raw(|ctx| Box::pin(h::$($h)::+(ctx))),
            #[cfg(not(target_arch = "wasm32"))]
            doc: crate::openapi::Doc::websocket($summary, route!(@schema $($q)?)),
        }
    };
    (@row $kind:ident $m:ident $path:expr, $access:ident, $($h:ident)::+ (query: $q:ty, body: $b:ty) -> $($rest:tt)*) => {
        route!(@full $kind $m $path, $access, $($h)::+ [$q] [$b] -> $($rest)*)
    };
    (@row $kind:ident $m:ident $path:expr, $access:ident, $($h:ident)::+ (query: $q:ty) -> $($rest:tt)*) => {
        route!(@full $kind $m $path, $access, $($h)::+ [$q] [] -> $($rest)*)
    };
    (@row $kind:ident $m:ident $path:expr, $access:ident, $($h:ident)::+ (body: $b:ty) -> $($rest:tt)*) => {
        route!(@full $kind $m $path, $access, $($h)::+ [] [$b] -> $($rest)*)
    };
    (@row $kind:ident $m:ident $path:expr, $access:ident, $($h:ident)::+ () -> $($rest:tt)*) => {
        route!(@full $kind $m $path, $access, $($h)::+ [] [] -> $($rest)*)
    };
    (@full $kind:ident $m:ident $path:expr, $access:ident, $($h:ident)::+ [$($q:ty)?] [$($b:ty)?] -> $status:literal $reply:ty, $summary:literal) => {
        Route {
            method: Method::$m,
            path: $path,
            access: $access,
            run: Run::$kind(|mut ctx| {
                Box::pin(async move {
                    $(let query: $q = ctx.query_as()?;)?
                    $(let body: $b = ctx.body().await?;)?
                    #[allow(unused_mut)]
                    let _ = &mut ctx;
                    h::$($h)::+(ctx $(, std::convert::identity::<$q>(query))? $(, std::convert::identity::<$b>(body))?).await
                })
            }),
            #[cfg(not(target_arch = "wasm32"))]
            doc: crate::openapi::Doc {
                summary: $summary,
                query: route!(@schema $($q)?),
                body: route!(@schema $($b)?),
                status: $status,
                reply: Some(crate::openapi::schema_of::<$reply>),
                websocket: false,
                enveloped: route!(@enveloped $kind),
            },
        }
    };
    (@schema $t:ty) => { Some(crate::openapi::schema_of::<$t>) };
    (@schema) => { None };
    (@enveloped Json) => { true };
    (@enveloped Bare) => { false };
    ($m:ident $($rest:tt)*) => { route!(@row Json $m $($rest)*) };
}

macro_rules! town {
    ($s:literal) => {
        concat!("/api/towns/:townId", $s)
    };
}
macro_rules! rig {
    ($s:literal) => {
        concat!("/api/towns/:townId/rigs/:rigId", $s)
    };
}
macro_rules! agent {
    ($s:literal) => {
        concat!("/api/towns/:townId/rigs/:rigId/agents/:agentId", $s)
    };
}
macro_rules! mayor {
    ($s:literal) => {
        concat!("/api/mayor/:townId/tools", $s)
    };
}

use h::{agents, beads, coordination, mayor, towns, users};
use Access::*;

/// The route table, in the order it is matched (the first whose path and method match wins).
/// Adding an endpoint is one row here and one handler; the OpenAPI document, the dashboard's
/// TypeScript types and the authorization tests are derived from this table.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route!(bare Get "/health", Public, misc::health() -> 200 h::misc::Health, "Liveness and the isolate's wasm heap size (bare JSON, no envelope)"),
    route!(Get "/api/me", Authenticated, misc::me() -> 200 crate::auth::Me, "Who the caller is"),
    route!(bare Get "/api/openapi.json", Public, misc::openapi() -> 200 Value, "This API as an OpenAPI 3.1 document (bare JSON, no envelope)"),
    // Forges report on the town's pull requests (signed with the town's webhook secret).
    route!(Post "/api/webhooks/github/:townId", Webhook, webhooks::github() -> 200 Value, "A GitHub webhook (X-Hub-Signature-256 over the raw body)"),
    route!(Post "/api/webhooks/gitlab/:townId", Webhook, webhooks::gitlab() -> 200 Value, "A GitLab webhook (X-Gitlab-Token)"),
    // Users → towns and rigs (GastownUserDO is the ownership record).
    route!(Post "/api/users/:userId/towns", UserSelf, users::create_town(body: users::CreateTown) -> 201 UserTown, "Create a town"),
    route!(Get "/api/users/:userId/towns", UserSelf, users::list_towns() -> 200 Vec<UserTown>, "The user's towns"),
    route!(Get "/api/users/:userId/towns/:townId", UserSelf, users::get_town() -> 200 UserTown, "One of the user's towns"),
    route!(Delete "/api/users/:userId/towns/:townId", UserSelf, users::delete_town() -> 200 users::TownDeleted, "Delete a town, its rigs, agents and storage"),
    route!(Get "/api/users/:userId/towns/:townId/rigs", UserSelf, users::list_town_rigs() -> 200 Vec<UserRig>, "The rigs of one of the user's towns"),
    route!(Get "/api/users/:userId/towns/:townId/events", UserSelf, towns::user_events(query: towns::TownEventQuery) -> 200 Vec<BeadEvent>, "The town's event log"),
    route!(Post "/api/users/:userId/rigs", UserSelf, users::create_rig(body: users::CreateRig) -> 201 users::RigCreated, "Add a rig (a git repository) to a town"),
    route!(Get "/api/users/:userId/rigs", UserSelf, users::list_rigs(query: users::RigQuery) -> 200 Vec<UserRig>, "The user's rigs"),
    route!(Get "/api/users/:userId/rigs/:rigId", UserSelf, users::get_rig() -> 200 UserRig, "One of the user's rigs"),
    route!(Delete "/api/users/:userId/rigs/:rigId", UserSelf, users::delete_rig() -> 200 users::RigDeleted, "Delete a rig and its agents"),
    // The town.
    route!(Get town!(""), TownOwner, towns::get() -> 200 TownInfo, "The town and its rigs"),
    route!(Get town!("/config"), TownOwner, towns::get_config() -> 200 TownConfig, "The town's settings (secrets masked)"),
    route!(Patch town!("/config"), TownOwner, towns::patch_config(body: towns::ConfigPatchBody) -> 200 TownConfig, "Change the town's settings"),
    route!(Get town!("/events"), TownOwner, towns::events(query: towns::TownEventQuery) -> 200 Vec<BeadEvent>, "The town's event log"),
    route!(ws Get town!("/events/ws"), TownOwner, terminals::town_stream query: h::terminals::StreamQuery, "The town's events live (WebSocket; replays from ?since)"),
    route!(Post town!("/mayor/message"), TownOwner, towns::mayor_message(body: towns::MayorMessage) -> 201 Value, "Mail the mayor (starting it)"),
    route!(Post town!("/mayor/ensure"), TownOwner, towns::mayor_ensure() -> 200 MayorStatus, "Start the mayor and keep it running"),
    route!(Get town!("/mayor/status"), TownOwner, towns::mayor_status() -> 200 MayorStatus, "Whether the mayor runs"),
    route!(Get town!("/escalations"), TownOwner, towns::escalations(query: towns::EscalationQuery) -> 200 Vec<Escalation>, "Escalations, newest first"),
    route!(Post town!("/escalations/:escalationId/acknowledge"), TownOwner, towns::acknowledge_escalation() -> 200 Escalation, "Acknowledge an escalation"),
    route!(Get town!("/agents"), TownOwner, coordination::town_agents() -> 200 Vec<Agent>, "Every agent of the town"),
    route!(Get town!("/mail"), TownOwner, coordination::town_mail(query: coordination::NewestQuery) -> 200 Vec<Mail>, "The town's mail, newest first"),
    route!(Get town!("/merge-queue"), TownOwner, coordination::merge_queue(query: coordination::NewestQuery) -> 200 Vec<ReviewEntry>, "The merge requests, newest first"),
    route!(Post town!("/merge-queue/:mrId/retry"), TownOwner, coordination::retry_merge() -> 200 ReviewEntry, "Put a failed merge request back in the queue"),
    // Convoys: batches of work tracked until every bead has landed.
    route!(Get town!("/convoys"), TownOwner, coordination::list_convoys(query: coordination::NewestQuery) -> 200 Vec<Convoy>, "Convoys: the open ones, then the landed, each newest first"),
    route!(Post town!("/convoys"), TownOwner, coordination::create_convoy(body: CreateConvoyInput) -> 201 Convoy, "Create a convoy"),
    route!(Get town!("/convoys/:convoyId"), TownOwner, coordination::get_convoy() -> 200 ConvoyDetail, "A convoy with its beads"),
    route!(Post town!("/convoys/:convoyId/beads"), TownOwner, coordination::add_to_convoy(body: AddToConvoyInput) -> 200 Convoy, "Track beads in a convoy"),
    route!(Get town!("/formulas"), TownOwner, coordination::list_formulas() -> 200 Value, "The built-in molecule formulas"),
    // The witness: run a pass now; when the town's alarm next looks.
    route!(Post town!("/witness/tick"), TownOwner, coordination::witness_tick() -> 200 Value, "Run the witness now"),
    route!(Get town!("/witness"), TownOwner, coordination::witness_status() -> 200 Value, "When the witness next looks"),
    // Live terminals (WebSocket relay to the agent's PTY).
    route!(Get town!("/sessions"), TownOwner, terminals::sessions() -> 200 Vec<h::terminals::Session>, "Every agent with its terminal session's state"),
    route!(Post town!("/agents/:agentId/stream-ticket"), TownOwner, terminals::stream_ticket() -> 200 h::terminals::Ticket, "A single-use, 60-second ticket for a terminal"),
    route!(ws Get town!("/agents/:agentId/terminal"), Terminal, terminals::terminal, "An agent's terminal (WebSocket; owner or ?ticket=)"),
    // An agent's own event log: backfill with a cursor, and the same events live.
    route!(Get town!("/agents/:agentId/events"), TownOwner, terminals::agent_events(query: agents::LogQuery) -> 200 Vec<AgentEvent>, "An agent's event log"),
    route!(ws Get town!("/agents/:agentId/events/ws"), TownOwner, terminals::agent_stream query: h::terminals::StreamQuery, "An agent's events live (WebSocket)"),
    // A rig's own settings (merge strategy, forge).
    route!(Get rig!(""), TownOwner, webhooks::get_rig() -> 200 Rig, "A rig and its settings"),
    route!(Patch rig!(""), TownOwner, webhooks::patch_rig(body: RigPatch) -> 200 Rig, "Change a rig's settings (merge strategy, forge)"),
    // Beads of a rig.
    route!(Post rig!("/beads"), RigMember, beads::create(body: CreateBeadInput) -> 201 Bead, "Create a bead"),
    route!(Get rig!("/beads"), RigMember, beads::list(query: beads::BeadQuery) -> 200 Vec<Bead>, "The rig's beads"),
    route!(Get rig!("/beads/:beadId"), RigMember, beads::get() -> 200 Bead, "A bead"),
    route!(Delete rig!("/beads/:beadId"), TownOwner, beads::delete() -> 200 Value, "Delete a bead"),
    route!(Patch rig!("/beads/:beadId/status"), RigMember, beads::set_status(body: beads::StatusInput) -> 200 Bead, "Change a bead's status"),
    route!(Post rig!("/beads/:beadId/close"), RigMember, beads::close(body: beads::CloseInput) -> 200 Bead, "Close a bead"),
    route!(Get rig!("/beads/:beadId/dependencies"), RigMember, beads::list_deps() -> 200 Value, "A bead's dependencies"),
    route!(Post rig!("/beads/:beadId/dependencies"), RigMember, beads::add_dep(body: beads::DepInput) -> 201 Value, "Add a dependency"),
    route!(Delete rig!("/beads/:beadId/dependencies/:dependsOn"), RigMember, beads::remove_dep() -> 200 Value, "Remove a dependency"),
    route!(Post rig!("/sling"), RigMember, beads::sling(body: SlingInput) -> 201 SlingResult, "Create work and hand it to a polecat"),
    route!(Post rig!("/beads/:beadId/molecule"), RigMember, coordination::create_molecule(body: MoleculeInput) -> 201 Molecule, "Instantiate a formula on a bead"),
    route!(Get rig!("/beads/:beadId/molecule"), RigMember, coordination::get_molecule() -> 200 Molecule, "The molecule on a bead"),
    route!(Get rig!("/events"), RigMember, beads::events(query: beads::EventQuery) -> 200 Vec<BeadEvent>, "The rig's events"),
    route!(Post rig!("/mail"), RigMember, agents::send_mail(body: SendMailInput) -> 201 Mail, "Send mail"),
    route!(Post rig!("/escalations"), RigMember, agents::escalate(body: EscalateInput) -> 201 Bead, "Escalate"),
    // Agents of a rig.
    route!(Post rig!("/agents"), TownOwner, agents::register(body: RegisterAgentInput) -> 201 Agent, "Register an agent"),
    route!(Get rig!("/agents"), RigMember, agents::list(query: agents::AgentQuery) -> 200 Vec<Agent>, "The rig's agents"),
    route!(Get agent!(""), AgentSelf, agents::get() -> 200 Agent, "An agent"),
    route!(Delete agent!(""), TownOwner, agents::delete() -> 200 Value, "Delete an agent"),
    route!(Post agent!("/hook"), AgentSelf, agents::hook(body: agents::HookInput) -> 200 Agent, "Hang a bead on the agent's hook"),
    route!(Delete agent!("/hook"), AgentSelf, agents::unhook() -> 200 Agent, "Take the bead off the hook"),
    route!(Get agent!("/prime"), AgentSelf, agents::prime() -> 200 Value, "What the agent needs to start work"),
    route!(Post agent!("/checkpoint"), AgentSelf, agents::checkpoint(body: agents::CheckpointInput) -> 200 Agent, "Save the agent's checkpoint"),
    route!(Post agent!("/done"), AgentSelf, agents::done(body: DoneInput) -> 201 ReviewEntry, "Submit the hooked work for merging (`gt done`)"),
    route!(Get agent!("/mail"), AgentSelf, agents::list_mail(query: agents::MailQuery) -> 200 Vec<Mail>, "The agent's mailbox"),
    route!(Post agent!("/mail/:mailId/read"), AgentSelf, agents::read_mail() -> 200 Mail, "Mark a mail read"),
    route!(Post agent!("/mail/check"), AgentSelf, agents::check_mail() -> 200 Vec<Mail>, "Take the unread mail: returns it, oldest first, marked read (`gt mail check`)"),
    route!(Get agent!("/events"), AgentSelf, agents::list_events(query: agents::LogQuery) -> 200 Vec<AgentEvent>, "The agent's event log"),
    route!(Post agent!("/events"), AgentSelf, agents::append_event(body: agents::EventInput) -> 201 agents::EventAppended, "Append to the agent's event log"),
    // `gt mol current|advance`: walking the steps of the hooked molecule.
    route!(Post agent!("/molecule/current"), AgentSelf, coordination::mol_current() -> 200 Value, "The hooked molecule's current step"),
    route!(Post agent!("/molecule/advance"), AgentSelf, coordination::mol_advance(body: coordination::AdvanceInput) -> 200 Value, "Close the current step, start the next"),
    // The container reports the agent's process starting and exiting (with its spawn epoch).
    route!(Post agent!("/lifecycle"), AgentSelf, agents::lifecycle(body: Lifecycle) -> 200 Value, "The agent's process started or exited"),
    // The mayor's tools (its token has no rig; lists are filtered by the rig asked for).
    route!(Post mayor!("/sling"), Mayor, mayor::sling(body: mayor::MayorSling) -> 201 SlingResult, "Sling work to a rig"),
    route!(Get mayor!("/rigs"), Mayor, mayor::rigs() -> 200 Vec<Rig>, "The town's rigs"),
    route!(Get mayor!("/rigs/:rigId/beads"), Mayor, mayor::rig_beads(query: beads::BeadQuery) -> 200 Vec<Bead>, "A rig's beads"),
    route!(Get mayor!("/rigs/:rigId/agents"), Mayor, mayor::rig_agents() -> 200 Vec<Agent>, "A rig's agents"),
    route!(Post mayor!("/mail"), Mayor, mayor::mail(body: SendMailInput) -> 201 Mail, "Send mail"),
    route!(Get mayor!("/escalations"), Mayor, towns::escalations(query: towns::EscalationQuery) -> 200 Vec<Escalation>, "Escalations"),
    route!(Get mayor!("/inbox"), Mayor, mayor::inbox(query: agents::MailQuery) -> 200 Vec<Mail>, "The mayor's mailbox"),
    route!(Post mayor!("/inbox/:mailId/read"), Mayor, mayor::read_mail() -> 200 Mail, "Mark a mail read"),
    route!(Post mayor!("/inbox/check"), Mayor, mayor::check_mail() -> 200 Vec<Mail>, "Take the unread mail: returns it, oldest first, marked read (`gt mail check`)"),
    // The container reports the mayor's process starting and exiting (the mayor has no rig).
    route!(Post mayor!("/lifecycle"), Mayor, mayor::lifecycle(body: Lifecycle) -> 200 Value, "The mayor's process started or exited"),
    route!(Post mayor!("/escalations/:escalationId/acknowledge"), Mayor, towns::acknowledge_escalation() -> 200 Escalation, "Acknowledge an escalation"),
    route!(Get mayor!("/convoys"), Mayor, coordination::list_convoys(query: coordination::NewestQuery) -> 200 Vec<Convoy>, "Convoys: the open ones, then the landed, each newest first"),
    route!(Post mayor!("/convoys"), Mayor, coordination::create_convoy(body: CreateConvoyInput) -> 201 Convoy, "Create a convoy"),
    route!(Get mayor!("/convoys/:convoyId"), Mayor, coordination::get_convoy() -> 200 ConvoyDetail, "A convoy with its beads"),
    route!(Post mayor!("/convoys/:convoyId/beads"), Mayor, coordination::add_to_convoy(body: AddToConvoyInput) -> 200 Convoy, "Track beads in a convoy"),
];

/// Matches `path` against a pattern, returning the `:name` captures.
#[cfg(test)]
fn match_path(pattern: &str, path: &str) -> Option<Params> {
    match_segments(pattern, &segments(path))
}

/// A request path's segments, split once per request (not once per row of the table).
fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

/// Matches a row's pattern against a path's segments: the literal segments first, allocating
/// nothing, and only a row that matches them decodes and checks its parameters.
fn match_segments(pattern: &str, segs: &[&str]) -> Option<Params> {
    let pat = || pattern.trim_matches('/').split('/');
    if pat().count() != segs.len() || pat().zip(segs).any(|(p, s)| !p.starts_with(':') && p != *s) {
        return None;
    }
    let mut params = vec![];
    for (p, s) in pat().zip(segs) {
        if let Some(name) = p.strip_prefix(':') {
            let value = urlencoding_decode(s)?;
            if !gastown_core::ids::looks_like_id(&value) {
                return None;
            }
            params.push((name.to_string(), value));
        }
    }
    Some(params)
}

fn urlencoding_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Finds the route for a request: the first row whose pattern and method match.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, Params), CoreError> {
    let segs = segments(path);
    // Rows of the request's method first; only a miss looks at the others (404 or 405).
    for route in ROUTES.iter().filter(|r| r.method == *method) {
        if let Some(params) = match_segments(route.path, &segs) {
            return Ok((route, params));
        }
    }
    Err(if ROUTES.iter().any(|r| match_segments(r.path, &segs).is_some()) {
        CoreError::MethodNotAllowed(format!("method {method} is not allowed here"))
    } else {
        CoreError::NotFound(format!("no route for {path}"))
    })
}

/// The request's method, or `None` for one `worker::Method` does not know (it would read, say,
/// `QUERY` as `GET` and run a GET route for it).
pub fn known_method(raw: &str) -> Option<Method> {
    let m = Method::from(raw.to_string());
    m.as_ref().eq_ignore_ascii_case(raw).then_some(m)
}

/// The methods some route answers on `path` (the `Allow` header of a 405).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = vec![];
    let segs = segments(path);
    for route in ROUTES.iter().filter(|r| match_segments(r.path, &segs).is_some()) {
        let m: &'static str = route.method.as_ref();
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    methods
}

pub async fn handle(req: http::Incoming, env: Env) -> web_sys::Response {
    let url = match req.url().parse::<worker::Url>() {
        Ok(url) => url,
        Err(_) => return http::error(&CoreError::bad_request("bad URL")),
    };
    let path = url.path().to_string();
    let found = match known_method(req.method()) {
        Some(method) => find(&method, &path),
        None if allowed_methods(&path).is_empty() => Err(CoreError::NotFound(format!("no route for {path}"))),
        None => Err(CoreError::MethodNotAllowed(format!("method {} is not allowed here", req.method()))),
    };
    let (route, params) = match found {
        Ok(found) => found,
        // RFC 9110: a 405 lists the methods the resource has.
        Err(e @ CoreError::MethodNotAllowed(_)) => {
            let resp = http::error(&e);
            // A response the Worker built itself always takes headers.
            let _ = resp.headers().set("allow", &allowed_methods(&path).join(", "));
            return resp;
        }
        Err(e) => return http::error(&e),
    };
    let access = route.access;
    let result = async {
        auth::check_config(&env)?;
        let ticket = if access == Terminal { http::Query::from(&url).str("ticket").map(str::to_string) } else { None };
        if !matches!(access, Public | Webhook) {
            check_origin(&req, &url, &env, ticket.is_some())?;
        }
        // A ticket replaces every other credential on the terminal route; a webhook has none.
        let principal = if matches!(access, Public | Webhook) || ticket.is_some() { None } else { auth::authenticate(&req, &env).await? };
        let mut ctx = Ctx { req, url, env, params, principal, owner: None };
        match ticket {
            Some(t) => ctx.principal = Some(h::terminals::ticket_principal(&ctx, &t).await?),
            None => match authz::decide(access, ctx.principal.as_ref(), &ctx.params)? {
                Grant::Allow => {}
                // Checked by the TownDO inside the handler's own call: no extra round trip.
                Grant::IfOwner(user) => ctx.owner = Some(user),
            },
        }
        match route.run {
            Run::Json(f) => f(ctx).await.map(|(status, data)| http::ok(status, data)),
            Run::Bare(f) => f(ctx).await.map(|(status, data)| http::bare(status, data)),
            Run::Raw(f) => f(ctx).await.map(web_sys::Response::from),
        }
    }
    .await;
    result.unwrap_or_else(|e| http::error(&e))
}

/// Refuses a state-changing request or WebSocket upgrade from a foreign origin (CSRF and
/// cross-site WebSocket hijacking): see `gastown_core::web::check_origin`. Runs before any
/// credential is looked at, so a forged request is refused whoever it would have acted as.
fn check_origin(req: &http::Incoming, url: &worker::Url, env: &Env, ticket: bool) -> CoreResult<()> {
    let header = |name: &str| req.header(name);
    let credential = if ticket || header("authorization").is_some() {
        Credential::Explicit
    } else if auth::access_cookie(req).is_some() {
        Credential::AccessCookie
    } else {
        Credential::Ambient
    };
    let websocket = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let origin = header("origin");
    let allowed = web::parse_allowed_origins(auth::var(env, "ALLOWED_ORIGINS").as_deref())?;
    web::check_origin(&OriginCheck { method: req.method(), websocket, origin: origin.as_deref(), url: url.as_str(), credential }, &allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_and_capture() {
        let p = match_path("/api/towns/:townId/rigs/:rigId/beads", "/api/towns/t1/rigs/r-2/beads").unwrap();
        assert_eq!(p, vec![("townId".into(), "t1".into()), ("rigId".into(), "r-2".into())]);
        assert!(match_path("/api/towns/:townId", "/api/towns/t1/").is_some());
        assert!(match_path("/api/towns/:townId", "/api/towns/t1/x").is_none());
        assert!(match_path("/api/towns/:townId", "/api/towns/..%2Fx").is_none());
        assert!(match_path("/api/towns/:townId", "/api/towns/a%20b").is_none());
        assert!(match_path("/api/towns/:townId", "/api/towns/").is_none());
    }

    #[test]
    fn every_route_is_unique_and_reachable() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "duplicate route {} {}", a.method, a.path);
            }
            // An earlier row must not shadow this one.
            let path = a.path.split('/').map(|s| if s.starts_with(':') { "x-1" } else { s }).collect::<Vec<_>>().join("/");
            let (found, _) = find(&a.method, &path).unwrap();
            assert!(std::ptr::eq(found, a), "{} {} is shadowed by {}", a.method, a.path, found.path);
        }
        assert!(matches!(find(&Method::Put, "/health"), Err(CoreError::MethodNotAllowed(_))));
        // The 405's Allow header: every method of every row on that path, once each.
        assert_eq!(allowed_methods("/health"), vec!["GET"]);
        assert_eq!(known_method("GET"), Some(Method::Get));
        assert_eq!(known_method("delete"), Some(Method::Delete));
        assert_eq!(known_method("QUERY"), None, "an unknown method is not a GET");
        assert_eq!(known_method(""), None);
        assert_eq!(allowed_methods("/api/towns/t-1/rigs/r-1/beads/b-1"), vec!["GET", "DELETE"]);
        assert_eq!(allowed_methods("/api/towns/t-1/config"), vec!["GET", "PATCH"]);
        assert!(matches!(find(&Method::Get, "/nope"), Err(CoreError::NotFound(_))));
    }
}
