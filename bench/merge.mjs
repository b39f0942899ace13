// `npm run bench:merge`: the refinery's throughput on one rig, one merge at a time
// (`refinery.max_batch` 1) vs merge trains (`max_batch` 8), measured in the same run.
// Each round queues N ready merge requests behind a leader whose gate run holds, releases it, and
// times every merge request from the release to its `merged` record. Prints the medians over
// rounds of: the median latency, the time until the last one merged, merges per second; then the
// ratio. BENCH_N (60), BENCH_ROUNDS (3), BENCH_GATE (the gate command, default `test -d work`).
// Needs `npm test`'s build outputs.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from '../tests/lib/worker.mjs';
import { client, ok } from '../tests/lib/api.mjs';
import { startContainer, bareRepo, CONTAINER_SECRET } from '../tests/lib/container.mjs';

const N = Number(process.env.BENCH_N ?? 60);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const GATE = process.env.BENCH_GATE ?? 'test -d work';
const MODES = [1, 8];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (t) => new Promise((r) => setTimeout(r, t));
async function until(fn, what, timeout = 300_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const c = await startContainer({ maxAgents: 50 });
const w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
const api = client(w.url);
const dir = mkdtempSync(join(tmpdir(), 'gastown-bench-merge-'));
chmodSync(dir, 0o755); // the gates run as the refinery's uid
const repos = [];

/** One round: `maxBatch`, N merge requests released at once. Returns per-MR latencies (ms) and the span. */
async function round(maxBatch, i) {
  const repo = bareRepo();
  repos.push(repo);
  const log = join(dir, `gates-${maxBatch}-${i}.log`);
  const hold = join(dir, `hold-${maxBatch}-${i}`);
  writeFileSync(log, '');
  chmodSync(log, 0o666);
  writeFileSync(hold, '');
  const town = ok(await api.post('/api/users/bench/towns', { name: `merge-${maxBatch}-${i}` }), 201);
  const rig = ok(await api.post('/api/users/bench/rigs', { town_id: town.id, name: 'app', git_url: repo.bare }), 201);
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  const agent = 'mkdir -p work; echo "$GASTOWN_BEAD_ID" > "work/$GASTOWN_BEAD_ID.txt"; git add -A; git commit -qm "bench $GASTOWN_BEAD_ID"; exec gt done';
  ok(await api.patch(`/api/towns/${town.id}/config`, {
    agent: { runtime: 'custom', command: agent },
    capacity: { max_polecats_per_rig: 50, max_polecats_per_town: 50 },
    refinery: { gates: [`echo run >> ${log}; while [ -e ${hold} ]; do sleep 0.05; done; ${GATE}`], max_batch: maxBatch },
  }));
  const queue = async () => ok(await api.get(`/api/towns/${town.id}/merge-queue`));
  // The leader's gate run holds the rig's refinery while the others finish and queue up.
  const lead = ok(await api.post(`${R}/sling`, { title: 'leader' }), 201);
  await until(() => readFileSync(log, 'utf8').length > 0, "the leader's gate");
  for (let k = 0; k < N; k++) ok(await api.post(`${R}/sling`, { title: `bench ${k}` }), 201);
  await until(async () => (await queue()).filter((m) => m.status === 'pending').length === N, `${N} ready merge requests`);
  const runsBefore = readFileSync(log, 'utf8').split('\n').filter(Boolean).length;
  const t0 = Date.now();
  unlinkSync(hold);
  await until(async () => (await queue()).filter((m) => m.source_bead_id !== lead.bead.id).every((m) => m.status === 'merged'), 'every merge');
  const failed = (await queue()).filter((m) => m.status !== 'merged');
  if (failed.length) throw new Error(`not merged: ${JSON.stringify(failed)}`);
  const latencies = [];
  for (const m of (await queue()).filter((m) => m.source_bead_id !== lead.bead.id)) {
    const ev = ok(await api.get(`${R}/events?bead_id=${m.id}`)).find((e) => e.event_type === 'review_completed' && e.new_value === 'merged');
    if (ev) latencies.push(Date.parse(ev.created_at) - t0);
  }
  if (latencies.length !== N) throw new Error(`expected ${N} merged records, got ${latencies.length}`);
  const gateRuns = readFileSync(log, 'utf8').split('\n').filter(Boolean).length - runsBefore;
  return { latencies, span: Math.max(...latencies), gateRuns };
}

try {
  const results = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const m of MODES) {
      const r = await round(m, i);
      results[m].push(r);
      console.error(`round ${i + 1} max_batch=${m}: ${N} merges in ${(r.span / 1000).toFixed(1)} s, ${r.gateRuns} gate runs`);
    }
  }
  console.log(`Merge throughput on one rig (${N} ready merge requests, ${ROUNDS} rounds, gate \`${GATE}\`, medians over rounds)`);
  const summary = {};
  for (const m of MODES) {
    const rs = results[m];
    const lat = median(rs.map((r) => median(r.latencies)));
    const span = median(rs.map((r) => r.span));
    const rate = N / (span / 1000);
    summary[m] = rate;
    console.log(`max_batch ${String(m).padStart(2)}: median latency ${(lat / 1000).toFixed(2).padStart(6)} s   all merged after ${(span / 1000).toFixed(2).padStart(6)} s   ${rate.toFixed(2).padStart(6)} merges/s   gate runs ${median(rs.map((r) => r.gateRuns))}`);
  }
  console.log(`ratio (max_batch 8 vs 1): ${(summary[8] / summary[1]).toFixed(2)}x merges/s`);
} finally {
  await w.stop();
  await c.stop();
  for (const r of repos) r.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
