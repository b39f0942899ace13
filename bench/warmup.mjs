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
import { call, cpuNs, workerProcess } from './lib/api-worker.mjs';
import { floor, ours } from './lib/sides.mjs';

const WINDOW = Number(process.argv[2] ?? 1000);
const WINDOWS = Number(process.argv[3] ?? 12);

const tmp = mkdtempSync(join(tmpdir(), 'gastown-warmup-'));
const workers = [];
try {
  const sides = [];
  for (const [name, side] of Object.entries({ ours: ours('ours'), floor })) {
    const w = await side.start(tmp);
    workers.push(w);
    const { url, pid } = await workerProcess(w);
    const u = (m, p, b) => call(url, m, p, b);
    const town = await side.town(u);
    const R = side.prefix(town, await side.rig(u, town));
    sides.push({ name, pid, get: `${R}/beads/${(await u('POST', `${R}/beads`, { title: 'b' })).id}`, u });
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
