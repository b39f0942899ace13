// `npm run soak`: the reliability suite. Real parts only (wrangler dev → workerd, the container
// program, real git on local bare repositories, the built-in demo agent), loopback only.
//
//   Phase 1 — load: one town, SOAK_RIGS rigs, SOAK_BEADS beads slung as fast as the API takes
//   them; every bead must end merged (exactly one commit of it on main), none lost, no witness
//   restart of a live run, no capacity refusal paid for as a dispatch attempt. Measures drain
//   time, merges/s, peak in_review and the RSS of workerd and of the container program (with an
//   idle period at the end to see whether memory comes back).
//
//   Phase 2 — faults: each case in fresh processes and a fresh town, a handful of beads: an agent
//   SIGKILLed; the container program SIGKILLed and restarted after 5 s / 30 s; the Worker runtime
//   stopped (SIGTERM) for 5 s / 30 s across `gt done` and across a merge; the container gone for
//   good (beads must end failed and escalated in bounded time).
//
// Bounded: a global deadline (SOAK_DEADLINE_MIN), a timeout per phase and per case ("timed out"
// is reported, never waited out); every process started is torn down in `finally`. Prints a table
// per phase and a JSON summary; exits 1 if an invariant failed, 2 if a phase was skipped for the
// deadline with nothing failing, 0 otherwise. Options: see `usage` below and README "Reliability suite".
import { chmodSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { client } from '../tests/lib/api.mjs';
import { WorkerProc, ContainerProc, CONTAINER_SECRET, proc, sleep } from './lib/procs.mjs';
import { makeTown, slingMany, Observer, classify, judgeRestarts } from './lib/town.mjs';
import { memoryBaseline } from './lib/baseline.mjs';

const usage = `usage: node bench/soak.mjs [--quick] [--load-only | --faults-only] [--cases=a,b,…]
env: SOAK_BEADS (1000; --quick 60)  SOAK_RIGS (4)  SOAK_CAPACITY (50 per rig)  SOAK_CONCURRENCY (8 slings in flight)
     SOAK_DEADLINE_MIN (45; --quick 20)  SOAK_LOAD_TIMEOUT_MIN (15; --quick 5)  SOAK_IDLE_SECS (60; --quick 20)
     SOAK_CONTAINER_MAX_AGENTS (8, the container program's default)  SOAK_FAULT_BEADS (4; --quick 3)  SOAK_FAULT_TIMEOUT_SECS (240)
     SOAK_WITNESS_TICK_SECS (faults: 5; load: the town default)  SOAK_JSON (also write the summary there)  SOAK_KEEP=1 (keep logs)`;

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) { console.log(usage); process.exit(0); }
const QUICK = argv.includes('--quick');
const env = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? Number(process.env[k]) : d);
const opts = {
  quick: QUICK,
  beads: env('SOAK_BEADS', QUICK ? 60 : 1000),
  rigs: env('SOAK_RIGS', 4),
  capacity: env('SOAK_CAPACITY', 50),
  concurrency: env('SOAK_CONCURRENCY', 8),
  deadlineMin: env('SOAK_DEADLINE_MIN', QUICK ? 20 : 45),
  loadTimeoutMin: env('SOAK_LOAD_TIMEOUT_MIN', QUICK ? 5 : 15),
  idleSecs: env('SOAK_IDLE_SECS', QUICK ? 20 : 60),
  faultBeads: env('SOAK_FAULT_BEADS', QUICK ? 3 : 4),
  faultTimeoutSecs: env('SOAK_FAULT_TIMEOUT_SECS', 240),
  faultTick: env('SOAK_WITNESS_TICK_SECS', 5),
  loadTick: process.env.SOAK_WITNESS_TICK_SECS ? Number(process.env.SOAK_WITNESS_TICK_SECS) : null,
};
opts.townCapacity = Math.min(200, opts.rigs * opts.capacity);
// The container program's own default: the town's capacity (rigs × capacity) is larger, as in
// the field, so the town must wait for slots rather than fail starts.
opts.maxAgents = env('SOAK_CONTAINER_MAX_AGENTS', 8);
const casesArg = argv.find((a) => a.startsWith('--cases='))?.slice(8).split(',');
const runLoad = !argv.includes('--faults-only') && !casesArg;
const runFaults = !argv.includes('--load-only');

// No request may hang the suite: every fetch without a signal of its own gives up after 60 s.
const plainFetch = globalThis.fetch;
globalThis.fetch = (url, init = {}) => plainFetch(url, init.signal ? init : { ...init, signal: AbortSignal.timeout(60_000) });

const START = Date.now();
const DEADLINE = START + opts.deadlineMin * 60_000;
const left = () => DEADLINE - Date.now();
const secs = (ms) => (ms == null ? null : Math.round(ms / 100) / 10);
const log = (...a) => console.error(`[soak ${secs(Date.now() - START).toFixed(1).padStart(6)} s]`, ...a);
const ROOTDIR = mkdtempSync(join(tmpdir(), 'gastown-soak-'));
chmodSync(ROOTDIR, 0o711); // agents (uids of their own) pass through to their folders

// Every process started, for the teardown (also on a signal or a crash).
const live = new Set();
const teardownNotes = [];
async function teardown(procs) {
  for (const p of procs) {
    try {
      await p.stop();
      for (const n of p.stopProblems ?? []) teardownNotes.push(n);
      if (p.orphans?.length) teardownNotes.push(`workerd outlived its wrangler: ${p.orphans.join(', ')} (SIGTERMed)`);
      p.stopProblems = [];
      p.orphans = [];
    } catch (e) {
      teardownNotes.push(`teardown: ${e.message}`);
    }
    p.close?.();
    live.delete(p);
  }
}
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: tearing down`);
    await teardown([...live].reverse());
    process.exit(130);
  });
}

/** Starts a fresh container program and a Worker wired to it. */
async function stack(name, { maxAgents }) {
  const dir = join(ROOTDIR, name);
  const c = new ContainerProc({ dir: join(dir, 'container'), maxAgents });
  live.add(c);
  await c.start();
  const w = new WorkerProc({ dir: join(dir, 'worker'), vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  live.add(w);
  await w.start();
  return { c, w, api: client(w.url), dir };
}

/** Waits for `fn()` to be truthy, polling; false when `ms` (or the global deadline) ran out. */
async function waitFor(fn, ms, every = 250) {
  const end = Math.min(Date.now() + ms, DEADLINE);
  for (;;) {
    try { if (await fn()) return true; } catch { /* the system may be down: keep looking */ }
    if (Date.now() > end || interrupted) return false;
    await sleep(every);
  }
}

function rssSampler(w, c, obs) {
  const samples = [];
  const take = () => {
    const s = { t: Date.now(), workerdKb: w.rssKb(), containerKb: c.rssKb(), processes: c.scan().length, inReview: obs?.inReview ?? null };
    samples.push(s);
    return s;
  };
  const timer = setInterval(take, 1000);
  return { samples, take, stop: () => clearInterval(timer) };
}
const mb = (kb) => (kb == null ? null : Math.round(kb / 102.4) / 10);
const peak = (xs, k) => xs.reduce((m, s) => (s[k] != null && s[k] > m ? s[k] : m), 0);
const low = (xs, k) => {
  const v = xs.map((s) => s[k]).filter((x) => x != null);
  return v.length ? Math.min(...v) : null;
};

// ---- phase 1: load -----------------------------------------------------------------------------

async function phaseLoad() {
  const res = { phase: 'load', beads: opts.beads, rigs: opts.rigs, capacity_per_rig: opts.capacity, capacity_town: opts.townCapacity, container_max_agents: opts.maxAgents, timed_out: false, invariants: {} };
  const timeoutMs = Math.min(opts.loadTimeoutMin * 60_000, left());
  const phaseEnd = Date.now() + timeoutMs;
  let s;
  let t;
  let sampler;
  let obs;
  try {
    log(`load: starting the stack (container max agents ${opts.maxAgents})`);
    s = await stack('load', { maxAgents: opts.maxAgents });
    // Baseline: the two processes idle before any town exists.
    await sleep(3000);
    const base = { workerdKb: s.w.rssKb(), containerKb: s.c.rssKb() };
    const wasmHeap = async () => (await (await fetch(`${s.w.url}/health`)).json()).wasm_memory_bytes ?? null;
    const heapAtStart = await wasmHeap();
    const config = {
      agent: { runtime: 'demo' },
      capacity: { max_polecats_per_rig: opts.capacity, max_polecats_per_town: opts.townCapacity },
      ...(opts.loadTick ? { witness: { tick_secs: opts.loadTick } } : {}),
    };
    t = await makeTown(s.api, { name: 'soak-load', rigs: opts.rigs, config });
    obs = new Observer(s.api, t.id);
    obs.run(1000);
    sampler = rssSampler(s.w, s.c, obs);
    const t0 = Date.now();
    log(`load: slinging ${opts.beads} beads over ${opts.rigs} rigs (${opts.concurrency} in flight)`);
    const { results, latencies } = await slingMany(s.api, t.rigs, opts.beads, { concurrency: opts.concurrency, onSlung: (r) => obs.track(r.bead.id) });
    const slingMs = Date.now() - t0;
    const slung = results.filter((r) => r.bead);
    const slingErrors = results.filter((r) => r.error).map((r) => r.error);
    latencies.sort((a, b) => a - b);
    log(`load: slung ${slung.length}/${opts.beads} in ${secs(slingMs)} s (${slingErrors.length} errors); draining`);
    let lastLog = 0;
    const drained = await waitFor(() => {
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        const c = obs.counts();
        log(`load: closed ${c.closed} failed ${c.failed} in_review ${c.in_review} in_progress ${c.in_progress} open ${c.open} | processes ${sampler.samples.at(-1)?.processes ?? '?'} workerd ${mb(sampler.samples.at(-1)?.workerdKb)} MB`);
      }
      return obs.allTerminal() || slung.length === 0;
    }, phaseEnd - Date.now(), 500);
    const drainEnd = Date.now();
    res.timed_out = !drained;
    if (!drained) log(`load: TIMED OUT after ${secs(drainEnd - t0)} s`);
    await obs.stop();
    await obs.poll();
    const cl = await classify(s.api, t, obs, slung);
    const restarts = judgeRestarts(obs, s.c);
    if (process.env.SOAK_KEEP === '1') writeFileSync(join(s.dir, 'events.json'), JSON.stringify({ events: obs.events, restarts }, null, 1));
    const capacityRefusals = obs.dispatchFailed.filter((d) => /capacit/i.test(d.error));
    const lastTerminal = Math.max(t0, ...slung.map((r) => obs.terminalAt.get(r.bead.id) ?? 0));
    const drainMs = drained ? lastTerminal - t0 : drainEnd - t0;
    const activeSamples = sampler.samples.slice();
    // Idle: does memory come back once the town has nothing to do?
    log(`load: idle for ${opts.idleSecs} s, sampling RSS`);
    const idleFrom = sampler.samples.length;
    await waitFor(() => false, Math.min(opts.idleSecs * 1000, Math.max(0, left() - 60_000)), 1000);
    sampler.stop();
    const idle = sampler.samples.slice(idleFrom);
    const fin = sampler.take();
    const heapAtEnd = await wasmHeap().catch(() => null);
    Object.assign(res, {
      slung: slung.length,
      sling_errors: slingErrors.length,
      sling_error_examples: [...new Set(slingErrors)].slice(0, 3),
      sling_secs: secs(slingMs),
      sling_per_sec: Math.round((slung.length / (slingMs / 1000)) * 10) / 10,
      sling_latency_ms: { p50: latencies[Math.floor(latencies.length / 2)] ?? null, p99: latencies[Math.floor(latencies.length * 0.99)] ?? null },
      merged: cl.merged.length,
      failed: cl.failed.length,
      failed_escalated: cl.failedEscalated,
      fail_reasons: cl.failReasons,
      active_at_end: cl.active.length,
      lost: cl.lost.length,
      lost_examples: cl.lost.slice(0, 5),
      closed_without_commit: cl.closedWithoutCommit.length,
      duplicate_beads: cl.duplicates.length,
      duplicate_commits: cl.extraCommits,
      duplicate_merges: cl.extraMerges,
      duplicate_examples: cl.duplicates.slice(0, 5),
      submissions_beyond_one: [...obs.submitted.values()].reduce((a, n) => a + Math.max(0, n - 1), 0),
      witness_restarts: restarts.length,
      false_restarts: restarts.filter((r) => r.aliveByEvents).length,
      false_restarts_confirmed_by_container_log: restarts.filter((r) => r.aliveByContainer).length,
      restart_reasons: count(restarts.map((r) => r.reason)),
      false_restart_examples: restarts.filter((r) => r.aliveByEvents).slice(0, 3).map(({ at, ...r }) => r),
      dispatch_failed: obs.dispatchFailed.length,
      capacity_refusal_attempts: capacityRefusals.length,
      capacity_refusal_examples: [...new Set(capacityRefusals.map((d) => d.error.slice(0, 160)))].slice(0, 2),
      drain_secs: secs(drainMs),
      merges_per_sec: Math.round((cl.merged.length / Math.max(1, drainMs / 1000)) * 100) / 100,
      peak_in_review: obs.peakInReview,
      peak_processes_below_container: peak(activeSamples, 'processes'),
      event_poll_errors: obs.pollErrors,
      events: obs.events.length,
      rss_mb: {
        workerd: { baseline: mb(base.workerdKb), peak: mb(peak(sampler.samples, 'workerdKb')), at_drain: mb(activeSamples.at(-1)?.workerdKb), idle_min: mb(low(idle, 'workerdKb')), final: mb(fin.workerdKb) },
        container: { baseline: mb(base.containerKb), peak: mb(peak(sampler.samples, 'containerKb')), at_drain: mb(activeSamples.at(-1)?.containerKb), idle_min: mb(low(idle, 'containerKb')), final: mb(fin.containerKb) },
        idle_secs: idle.length,
      },
      // Our own heap: it grows to the largest working set and must level off, not climb.
      wasm_heap_mb: { start: heapAtStart == null ? null : mb(heapAtStart / 1024), end: heapAtEnd == null ? null : mb(heapAtEnd / 1024) },
    });
    const inv = res.invariants;
    inv.drained_in_time = !res.timed_out;
    inv.all_slung = res.sling_errors === 0;
    inv.all_merged = res.merged === opts.beads;
    inv.none_lost = res.lost === 0;
    inv.no_duplicate_commits = res.duplicate_commits === 0 && res.duplicate_merges === 0;
    inv.no_false_restarts = res.false_restarts === 0;
    inv.no_capacity_refusal_attempts = res.capacity_refusal_attempts === 0;
  } catch (e) {
    res.error = String(e?.stack ?? e);
    res.invariants.completed = false;
    log(`load: ERROR ${e?.message ?? e}`);
  } finally {
    sampler?.stop();
    if (obs && !obs.stopped) await obs.stop();
    if (s) await teardown([s.w, s.c]);
    t?.cleanup();
  }
  if (left() > 5 * 60_000) {
    // How much of workerd's growth is the runtime's own: the same requests to an empty Worker.
    log('load: memory baseline (our Worker vs an empty one, 5000 GET /health each)');
    try {
      res.memory_baseline = await memoryBaseline({ dir: join(ROOTDIR, 'baseline'), n: 5000 });
    } catch (e) {
      res.memory_baseline = { error: String(e?.message ?? e) };
    }
  }
  return res;
}

/** The memory baseline as one line of the table. */
function memoryLine(m) {
  if (!m?.ours) return m?.error ?? 'not measured';
  const { ours: o, empty_worker: e } = m;
  return `${m.requests} GET /health: RSS ours +${o.rss_mb.growth} MB, empty JS Worker +${e.rss_mb.growth} MB (ratio ${m.rss_growth_ratio}); `
    + `V8 heap used ours ${o.v8_heap_used_mb.before} → ${o.v8_heap_used_mb.after} MB, empty ${e.v8_heap_used_mb.before} → ${e.v8_heap_used_mb.after} MB; `
    + `our wasm heap ${o.wasm_heap_mb.before} → ${o.wasm_heap_mb.after} MB`;
}

function count(xs) {
  const o = {};
  for (const x of xs) o[x ?? '?'] = (o[x ?? '?'] ?? 0) + 1;
  return o;
}

// ---- phase 2: faults ---------------------------------------------------------------------------

// The demo agent with a pause between its five steps (prime, take, change, commit, gt done), so
// a fault lands while it runs. The town cannot set GASTOWN_* variables (env_vars refuses them),
// so this is the custom runtime running `gt demo` itself — the same program as runtime `demo`.
const slowDemo = (ms) => ({ runtime: 'custom', command: `GASTOWN_DEMO_DELAY_MS=${ms} exec gt demo` });

/** The container's sessions (running ones by default). */
async function sessions(c, all = false) {
  const r = await c.api.get('/sessions');
  const list = Array.isArray(r.data) ? r.data : [];
  return all ? list : list.filter((x) => x.status === 'running');
}

const CASES = {
  /** SIGKILL one running agent (its process group) in the middle of its work, before its commit. */
  'agent-kill9': {
    agent: slowDemo(1500),
    async fault({ c, slung, note }) {
      const target = slung[0].bead.id;
      let victim;
      const ok = await waitFor(async () => {
        victim = (await sessions(c)).find((x) => x.bead_id === target && /step 2\/5/.test(x.screen ?? ''));
        return victim;
      }, 60_000);
      if (!ok) throw new Error('timed out waiting for the agent to run');
      const p = proc(victim.pid);
      if (!p || p.ppid !== c.pid) throw new Error(`pid ${victim.pid} is not a child of the container program (${JSON.stringify(p)})`);
      const start = Date.now();
      process.kill(-victim.pid, 'SIGKILL');
      note(`killed ${victim.name} (pid ${victim.pid}, epoch ${victim.spawn_epoch}) at step 2/5`);
      return { start, at: start };
    },
  },
  'container-kill9-5s': { agent: slowDemo(1500), fault: (x) => containerKill(x, 5) },
  'container-kill9-30s': { agent: slowDemo(1500), fault: (x) => containerKill(x, 30) },
  'worker-down-5s-across-done': { agent: slowDemo(3000), fault: (x) => workerAcrossDone(x, 5) },
  'worker-down-30s-across-done': { agent: slowDemo(3000), fault: (x) => workerAcrossDone(x, 30) },
  'worker-down-5s-across-merge': { agent: { runtime: 'demo' }, refinery: { gates: ['sleep 3'], gate_timeout_secs: 10 }, fault: (x) => workerAcrossMerge(x, 5) },
  'worker-down-30s-across-merge': { agent: { runtime: 'demo' }, refinery: { gates: ['sleep 3'], gate_timeout_secs: 10 }, fault: (x) => workerAcrossMerge(x, 30) },
  /** The container dies and never comes back: every bead must end failed and escalated. */
  'container-down-for-good': {
    agent: slowDemo(1500),
    expectFailed: true,
    async fault({ c, slung, note }) {
      if (!(await waitFor(async () => (await sessions(c)).length >= Math.min(slung.length, 1), 60_000))) throw new Error('timed out waiting for an agent to run');
      const n = (await sessions(c)).length;
      const start = Date.now();
      await c.kill9();
      note(`SIGKILLed the container program with ${n} agents running; not restarted`);
      return { start, at: start };
    },
  },
};

async function containerKill({ c, slung, note }, downSecs) {
  if (!(await waitFor(async () => (await sessions(c)).filter((x) => /step [2-5]\/5/.test(x.screen ?? '')).length >= Math.min(slung.length, 2), 60_000))) {
    throw new Error('timed out waiting for agents to run');
  }
  const n = (await sessions(c)).length;
  const at = Date.now();
  await c.kill9();
  note(`SIGKILLed the container program (and its ${n} running agents)`);
  await sleep(downSecs * 1000);
  await c.start();
  note(`restarted on port ${c.port} with the same workspace after ${secs(Date.now() - at)} s`);
  return { start: at, at: Date.now() };
}

/** Stops the Worker when the first agent is two steps (two pauses) before its `gt done`. */
async function workerAcrossDone({ c, w, slung, note }, downSecs) {
  const target = slung[0].bead.id;
  let victim;
  if (!(await waitFor(async () => {
    victim = (await sessions(c)).find((x) => x.bead_id === target && /step 3\/5/.test(x.screen ?? ''));
    return victim;
  }, 60_000))) throw new Error('timed out waiting for the agent to reach step 3/5');
  const t0 = Date.now();
  // Watch the agent from the container's side while the Worker is away.
  let doneAt = null;
  let exit = null;
  let exitAt = null;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      const x = (await sessions(c, true).catch(() => [])).find((s) => s.agent_id === victim.agent_id && s.spawn_epoch === victim.spawn_epoch);
      if (x && doneAt == null && /step 5\/5/.test(x.screen ?? '')) doneAt = Date.now();
      if (x?.exit && !exit) {
        exit = x.exit;
        exitAt = Date.now();
        // `gt` exits 3 on a server/network error; the demo's only call after step 1 is `gt done`.
        if (doneAt == null && exit.code === 3) doneAt = exitAt;
      }
      await sleep(250);
    }
  })();
  await w.stop();
  const stopped = Date.now();
  await sleep(downSecs * 1000);
  const restarting = Date.now();
  await w.start();
  const up = Date.now();
  watching = false;
  await watch;
  const during = doneAt != null && doneAt >= t0 && doneAt <= up;
  note(`Worker SIGTERMed (stopped in ${secs(stopped - t0)} s), down ${secs(up - stopped)} s (restart took ${secs(up - restarting)} s)`);
  note(`${victim.name}'s gt done ${doneAt == null ? 'not seen' : `at +${secs(doneAt - t0)} s`} — ${during ? 'inside' : 'OUTSIDE'} the outage; its run ${exit ? `exited at +${secs(exitAt - t0)} s (code ${exit.code}, signal ${exit.signal})` : 'had not exited'} by the restart`);
  return { start: t0, at: up, landed: during };
}

/** Stops the Worker while the refinery's merge (a 3 s gate) runs. */
async function workerAcrossMerge({ w, t, api, note }, downSecs) {
  const mainRef = () => {
    try { return readFileSync(join(t.rigs[0].repo.bare, 'refs', 'heads', 'main'), 'utf8').trim(); } catch { return null; }
  };
  let running;
  if (!(await waitFor(async () => {
    const mq = (await api.get(`/api/towns/${t.id}/merge-queue`)).data ?? [];
    running = mq.find((m) => m.status === 'running');
    return running;
  }, 90_000, 100))) throw new Error('timed out waiting for a running merge');
  const before = mainRef();
  const t0 = Date.now();
  await w.stop();
  const stopped = Date.now();
  await sleep(downSecs * 1000);
  const movedWhileDown = mainRef() !== before;
  const restarting = Date.now();
  await w.start();
  const up = Date.now();
  note(`Worker SIGTERMed during merge ${running.id} of ${running.source_bead_id} (stopped in ${secs(stopped - t0)} s), down ${secs(up - stopped)} s`);
  note(`main ${movedWhileDown ? 'moved (the merge landed) while the Worker was down' : 'did not move while the Worker was down'}; restart took ${secs(up - restarting)} s`);
  return { start: t0, at: up, landed: movedWhileDown };
}

async function runCase(name) {
  const spec = CASES[name];
  const res = { case: name, beads: opts.faultBeads, timed_out: false, notes: [], invariants: {} };
  const budget = Math.min(opts.faultTimeoutSecs * 1000, left() - 30_000);
  if (budget < 60_000) {
    res.skipped = 'global deadline';
    return res;
  }
  const caseEnd = Date.now() + budget;
  let s;
  let t;
  let obs;
  const note = (m) => { res.notes.push(m); log(`${name}: ${m}`); };
  try {
    s = await stack(`case-${name}`, { maxAgents: 16 });
    const config = {
      agent: spec.agent,
      capacity: { max_polecats_per_rig: opts.faultBeads, max_polecats_per_town: opts.faultBeads },
      witness: { tick_secs: opts.faultTick },
      ...(spec.refinery ? { refinery: spec.refinery } : {}),
    };
    t = await makeTown(s.api, { name, rigs: 1, config });
    obs = new Observer(s.api, t.id);
    obs.run(500);
    const { results } = await slingMany(s.api, t.rigs, opts.faultBeads, { concurrency: 4, onSlung: (r) => obs.track(r.bead.id) });
    const slung = results.filter((r) => r.bead);
    res.sling_errors = results.length - slung.length;
    const f = await spec.fault({ ...s, t, slung, note, api: s.api });
    res.fault_landed = f.landed ?? true;
    const done = await waitFor(() => obs.allTerminal(), caseEnd - Date.now(), 500);
    res.timed_out = !done;
    await obs.stop();
    await obs.poll();
    const cl = await classify(s.api, t, obs, slung);
    const restarts = judgeRestarts(obs, s.c);
    if (process.env.SOAK_KEEP === '1') writeFileSync(join(s.dir, 'events.json'), JSON.stringify({ events: obs.events, restarts }, null, 1));
    const last = Math.max(...slung.map((r) => obs.terminalAt.get(r.bead.id) ?? 0));
    Object.assign(res, {
      merged: cl.merged.length,
      failed: cl.failed.length,
      failed_escalated: cl.failedEscalated,
      fail_reasons: cl.failReasons,
      active_at_end: cl.active.length,
      lost: cl.lost.length,
      duplicate_commits: cl.extraCommits,
      duplicate_merges: cl.extraMerges,
      duplicate_examples: cl.duplicates.slice(0, 3),
      witness_restarts: restarts.length,
      false_restarts: restarts.filter((r) => r.aliveByEvents && r.aliveByContainer !== false).length,
      dispatch_failed: obs.dispatchFailed.length,
      // From the end of the fault (restart) to the last bead finished; negative: every bead had
      // already ended (failed) before the fault was over.
      recover_secs: done ? secs(last - f.at) : null,
      finished_after_fault_start_secs: done ? secs(last - f.start) : null,
    });
    const inv = res.invariants;
    inv.finished_in_time = !res.timed_out;
    inv.all_slung = res.sling_errors === 0;
    if (spec.expectFailed) {
      inv.all_failed = res.failed === opts.faultBeads;
      inv.all_escalated = res.failed_escalated === res.failed && res.failed > 0;
    } else {
      inv.all_merged = res.merged === opts.faultBeads;
    }
    inv.none_lost = res.lost === 0;
    inv.no_duplicate_commits = res.duplicate_commits === 0 && res.duplicate_merges === 0;
    inv.no_false_restarts = res.false_restarts === 0;
  } catch (e) {
    res.error = String(e?.message ?? e);
    res.invariants.completed = false;
    if (/timed out/.test(res.error)) res.timed_out = true;
    log(`${name}: ERROR ${res.error}`);
  } finally {
    if (obs && !obs.stopped) await obs.stop();
    if (s) await teardown([s.w, s.c]);
    t?.cleanup();
    if (Date.now() > caseEnd) res.timed_out = true;
  }
  return res;
}

// ---- report ------------------------------------------------------------------------------------

function table(rows, header) {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0].map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ');
  const out = [];
  if (header) out.push(line(header), widths.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) out.push(line(r));
  return out.join('\n');
}
const verdict = (inv) => Object.entries(inv).filter(([, v]) => v === false).map(([k]) => k);

async function main() {
  const summary = { started_at: new Date(START).toISOString(), options: opts, load: null, faults: [], teardown: teardownNotes };
  try {
    if (runLoad) summary.load = await phaseLoad();
    if (runFaults) {
      for (const name of casesArg ?? Object.keys(CASES)) {
        if (!CASES[name]) throw new Error(`unknown case ${name}; cases: ${Object.keys(CASES).join(', ')}`);
        if (interrupted) break;
        log(`fault case ${name}`);
        summary.faults.push(await runCase(name));
      }
    }
  } finally {
    await teardown([...live].reverse());
  }
  summary.wall_secs = secs(Date.now() - START);

  const L = summary.load;
  if (L) {
    const r = L.rss_mb ?? {};
    console.log(`\nPhase 1 — load: ${L.beads} beads, ${L.rigs} rigs, capacity ${L.capacity_per_rig}/rig (${L.capacity_town}/town), container max ${L.container_max_agents} agents`);
    console.log(table([
      ['slung', `${L.slung ?? 0}/${L.beads} (${L.sling_errors ?? '?'} errors) in ${L.sling_secs ?? '?'} s, ${L.sling_per_sec ?? '?'}/s, p50 ${L.sling_latency_ms?.p50 ?? '?'} ms p99 ${L.sling_latency_ms?.p99 ?? '?'} ms`],
      ['merged', `${L.merged ?? '?'}/${L.beads}${L.timed_out ? '  (TIMED OUT)' : ''}`],
      ['failed (escalated)', `${L.failed ?? '?'} (${L.failed_escalated ?? '?'})  ${JSON.stringify(L.fail_reasons ?? {})}`],
      ['active at end', L.active_at_end],
      ['lost', `${L.lost ?? '?'} (closed without commit: ${L.closed_without_commit ?? '?'})`],
      ['duplicate commits', `${L.duplicate_commits ?? '?'} extra commits, ${L.duplicate_merges ?? '?'} extra merges, over ${L.duplicate_beads ?? '?'} beads`],
      ['witness restarts', `${L.witness_restarts ?? '?'}; false (run alive per events) ${L.false_restarts ?? '?'}, confirmed by the container log ${L.false_restarts_confirmed_by_container_log ?? '?'}  ${JSON.stringify(L.restart_reasons ?? {})}`],
      ['dispatch_failed', `${L.dispatch_failed ?? '?'}; capacity refusals counted as attempts ${L.capacity_refusal_attempts ?? '?'}`],
      ['time to drain', `${L.drain_secs ?? '?'} s`],
      ['merges/s', L.merges_per_sec],
      ['peak in_review', L.peak_in_review],
      ['peak processes', L.peak_processes_below_container],
      ['workerd RSS MB', r.workerd ? `baseline ${r.workerd.baseline}, peak ${r.workerd.peak}, at drain ${r.workerd.at_drain}, idle min ${r.workerd.idle_min}, final ${r.workerd.final} (after ${r.idle_secs} s idle)` : '?'],
      ['container RSS MB', r.container ? `baseline ${r.container.baseline}, peak ${r.container.peak}, at drain ${r.container.at_drain}, idle min ${r.container.idle_min}, final ${r.container.final}` : '?'],
      ['wasm heap MB', L.wasm_heap_mb ? `start ${L.wasm_heap_mb.start}, end ${L.wasm_heap_mb.end}` : '?'],
      ['RSS growth vs empty Worker', memoryLine(L.memory_baseline)],
      ['failed invariants', L.error ? `ERROR ${L.error.split('\n')[0]}` : verdict(L.invariants).join(', ') || 'none'],
    ], ['figure', 'value']));
  }
  if (summary.faults.length) {
    console.log(`\nPhase 2 — faults (${opts.faultBeads} beads each, witness tick ${opts.faultTick} s)`);
    console.log(table(summary.faults.map((f) => [
      f.case,
      f.skipped ? `skipped (${f.skipped})` : f.error ? `ERROR: ${f.error.slice(0, 60)}` : f.timed_out ? 'TIMED OUT' : 'finished',
      f.merged ?? '-', f.failed ?? '-', f.failed_escalated ?? '-', f.lost ?? '-', f.active_at_end ?? '-', f.duplicate_commits ?? '-',
      f.witness_restarts ?? '-', f.recover_secs ?? '-', f.finished_after_fault_start_secs ?? '-', f.skipped ? '-' : verdict(f.invariants).join(',') || 'ok',
    ]), ['case', 'outcome', 'merged', 'failed', 'escal', 'lost', 'active', 'dup', 'restarts', 'recover s', 'from fault s', 'failed invariants']));
    for (const f of summary.faults) for (const n of f.notes ?? []) console.log(`  ${f.case}: ${n}`);
  }
  if (teardownNotes.length) console.log(`\nteardown: ${teardownNotes.join('; ')}`);

  const failed = [
    ...(L ? verdict(L.invariants).map((k) => `load.${k}`) : []),
    ...summary.faults.flatMap((f) => verdict(f.invariants).map((k) => `${f.case}.${k}`)),
    ...teardownNotes.map(() => 'teardown'),
  ];
  const skipped = summary.faults.filter((f) => f.skipped).map((f) => f.case);
  summary.failed_invariants = failed;
  summary.skipped = skipped;
  summary.ok = failed.length === 0 && skipped.length === 0;
  console.log('\nJSON summary:');
  const json = JSON.stringify(summary, null, 2);
  console.log(json);
  if (process.env.SOAK_JSON) writeFileSync(process.env.SOAK_JSON, json + '\n');
  console.log(`\n${failed.length ? `FAILED invariants (${failed.length}): ${failed.join(', ')}` : 'all invariants held'}${skipped.length ? `; skipped for the deadline: ${skipped.join(', ')}` : ''}`);
  return failed.length ? 1 : skipped.length ? 2 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(e);
  code = 1;
} finally {
  await teardown([...live].reverse());
  if (process.env.SOAK_KEEP === '1') console.error(`logs kept in ${ROOTDIR}`);
  else rmSync(ROOTDIR, { recursive: true, force: true });
}
process.exit(code);
