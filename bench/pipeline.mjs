// `npm run bench`: the control plane's overhead on the two paths that matter, each next to a
// baseline measured in the same run on the same machine:
//   1. sling → agent process running   vs  a direct start request to the container program
//   2. `gt done` → merged on main        vs  a direct git merge + push of the same kind of branch
// Prints medians (machines here are noisy) and their ratio. Needs `npm test`'s build outputs.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from '../tests/lib/worker.mjs';
import { client, ok } from '../tests/lib/api.mjs';
import { startContainer, bareRepo, git, CONTAINER_SECRET } from '../tests/lib/container.mjs';

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
  // Baseline: the same merge done by hand in a clone: fetch, merge --no-ff, push.
  const clone = join(signals, 'clone');
  git(signals, 'clone', '-q', repo.bare, clone);
  const plain = [];
  for (let i = 0; i < N; i++) {
    const branch = `plain-${i}`;
    git(clone, 'checkout', '-q', '-B', branch, 'origin/main');
    execFileSync('sh', ['-c', `echo ${i} > plain-${i} && git add -A && git -c user.name=b -c user.email=b@b commit -qm plain-${i} && git push -q origin HEAD:refs/heads/${branch}`], { cwd: clone });
    const t0 = wall();
    git(clone, 'fetch', '-q', 'origin');
    git(clone, 'checkout', '-q', '--detach', 'origin/main');
    execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', 'merge', '-q', '--no-ff', '-m', `merge ${branch}`, `origin/${branch}`], { cwd: clone });
    git(clone, 'push', '-q', 'origin', 'HEAD:refs/heads/main');
    plain.push(wall() - t0);
  }

  const row = (name, m, base, baseName) =>
    console.log(`${name.padEnd(34)} median ${m.toFixed(1).padStart(7)} ms   ${baseName.padEnd(26)} ${base.toFixed(1).padStart(7)} ms   ratio ${(m / base).toFixed(2)}x`);
  console.log(`Gastown pipeline benchmark (${N} runs each, medians)`);
  row('sling → agent process running', median(dispatch), median(direct), 'direct container start');
  row('gt done → merged on main', median(merged), median(plain), 'direct git merge + push');
} finally {
  await w.stop();
  await c.stop();
  repo.cleanup();
  rmSync(signals, { recursive: true, force: true });
}
