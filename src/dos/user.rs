//! GastownUserDO: one per user, the towns and rigs the user owns.

use std::cell::Cell;

use gastown_core::migrate;
use gastown_core::user::{UserOp, UserStore};
use gastown_core::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::sql::DoSql;
use super::{decode_op, ensure_schema, rpc_reply, to_text};
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

    /// Every call comes by RPC ([`GastownUserDO::gastown_call`]).
    async fn fetch(&self, _req: Request) -> Result<Response> {
        Response::error("not found", 404)
    }
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl GastownUserDO {
    /// The Worker's calls, by JS RPC (see `crate::dos`): `/op` runs a [`UserCall`].
    #[wasm_bindgen(js_name = gastownCall)]
    pub async fn gastown_call(&self, path: String, body: String) -> js_sys::Array {
        rpc_reply(if path == "/op" { self.op(&body) } else { Err(CoreError::NotFound(format!("no user call {path}"))) })
    }
}

impl GastownUserDO {
    fn op(&self, body: &str) -> CoreResult<String> {
        let db = DoSql::new(self.state.storage());
        let call: UserCall = decode_op(body)?;
        // A user who never created anything has no storage, and listing does not make any.
        if !self.migrated.get() && !db.has_table("user_towns")? {
            match &call.op {
                UserOp::ListTowns | UserOp::ListRigs { .. } => return Ok("[]".into()),
                UserOp::GetTown { town_id } => return Err(CoreError::not_found("town", town_id)),
                UserOp::GetRig { rig_id } => return Err(CoreError::not_found("rig", rig_id)),
                _ => {}
            }
        }
        ensure_schema(&db, &self.migrated, migrate::USER)?;
        to_text(UserStore::new(&db, &call.user_id, now_ms()).with_limits(super::limits(&self.env)?).handle(call.op))
    }
}
