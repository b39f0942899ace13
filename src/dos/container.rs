//! TownContainerDO: one per town, the only path to the town's container. In production it starts
//! the container through the Containers binding and forwards to its port 8080; where there is no
//! binding (`wrangler dev`, tests) it forwards the same requests to the container program running
//! as a local process (`GASTOWN_CONTAINER_URL`). Everything above that switch is the same code.
//! Every forwarded request carries the town's container secret; callers never see it.

use gastown_core::auth::container_secret;
use worker::{durable_object, ContainerStartupOptions, DurableObject, Env, Fetch, Request, RequestInit, Response, Result, State};

use crate::auth::{jwt_secret, var};

/// The header by which the TownDO names the town it speaks for.
pub use gastown_core::container::TOWN_HEADER;

#[durable_object]
pub struct TownContainerDO {
    state: State,
    env: Env,
}

/// The secret a town's container checks. Locally one container program serves every town, so a
/// single configured secret is used; in production each town's secret is derived.
pub fn secret_for(env: &Env, town_id: &str) -> gastown_core::CoreResult<String> {
    match var(env, "GASTOWN_CONTAINER_SECRET") {
        Some(s) => Ok(s),
        None => Ok(container_secret(&jwt_secret(env)?, town_id)),
    }
}

impl DurableObject for TownContainerDO {
    fn new(state: State, env: Env) -> Self {
        TownContainerDO { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let town_id = req.headers().get(TOWN_HEADER)?.unwrap_or_default();
        let secret = match secret_for(&self.env, &town_id) {
            Ok(s) => s,
            Err(e) => return Response::error(e.to_string(), 503),
        };
        let url = req.url()?;
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let headers = req.headers().clone();
        headers.delete(TOWN_HEADER)?;
        headers.set("authorization", &format!("Bearer {secret}"))?;
        let mut init = RequestInit::new();
        init.with_method(req.method()).with_headers(headers);
        let mut req = req;
        if !matches!(req.method(), worker::Method::Get | worker::Method::Head) {
            init.with_body(Some(req.bytes().await?.into()));
        }
        match self.state.container() {
            Some(container) => {
                if !container.running() {
                    let mut opts = ContainerStartupOptions::new();
                    opts.add_env("GASTOWN_CONTAINER_SECRET", &secret);
                    opts.add_env("PORT", "8080");
                    opts.enable_internet(true);
                    container.start(Some(opts))?;
                }
                let port = container.get_tcp_port(8080)?;
                let inner = Request::new_with_init(&format!("http://container{path_and_query}"), &init)?;
                unreachable_as_503(port.fetch_request(inner).await)
            }
            None => {
                let Some(base) = var(&self.env, "GASTOWN_CONTAINER_URL") else {
                    return Response::error("no container: set GASTOWN_CONTAINER_URL or configure [[containers]]", 503);
                };
                let inner = Request::new_with_init(&format!("{}{path_and_query}", base.trim_end_matches('/')), &init)?;
                unreachable_as_503(Fetch::Request(inner).send().await)
            }
        }
    }
}

/// A container that cannot be reached is a 503 with the reason, not a 500: the town tells "down,
/// retry on the slow schedule" apart from "broken".
fn unreachable_as_503(r: Result<Response>) -> Result<Response> {
    r.or_else(|e| Response::error(format!("the container cannot be reached: {e}"), 503))
}
