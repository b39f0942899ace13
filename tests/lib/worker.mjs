// The one `wrangler dev` spawner of the repository: tests, benchmarks (bench/lib/procs.mjs
// WorkerProc, bench/lib/baseline.mjs devWorker) and the reference Worker of `npm run bench:api`
// all start workerd through `startWorker`. It runs our pinned wrangler on a loopback port, with
// its own storage folder and variables (an env file readable by this user only, since it holds
// the JWT secret), waits until /health answers, and stops it with SIGTERM (SIGKILL only as a last
// resort of `stop()`: it orphans workerd). Every child is `track`ed, so it is stopped when the
// calling process ends for any reason.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from './procs.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const JWT_SECRET = 'e2e-test-secret-e2e-test-secret-0123456789abcdef';
/** Our pinned wrangler (package.json): the reference Worker runs on the same one. */
export const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Ports this process has handed out: never the same one twice. */
const handedOut = new Set();

/** Where the kernel's ephemeral range starts (outgoing connections and `listen(0)` take ports from there up). */
const EPHEMERAL_LOW = (() => {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (lo > 0) return lo;
  } catch { /* not Linux: assume its default */ }
  return 32768;
})();

function canBind(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A loopback port that is free now, for a child process to bind a moment later. It comes from
 * below the kernel's ephemeral range: a port from `listen(0)` lies inside it, where every
 * outgoing connection of this busy machine (fetches, workerd's own sockets) may take it between
 * our check and the child's bind, and CI saw wrangler fail on exactly that. Callers that spawn a
 * server still retry on "address in use" (`startWorker`, `startContainer`), since another
 * process can pick the same port by chance.
 */
export async function freePort() {
  const floor = 10_000;
  if (EPHEMERAL_LOW - floor >= 1000) {
    for (let i = 0; i < 200; i++) {
      const port = floor + Math.floor(Math.random() * (EPHEMERAL_LOW - floor));
      if (handedOut.has(port)) continue;
      if (await canBind(port)) {
        handedOut.add(port);
        return port;
      }
    }
  }
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

/** Did a server fail to start because its port was taken? (Worth one more try on another port.) */
export const portTaken = (log) => /address already in use|EADDRINUSE/i.test(log);

/**
 * Runs `start` (which spawns a server on ports `freePort` chose) up to `retries` more times while
 * it fails with `portTaken` set: another process took a port between the check and the bind.
 */
export async function retryOnPortTaken(start, retries = 2) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (!(e.portTaken && attempt < retries)) throw e;
    }
  }
}

/**
 * Waits until `port` can be bound on loopback: a restart on the same port (tests where agents
 * know the old URL) must not race the previous workerd's last moments of holding it.
 */
export async function portFree(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canBind(port)) return;
    if (Date.now() > deadline) throw new Error(`port ${port} is still in use after ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** Our Worker's local variables: dev auth, the test JWT secret, its own URL for callbacks. */
export function gastownVars(url) {
  return { ENVIRONMENT: 'development', GASTOWN_AUTH: 'dev', GASTOWN_JWT_SECRET: JWT_SECRET, GASTOWN_API_URL: url };
}

/**
 * @param {object} opts
 * @param {Record<string,string>} [opts.vars] variables (override the config's [vars]); for our
 *   Worker they are laid over `gastownVars()` unless `gastown: false`
 * @param {boolean} [opts.gastown] false: another Worker (no Gastown defaults; env file only if `vars`)
 * @param {string} [opts.cwd] wrangler's working directory (default: this repository)
 * @param {string} [opts.config] a wrangler config file (`--config`); default: the one in `cwd`
 * @param {string} [opts.dir] a folder of the caller's for the env file and state (kept on stop);
 *   default: a fresh temporary folder, removed by `stop()` unless `keepState`
 * @param {string} [opts.persistDir] reuse a storage folder (restart tests)
 * @param {number} [opts.port] listen on this port (a restart where agents know the old URL)
 * @param {number} [opts.inspectorPort] the V8 inspector's port (default: a free one)
 * @param {string[]} [opts.args] more `wrangler dev` arguments
 * @param {(chunk: string) => void} [opts.onOutput] sees every chunk wrangler prints
 * @param {number} [opts.logLimit] keep only this many trailing characters for `log()`
 * @param {number} [opts.readyTimeoutMs] how long /health may take to answer
 * @param {string} [opts.logLevel] wrangler's log level ('info' also shows each request and every
 *   "Reloading local server")
 */
export async function startWorker({
  vars = {}, gastown = true, cwd = ROOT, config, dir, persistDir, port: fixedPort, inspectorPort,
  args = [], onOutput, logLimit = Infinity, readyTimeoutMs = 60_000, logLevel = 'warn',
} = {}) {
  const ownDir = !dir;
  const home = dir ?? mkdtempSync(join(tmpdir(), 'gastown-e2e-'));
  // The env file holds the JWT secret: readable by this user only, never by agent uids.
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const persist = persistDir ?? join(home, 'state');
  if (fixedPort) await portFree(fixedPort);
  // Fresh ports on a retry; a port the caller fixed is its to keep.
  return retryOnPortTaken(async () => launch(fixedPort ?? await freePort(), inspectorPort ?? await freePort()),
    fixedPort || inspectorPort ? 0 : 2);

  async function launch(port, inspector) {
    const url = `http://127.0.0.1:${port}`;
    const all = gastown ? { ...gastownVars(url), ...vars } : vars;
    const argv = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector),
      '--persist-to', persist, '--log-level', logLevel, '--show-interactive-dev-session=false', ...args];
    if (config) argv.push('--config', config);
    if (Object.keys(all).length) {
      const envFile = join(home, 'worker.env');
      writeFileSync(envFile, Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
      argv.push('--env-file', envFile);
    }
    const child = track(spawn(WRANGLER, argv, {
      cwd, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let log = '';
    const onData = (d) => {
      log += d;
      if (log.length > logLimit * 2) log = log.slice(-logLimit);
      onOutput?.(d);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // 'close' comes after the last output, which says why an early exit happened.
    const closed = new Promise((resolve) => child.on('close', resolve));
    const running = () => child.exitCode === null && child.signalCode === null;
    const tail = () => log.slice(-Math.min(logLimit, 8000));
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (!running()) {
        await closed;
        throw Object.assign(new Error(`wrangler exited early:\n${tail()}`), { portTaken: portTaken(log) });
      }
      try {
        // Any HTTP answer means workerd is serving (a misconfigured town answers 503).
        const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        child.kill('SIGTERM');
        throw new Error(`wrangler did not become ready within ${readyTimeoutMs / 1000} s:\n${tail()}`);
      }
      await sleep(100);
    }
    return {
      url,
      port,
      inspectorPort: inspector,
      /** The `wrangler dev` process (workerd runs below it). */
      pid: child.pid,
      child,
      exited,
      dir: home,
      persistDir: persist,
      running,
      log: () => (Number.isFinite(logLimit) ? log.slice(-logLimit) : log),
      /** SIGTERM; SIGKILL after `killAfterMs` (null: never). Removes a folder of ours unless `keepState`. */
      async stop({ keepState = false, killAfterMs = 15_000 } = {}) {
        if (running()) {
          child.kill('SIGTERM');
          const timer = killAfterMs == null ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
          await exited;
          clearTimeout(timer);
        }
        if (ownDir && !keepState) rmSync(home, { recursive: true, force: true });
      },
    };
  }
}
