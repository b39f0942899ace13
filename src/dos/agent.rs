//! AgentDO: one per agent (named `<town>:<agent>`), the agent's bounded event log.

use std::cell::Cell;

use gastown_core::agent_log::{AgentLog, AgentLogOp};
use gastown_core::migrate;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::sql::DoSql;
use super::{ensure_schema, read_op, reply};
use crate::http::now_ms;

#[durable_object]
pub struct AgentDO {
    state: State,
    migrated: Cell<bool>,
}

impl DurableObject for AgentDO {
    fn new(state: State, _env: Env) -> Self {
        AgentDO { state, migrated: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: AgentLogOp = match read_op(&mut req).await {
            Ok(op) => op,
            Err(e) => return reply(Err(e)),
        };
        if matches!(op, AgentLogOp::Destroy) {
            self.state.storage().delete_all().await?;
            self.migrated.set(false);
            return reply(Ok(serde_json::json!({"destroyed": true})));
        }
        let db = DoSql::new(self.state.storage());
        let result = ensure_schema(&db, &self.migrated, migrate::AGENT).and_then(|_| AgentLog::new(&db, now_ms()).handle(op));
        reply(result)
    }
}
