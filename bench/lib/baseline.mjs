// The memory baseline of the reliability suite. workerd's RSS grows under any load and does not
// come back when the load stops, even for a Worker that does nothing. So the figures that say
// something about our code are measured in the same run, for the same requests: the RSS growth
// of our Worker against an empty JS Worker (bench/baseline-worker) on the same wrangler, the V8
// heap of each (read over the inspector protocol), and our wasm heap. If the two heaps stay
// small while RSS climbs, the growth is the runtime's own memory, not objects our code keeps.
import { join } from 'node:path';
import WebSocket from 'ws';
import { ROOT, JWT_SECRET, startWorker } from '../../tests/lib/worker.mjs';
import { descendants } from '../../tests/lib/procs.mjs';

const mb = (bytes) => (bytes == null ? null : Math.round(bytes / 104857.6) / 10);

/** `wrangler dev` on `config` with an inspector: `{url, rssBytes(), v8Heap(), stop()}`. */
async function devWorker({ dir, config, cwd, vars }) {
  // The shared spawner; `vars` are exactly what this Worker gets (none for the empty one).
  const w = await startWorker({ dir, config, cwd, vars, gastown: false });
  const { child, inspectorPort: inspector } = w;
  const url = w.url;
  return {
    url,
    rssBytes: () => descendants(child.pid).filter((p) => p.comm === 'workerd').reduce((a, p) => a + p.rssKb * 1024, 0),
    /** The isolate's V8 heap `{used, total}` in bytes, over the inspector (null if unavailable). */
    async v8Heap() {
      try {
        const [target] = await (await fetch(`http://127.0.0.1:${inspector}/json`)).json();
        const ws = new WebSocket(target.webSocketDebuggerUrl);
        await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
        const reply = await new Promise((ok, fail) => {
          ws.on('message', (m) => {
            const msg = JSON.parse(m);
            if (msg.id === 1) ok(msg);
          });
          ws.send(JSON.stringify({ id: 1, method: 'Runtime.getHeapUsage' }));
          setTimeout(() => fail(new Error('no answer')), 5000);
        });
        ws.close();
        return reply.result ? { used: reply.result.usedSize, total: reply.result.totalSize } : null;
      } catch {
        return null;
      }
    },
    // SIGTERM and wait, as before (no SIGKILL: it would orphan workerd).
    stop: () => w.stop({ killAfterMs: null }),
  };
}

/** Sends `n` sequential GETs of `path` to `w`; its RSS and heaps before and after. */
async function drive(w, path, n, wasm) {
  await (await fetch(w.url + path)).text();
  const before = { rss: w.rssBytes(), v8: await w.v8Heap(), wasm: wasm ? await wasm() : null };
  for (let i = 0; i < n; i++) await (await fetch(w.url + path)).text();
  const after = { rss: w.rssBytes(), v8: await w.v8Heap(), wasm: wasm ? await wasm() : null };
  return {
    rss_mb: { before: mb(before.rss), after: mb(after.rss), growth: mb(after.rss - before.rss) },
    v8_heap_used_mb: { before: mb(before.v8?.used), after: mb(after.v8?.used) },
    ...(wasm ? { wasm_heap_mb: { before: mb(before.wasm), after: mb(after.wasm) } } : {}),
  };
}

/** `n` GET /health on a fresh instance of our Worker, then on the empty one. */
export async function memoryBaseline({ dir, n = 5000 }) {
  const ours = await devWorker({
    dir: join(dir, 'ours'),
    cwd: ROOT,
    vars: { ENVIRONMENT: 'development', GASTOWN_AUTH: 'dev', GASTOWN_JWT_SECRET: JWT_SECRET },
  });
  let mine;
  try {
    mine = await drive(ours, '/health', n, async () => (await (await fetch(`${ours.url}/health`)).json()).wasm_memory_bytes ?? null);
  } finally {
    await ours.stop();
  }
  const empty = await devWorker({
    dir: join(dir, 'empty'),
    cwd: join(ROOT, 'bench', 'baseline-worker'),
    config: join(ROOT, 'bench', 'baseline-worker', 'wrangler.toml'),
  });
  let theirs;
  try {
    theirs = await drive(empty, '/health', n);
  } finally {
    await empty.stop();
  }
  return {
    requests: n,
    ours: mine,
    empty_worker: theirs,
    rss_growth_ratio: theirs.rss_mb.growth > 0 ? Math.round((mine.rss_mb.growth / theirs.rss_mb.growth) * 100) / 100 : null,
  };
}
