// `node bench/ab.mjs <build A> [<build B>]`: two builds of our Worker side by side, interleaved
// A/B per sample (who goes first alternates), each timed at its own socket past wrangler's proxy
// and run as an API Worker (see lib/api-worker.mjs). A build is a folder as scripts/build.sh
// leaves build/ (entry.mjs, index.js, index_bg.wasm): copy build/ away, change the code, build
// again, compare — the way to tell a change from this machine's drift, which is larger than most
// single fixes. B defaults to build/. Prints each op's medians, each side's workerd CPU per
// request and both B/A ratios. AB_N samples (200); each timed request waits for both Workers'
// processes to go quiet first, as in bench:api (AB_SETTLE=0 to skip).
// Give it the same build as A and B first to see the noise: ±5 % per op at N=150 here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startWorker, JWT_SECRET, ROOT } from '../tests/lib/worker.mjs';
import { agentToken } from '../tests/lib/tokens.mjs';
import { apiOnlyConfig, call, cpuLedger, settle, workerProcess, wranglerPids } from './lib/api-worker.mjs';

const [a, b = join(ROOT, 'build')] = process.argv.slice(2).map((d) => resolve(d));
if (!a) {
  console.error('usage: node bench/ab.mjs <build A> [<build B>]');
  process.exit(2);
}
const N = Number(process.env.AB_N ?? 200);
const SETTLE = process.env.AB_SETTLE !== '0';
const tmp = mkdtempSync(join(tmpdir(), 'gastown-ab-'));
const vars = { GASTOWN_DEV_USER_ID: 'ab', GASTOWN_MAX_OPEN_BEADS_PER_TOWN: '10000000', GASTOWN_MAX_AGENTS_PER_RIG: '100000' };

/** One side: the Worker from `dir`, with a town, a rig of 101 beads, a sling rig and a polecat. */
async function side(name, dir) {
  const w = await startWorker({ vars, config: apiOnlyConfig(tmp, join(dir, 'entry.mjs')), dir: join(tmp, name) });
  const { url: base, pid } = await workerProcess(w);
  const api = (method, path, body, headers) => call(base, method, path, body, headers);
  const town = await api('POST', '/api/users/ab/towns', { name: 'ab' });
  const rig = await api('POST', '/api/users/ab/rigs', { town_id: town.id, name: 'r', git_url: 'https://github.com/ab/r.git' });
  const slings = await api('POST', '/api/users/ab/rigs', { town_id: town.id, name: 's', git_url: 'https://github.com/ab/s.git' });
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  const bead = await api('POST', `${R}/beads`, { title: 'b' });
  for (let i = 0; i < 100; i++) await api('POST', `${R}/beads`, { title: `b${i}` });
  const polecat = await api('POST', `${R}/agents`, { role: 'polecat' });
  const asPolecat = { authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: town.id, rig_id: rig.id, agent_id: polecat.id, role: 'polecat' })}` };
  let k = 0;
  // An op is a function (the timed request) or { before, run }: `before` is untimed set-up.
  const ops = {
    health: () => api('GET', '/health'),
    'get bead': () => api('GET', `${R}/beads/${bead.id}`),
    'list 100 beads': () => api('GET', `${R}/beads?limit=100`),
    'list 100 events': () => api('GET', `/api/towns/${town.id}/events?limit=100`),
    'create bead': () => api('POST', `${R}/beads`, { title: `c${k++}` }),
    'update status': () => api('PATCH', `${R}/beads/${bead.id}/status`, { status: k++ % 2 ? 'open' : 'in_progress' }),
    sling: () => api('POST', `/api/towns/${town.id}/rigs/${slings.id}/sling`, { title: `s${k++}` }),
    // One mail sent untimed, then the timed check that takes it.
    'check mail': {
      before: () => api('POST', `${R}/mail`, { to: polecat.id, subject: `m${k++}`, body: 'b' }),
      run: () => api('POST', `${R}/agents/${polecat.id}/mail/check`, undefined, asPolecat),
    },
  };
  return { w, ops, pid, procs: wranglerPids(w) };
}

const sides = [];
try {
  sides.push(await side('a', a));
  sides.push(await side('b', b));
  const samples = sides.map(() => ({}));
  const ledger = cpuLedger(sides.map((x) => x.pid));
  const pids = sides.flatMap((x) => x.procs);
  for (let i = -20; i < N; i++) {
    for (const op of Object.keys(sides[0].ops)) {
      for (const s of i % 2 ? [1, 0] : [0, 1]) {
        const o = sides[s].ops[op];
        ledger.mark(s, null);
        if (o.before) await o.before();
        if (SETTLE) await settle(pids);
        ledger.mark(s, i >= 0 ? op : null);
        const t = performance.now();
        await (o.run ?? o)();
        if (i >= 0) (samples[s][op] ??= []).push(performance.now() - t);
      }
    }
  }
  sides.forEach((_, s) => ledger.mark(s, null));
  const cpu = ledger.totals;
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  console.log(`A ${a}\nB ${b}\nN=${N}, medians in ms; CPU: the Worker's workerd, ms per request`);
  console.log(`${'op'.padEnd(16)} ${'A'.padStart(7)} ${'B'.padStart(7)}  B/A   ${'A CPU'.padStart(6)} ${'B CPU'.padStart(6)}  B/A`);
  for (const op of Object.keys(sides[0].ops)) {
    const [ma, mb] = samples.map((x) => median(x[op]));
    const [ca, cb] = cpu.map((c) => c[op] / N / 1e6);
    console.log(`${op.padEnd(16)} ${ma.toFixed(2).padStart(7)} ${mb.toFixed(2).padStart(7)}  ${(mb / ma).toFixed(2)}  ${ca.toFixed(2).padStart(6)} ${cb.toFixed(2).padStart(6)}  ${(cb / ca).toFixed(2)}`);
  }
} finally {
  for (const s of sides) await s.w.stop();
  rmSync(tmp, { recursive: true, force: true });
}
