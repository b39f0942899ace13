// Debian's Chromium driven by playwright-core (no browser download): a fresh profile per launch,
// headless, with the network features that would phone out switched off. Also collects the
// page's console errors and failed requests so a test can show them when it fails.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './worker.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'tests', 'artifacts');

export async function launchBrowser({ viewport = { width: 1440, height: 900 } } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'gastown-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const problems = [];
  // Failed requests are logged as responses below, with their URL.
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`http ${r.status()}: ${r.request().method()} ${new URL(r.url()).pathname}${new URL(r.url()).search}`); });
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    context,
    page,
    problems,
    /** Saves tests/artifacts/<name>.png (look at these: a broken layout is a failure). */
    shot: (name, opts = {}) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), ...opts }),
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A fixed origin in front of the Worker: a small HTTP + WebSocket relay on its own port whose
 * target can change. `wrangler dev` picks a new port on every start, but a page must keep its
 * origin across a Worker restart to show that it reconnects by itself.
 */
export async function stableOrigin(target) {
  const http = await import('node:http');
  const net = await import('node:net');
  let current = new URL(target);
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const up = http.request({ host: current.hostname, port: current.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end('the Worker is not reachable'); });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const up = net.connect(Number(current.port), current.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(socket);
    sockets.add(up);
    const done = () => { socket.destroy(); up.destroy(); sockets.delete(socket); sockets.delete(up); };
    up.on('error', done);
    up.on('close', done);
    socket.on('error', done);
    socket.on('close', done);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    retarget(t) { current = new URL(t); },
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}
