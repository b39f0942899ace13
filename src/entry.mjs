// The Worker's entry module (wrangler.toml `main` is build/entry.mjs: scripts/build.sh copies
// this file next to the output it imports, so wrangler's bundler watches build/ alone, as it
// did when worker-build's own shim was `main`). The Worker itself is the Rust code that
// worker-build compiles into build/index.js; this file only makes three of its Durable Object
// classes reachable by JS RPC, which the runtime offers only to classes that extend
// `DurableObject` (worker-build's classes do not). Each class here holds the Rust object and
// forwards every handler to it; `gastownCall(path, op)` is the RPC method the Worker uses
// instead of `fetch` for every op (see src/dos/mod.rs for why). TownContainerDO relays HTTP and
// WebSockets to the container, so it stays a fetch-only class as worker-build made it.
import { DurableObject } from 'cloudflare:workers';
import worker, { AgentDO as AgentCore, GastownUserDO as UserCore, TownContainerDO, TownDO as TownCore } from './index.js';

function rpcClass(Core) {
  return class extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      this.core = new Core(ctx, env);
    }
    gastownCall(path, body) { return this.core.gastownCall(path, body); }
    fetch(request) { return this.core.fetch(request); }
    alarm(info) { return this.core.alarm(info); }
    webSocketMessage(ws, message) { return this.core.webSocketMessage(ws, message); }
    webSocketClose(ws, code, reason, wasClean) { return this.core.webSocketClose(ws, code, reason, wasClean); }
    webSocketError(ws, error) { return this.core.webSocketError(ws, error); }
  };
}

export const TownDO = rpcClass(TownCore);
export const AgentDO = rpcClass(AgentCore);
export const GastownUserDO = rpcClass(UserCore);
export { TownContainerDO };
export default worker;
