// Real agent CLI start benchmark (part of `npm run bench`): sling → the CLI's first model
// request, per runtime, through the whole town (Worker, TownDO dispatch, container: worktree, HOME
// preparation, uid switch, PTY), against the same CLI started by hand in a prepared worktree
// (`prepare-cli` writes the same HOME, then the CLI runs under a PTY as an unprivileged uid).
// Both talk to the loopback model stand-in; the time is until its first model request arrives.
// Medians of BENCH_AGENT_N runs (default 3) each; the ratio is town / by hand.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker, ROOT } from '../tests/lib/worker.mjs';
import { client, ok } from '../tests/lib/api.mjs';
import { startContainer, bareRepo, townOnRepo, until, git, CONTAINER_SECRET } from '../tests/lib/container.mjs';
import { startModelStandin } from '../tests/lib/model-standin.mjs';

const N = Number(process.env.BENCH_AGENT_N ?? 3);
const KEY = 'sk-bench-key-0123456789abcdefghijklmn';
const UID = 45999;
const RUNTIMES = { claude: 'claude-sonnet-4-5', codex: 'gpt-5-codex', opencode: 'gastown/standin-model', gemini: 'gemini-2.5-pro', kilo: 'openai/gpt-5' };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const only = process.argv.slice(2);

const bin = execFileSync('bash', [join(ROOT, 'scripts/agent-clis.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1);
const c = await startContainer({ agentPath: bin });
const w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
const api = client(w.url);
// The first model request that carries this run's own marker (another CLI still closing its
// turn must not count).
const firstModelRequest = (m, since, marker) => until(() => m.modelRequests().find((r) => r.time >= since && JSON.stringify(r.body).includes(marker))?.time, { timeout: 120_000, every: 5, what: `a model request for ${marker}` });

async function viaTown(runtime, m) {
  const X = await townOnRepo(api, `bench-${runtime}`);
  ok(await api.patch(`/api/towns/${X.T.id}/config`, { agent: { runtime, model: RUNTIMES[runtime] }, env_vars: { MODEL_API_KEY: KEY, MODEL_BASE_URL: m.url } }));
  const times = [];
  for (let i = 0; i < N; i++) {
    const t0 = Date.now();
    const marker = `BENCH-TOWN-${runtime}-${i}`;
    const s = ok(await api.post(`${X.R}/sling`, { title: marker }), 201);
    times.push(await firstModelRequest(m, t0, marker) - t0);
    await until(async () => ok(await api.get(`${X.R}/beads/${s.bead.id}`)).status === 'closed', { timeout: 120_000, what: 'merged' }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(ok(await api.get(`${X.R}/events?bead_id=${s.bead.id}`)).map((x) => [x.event_type, x.metadata]))}`); });
  }
  X.repo.cleanup();
  return times;
}

async function byHand(runtime, m) {
  const repo = bareRepo();
  const times = [];
  for (let i = 0; i < N; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'gastown-bench-hand-'));
    chmodSync(dir, 0o755);
    const work = join(dir, 'work');
    const home = join(dir, 'home');
    git(dir, 'clone', '-q', repo.bare, work);
    git(work, 'checkout', '-q', '-b', `bench-${i}`);
    const prepared = JSON.parse(execFileSync(join(ROOT, 'container/target/debug/prepare-cli'), [runtime, home, work, RUNTIMES[runtime]], {
      input: `BENCH-HAND-${runtime}-${i}: add a file and commit it`, env: { PATH: process.env.PATH, MODEL_API_KEY: KEY, MODEL_BASE_URL: m.url }, encoding: 'utf8',
    }));
    execFileSync('chown', ['-R', `${UID}:${UID}`, dir]);
    const q = (a) => `'${a.replaceAll("'", "'\\''")}'`;
    const cmd = ['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--no-new-privs', '--', ...prepared.argv].map(q).join(' ');
    const env = { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, LANG: 'C.UTF-8', TERM: 'xterm-256color', ...prepared.env };
    const t0 = Date.now();
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: work, env, stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    try {
      times.push(await firstModelRequest(m, t0, `BENCH-HAND-${runtime}-${i}`) - t0);
    } finally {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      try { execFileSync('pkill', ['-KILL', '-u', String(UID)], { stdio: 'ignore' }); } catch { /* none left */ }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  repo.cleanup();
  return times;
}

try {
  console.log(`real agent CLI start: sling → first model request vs the same CLI started by hand (median of ${N})`);
  for (const runtime of Object.keys(RUNTIMES).filter((r) => !only.length || only.includes(r))) {
    const m = await startModelStandin({ key: KEY });
    try {
      const hand = await byHand(runtime, m);
      const town = await viaTown(runtime, m);
      console.log(`  ${runtime.padEnd(9)} town ${median(town)} ms  by hand ${median(hand)} ms  ratio ${(median(town) / median(hand)).toFixed(2)}×  (town ${town.join('/')}, hand ${hand.join('/')})`);
    } finally { await m.stop(); }
  }
} finally {
  await w.stop();
  await c.stop();
}
