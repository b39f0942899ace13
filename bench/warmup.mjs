// `node bench/warmup.mjs [window] [windows]`: how the cost of one request changes over an
// isolate's life. Starts our Worker and the runtime floor (bench/floor-worker) side by side,
// gives each a town, a rig and a bead, then sends `get bead` to both, alternating, for
// `windows` windows of `window` requests each (default 12 × 1000) and prints each window's
// workerd CPU and latency per request. V8 runs a wasm function in its baseline tier (Liftoff)
// until the function has spent its tier-up budget, so code run a few times per request is
// optimised only after thousands of requests, while the floor's JS reaches its steady cost
// much sooner. A benchmark with a short warm-up therefore measures our Worker young and the JS
// Workers grown up: this shows by how much. A tool for reading benchmarks; it asserts nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker, ROOT } from '../tests/lib/worker.mjs';
import { apiOnlyConfig, call, cpuNs, workerProcess } from './lib/api-worker.mjs';

const WINDOW = Number(process.argv[2] ?? 1000);
const WINDOWS = Number(process.argv[3] ?? 12);

const SIDES = {
  ours: {
    start: (tmp) => startWorker({ vars: { GASTOWN_DEV_USER_ID: 'warm' }, config: apiOnlyConfig(tmp), dir: join(tmp, 'ours') }),
    async bead(u) {
      const town = await u('POST', '/api/users/warm/towns', { name: 'warm' });
      const rig = await u('POST', '/api/users/warm/rigs', { town_id: town.id, name: 'r', git_url: 'https://github.com/warm/r.git' });
      const R = `/api/towns/${town.id}/rigs/${rig.id}`;
      return `${R}/beads/${(await u('POST', `${R}/beads`, { title: 'b' })).id}`;
    },
  },
  floor: {
    start: (tmp) => startWorker({ gastown: false, cwd: join(ROOT, 'bench', 'floor-worker'), dir: join(tmp, 'floor') }),
    async bead(u) {
      const town = await u('POST', '/users/warm', { name: 'warm' });
      const rig = await u('POST', `/towns/${town.id}/rigs`, { name: 'r' });
      const R = `/towns/${town.id}/rigs/${rig.id}`;
      return `${R}/beads/${(await u('POST', `${R}/beads`, { title: 'b' })).id}`;
    },
  },
};

const tmp = mkdtempSync(join(tmpdir(), 'gastown-warmup-'));
const workers = [];
try {
  const sides = [];
  for (const [name, side] of Object.entries(SIDES)) {
    const w = await side.start(tmp);
    workers.push(w);
    const { url, pid } = await workerProcess(w);
    const u = (m, p, b) => call(url, m, p, b);
    sides.push({ name, pid, get: await side.bead(u), u });
  }
  console.log(`get bead, ${WINDOWS} windows of ${WINDOW} requests per side, the sides alternating; per request: workerd CPU ms / latency ms`);
  console.log(`${'requests'.padEnd(14)}${sides.map((s) => s.name.padStart(18)).join('')}   ours/floor CPU`);
  for (let k = 0; k < WINDOWS; k++) {
    const cpu0 = sides.map((s) => cpuNs(s.pid));
    const wall = sides.map(() => 0);
    for (let i = 0; i < WINDOW; i++) {
      for (const j of i % 2 ? [1, 0] : [0, 1]) {
        const t = performance.now();
        await sides[j].u('GET', sides[j].get);
        wall[j] += performance.now() - t;
      }
    }
    const cpu = sides.map((s, j) => (cpuNs(s.pid) - cpu0[j]) / WINDOW / 1e6);
    const cells = sides.map((_, j) => `${cpu[j].toFixed(3)} / ${(wall[j] / WINDOW).toFixed(3)}`.padStart(18));
    console.log(`${`${k * WINDOW}–${(k + 1) * WINDOW}`.padEnd(14)}${cells.join('')}   ${(cpu[0] / cpu[1]).toFixed(2)}×`);
  }
} finally {
  for (const w of workers) await w.stop();
  rmSync(tmp, { recursive: true, force: true });
}
