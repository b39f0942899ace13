// The two kinds of Worker the single-op tools (bench/perf.mjs, bench/warmup.mjs) drive, and how
// each names its routes: ours (a build folder as scripts/build.sh leaves build/, run as an API
// Worker) under /api, and the runtime floor (bench/floor-worker) bare. Each side starts its
// Worker and makes a town, a rig, an agent and mail the same way.
import { join } from 'node:path';
import { startWorker, JWT_SECRET, ROOT } from '../../tests/lib/worker.mjs';
import { agentToken } from '../../tests/lib/tokens.mjs';
import { apiOnlyConfig } from './api-worker.mjs';

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
