// The memory baseline of the reliability suite. workerd's RSS grows under any load and does not
// come back when the load stops, even for a Worker that does nothing (the runtime keeps what it
// allocated). So the figure that says something about our code is a ratio measured in the same
// run: RSS growth of our Worker against an empty JS Worker (bench/baseline-worker) on the same
// wrangler, for the same requests, plus the size of our wasm heap, which must level off.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, freePort } from '../../tests/lib/worker.mjs';
import { track, descendants } from '../../tests/lib/procs.mjs';
import { WorkerProc, sleep } from './procs.mjs';

const mb = (kb) => Math.round(kb / 102.4) / 10;

/** RSS (kB) of the workerd processes below `pid`. */
const workerdKb = (pid) => descendants(pid).filter((p) => p.comm === 'workerd').reduce((a, p) => a + p.rssKb, 0);

/** Sends `n` sequential GETs of `path`; returns the RSS growth (MB) of the workerd below `pid`. */
async function drive(url, pid, path, n) {
  await (await fetch(url + path)).text();
  const before = workerdKb(pid);
  for (let i = 0; i < n; i++) await (await fetch(url + path)).text();
  return { before_mb: mb(before), after_mb: mb(workerdKb(pid)), growth_mb: mb(workerdKb(pid) - before) };
}

async function emptyWorker() {
  const port = await freePort();
  const inspector = await freePort();
  const child = track(spawn(
    join(ROOT, 'node_modules', '.bin', 'wrangler'),
    ['dev', '--config', join(ROOT, 'bench', 'baseline-worker', 'wrangler.toml'), '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(inspector), '--log-level', 'warn', '--show-interactive-dev-session=false'],
    { cwd: join(ROOT, 'bench', 'baseline-worker'), env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, stdio: 'ignore' },
  ));
  const exited = new Promise((r) => child.on('exit', r));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try { await fetch(url); break; } catch { /* not yet */ }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('the baseline worker did not start');
    await sleep(100);
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * `n` GET /health on a fresh instance of our Worker and on the empty one, one after the other;
 * returns both growths, their ratio, and our wasm heap before and after.
 */
export async function memoryBaseline({ dir, n = 5000 }) {
  const ours = new WorkerProc({ dir });
  await ours.start();
  let mine;
  let heap;
  try {
    const wasm = async () => (await (await fetch(`${ours.url}/health`)).json()).wasm_memory_bytes ?? null;
    const heapBefore = await wasm();
    mine = await drive(ours.url, ours.child.pid, '/health', n);
    heap = { before_mb: mb((heapBefore ?? 0) / 1024), after_mb: mb(((await wasm()) ?? 0) / 1024) };
  } finally {
    await ours.stop();
  }
  const empty = await emptyWorker();
  let theirs;
  try {
    theirs = await drive(empty.url, empty.pid, '/health', n);
  } finally {
    await empty.stop();
  }
  return {
    requests: n,
    ours: mine,
    empty_worker: theirs,
    growth_ratio: theirs.growth_mb > 0 ? Math.round((mine.growth_mb / theirs.growth_mb) * 100) / 100 : null,
    wasm_heap_mb: heap,
  };
}
