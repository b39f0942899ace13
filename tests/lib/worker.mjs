// Starts the real Worker under `wrangler dev` (workerd) on a free loopback port with its own
// storage folder and variables, and stops it with SIGTERM (never SIGKILL: that orphans workerd).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from './procs.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const JWT_SECRET = 'e2e-test-secret-e2e-test-secret-0123456789abcdef';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * @param {object} opts
 * @param {Record<string,string>} [opts.vars] variables (override wrangler.toml's [vars])
 * @param {string} [opts.persistDir] reuse a storage folder (restart tests)
 * @param {number} [opts.port] listen on this port (a restart where agents know the old URL)
 */
export async function startWorker({ vars = {}, persistDir, port: fixedPort } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gastown-e2e-'));
  const persist = persistDir ?? join(dir, 'state');
  const envFile = join(dir, 'test.env');
  const port = fixedPort ?? await freePort();
  const all = { ENVIRONMENT: 'development', GASTOWN_AUTH: 'dev', GASTOWN_JWT_SECRET: JWT_SECRET, GASTOWN_API_URL: `http://127.0.0.1:${port}`, ...vars };
  writeFileSync(envFile, Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
  const inspector = await freePort();
  const child = track(spawn(
    join(ROOT, 'node_modules', '.bin', 'wrangler'),
    ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector),
      '--persist-to', persist, '--env-file', envFile, '--log-level', 'warn', '--show-interactive-dev-session=false'],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] },
  ));
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler exited early:\n${log}`);
    try {
      // Any HTTP answer means workerd is serving (a misconfigured town answers 503).
      await fetch(`${url}/health`);
      break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`wrangler did not become ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    /** The `wrangler dev` process (workerd runs below it). */
    pid: child.pid,
    persistDir: persist,
    log: () => log,
    async stop({ keepState = false } = {}) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (!keepState) rmSync(dir, { recursive: true, force: true });
    },
  };
}
