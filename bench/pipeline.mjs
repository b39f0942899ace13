// `npm run bench`: the control plane's overhead on the two paths that matter, each next to a
// baseline measured in the same run on the same machine:
//   1. sling → agent process running   vs  a direct start request to the container program
//   2. `gt done` → merged on main        vs  the same work without the control plane: the real
//      `gt done` process (its git checks and its HTTP call) answered by a minimal HTTP server in
//      this process, which pulls the branch out of the agent's clone, pushes it, and merges it
//      onto main in a temporary detached worktree of a server-owned clone with the same ref
//      checks and git commands as the container's refinery, then pushes main and removes the
//      worktree. Both sides are timed the same way: from the agent's stamp just before
//      `exec gt done` to the moment main's ref changes in the bare repository.
//      What the baseline leaves out is the control plane itself: the Worker and its Durable
//      Objects (the merge request and its events, the drive loop), the hops Worker → DO →
//      container, and the agent-uid isolation of the fetch out of the agent's clone.
// Prints medians (machines here are noisy) and their ratio. Needs `npm test`'s build outputs.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startWorker } from '../tests/lib/worker.mjs';
import { client, ok } from '../tests/lib/api.mjs';
import { startContainer, bareRepo, git, CONTAINER_BIN, CONTAINER_SECRET } from '../tests/lib/container.mjs';

const N = Number(process.env.BENCH_N ?? 9);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Wall-clock milliseconds with sub-ms precision, comparable with `date +%s%N` in the agents.
const wall = () => performance.timeOrigin + performance.now();
const sleep = (t) => new Promise((r) => setTimeout(r, t));
/** Waits for a file (written by an agent) without touching the system under test. */
async function stamp(file) {
  for (;;) {
    if (existsSync(file)) {
      const t = readFileSync(file, 'utf8').trim();
      if (t) return Number(BigInt(t) / 1000n) / 1000;
    }
    await sleep(1);
  }
}

/**
 * `gt done` → merged without the control plane, `n` times: the real `gt` answered by a minimal
 * HTTP server that does the container's git work for `gt done` (push) and for the refinery
 * (merge in a temporary detached worktree). Returns the milliseconds from the agent's stamp to
 * main's ref changing, measured exactly as for Gastown.
 */
async function baselineMerges(n) {
  const run = promisify(execFile);
  const identity = { GIT_AUTHOR_NAME: 'refinery', GIT_AUTHOR_EMAIL: 'r@r', GIT_COMMITTER_NAME: 'refinery', GIT_COMMITTER_EMAIL: 'r@r' };
  const g = async (cwd, ...args) => (await run('git', args, { cwd, env: { ...process.env, ...identity } })).stdout.trim();
  const ok0 = (cwd, ...args) => run('git', args, { cwd }).then(() => true, () => false);
  const base = bareRepo();
  const root = mkdtempSync(join(tmpdir(), 'gastown-bench-base-'));
  const rig = join(root, 'rig');
  const server = join(rig, 'repo');
  mkdirSync(join(rig, 'merge-tmp'), { recursive: true });
  git(root, 'clone', '-q', '--no-checkout', '--origin', 'origin', base.bare, server);
  const clones = new Map();
  let merging = Promise.resolve();

  // What the container does for `gt done` (push_agent_branch) and then for the merge request
  // (merge_batch, a train of one, no gates), command for command.
  async function push(dir, branch) {
    await g(server, 'remote', 'set-url', 'origin', base.bare);
    const incoming = `refs/gastown/incoming/${branch}`;
    await g(server, '-c', 'transfer.fsckObjects=true', 'fetch', '-q', '--no-tags', '--', dir, `+refs/heads/${branch}:${incoming}`);
    const sha = await g(server, 'rev-parse', '--verify', `${incoming}^{commit}`);
    await g(server, 'push', '-q', 'origin', `+${incoming}:refs/heads/${branch}`);
    await g(server, 'update-ref', `refs/remotes/origin/${branch}`, sha);
  }
  async function merge(branch) {
    await g(server, 'config', '--get', 'remote.origin.url');
    await g(server, 'fetch', '--prune', '--no-tags', 'origin');
    if (!(await ok0(server, 'rev-parse', '--verify', '--quiet', 'refs/remotes/origin/main'))) throw new Error('no main');
    if (!(await ok0(server, 'rev-parse', '--verify', '--quiet', `refs/remotes/origin/${branch}`))) throw new Error(`no ${branch}`);
    const tmp = join(rig, 'merge-tmp', 'train');
    await g(server, 'worktree', 'add', '--detach', '--', tmp, 'refs/remotes/origin/main');
    try {
      const head = await g(tmp, 'rev-parse', 'HEAD');
      const source = `refs/remotes/origin/${branch}`;
      if (await ok0(tmp, 'merge-base', '--is-ancestor', source, head)) throw new Error('already merged');
      await g(tmp, 'merge', '--no-ff', '--no-edit', '-m', `Merge ${branch}`, source);
      const sha = await g(tmp, 'rev-parse', 'HEAD');
      await g(server, 'push', 'origin', `${sha}:refs/heads/main`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      await g(server, 'worktree', 'prune');
    }
  }
  const http = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const m = /^\/api\/towns\/[^/]+\/rigs\/[^/]+\/agents\/([^/]+)\/done$/.exec(req.url);
      const answer = (status, v) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
      if (req.method !== 'POST' || !m || req.headers.authorization !== 'Bearer baseline-token') return answer(404, { success: false, error: 'no such route' });
      try {
        const { branch } = JSON.parse(body);
        await push(clones.get(m[1]), branch);
        answer(201, { success: true, data: { id: `mr-${m[1]}`, branch, target_branch: 'main', status: 'open', source_bead_id: m[1] } });
        // Merged after answering, one at a time, as the town's drive loop does.
        merging = merging.then(() => merge(branch)).catch((e) => console.error(`baseline merge of ${branch}: ${e.message}`));
      } catch (e) {
        answer(500, { success: false, error: e.message });
      }
    });
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const gt = join(dirname(CONTAINER_BIN), 'gt');
  const mainRef = join(base.bare, 'refs', 'heads', 'main');
  const times = [];
  try {
    for (let i = 0; i < n + 1; i++) {
      // The agent's clone on its branch, its work committed and pushed (as the measured agents do
      // before their stamp).
      const id = `bd-base-${i}`;
      const branch = `gt/base/${id}`;
      const dir = join(root, `agent-${i}`);
      git(root, 'clone', '-q', base.bare, dir);
      git(dir, 'checkout', '-q', '-b', branch);
      execFileSync('sh', ['-c', `echo ${id} > f-${id} && git add -A && git -c user.name=a -c user.email=a@a commit -qm "bench ${id}" && git push -q origin HEAD:refs/heads/${branch}`], { cwd: dir });
      clones.set(id, dir);
      const before = readFileSync(mainRef, 'utf8');
      const env = { PATH: process.env.PATH, HOME: root, GASTOWN_API_URL: `http://127.0.0.1:${http.address().port}`, GASTOWN_AGENT_TOKEN: 'baseline-token',
        GASTOWN_TOWN_ID: 'town', GASTOWN_RIG_ID: 'rig', GASTOWN_AGENT_ID: id, GASTOWN_AGENT_ROLE: 'polecat', GASTOWN_AGENT_NAME: 'base', GASTOWN_BEAD_ID: id, GASTOWN_BRANCH: branch };
      const child = spawn('sh', ['-c', `date +%s%N > ${join(root, `t-${id}`)}; exec ${gt} done`], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      const exited = new Promise((r) => child.on('exit', r));
      while (readFileSync(mainRef, 'utf8') === before) {
        if (child.exitCode !== null && child.exitCode !== 0) throw new Error(`gt done failed: ${err}`);
        await sleep(1);
      }
      const landed = wall();
      if (i > 0) times.push(landed - (await stamp(join(root, `t-${id}`)))); // the first warms up
      if ((await exited) !== 0) throw new Error(`gt done failed: ${err}`);
      await merging;
    }
  } finally {
    await new Promise((r) => http.close(r));
    rmSync(root, { recursive: true, force: true });
    base.cleanup();
  }
  return times;
}

const c = await startContainer({ maxAgents: 40 });
const w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
const api = client(w.url);
const box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });
const signals = mkdtempSync(join(tmpdir(), 'gastown-bench-'));
chmodSync(signals, 0o1777); // agents run under uids of their own
const repo = bareRepo();

try {
  const town = ok(await api.post('/api/users/bench/towns', { name: 'bench' }), 201);
  const rig = ok(await api.post('/api/users/bench/rigs', { town_id: town.id, name: 'app', git_url: repo.bare }), 201);
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  // The agent stamps its start, waits for the bench's go signal, commits and pushes, then stamps
  // the instant `gt done` starts.
  const agent = [
    `date +%s%N > ${signals}/s-$GASTOWN_BEAD_ID`,
    // Idle until the bench says go, so no agent works while another run is being measured.
    `while [ ! -e ${signals}/go-$GASTOWN_BEAD_ID ]; do sleep 0.2; done`,
    'echo "$GASTOWN_BEAD_ID" > "f-$GASTOWN_BEAD_ID"', 'git add -A', 'git commit -qm "bench $GASTOWN_BEAD_ID"',
    'git push -q origin "HEAD:refs/heads/$GASTOWN_BRANCH"',
    `date +%s%N > ${signals}/t-$GASTOWN_BEAD_ID`,
    'exec gt done',
  ].join('; ');
  ok(await api.patch(`/api/towns/${town.id}/config`, { agent: { runtime: 'custom', command: agent }, capacity: { max_polecats_per_rig: 40, max_polecats_per_town: 40 } }));

  // 1. Dispatch. Baseline: the same start request sent straight to the container program.
  const direct = [];
  for (let i = 0; i < N + 1; i++) {
    const id = `bench-direct-${i}`;
    const t0 = wall();
    const r = await box.post('/agents/start', { agent_id: id, town_id: town.id, rig_id: rig.id, role: 'polecat', name: `direct${i}`,
      bead_id: `bd-${i}`, git_url: repo.bare, default_branch: 'main', command: ['sh', '-c', `date +%s%N > ${signals}/s-bd-${i}; sleep 30`] });
    if (r.status !== 201) throw new Error(JSON.stringify(r.body));
    const started = await stamp(join(signals, `s-bd-${i}`));
    if (i > 0) direct.push(started - t0); // the first includes the rig's clone
    await box.post(`/agents/${id}/stop`, {});
  }
  const slung = [];
  const dispatch = [];
  for (let i = 0; i < N + 1; i++) {
    const t0 = wall();
    const s = ok(await api.post(`${R}/sling`, { title: `bench ${i}` }), 201);
    const started = await stamp(join(signals, `s-${s.bead.id}`));
    if (i > 0) dispatch.push(started - t0);
    slung.push(s);
  }

  // 2. Merge. Each agent is waiting at its go signal with its branch pushed.
  // One agent at a time commits, pushes and runs `gt done`; the merge has landed when main's ref changes.
  const mainRef = join(repo.bare, 'refs', 'heads', 'main');
  const merged = [];
  for (const s of slung.slice(1)) {
    const before = readFileSync(mainRef, 'utf8');
    execFileSync('touch', [join(signals, `go-${s.bead.id}`)]);
    while (readFileSync(mainRef, 'utf8') === before) await sleep(1);
    const landed = wall();
    merged.push(landed - (await stamp(join(signals, `t-${s.bead.id}`))));
    for (;;) {
      const st = ok(await api.get(`${R}/beads/${s.bead.id}`)).status;
      if (st === 'closed') break;
      if (st === 'failed') throw new Error(`${s.bead.id} failed`);
      await sleep(20);
    }
  }
  // Baseline: the same work without the control plane (see the header), on a repository of its own.
  const plain = await baselineMerges(N);

  const row = (name, m, base, baseName) =>
    console.log(`${name.padEnd(34)} median ${m.toFixed(1).padStart(7)} ms   ${baseName.padEnd(26)} ${base.toFixed(1).padStart(7)} ms   ratio ${(m / base).toFixed(2)}x`);
  console.log(`Gastown pipeline benchmark (${N} runs each, medians)`);
  row('sling → agent process running', median(dispatch), median(direct), 'direct container start');
  row('gt done → merged on main', median(merged), median(plain), 'gt done + minimal server');
} finally {
  await w.stop();
  await c.stop();
  repo.cleanup();
  rmSync(signals, { recursive: true, force: true });
}
