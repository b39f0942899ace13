// Our Worker as bench:api and bench/ab.mjs run it: as an API Worker (wrangler.toml without the
// dashboard's static assets) and timed at its own socket, past wrangler's proxy; the one request
// helper both use.
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
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
 * The Worker's own socket under `wrangler dev`, behind wrangler's proxy. `wrangler dev` answers on
 * its port from a proxy (a Durable Object in a workerd of its own, there to hold requests across
 * reloads) that forwards each request over HTTP to the workerd running the Worker; that hop is
 * the same for every Worker and about half of a cheap request's time, so the benchmarks time
 * requests sent to the Worker's workerd directly.
 * Found as the one listening socket of the other workerd process that answers /health as the
 * proxy does.
 */
export async function workerSocket(w) {
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
        if ([r.status, Object.keys(JSON.parse(text)).sort().join()].join(' ') === want) return `http://127.0.0.1:${port}`;
      } catch { /* not the Worker's HTTP socket */ }
    }
  }
  throw new Error(`no socket of the Worker behind ${w.url} found`);
}

/** One request; throws unless 2xx (a failing op must not be timed as a fast one). */
export async function call(base, method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const r = await fetch(base + path, init);
  const text = await r.text();
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
  const json = JSON.parse(text);
  return json.success === undefined ? json : json.data;
}
