//! Every route of the Worker, in one table: method, path pattern, who may call it, and the
//! handler. Authentication happens once in [`handle`]; each [`Access`] level is checked here
//! before any handler runs, so no handler can forget it.

use gastown_core::auth::check_agent_scope;
use gastown_core::model::AgentRole;
use gastown_core::user::UserOp;
use gastown_core::web::{self, Credential, OriginCheck};
use gastown_core::{CoreError, CoreResult};
use serde_json::Value;
use worker::{Env, Method, Request, Response};

use crate::auth::{self, Principal};
use crate::handlers::{self as h, Ctx};
use crate::http;

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

#[derive(Clone, Copy, Debug)]
pub enum H {
    Health,
    Me,
    CreateTown,
    ListTowns,
    GetUserTown,
    DeleteTown,
    ListTownRigs,
    UserTownEvents,
    CreateRig,
    ListRigs,
    GetUserRig,
    DeleteRig,
    GetTown,
    GetConfig,
    PatchConfig,
    TownEvents,
    MayorMessage,
    CreateBead,
    ListBeads,
    GetBead,
    DeleteBead,
    SetBeadStatus,
    CloseBead,
    ListDeps,
    AddDep,
    RemoveDep,
    Sling,
    RigEvents,
    RegisterAgent,
    ListAgents,
    GetAgent,
    DeleteAgent,
    Hook,
    Unhook,
    Prime,
    Checkpoint,
    Done,
    ListMail,
    ReadMail,
    SendMail,
    ListAgentEvents,
    AppendAgentEvent,
    Lifecycle,
    Escalate,
    MayorSling,
    MayorRigs,
    MayorRigBeads,
    MayorRigAgents,
    MayorMail,
    Sessions,
    StreamTicket,
    Terminal,
    TownEventStream,
    TownAgentEvents,
    AgentEventStream,
    ListEscalations,
    AckEscalation,
    MayorEscalations,
    MayorAckEscalation,
    MayorEnsure,
    MayorStatus,
    MayorInbox,
    TownAgents,
    TownMail,
    MergeQueue,
    RetryMerge,
    ListConvoys,
    CreateConvoy,
    GetConvoy,
    AddToConvoy,
    ListFormulas,
    CreateMolecule,
    GetMolecule,
    MolCurrent,
    MolAdvance,
    WitnessTick,
    WitnessStatus,
    MayorReadMail,
    MayorLifecycle,
    GetRig,
    PatchRig,
    GithubWebhook,
    GitlabWebhook,
}

use Access::*;
use Method::{Delete, Get, Patch, Post};

const T: &str = "/api/towns/:townId";
const RIG: &str = "/api/towns/:townId/rigs/:rigId";

/// The route table. Patterns use `:name` segments; the first match wins.
fn routes() -> Vec<(Method, String, Access, H)> {
    let r = |m: Method, p: &str, a: Access, h: H| (m, p.to_string(), a, h);
    vec![
        r(Get, "/health", Public, H::Health),
        r(Get, "/api/me", Authenticated, H::Me),
        // Forges report on the town's pull requests (signed with the town's webhook secret).
        r(Post, "/api/webhooks/github/:townId", Webhook, H::GithubWebhook),
        r(Post, "/api/webhooks/gitlab/:townId", Webhook, H::GitlabWebhook),
        // Users → towns and rigs (GastownUserDO is the ownership record).
        r(Post, "/api/users/:userId/towns", UserSelf, H::CreateTown),
        r(Get, "/api/users/:userId/towns", UserSelf, H::ListTowns),
        r(Get, "/api/users/:userId/towns/:townId", UserSelf, H::GetUserTown),
        r(Delete, "/api/users/:userId/towns/:townId", UserSelf, H::DeleteTown),
        r(Get, "/api/users/:userId/towns/:townId/rigs", UserSelf, H::ListTownRigs),
        r(Get, "/api/users/:userId/towns/:townId/events", UserSelf, H::UserTownEvents),
        r(Post, "/api/users/:userId/rigs", UserSelf, H::CreateRig),
        r(Get, "/api/users/:userId/rigs", UserSelf, H::ListRigs),
        r(Get, "/api/users/:userId/rigs/:rigId", UserSelf, H::GetUserRig),
        r(Delete, "/api/users/:userId/rigs/:rigId", UserSelf, H::DeleteRig),
        // The town.
        r(Get, T, TownOwner, H::GetTown),
        r(Get, &format!("{T}/config"), TownOwner, H::GetConfig),
        r(Patch, &format!("{T}/config"), TownOwner, H::PatchConfig),
        r(Get, &format!("{T}/events"), TownOwner, H::TownEvents),
        r(Get, &format!("{T}/events/ws"), TownOwner, H::TownEventStream),
        r(Post, &format!("{T}/mayor/message"), TownOwner, H::MayorMessage),
        r(Post, &format!("{T}/mayor/ensure"), TownOwner, H::MayorEnsure),
        r(Get, &format!("{T}/mayor/status"), TownOwner, H::MayorStatus),
        r(Get, &format!("{T}/escalations"), TownOwner, H::ListEscalations),
        r(Post, &format!("{T}/escalations/:escalationId/acknowledge"), TownOwner, H::AckEscalation),
        r(Get, &format!("{T}/agents"), TownOwner, H::TownAgents),
        r(Get, &format!("{T}/mail"), TownOwner, H::TownMail),
        r(Get, &format!("{T}/merge-queue"), TownOwner, H::MergeQueue),
        r(Post, &format!("{T}/merge-queue/:mrId/retry"), TownOwner, H::RetryMerge),
        // Convoys: batches of work tracked until every bead has landed.
        r(Get, &format!("{T}/convoys"), TownOwner, H::ListConvoys),
        r(Post, &format!("{T}/convoys"), TownOwner, H::CreateConvoy),
        r(Get, &format!("{T}/convoys/:convoyId"), TownOwner, H::GetConvoy),
        r(Post, &format!("{T}/convoys/:convoyId/beads"), TownOwner, H::AddToConvoy),
        r(Get, &format!("{T}/formulas"), TownOwner, H::ListFormulas),
        // The witness: run a pass now; when the town's alarm next looks.
        r(Post, &format!("{T}/witness/tick"), TownOwner, H::WitnessTick),
        r(Get, &format!("{T}/witness"), TownOwner, H::WitnessStatus),
        // Live terminals (WebSocket relay to the agent's PTY).
        r(Get, &format!("{T}/sessions"), TownOwner, H::Sessions),
        r(Post, &format!("{T}/agents/:agentId/stream-ticket"), TownOwner, H::StreamTicket),
        r(Get, &format!("{T}/agents/:agentId/terminal"), Terminal, H::Terminal),
        // An agent's own event log: backfill with a cursor, and the same events live.
        r(Get, &format!("{T}/agents/:agentId/events"), TownOwner, H::TownAgentEvents),
        r(Get, &format!("{T}/agents/:agentId/events/ws"), TownOwner, H::AgentEventStream),
        // A rig's own settings (merge strategy, forge).
        r(Get, RIG, TownOwner, H::GetRig),
        r(Patch, RIG, TownOwner, H::PatchRig),
        // Beads of a rig.
        r(Post, &format!("{RIG}/beads"), RigMember, H::CreateBead),
        r(Get, &format!("{RIG}/beads"), RigMember, H::ListBeads),
        r(Get, &format!("{RIG}/beads/:beadId"), RigMember, H::GetBead),
        r(Delete, &format!("{RIG}/beads/:beadId"), TownOwner, H::DeleteBead),
        r(Patch, &format!("{RIG}/beads/:beadId/status"), RigMember, H::SetBeadStatus),
        r(Post, &format!("{RIG}/beads/:beadId/close"), RigMember, H::CloseBead),
        r(Get, &format!("{RIG}/beads/:beadId/dependencies"), RigMember, H::ListDeps),
        r(Post, &format!("{RIG}/beads/:beadId/dependencies"), RigMember, H::AddDep),
        r(Delete, &format!("{RIG}/beads/:beadId/dependencies/:dependsOn"), RigMember, H::RemoveDep),
        r(Post, &format!("{RIG}/sling"), RigMember, H::Sling),
        r(Post, &format!("{RIG}/beads/:beadId/molecule"), RigMember, H::CreateMolecule),
        r(Get, &format!("{RIG}/beads/:beadId/molecule"), RigMember, H::GetMolecule),
        r(Get, &format!("{RIG}/events"), RigMember, H::RigEvents),
        r(Post, &format!("{RIG}/mail"), RigMember, H::SendMail),
        r(Post, &format!("{RIG}/escalations"), RigMember, H::Escalate),
        // Agents of a rig.
        r(Post, &format!("{RIG}/agents"), TownOwner, H::RegisterAgent),
        r(Get, &format!("{RIG}/agents"), RigMember, H::ListAgents),
        r(Get, &format!("{RIG}/agents/:agentId"), AgentSelf, H::GetAgent),
        r(Delete, &format!("{RIG}/agents/:agentId"), TownOwner, H::DeleteAgent),
        r(Post, &format!("{RIG}/agents/:agentId/hook"), AgentSelf, H::Hook),
        r(Delete, &format!("{RIG}/agents/:agentId/hook"), AgentSelf, H::Unhook),
        r(Get, &format!("{RIG}/agents/:agentId/prime"), AgentSelf, H::Prime),
        r(Post, &format!("{RIG}/agents/:agentId/checkpoint"), AgentSelf, H::Checkpoint),
        r(Post, &format!("{RIG}/agents/:agentId/done"), AgentSelf, H::Done),
        r(Get, &format!("{RIG}/agents/:agentId/mail"), AgentSelf, H::ListMail),
        r(Post, &format!("{RIG}/agents/:agentId/mail/:mailId/read"), AgentSelf, H::ReadMail),
        r(Get, &format!("{RIG}/agents/:agentId/events"), AgentSelf, H::ListAgentEvents),
        r(Post, &format!("{RIG}/agents/:agentId/events"), AgentSelf, H::AppendAgentEvent),
        // `gt mol current|advance`: walking the steps of the hooked molecule.
        r(Post, &format!("{RIG}/agents/:agentId/molecule/current"), AgentSelf, H::MolCurrent),
        r(Post, &format!("{RIG}/agents/:agentId/molecule/advance"), AgentSelf, H::MolAdvance),
        // The container reports the agent's process starting and exiting (with its spawn epoch).
        r(Post, &format!("{RIG}/agents/:agentId/lifecycle"), AgentSelf, H::Lifecycle),
        // The mayor's tools (its token has no rig; lists are filtered by the rig asked for).
        r(Post, "/api/mayor/:townId/tools/sling", Mayor, H::MayorSling),
        r(Get, "/api/mayor/:townId/tools/rigs", Mayor, H::MayorRigs),
        r(Get, "/api/mayor/:townId/tools/rigs/:rigId/beads", Mayor, H::MayorRigBeads),
        r(Get, "/api/mayor/:townId/tools/rigs/:rigId/agents", Mayor, H::MayorRigAgents),
        r(Post, "/api/mayor/:townId/tools/mail", Mayor, H::MayorMail),
        r(Get, "/api/mayor/:townId/tools/escalations", Mayor, H::MayorEscalations),
        r(Get, "/api/mayor/:townId/tools/inbox", Mayor, H::MayorInbox),
        r(Post, "/api/mayor/:townId/tools/inbox/:mailId/read", Mayor, H::MayorReadMail),
        // The container reports the mayor's process starting and exiting (the mayor has no rig).
        r(Post, "/api/mayor/:townId/tools/lifecycle", Mayor, H::MayorLifecycle),
        r(Post, "/api/mayor/:townId/tools/escalations/:escalationId/acknowledge", Mayor, H::MayorAckEscalation),
        r(Get, "/api/mayor/:townId/tools/convoys", Mayor, H::ListConvoys),
        r(Post, "/api/mayor/:townId/tools/convoys", Mayor, H::CreateConvoy),
        r(Get, "/api/mayor/:townId/tools/convoys/:convoyId", Mayor, H::GetConvoy),
        r(Post, "/api/mayor/:townId/tools/convoys/:convoyId/beads", Mayor, H::AddToConvoy),
    ]
}

async fn dispatch(handler: H, ctx: Ctx) -> CoreResult<(u16, Value)> {
    match handler {
        H::Health => h::misc::health(ctx).await,
        H::Me => h::misc::me(ctx).await,
        H::CreateTown => h::users::create_town(ctx).await,
        H::ListTowns => h::users::list_towns(ctx).await,
        H::GetUserTown => h::users::get_town(ctx).await,
        H::DeleteTown => h::users::delete_town(ctx).await,
        H::ListTownRigs => h::users::list_town_rigs(ctx).await,
        H::UserTownEvents => h::towns::events(ctx).await,
        H::CreateRig => h::users::create_rig(ctx).await,
        H::ListRigs => h::users::list_rigs(ctx).await,
        H::GetUserRig => h::users::get_rig(ctx).await,
        H::DeleteRig => h::users::delete_rig(ctx).await,
        H::GetTown => h::towns::get(ctx).await,
        H::GetConfig => h::towns::get_config(ctx).await,
        H::PatchConfig => h::towns::patch_config(ctx).await,
        H::TownEvents => h::towns::events(ctx).await,
        H::MayorMessage => h::towns::mayor_message(ctx).await,
        H::CreateBead => h::beads::create(ctx).await,
        H::ListBeads => h::beads::list(ctx).await,
        H::GetBead => h::beads::get(ctx).await,
        H::DeleteBead => h::beads::delete(ctx).await,
        H::SetBeadStatus => h::beads::set_status(ctx).await,
        H::CloseBead => h::beads::close(ctx).await,
        H::ListDeps => h::beads::list_deps(ctx).await,
        H::AddDep => h::beads::add_dep(ctx).await,
        H::RemoveDep => h::beads::remove_dep(ctx).await,
        H::Sling => h::beads::sling(ctx).await,
        H::RigEvents => h::beads::events(ctx).await,
        H::SendMail => h::agents::send_mail(ctx).await,
        H::RegisterAgent => h::agents::register(ctx).await,
        H::ListAgents => h::agents::list(ctx).await,
        H::GetAgent => h::agents::get(ctx).await,
        H::DeleteAgent => h::agents::delete(ctx).await,
        H::Hook => h::agents::hook(ctx).await,
        H::Unhook => h::agents::unhook(ctx).await,
        H::Prime => h::agents::prime(ctx).await,
        H::Checkpoint => h::agents::checkpoint(ctx).await,
        H::Done => h::agents::done(ctx).await,
        H::ListMail => h::agents::list_mail(ctx).await,
        H::ReadMail => h::agents::read_mail(ctx).await,
        H::ListAgentEvents => h::agents::list_events(ctx).await,
        H::AppendAgentEvent => h::agents::append_event(ctx).await,
        H::Lifecycle => h::agents::lifecycle(ctx).await,
        H::Escalate => h::agents::escalate(ctx).await,
        H::MayorSling => h::mayor::sling(ctx).await,
        H::MayorRigs => h::mayor::rigs(ctx).await,
        H::MayorRigBeads => h::mayor::rig_beads(ctx).await,
        H::MayorRigAgents => h::mayor::rig_agents(ctx).await,
        H::MayorMail => h::mayor::mail(ctx).await,
        H::Sessions => h::terminals::sessions(ctx).await,
        H::StreamTicket => h::terminals::stream_ticket(ctx).await,
        H::TownAgentEvents => h::terminals::agent_events(ctx).await,
        H::MayorEnsure => h::towns::mayor_ensure(ctx).await,
        H::MayorStatus => h::towns::mayor_status(ctx).await,
        H::MayorInbox => h::mayor::inbox(ctx).await,
        H::MayorReadMail => h::mayor::read_mail(ctx).await,
        H::MayorLifecycle => h::mayor::lifecycle(ctx).await,
        H::ListEscalations | H::MayorEscalations => h::towns::escalations(ctx).await,
        H::AckEscalation | H::MayorAckEscalation => h::towns::acknowledge_escalation(ctx).await,
        H::TownAgents => h::coordination::town_agents(ctx).await,
        H::TownMail => h::coordination::town_mail(ctx).await,
        H::MergeQueue => h::coordination::merge_queue(ctx).await,
        H::RetryMerge => h::coordination::retry_merge(ctx).await,
        H::ListConvoys => h::coordination::list_convoys(ctx).await,
        H::CreateConvoy => h::coordination::create_convoy(ctx).await,
        H::GetConvoy => h::coordination::get_convoy(ctx).await,
        H::AddToConvoy => h::coordination::add_to_convoy(ctx).await,
        H::ListFormulas => h::coordination::list_formulas(ctx).await,
        H::CreateMolecule => h::coordination::create_molecule(ctx).await,
        H::GetMolecule => h::coordination::get_molecule(ctx).await,
        H::MolCurrent => h::coordination::mol_current(ctx).await,
        H::MolAdvance => h::coordination::mol_advance(ctx).await,
        H::WitnessTick => h::coordination::witness_tick(ctx).await,
        H::WitnessStatus => h::coordination::witness_status(ctx).await,
        H::GetRig => h::webhooks::get_rig(ctx).await,
        H::PatchRig => h::webhooks::patch_rig(ctx).await,
        H::GithubWebhook => h::webhooks::receive(ctx, gastown_core::forge::ForgeKind::Github).await,
        H::GitlabWebhook => h::webhooks::receive(ctx, gastown_core::forge::ForgeKind::Gitlab).await,
        H::Terminal | H::TownEventStream | H::AgentEventStream => unreachable!("answered with a raw response in handle()"),
    }
}

/// Matches `path` against a pattern, returning the `:name` captures.
fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let pat: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_end_matches('/').trim_start_matches('/').split('/').collect();
    if pat.len() != segs.len() {
        return None;
    }
    let mut params = vec![];
    for (p, s) in pat.iter().zip(&segs) {
        if let Some(name) = p.strip_prefix(':') {
            let value = urlencoding_decode(s)?;
            if !gastown_core::ids::looks_like_id(&value) {
                return None;
            }
            params.push((name.to_string(), value));
        } else if p != s {
            return None;
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

pub async fn handle(req: Request, env: Env) -> worker::Result<Response> {
    let path = req.path();
    let method = req.method();
    let table = routes();
    let mut path_matched = false;
    let mut found = None;
    for (m, pattern, access, handler) in &table {
        if let Some(params) = match_path(pattern, &path) {
            path_matched = true;
            if *m == method {
                found = Some((params, *access, *handler));
                break;
            }
        }
    }
    let Some((params, access, handler)) = found else {
        return if path_matched {
            http::json_response(405, &serde_json::json!({"success": false, "error": format!("method {method} is not allowed here")}))
        } else {
            http::json_response(404, &serde_json::json!({"success": false, "error": format!("no route for {path}")}))
        };
    };
    let result = async {
        auth::check_config(&env)?;
        let ticket = if access == Terminal { http::Query::from(&req)?.str("ticket").map(str::to_string) } else { None };
        if !matches!(access, Public | Webhook) {
            check_origin(&req, &env, ticket.is_some())?;
        }
        // A ticket replaces every other credential on the terminal route; a webhook has none.
        let principal = if matches!(access, Public | Webhook) || ticket.is_some() { None } else { auth::authenticate(&req, &env).await? };
        let mut ctx = Ctx { req, env, params, principal };
        match ticket {
            Some(t) => ctx.principal = Some(h::terminals::ticket_principal(&ctx, &t).await?),
            None => authorize(&ctx, access).await?,
        }
        match handler {
            H::Terminal => return Err(Raw(h::terminals::terminal(ctx).await)),
            H::TownEventStream => return Err(Raw(h::terminals::town_stream(ctx).await)),
            H::AgentEventStream => return Err(Raw(h::terminals::agent_stream(ctx).await)),
            _ => {}
        }
        dispatch(handler, ctx).await.map_err(|e| Raw(Err(e)))
    }
    .await;
    let result = match result {
        Ok(v) => Ok(v),
        Err(Raw(Ok(resp))) => return Ok(resp),
        Err(Raw(Err(e))) => Err(e),
    };
    match result {
        Ok((status, data)) if handler_is_raw(handler) => http::json_response(status, &data),
        Ok((status, data)) => http::ok(status, data),
        Err(e) => http::error(&e),
    }
}

/// Refuses a state-changing request or WebSocket upgrade from a foreign origin (CSRF and
/// cross-site WebSocket hijacking): see `gastown_core::web::check_origin`. Runs before any
/// credential is looked at, so a forged request is refused whoever it would have acted as.
fn check_origin(req: &Request, env: &Env, ticket: bool) -> CoreResult<()> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let credential = if ticket || header("authorization").is_some() {
        Credential::Explicit
    } else if auth::access_cookie(req).is_some() {
        Credential::AccessCookie
    } else {
        Credential::Ambient
    };
    let websocket = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let url = req.url().map_err(|_| CoreError::bad_request("bad URL"))?;
    let origin = header("origin");
    let method = req.method();
    let allowed = web::parse_allowed_origins(auth::var(env, "ALLOWED_ORIGINS").as_deref())?;
    web::check_origin(
        &OriginCheck { method: method.as_ref(), websocket, origin: origin.as_deref(), url: url.as_str(), credential },
        &allowed,
    )
}

/// Carries a finished raw response (the WebSocket relay) or an error out of the request future.
struct Raw(CoreResult<Response>);

impl From<CoreError> for Raw {
    fn from(e: CoreError) -> Self {
        Raw(Err(e))
    }
}

/// `/health` answers bare JSON for load balancers; everything else uses the envelope.
fn handler_is_raw(h: H) -> bool {
    matches!(h, H::Health)
}

async fn authorize(ctx: &Ctx, access: Access) -> CoreResult<()> {
    if matches!(access, Public | Webhook) {
        return Ok(());
    }
    let p = ctx.principal.as_ref().ok_or_else(|| CoreError::Unauthorized("authentication required".into()))?;
    let town = ctx.opt_param("townId");
    match (access, p) {
        (Public | Authenticated, _) => Ok(()),
        (UserSelf, Principal::Dev { .. }) => Ok(()),
        (UserSelf, Principal::User(u)) if u.user_id == ctx.param("userId") => Ok(()),
        (UserSelf, _) => Err(CoreError::Forbidden("you may only act for yourself".into())),
        (_, Principal::Agent(c)) => {
            let town = town.unwrap_or_default();
            match access {
                RigMember => check_agent_scope(c, town, Some(ctx.param("rigId")), None),
                AgentSelf => check_agent_scope(c, town, Some(ctx.param("rigId")), Some(ctx.param("agentId"))),
                Mayor if c.role == AgentRole::Mayor => check_agent_scope(c, town, None, None),
                Mayor => Err(CoreError::Forbidden("only the mayor may use the mayor's tools".into())),
                Terminal => Err(CoreError::Forbidden("agents do not open terminals".into())),
                _ => Err(CoreError::Forbidden("agents may not use this route".into())),
            }
        }
        // The dev operator acts for every owner; the TownDO still answers 404 for unknown towns.
        (_, Principal::Dev { .. }) => Ok(()),
        (_, Principal::User(u)) => {
            let town = town.unwrap_or_default();
            // The caller's own registry is the source of truth: another user's town is not found.
            h::user_call(&ctx.env, &u.user_id, UserOp::GetTown { town_id: town.to_string() }).await.map(|_| ())
        }
    }
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
    fn every_route_is_unique() {
        let t = routes();
        for (i, a) in t.iter().enumerate() {
            for b in &t[i + 1..] {
                assert!(!(a.0 == b.0 && a.1 == b.1), "duplicate route {} {}", a.0, a.1);
            }
        }
    }
}
