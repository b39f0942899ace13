//! GastownUserDO: one per user, the towns and rigs the user owns.

use std::cell::Cell;

use gastown_core::migrate;
use gastown_core::user::{UserOp, UserStore};
use gastown_core::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::sql::DoSql;
use super::{ensure_schema, read_op, reply};
use crate::http::now_ms;

#[derive(Serialize, Deserialize)]
pub struct UserCall {
    pub user_id: String,
    pub op: UserOp,
}

#[durable_object]
pub struct GastownUserDO {
    state: State,
    env: Env,
    migrated: Cell<bool>,
}

impl DurableObject for GastownUserDO {
    fn new(state: State, env: Env) -> Self {
        GastownUserDO { state, env, migrated: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let db = DoSql::new(self.state.storage());
        let result = async {
            let call: UserCall = read_op(&mut req).await?;
            // A user who never created anything has no storage, and listing does not make any.
            if !self.migrated.get() && !db.has_table("user_towns")? {
                match &call.op {
                    UserOp::ListTowns | UserOp::ListRigs { .. } => return Ok(Value::Array(vec![])),
                    UserOp::GetTown { town_id } => return Err(CoreError::not_found("town", town_id)),
                    UserOp::GetRig { rig_id } => return Err(CoreError::not_found("rig", rig_id)),
                    _ => {}
                }
            }
            ensure_schema(&db, &self.migrated, migrate::USER)?;
            UserStore::new(&db, &call.user_id, now_ms()).with_limits(super::limits(&self.env)?).handle(call.op)
        }
        .await;
        reply(result)
    }
}
