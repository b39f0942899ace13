//! `/api/users/:userId/…`: the towns and rigs a user owns. Creating or deleting a town or rig
//! touches the user's registry and the town's own DO; a failure in the second step undoes the
//! first, so the two never disagree for long.

use gastown_core::town::{AddRigInput, TownOp};
use gastown_core::user::{UserOp, UserRig, UserTown};
use gastown_core::{ids, validate, CoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{created, ok, registered_town_call, retire_agents, town_call, town_destroy, user_call, Ctx, Reply};
use crate::auth::is_development;
use crate::http::decode;

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTown {
    name: String,
}

#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRig {
    town_id: String,
    name: String,
    git_url: String,
    #[serde(default = "main")]
    default_branch: String,
    #[serde(default)]
    bead_prefix: Option<String>,
}

fn main() -> String {
    "main".into()
}

/// `GET /api/users/:userId/rigs?town_id=`.
#[derive(Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RigQuery {
    town_id: Option<String>,
}

#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct TownDeleted {
    deleted: String,
    rigs_deleted: usize,
}

#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RigDeleted {
    deleted: String,
}

/// The registry's record of the new rig, with what the town made of it.
#[derive(Serialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RigCreated {
    #[serde(flatten)]
    rig: UserRig,
    bead_prefix: Option<String>,
    /// Present when the repository could not be checked (`git ls-remote` through the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    git_check: Option<Value>,
}

fn user(ctx: &Ctx) -> String {
    ctx.param("userId").to_string()
}

pub async fn create_town(ctx: Ctx, input: CreateTown) -> Reply {
    validate::display_name("name", &input.name)?;
    let town_id = ids::uuid();
    let user_id = user(&ctx);
    // The registry row is the whole town until it is used: its TownDO gets storage from that
    // row on the first call a person makes to it (`TownDO::materialize`), so an unused town
    // costs one row. Only the dev operator, who may create a town for another user id, leaves
    // the town a note of its identity too: that user's first call is not looked up under the
    // operator's own registry.
    if ctx.person().as_deref() == Some(user_id.as_str()) {
        let town = user_call(&ctx.env, &user_id, UserOp::CreateTown { town_id, name: input.name }).await?;
        return created(serde_json::to_value(decode::<UserTown>(town)?)?);
    }
    // The registry entry and the town's note are made at once (two objects, one round trip of
    // waiting); whichever fails, the other is undone so they never disagree for long.
    let register = user_call(&ctx.env, &user_id, UserOp::CreateTown { town_id: town_id.clone(), name: input.name.clone() });
    let init = town_call(
        &ctx.env,
        &town_id,
        ctx.actor(),
        TownOp::Init { town_id: town_id.clone(), name: input.name, owner_user_id: user_id.clone() },
    );
    match futures_util::future::join(register, init).await {
        (Ok(town), Ok(_)) => created(serde_json::to_value(decode::<UserTown>(town)?)?),
        (Ok(_), Err(e)) => {
            let _ = user_call(&ctx.env, &user_id, UserOp::DeleteTown { town_id }).await;
            Err(e)
        }
        (Err(e), init) => {
            if init.is_ok() {
                let _ = town_destroy(&ctx.env, &town_id).await;
            }
            Err(e)
        }
    }
}

pub async fn list_towns(ctx: Ctx) -> Reply {
    ok(user_call(&ctx.env, &user(&ctx), UserOp::ListTowns).await?)
}

pub async fn get_town(ctx: Ctx) -> Reply {
    ok(user_call(&ctx.env, &user(&ctx), UserOp::GetTown { town_id: ctx.town_id().into() }).await?)
}

/// Deletes the town everywhere: agent logs, the town's storage, then the registry entry.
pub async fn delete_town(ctx: Ctx) -> Reply {
    let user_id = user(&ctx);
    let town_id = ctx.town_id().to_string();
    user_call(&ctx.env, &user_id, UserOp::GetTown { town_id: town_id.clone() }).await?;
    match town_call(&ctx.env, &town_id, ctx.actor(), TownOp::ListAgentIds).await {
        Ok(ids) => retire_agents(&ctx.env, &town_id, &decode::<Vec<String>>(ids)?).await,
        Err(CoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    town_destroy(&ctx.env, &town_id).await?;
    let rigs: Vec<UserRig> = decode(user_call(&ctx.env, &user_id, UserOp::DeleteTown { town_id: town_id.clone() }).await?)?;
    ok(serde_json::to_value(TownDeleted { deleted: town_id, rigs_deleted: rigs.len() })?)
}

pub async fn list_town_rigs(ctx: Ctx) -> Reply {
    let user_id = user(&ctx);
    user_call(&ctx.env, &user_id, UserOp::GetTown { town_id: ctx.town_id().into() }).await?;
    ok(user_call(&ctx.env, &user_id, UserOp::ListRigs { town_id: Some(ctx.town_id().into()) }).await?)
}

pub async fn create_rig(ctx: Ctx, input: CreateRig) -> Reply {
    validate::name("name", &input.name)?;
    // Local repositories only where the deployment says explicitly that it is a development one.
    let allow_local = is_development(&ctx.env);
    validate::git_url("git_url", &input.git_url, allow_local)?;
    validate::branch("default_branch", &input.default_branch)?;
    if let Some(p) = &input.bead_prefix {
        ids::validate_prefix(p)?;
    }
    let user_id = user(&ctx);
    let rig_id = ids::uuid();
    let rig = UserRig {
        id: rig_id.clone(),
        town_id: input.town_id.clone(),
        name: input.name.clone(),
        git_url: input.git_url.clone(),
        default_branch: input.default_branch.clone(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let saved: UserRig = decode(user_call(&ctx.env, &user_id, UserOp::CreateRig { rig }).await?)?;
    let add = TownOp::AddRig {
        input: AddRigInput {
            rig_id: rig_id.clone(),
            name: input.name,
            git_url: input.git_url,
            default_branch: input.default_branch,
            bead_prefix: input.bead_prefix,
            allow_local_git: allow_local,
        },
    };
    match registered_town_call(&ctx.env, &input.town_id, &user_id, ctx.actor(), add).await {
        Ok(town_rig) => {
            let bead_prefix = town_rig["bead_prefix"].as_str().map(str::to_string);
            created(serde_json::to_value(RigCreated { rig: saved, bead_prefix, git_check: town_rig.get("git_check").cloned() })?)
        }
        Err(e) => {
            let _ = user_call(&ctx.env, &user_id, UserOp::DeleteRig { rig_id }).await;
            Err(e)
        }
    }
}

pub async fn list_rigs(ctx: Ctx, q: RigQuery) -> Reply {
    ok(user_call(&ctx.env, &user(&ctx), UserOp::ListRigs { town_id: q.town_id }).await?)
}

pub async fn get_rig(ctx: Ctx) -> Reply {
    ok(user_call(&ctx.env, &user(&ctx), UserOp::GetRig { rig_id: ctx.rig_id() }).await?)
}

pub async fn delete_rig(ctx: Ctx) -> Reply {
    let user_id = user(&ctx);
    let rig: UserRig = decode(user_call(&ctx.env, &user_id, UserOp::GetRig { rig_id: ctx.rig_id() }).await?)?;
    match town_call(&ctx.env, &rig.town_id, ctx.actor(), TownOp::RemoveRig { rig_id: rig.id.clone() }).await {
        Ok(agents) => retire_agents(&ctx.env, &rig.town_id, &decode::<Vec<String>>(agents)?).await,
        Err(CoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    user_call(&ctx.env, &user_id, UserOp::DeleteRig { rig_id: rig.id.clone() }).await?;
    ok(serde_json::to_value(RigDeleted { deleted: rig.id })?)
}
