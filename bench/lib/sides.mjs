// The two kinds of Worker the single-op tools (bench/perf.mjs, bench/pages.mjs, bench/warmup.mjs)
// drive, how each names its routes, and the ops those tools time (`sideOp`): ours (a build
// folder as scripts/build.sh leaves build/, run as an API Worker) under /api, and the runtime
// floor (bench/floor-worker) bare. Each side starts its Worker and makes a town, a rig, an agent
// and mail the same way.
import { join } from 'node:path';
import { startWorker, JWT_SECRET, ROOT } from '../../tests/lib/worker.mjs';
import { agentToken } from '../../tests/lib/tokens.mjs';
import { apiOnlyConfig, call } from './api-worker.mjs';

/** Our Worker from `build` (default build/), its wrangler state under `<tmp>/<label>`. */
export const ours = (label, build = join(ROOT, 'build')) => ({
  start: (tmp) => startWorker({ vars: { GASTOWN_DEV_USER_ID: 'perf', GASTOWN_MAX_OPEN_BEADS_PER_TOWN: '10000000' }, config: apiOnlyConfig(tmp, join(build, 'entry.mjs')), dir: join(tmp, label) }),
  town: (u) => u('POST', '/api/users/perf/towns', { name: 'perf' }),
  rig: (u, t) => u('POST', '/api/users/perf/rigs', { town_id: t.id, name: 'r', git_url: 'https://github.com/perf/r.git' }),
  prefix: (t, r) => `/api/towns/${t.id}/rigs/${r.id}`,
  agent: (u, R) => u('POST', `${R}/agents`, { role: 'polecat' }),
  mail: (u, R, to, i) => u('POST', `${R}/mail`, { to: to.id, subject: `m${i}`, body: 'b' }),
  token: (t, r, a) => ({ authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: t.id, rig_id: r.id, agent_id: a.id, role: 'polecat' }, { expiresIn: 6 * 3600 })}` }),
});

/** The runtime floor: no validation, no auth (so no tokens), only the op's statements. */
export const floor = {
  start: (tmp) => startWorker({ gastown: false, cwd: join(ROOT, 'bench', 'floor-worker'), dir: join(tmp, 'floor') }),
  town: (u) => u('POST', '/users/perf', { name: 'perf' }),
  rig: (u, t) => u('POST', `/towns/${t.id}/rigs`, { name: 'r' }),
  prefix: (t, r) => `/towns/${t.id}/rigs/${r.id}`,
  agent: (u, R) => u('POST', `${R}/agents`, {}),
  mail: (u, R, to, i) => u('POST', `${R}/mail`, { to: to.id, subject: `m${i}` }),
  token: () => ({}),
};

/** The ops the single-op tools time, by name. */
export const OPS = ['health', 'get-bead', 'list-beads', 'create-bead', 'update-status', 'sling', 'agent-get', 'send-mail', 'check-mail'];

/**
 * Makes a town on a side's Worker (at `url`, its own socket) with a rig, 101 beads, an agent and
 * `backlog` beads slung on top (`PERF_BACKLOG`), and returns the op named `opName` as a function
 * that sends one sample of it.
 */
export async function sideOp(name, side, url, opName, backlog = Number(process.env.PERF_BACKLOG ?? 0)) {
  if (!OPS.includes(opName)) throw new Error(`unknown op ${opName}: one of ${OPS.join(', ')}`);
  const u = (m, p, b, h) => call(url, m, p, b, h);
  const town = await side.town(u);
  const rig = await side.rig(u, town);
  const R = side.prefix(town, rig);
  const bead = await u('POST', `${R}/beads`, { title: 'b' });
  for (let i = 0; i < 100; i++) await u('POST', `${R}/beads`, { title: `b${i}` });
  const agent = await side.agent(u, R);
  const token = side.token(town, rig, agent);
  let k = 0;
  // A backlog: beads slung beyond the rig's polecats wait in the dispatch queue, which the
  // drive loop after every op that may create work must not walk.
  for (let i = 0; i < backlog; i++) await u('POST', `${R}/sling`, { title: `queued ${i}` });
  const ops = {
    health: () => u('GET', '/health'),
    'get-bead': () => u('GET', `${R}/beads/${bead.id}`),
    'list-beads': () => u('GET', `${R}/beads?limit=100`),
    'create-bead': () => u('POST', `${R}/beads`, { title: `c${k++}` }),
    'update-status': () => u('PATCH', `${R}/beads/${bead.id}/status`, { status: k++ % 2 ? 'open' : 'in_progress' }),
    sling: () => u('POST', `${R}/sling`, { title: `s${k++}` }),
    // An agent reading its own record with its token (ours only: the floor has no agents).
    'agent-get': () => {
      if (name === 'floor') throw new Error('agent-get: the floor has no agent routes');
      return u('GET', `${R}/agents/${agent.id}`, undefined, token);
    },
    // The send alone (its mail piles up unread), to take out of check-mail's figure.
    'send-mail': () => side.mail(u, R, agent, k++),
    'check-mail': async () => {
      await side.mail(u, R, agent, k++);
      await u('POST', `${R}/agents/${agent.id}/mail/check`, undefined, token);
    },
  };
  return ops[opName];
}
