// `node bench/perf.mjs <op> [n]`: where one control-plane operation's CPU goes inside workerd,
// measured by Linux `perf` rather than V8's sampling profiler (which, attached over the
// inspector, inflates every wasm↔JS crossing several-fold and misled this project twice). Runs
// our Worker as bench:api does (an API Worker, requests straight to its socket, node's http
// client), makes a town with a rig, 101 beads and an agent, warms up, then sends the op `n`
// times (default 3000) one after another while `perf record` samples every thread of the
// Worker's workerd. Prints, per request, the workerd CPU time and its split by what was running: our wasm
// and JS (V8's JIT code), V8's runtime, garbage collection, wasm baseline-tier frames and tier-up
// compiles, SQLite, allocation, kj/workerd, the kernel. PERF_VS=floor (or PERF_FLOOR=1) does the
// same for the runtime floor (bench/floor-worker), PERF_VS=<folder> for another build of ours
// (as scripts/build.sh leaves build/), both at once with their requests alternating, and prints
// the two side by side with the difference.
// Ops: health, get-bead, list-beads, create-bead, update-status, agent-get (an agent's read
// with its token; ours only), send-mail, check-mail (each sample sends one mail, then checks
// it: read that figure as send + check, and subtract send-mail's). A tool for finding the next fix;
// it asserts nothing. Needs `perf` (linux-perf) and permission to sample the process.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from '../tests/lib/worker.mjs';
import { cpuNs, workerProcess } from './lib/api-worker.mjs';
import { floor, ours, sideOp } from './lib/sides.mjs';

const OP = process.argv[2] ?? 'get-bead';
const N = Number(process.argv[3] ?? 3000);
const HZ = 2999;
// Requests per side before sampling begins (PERF_WARMUP): V8 runs each wasm function in its
// baseline tier until it has used a tier-up budget, so the isolate's age moves the figures.
const WARMUP = Number(process.env.PERF_WARMUP ?? 300);

if (spawnSync('perf', ['--version']).status !== 0) {
  console.error('bench/perf.mjs needs Linux perf on PATH (Debian: linux-perf)');
  process.exit(2);
}

const SIDES = { ours: ours('ours'), floor };
// PERF_VS: `floor`, or another build of ours (a folder as scripts/build.sh leaves build/).
const VS = process.env.PERF_VS ?? (process.env.PERF_FLOOR === '1' ? 'floor' : null);
if (VS && VS !== 'floor') SIDES.other = ours('other', resolve(VS));
const SECOND = VS === 'floor' ? 'floor' : VS ? 'other' : null;

/** Buckets for a sample's symbol and object, first match wins. */
const BUCKETS = [
  ['our wasm + JS (JIT code)', (dso) => dso.startsWith('[JIT]')],
  ['kernel', (dso) => dso.startsWith('[kernel')],
  ['SQLite', (_, sym) => /sqlite|Vdbe|pager|btree|wal[A-Z]/i.test(sym)],
  ['wasm baseline frames, tier-up compiles', (_, sym) => /compiler::|turboshaft|maglev|wasm::|Liftoff|Compile/.test(sym)],
  ['garbage collection, handles', (_, sym) => /Scaveng|Heap::|MarkCompact|Sweep|cppgc|GlobalHandles|HeapTracer|GC/.test(sym)],
  ['allocation, memcpy', (_, sym) => /tcmalloc|TCMalloc|malloc|free|memmove|memset|memcpy/.test(sym)],
  ['JSON', (_, sym) => /Json/.test(sym)],
  ['V8 builtins', (_, sym) => /Builtins_/.test(sym)],
  ['V8 runtime', (_, sym) => /v8::/.test(sym)],
  ['kj, capnp', (_, sym) => /kj::|capnp/.test(sym)],
  ['workerd', (_, sym) => /workerd::/.test(sym)],
  ['other', () => true],
];

/** ms of CPU per request in each bucket, from a perf.data file. */
function buckets(file, n) {
  const out = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio', '-n', '-g', 'none'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  const ms = Object.fromEntries(BUCKETS.map(([name]) => [name, 0]));
  for (const line of out.split('\n')) {
    // "  12.34%   567  workerd  [.] symbol"
    const m = /^\s*[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[.\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, count, dso, sym] = m;
    const [name] = BUCKETS.find(([, test]) => test(dso, sym));
    ms[name] += (Number(count) / HZ) * 1000 / n;
  }
  return ms;
}

/** [symbol, ms per request] over a perf.data file, most samples first (`PERF_TOP=n`). */
function symbols(file, n) {
  const out = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio', '-n', '-g', 'none'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  const rows = [];
  for (const line of out.split('\n')) {
    const m = /^\s*[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[.\]\s+(.*)$/.exec(line);
    if (m) rows.push([`${m[2].startsWith('[JIT]') ? '[JIT] ' : ''}${m[3].slice(0, 110)}`, (Number(m[1]) / HZ) * 1000 / n]);
  }
  return rows.sort((a, b) => b[1] - a[1]);
}

/** Starts a side's Worker and makes its town; returns the op to time and the workerd's pid. */
async function prepare(name, tmp) {
  const side = SIDES[name];
  const w = await side.start(tmp);
  try {
    return await ready(name, side, w, tmp);
  } catch (e) {
    await w.stop();
    throw e;
  }
}

async function ready(name, side, w, tmp) {
  const { url, pid } = await workerProcess(w);
  const op = await sideOp(name, side, url, OP);
  return { name, w, pid, op, file: join(tmp, `${name}.data`), wall: 0 };
}

/** `perf record` on one process until `stop()`; resolves once it is sampling. */
async function record(pid, file) {
  const perf = spawn('perf', ['record', '-F', String(HZ), '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  perf.stderr.on('data', (d) => { err += d; });
  // Sampling has begun once perf has written its file's header.
  const deadline = performance.now() + 10_000;
  while (!(existsSync(file) && statSync(file).size > 0)) {
    if (perf.exitCode !== null || performance.now() > deadline) throw new Error(`perf record did not start: ${err.trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const exited = new Promise((ok) => perf.once('exit', ok));
  return { stop: () => { perf.kill('SIGINT'); return exited; } };
}

const tmp = mkdtempSync(join(tmpdir(), 'gastown-perf-'));
const sides = [];
const recorders = [];
try {
  for (const name of SECOND ? ['ours', SECOND] : ['ours']) sides.push(await prepare(name, tmp));
  for (let i = 0; i < WARMUP; i++) for (const s of sides) await s.op();
  // Both sides sampled at once, their requests alternating, so the machine's drift (large
  // here) falls on both alike.
  for (const s of sides) recorders.push(await record(s.pid, s.file));
  const cpu0 = sides.map((s) => cpuNs(s.pid));
  for (let i = 0; i < N; i++) {
    for (const s of i % 2 ? [...sides].reverse() : sides) {
      const t = performance.now();
      await s.op();
      s.wall += performance.now() - t;
    }
  }
  const cpu = sides.map((s, k) => (cpuNs(s.pid) - cpu0[k]) / N / 1e6);
  while (recorders.length) await recorders.pop().stop();
  const results = sides.map((s, k) => ({ wall: s.wall / N, cpu: cpu[k], buckets: buckets(s.file, N) }));
  const names = sides.map((s) => s.name);
  const f = (x) => x.toFixed(3).padStart(8);
  if (SECOND === 'other') console.log(`ours: ${join(ROOT, 'build')}; other: ${resolve(VS)}`);
  console.log(`${OP}: ${N} requests per side${names.length > 1 ? ', the sides alternating' : ''}, each Worker's workerd sampled at ${HZ} Hz; ms per request`);
  console.log(`${''.padEnd(40)}${names.map((n) => n.padStart(8)).join('')}${names.length > 1 ? `  ${names[0]}−${names[1]}` : ''}`);
  const row = (label, vals) => console.log(`${label.padEnd(40)}${vals.map(f).join('')}${vals.length > 1 ? f(vals[0] - vals[1]) : ''}`);
  row('latency (mean, client to client)', results.map((r) => r.wall));
  row('workerd CPU (scheduler)', results.map((r) => r.cpu));
  const order = BUCKETS.map(([n]) => n).sort((a, b) => results[0].buckets[b] - results[0].buckets[a]);
  for (const b of order) row(`  ${b}`, results.map((r) => r.buckets[b]));
  row('  all samples', results.map((r) => Object.values(r.buckets).reduce((s, x) => s + x, 0)));
  const top = Number(process.env.PERF_TOP ?? 0);
  for (const s of top ? sides : []) {
    console.log(`\n${s.name}: the ${top} symbols with the most samples (ms per request)`);
    for (const [sym, ms] of symbols(s.file, N).slice(0, top)) console.log(`${f(ms)}  ${sym}`);
  }
} finally {
  for (const r of recorders) await r.stop();
  for (const s of sides) await s.w.stop();
  rmSync(tmp, { recursive: true, force: true });
}
