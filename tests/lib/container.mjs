// Starts the real container program (`gastown-container`, built by `npm test`) on a free
// loopback port with its own workspace, and local bare git repositories for it to work on.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, portFree, portTaken, retryOnPortTaken } from './worker.mjs';
import { track } from './procs.mjs';

export const CONTAINER_SECRET = 'e2e-container-secret-0123456789abcdef';
export const CONTAINER_BIN = join(ROOT, 'container', 'target', 'debug', 'gastown-container');

let fixtureDir;
/**
 * The path of the agent script `tests/fixtures/<name>`, copied (with the other scripts, which
 * call each other) where every agent uid can read it: agents run under uids of their own, and
 * the checkout may sit below a folder only its owner can enter. Keys are never copied.
 */
export function fixture(name) {
  if (!fixtureDir) {
    fixtureDir = mkdtempSync(join(tmpdir(), 'gastown-fixtures-'));
    chmodSync(fixtureDir, 0o755);
    process.on('exit', () => rmSync(fixtureDir, { recursive: true, force: true }));
    for (const f of readdirSync(join(ROOT, 'tests', 'fixtures')).filter((f) => /\.(sh|mjs)$/.test(f))) {
      copyFileSync(join(ROOT, 'tests', 'fixtures', f), join(fixtureDir, f));
      chmodSync(join(fixtureDir, f), 0o755);
    }
  }
  return join(fixtureDir, name);
}

/**
 * Agent uids of this container program's own: two container programs on one machine (another
 * test run, an `npm run dev`) must never hand the same uid to their agents, or one's agents could
 * read the other's processes and files. 100 uids per slot, the slot from the port.
 */
export function uidRange(port) {
  const base = 40_000 + (port % 400) * 100 + 1;
  return ['--agent-uid-base', String(base), '--agent-uid-count', '99'];
}

/** `agentPath`: folders with agent CLIs for every agent's PATH (`--agent-path`). */
export async function startContainer({ maxAgents = 8, port: fixedPort, agentPath } = {}) {
  // A port we chose may be taken by another process before the container binds it: start again
  // on a fresh one (see freePort). A port the caller fixed is its to keep: a restart on it
  // first waits for the previous process to let go of it.
  if (fixedPort) await portFree(fixedPort);
  return retryOnPortTaken(async () => launchContainer({ maxAgents, port: fixedPort ?? await freePort(), agentPath }), fixedPort ? 0 : 2);
}

async function launchContainer({ maxAgents, port, agentPath }) {
  const dir = mkdtempSync(join(tmpdir(), 'gastown-container-'));
  // Agents (other uids) pass through to their own folders in the workspace.
  chmodSync(dir, 0o711);
  const child = track(spawn(CONTAINER_BIN, ['--port', String(port), '--workspace', join(dir, 'workspace'), '--max-agents', String(maxAgents), '--stop-grace-secs', '2',
    ...uidRange(port)], {
    env: { PATH: process.env.PATH, HOME: dir, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET, GASTOWN_LOG: 'info', ...(agentPath ? { GASTOWN_AGENT_PATH: agentPath } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', r));
  // 'close' comes after the last output, which says why an early exit happened.
  const closed = new Promise((r) => child.on('close', r));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await closed;
      rmSync(dir, { recursive: true, force: true });
      throw Object.assign(new Error(`container exited early:\n${log}`), { portTaken: portTaken(log) });
    }
    try { if ((await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) })).ok) break; } catch { /* not yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`container not ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    pid: child.pid,
    workspace: join(dir, 'workspace'),
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function git(cwd, ...args) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 't@t' } }).trim();
}

/** A bare repository with one commit on `main` (README.md), standing in for GitHub. */
export function bareRepo() {
  const dir = mkdtempSync(join(tmpdir(), 'gastown-repo-'));
  const bare = join(dir, 'origin.git');
  git(dir, 'init', '-q', '--bare', '-b', 'main', bare);
  const seed = join(dir, 'seed');
  git(dir, 'clone', '-q', bare, seed);
  git(seed, 'checkout', '-q', '-b', 'main');
  writeFileSync(join(seed, 'README.md'), 'hello\n');
  git(seed, 'add', 'README.md');
  git(seed, 'commit', '-q', '-m', 'initial');
  git(seed, 'push', '-q', 'origin', 'main');
  return { bare, dir, log: () => git(bare, 'log', '--format=%s', 'main'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function until(fn, { timeout = 30_000, every = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The Worker under workerd wired to a fresh container program (dev auth): `{c, w, api, stop}`. */
export async function startStack() {
  const { startWorker } = await import('./worker.mjs');
  const { client } = await import('./api.mjs');
  const c = await startContainer();
  const w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  return { c, w, api: client(w.url), stop: async () => { await w.stop(); await c.stop(); } };
}

/** A town with one rig on a fresh local bare repository: `{repo, T, rig, R}` (R = the rig's API path). */
export async function townOnRepo(api, name, rigName = 'app') {
  const { ok } = await import('./api.mjs');
  const repo = bareRepo();
  const T = ok(await api.post('/api/users/u/towns', { name }), 201);
  const rig = ok(await api.post('/api/users/u/rigs', { town_id: T.id, name: rigName, git_url: repo.bare }), 201);
  return { repo, T, rig, R: `/api/towns/${T.id}/rigs/${rig.id}` };
}
