// Our Worker as bench:api and bench/ab.mjs run it: as an API Worker (wrangler.toml without the
// dashboard's static assets) and timed at its own socket, past wrangler's proxy; the one request
// helper both use, and the CPU time of the workerd that runs a Worker.
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { ROOT } from '../../tests/lib/worker.mjs';
import { descendants } from '../../tests/lib/procs.mjs';

/**
 * Our wrangler.toml without its `[assets]` table, in a temporary file (relative paths made
 * absolute): the API Worker alone, as the reference runs. With a static-assets directory, wrangler
 * dev puts two more workers of Miniflare's (an RPC proxy and Cloudflare's asset router) in front of
 * every request, /api included, which the reference, having no dashboard, never pays; the
 * `dashboard` pass measures that separately. `main`: another build's entry module (bench/ab.mjs).
 */
export function apiOnlyConfig(dir, main = 'build/entry.mjs') {
  const src = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const out = src
    .replace(/^\[assets\]\n(?:(?!\[).*\n)*/m, '')
    .replace(/^(main|image) = "(.*)"$/gm, (_, k, v) => `${k} = ${JSON.stringify(resolve(ROOT, k === 'main' ? main : v))}`);
  if (/^\[assets\]/m.test(out) || !out.includes(resolve(ROOT, main))) throw new Error('wrangler.toml changed shape: cannot make its API-only copy');
  const file = join(dir, `api-only-${Math.random().toString(36).slice(2, 8)}.toml`);
  writeFileSync(file, out);
  return file;
}

/**
 * {url, pid}: the Worker's own socket under `wrangler dev`, and the workerd process serving it.
 * `wrangler dev` answers on its port from a proxy (a Durable Object in a workerd of its own,
 * there to hold requests across reloads) that forwards each request over HTTP to the workerd
 * running the Worker; that hop is the same for every Worker and about half of a cheap request's
 * time, so the benchmarks time requests sent to the Worker's workerd directly.
 * Found as the one listening socket of the other workerd process that answers /health as the
 * proxy does.
 */
export async function workerProcess(w) {
  const viaProxy = await fetch(`${w.url}/health`);
  const want = [viaProxy.status, Object.keys(JSON.parse(await viaProxy.text())).sort().join()].join(' ');
  const listening = new Map();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const col = line.trim().split(/\s+/);
      if (col[3] === '0A') listening.set(col[9], parseInt(col[1].split(':').pop(), 16));
    }
  }
  for (const p of descendants(w.pid).filter((d) => d.comm === 'workerd')) {
    let fds = [];
    try { fds = readdirSync(`/proc/${p.pid}/fd`); } catch { continue; }
    const ports = fds.map((fd) => {
      try { return listening.get(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p.pid}/fd/${fd}`))?.[1]); } catch { return undefined; }
    }).filter(Boolean);
    if (ports.includes(w.port)) continue; // the proxy's own workerd
    for (const port of ports) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) });
        const text = await r.text();
        if ([r.status, Object.keys(JSON.parse(text)).sort().join()].join(' ') === want) return { url: `http://127.0.0.1:${port}`, pid: p.pid };
      } catch { /* not the Worker's HTTP socket */ }
    }
  }
  throw new Error(`no socket of the Worker behind ${w.url} found`);
}

/**
 * Nanoseconds a process has run on a CPU, all its threads (the scheduler's own count in
 * /proc/<pid>/task/<tid>/schedstat, not the 10 ms ticks of /proc/<pid>/stat): what a Worker's
 * requests cost its workerd, whatever the client or the other Worker was doing meanwhile.
 */
export function cpuNs(pid) {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try { sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
  }
  return sum;
}

/**
 * Each side's workerd CPU by what it was doing. `mark(k, label)` charges the CPU side k's process
 * (`pids[k]`; none: nothing is counted) used since its last mark to the label set then, and
 * starts charging `label` (null: nothing). Marked before an op's untimed set-up (null) and just
 * before its timed request (the op), work a Worker does after answering counts to the op that
 * caused it. `totals[k][label]`: nanoseconds.
 */
export function cpuLedger(pids) {
  const totals = pids.map(() => ({}));
  const owner = pids.map(() => null);
  const last = pids.map(() => 0);
  return {
    totals,
    mark(k, label) {
      if (!pids[k]) return;
      const now = cpuNs(pids[k]);
      if (owner[k]) totals[k][owner[k]] = (totals[k][owner[k]] ?? 0) + now - last[k];
      owner[k] = label;
      last[k] = now;
    },
  };
}

/** Every process of a `wrangler dev` (wrangler and its workerds): what `settle` watches. */
export function wranglerPids(w) {
  return [w.pid, ...descendants(w.pid).map((d) => d.pid)];
}

/**
 * Waits (up to `maxMs`) until `pids` together ran less than `quietNs` of CPU in a `windowMs`
 * window: the machine has 2 cores, and work one Worker does after answering (the reference logs
 * each request through wrangler's inspector relay; ours runs its drive loop) otherwise lands in
 * whichever request is timed next, often the other Worker's. Returns false if it never settled.
 */
export async function settle(pids, { quietNs = 200_000, windowMs = 2, maxMs = 250 } = {}) {
  const total = () => pids.reduce((sum, p) => { try { return sum + cpuNs(p); } catch { return sum; } }, 0);
  const t0 = performance.now();
  let prev = total();
  while (performance.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, windowMs));
    const now = total();
    if (now - prev < quietNs) return true;
    prev = now;
  }
  return false;
}

/**
 * The client: node's own HTTP module over keep-alive sockets, unless BENCH_API_CLIENT=fetch
 * (node's fetch, which earlier rounds used). The client's time is in every figure of both
 * Workers alike, so a heavier one pulls every ratio towards 1: fetch does more work per request in
 * the client, and it asks for gzip, which Miniflare then does inside the
 * Worker's workerd for JSON replies, emulating what Cloudflare's front line does outside the
 * Worker in production. One sequential run of 3000 /health to our Worker's socket: 1.68 ms with
 * fetch, 0.94 ms with http (of which workerd's CPU: 0.83 and 0.70 ms).
 */
export const CLIENT = process.env.BENCH_API_CLIENT === 'fetch' ? 'fetch' : 'http';
const keepAlive = new http.Agent({ keepAlive: true });

function viaHttp(base, method, path, data, headers) {
  return new Promise((done, fail) => {
    const u = new URL(base);
    const h = { ...headers };
    if (data !== undefined) h['content-length'] = Buffer.byteLength(data);
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers: h, agent: keepAlive }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(data);
  });
}

async function viaFetch(base, method, path, data, headers) {
  const r = await fetch(base + path, { method, headers, body: data });
  return { status: r.status, text: await r.text() };
}

/** One request; throws unless 2xx (a failing op must not be timed as a fast one). */
export async function call(base, method, path, body, headers = {}) {
  const h = { ...headers };
  let data;
  if (body !== undefined) {
    data = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const { status, text } = await (CLIENT === 'fetch' ? viaFetch : viaHttp)(base, method, path, data, h);
  if (status < 200 || status > 299) throw new Error(`${method} ${path}: ${status} ${text.slice(0, 300)}`);
  const json = JSON.parse(text);
  return json.success === undefined ? json : json.data;
}
