//! TownDO: one per town, all control-plane state. `POST /op` runs a [`TownOp`];
//! `POST /destroy` wipes the town's storage.

use std::cell::Cell;

use gastown_core::migrate;
use gastown_core::town::{Actor, TownOp, TownStore};
use gastown_core::CoreError;
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::sql::DoSql;
use super::{ensure_schema, read_op, reply};
use crate::http::now_ms;

#[derive(Serialize, Deserialize)]
pub struct TownCall {
    pub actor: Actor,
    pub op: TownOp,
}

#[durable_object]
pub struct TownDO {
    state: State,
    migrated: Cell<bool>,
}

impl DurableObject for TownDO {
    fn new(state: State, _env: Env) -> Self {
        TownDO { state, migrated: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let db = DoSql::new(self.state.storage());
        if req.path() == "/destroy" {
            self.state.storage().delete_alarm().await?;
            self.state.storage().delete_all().await?;
            self.migrated.set(false);
            return reply(Ok(serde_json::json!({"destroyed": true})));
        }
        let call: TownCall = match read_op(&mut req).await {
            Ok(c) => c,
            Err(e) => return reply(Err(e)),
        };
        // An id nobody initialised stays storage-free: only Init creates the schema.
        let result = (|| {
            if !matches!(call.op, TownOp::Init { .. }) && !self.migrated.get() && !db.has_table("town_meta")? {
                return Err(CoreError::NotFound("town not found".into()));
            }
            ensure_schema(&db, &self.migrated, migrate::TOWN)?;
            TownStore::new(&db, now_ms()).handle(call.op, &call.actor)
        })();
        reply(result)
    }
}
