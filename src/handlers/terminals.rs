//! Live terminals: the session list, stream tickets, and the terminal WebSocket, which is relayed
//! browser ↔ Worker ↔ TownContainerDO ↔ container ↔ the agent's PTY. The container keeps the
//! scrollback and joins it to live output without gap or overlap; the Worker decides who may
//! type: only the mayor's session is read-write, every other session is read-only.

use gastown_core::auth::{sign_stream_ticket, TICKET_TTL_SECS};
use gastown_core::model::{Agent, AgentRole};
use gastown_core::town::{Actor, AgentFilter, TownOp};
use gastown_core::{CoreError, CoreResult};
use gastown_protocol::{AgentSnapshot, AgentState};
use serde::{Deserialize, Serialize};
use worker::{Method, Request, RequestInit, Response};

use super::{ok, town_call, Ctx, Reply};
use crate::auth::{jwt_secret, Principal};
use crate::dos::container::TOWN_HEADER;
use crate::dos::work::ContainerClient;
use crate::http::{decode, now_ms};

async fn town_agent(ctx: &Ctx) -> CoreResult<Agent> {
    decode(ctx.town(TownOp::GetAgent { rig_id: None, agent_id: ctx.param("agentId").into() }).await?)
}

#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct Ticket {
    ticket: String,
    /// The terminal's WebSocket URL with the ticket (path and query).
    url: String,
    expires_in_secs: i64,
}

/// One agent's terminal session.
#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct Session {
    name: String,
    role: AgentRole,
    agent_id: String,
    rig_id: Option<String>,
    /// `active` (its process runs), `idle` or `dead`.
    status: &'static str,
    /// Only the mayor's terminal takes input.
    writable: bool,
}

/// `?since=<seq>`: replay what came after it first.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct StreamQuery {
    since: Option<u64>,
}

/// `POST …/agents/:agentId/stream-ticket`: a single-use, 60-second ticket for this terminal.
pub async fn stream_ticket(ctx: Ctx) -> Reply {
    let agent = town_agent(&ctx).await?;
    let user = match &ctx.principal {
        Some(Principal::User(u)) => u.user_id.clone(),
        Some(Principal::Dev { user_id }) => user_id.clone(),
        _ => return Err(CoreError::Forbidden("only people mint stream tickets".into())),
    };
    let (ticket, _) = sign_stream_ticket(&jwt_secret(&ctx.env)?, &user, ctx.town_id(), &agent.id, now_ms())?;
    let url = format!("/api/towns/{}/agents/{}/terminal?ticket={ticket}", ctx.town_id(), agent.id);
    ok(serde_json::to_value(Ticket { ticket, url, expires_in_secs: TICKET_TTL_SECS })?)
}

/// `GET /api/towns/:townId/sessions`: every agent with its terminal session's state.
pub async fn sessions(ctx: Ctx) -> Reply {
    let agents: Vec<Agent> = decode(ctx.town(TownOp::ListAgents { filter: AgentFilter::default() }).await?)?;
    let running: Vec<AgentSnapshot> = match ContainerClient::bare(&ctx.env, ctx.town_id()).get("/sessions").await {
        Ok((200, v)) => gastown_core::container::reply(v).unwrap_or_else(|e| {
            worker::console_warn!("sessions: {e}");
            vec![]
        }),
        // No container (or it is asleep): no session is active.
        _ => vec![],
    };
    let out: Vec<Session> = agents
        .into_iter()
        .map(|a| {
            let live = running.iter().any(|s| s.agent_id == a.id && s.status == AgentState::Running);
            let status = if live {
                "active"
            } else if a.status == gastown_core::model::AgentStatus::Dead {
                "dead"
            } else {
                "idle"
            };
            Session { writable: a.role == AgentRole::Mayor, name: a.name, role: a.role, agent_id: a.id, rig_id: a.rig_id, status }
        })
        .collect();
    ok(serde_json::to_value(out)?)
}

/// The streaming routes answer only WebSocket upgrades.
fn require_websocket(ctx: &Ctx) -> CoreResult<()> {
    let upgrade = ctx.req.headers().get("upgrade").ok().flatten().unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        Ok(())
    } else {
        Err(CoreError::bad_request("this route is a WebSocket: send Upgrade: websocket"))
    }
}

/// `GET …/agents/:agentId/terminal` with `Upgrade: websocket`. Authorization (owner, or a valid
/// unused ticket for this very terminal) happened in the router.
pub async fn terminal(ctx: Ctx) -> CoreResult<Response> {
    require_websocket(&ctx)?;
    let agent = town_agent(&ctx).await?;
    let write = if agent.role == AgentRole::Mayor { "?write=1" } else { "" };
    let headers = ctx.req.headers().clone();
    for h in ["authorization", "cookie", "cf-access-jwt-assertion"] {
        headers.delete(h).map_err(|e| CoreError::Internal(e.to_string()))?;
    }
    headers.set(TOWN_HEADER, ctx.town_id()).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&format!("https://container/agents/{}/pty{write}", agent.id), &init)
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    let stub = crate::dos::stub(&ctx.env, "TOWN_CONTAINER", ctx.town_id())?;
    stub.fetch_with_request(req).await.map_err(|e| CoreError::Internal(format!("terminal relay: {e}")))
}

/// Forwards a WebSocket upgrade to a Durable Object's `/events/ws` (replay from `?since`).
async fn open_stream(ctx: &Ctx, binding: &str, name: &str) -> CoreResult<Response> {
    require_websocket(ctx)?;
    let since = ctx.query_as::<StreamQuery>()?.since;
    let headers = worker::Headers::new();
    headers.set("upgrade", "websocket").map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let path = match since {
        Some(s) => format!("https://do/events/ws?since={s}"),
        None => "https://do/events/ws".to_string(),
    };
    let req = Request::new_with_init(&path, &init).map_err(|e| CoreError::Internal(e.to_string()))?;
    let stub = crate::dos::stub(&ctx.env, binding, name)?;
    let resp = stub.fetch_with_request(req).await.map_err(|e| CoreError::Internal(format!("event stream: {e}")))?;
    if resp.status_code() == 404 {
        return Err(CoreError::NotFound("town not found".into()));
    }
    Ok(resp)
}

/// `GET /api/towns/:townId/events/ws[?since=<seq>]`: the town's live event stream, served by a
/// hibernating socket on the TownDO (an idle town's stream costs nothing).
pub async fn town_stream(ctx: Ctx) -> CoreResult<Response> {
    ctx.check_owner().await?;
    open_stream(&ctx, "TOWN", ctx.town_id()).await
}

/// `GET /api/towns/:townId/agents/:agentId/events/ws[?since=<id>]`: one agent's events, live.
pub async fn agent_stream(ctx: Ctx) -> CoreResult<Response> {
    let agent = town_agent(&ctx).await?;
    open_stream(&ctx, "AGENT", &format!("{}:{}", ctx.town_id(), agent.id)).await
}

/// `GET /api/towns/:townId/agents/:agentId/events?after_id=&limit=`: backfill for the owner.
pub async fn agent_events(ctx: Ctx, q: super::agents::LogQuery) -> Reply {
    let (after_id, limit) = (q.after_id.map(super::as_i64), q.limit);
    let agent = town_agent(&ctx).await?;
    ok(super::agent_log_call(&ctx.env, ctx.town_id(), &agent.id, gastown_core::agent_log::AgentLogOp::List { after_id, limit }).await?)
}

/// Checks and consumes a `?ticket=` for this terminal; the ticket's user becomes the caller.
pub async fn ticket_principal(ctx: &Ctx, ticket: &str) -> CoreResult<Principal> {
    let secret = jwt_secret(&ctx.env)?;
    let t = gastown_core::auth::verify_stream_ticket(&secret, ticket, ctx.town_id(), ctx.param("agentId"), now_ms())?;
    let expires_at = now_ms() + TICKET_TTL_SECS * 1000;
    town_call(&ctx.env, ctx.town_id(), Actor::User(t.user_id.clone()), TownOp::ConsumeTicket { jti: t.jti, expires_at }).await?;
    Ok(Principal::User(gastown_core::auth::AccessIdentity { user_id: t.user_id, email: None, service: false }))
}
