// The whole pipeline on real parts: workerd (wrangler dev) + the container program + real git.
// A bead slung at a rig is dispatched at once to a polecat running under a real PTY in its own
// worktree; a scripted agent (a faithful stand-in for an LLM CLI: it edits, commits and calls
// `gt done`) finishes it; the refinery merges it after its quality gate; the bead closes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker, ROOT } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startStack, townOnRepo, until, git, fixture, CONTAINER_SECRET } from './lib/container.mjs';

const SCRIPT = fixture('scripted-agent.sh');
const TOKEN = 'ghp_pipelineSecretToken0123456789abcd';
let stack;
let c;
let w;
let api;

before(async () => {
  stack = await startStack();
  ({ c, w, api } = stack);
});
after(async () => { await stack?.stop(); });

/** A town with one rig on a fresh bare repo, running the scripted agent behind a gate. */
async function town(name, { capacity } = {}) {
  const { repo, T: t, rig, R } = await townOnRepo(api, name);
  ok(await api.patch(`/api/towns/${t.id}/config`, {
    agent: { runtime: 'custom', command: `sh ${SCRIPT}` },
    refinery: { gates: ['test ! -e BROKEN'] },
    git_auth: { github_token: TOKEN },
    ...(capacity ? { capacity } : {}),
  }));
  const bead = async (id) => ok(await api.get(`${R}/beads/${id}`));
  const events = async (id) => ok(await api.get(`${R}/events?bead_id=${id}&limit=1000`)).map((e) => e.event_type);
  const mrs = async () => ok(await api.get(`${R}/beads?type=merge_request&limit=500`));
  return { t, rig, R, repo, bead, events, mrs };
}

describe('sling → polecat → gt done → refinery → merged', () => {
  test('three beads land on the default branch; beads closed, merges recorded, agents idle', async () => {
    const T = await town('three');
    const slung = [];
    for (const title of ['Add alpha', 'Add beta', 'Add gamma']) slung.push(ok(await api.post(`${T.R}/sling`, { title }), 201));
    assert.ok(slung.every((s) => s.agent));
    for (const s of slung) {
      await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: `${s.bead.id} closed` });
    }
    const log = T.repo.log();
    for (const s of slung) assert.ok(log.includes(`${s.bead.id}: scripted work`), `commit of ${s.bead.id} on main:\n${log}`);
    assert.equal(git(T.repo.bare, 'show', `main:work/${slung[0].bead.id}.txt`), `work for ${slung[0].bead.id} by ${slung[0].agent.name}`);
    const merged = (await T.mrs()).filter((m) => m.status === 'closed');
    assert.equal(merged.length, 3);
    for (const s of slung) {
      const ev = await T.events(s.bead.id);
      for (const e of ['hooked', 'agent_spawned', 'review_submitted', 'review_completed', 'closed']) assert.ok(ev.includes(e), `${e} in ${ev}`);
    }
    const townEvents = ok(await api.get(`/api/towns/${T.t.id}/events?limit=1000`));
    const done = townEvents.filter((e) => e.event_type === 'review_completed' && e.new_value === 'merged');
    assert.ok(done.every((e) => /^[0-9a-f]{40}$/.test(e.metadata.merge_commit)), 'merge commits recorded');
    await until(async () => ok(await api.get(`${T.R}/agents`)).every((a) => a.status === 'idle' && !a.hook_bead_id), { what: 'agents idle' });
    // The agents' worktrees carry their own identity.
    assert.match(git(T.repo.bare, 'log', '-1', '--format=%an', `gt/${slung[0].agent.name}/${slung[0].bead.id}`), /\(gastown\)$/);
    T.repo.cleanup();
  });

  test('a conflicting change fails its merge, pushes nothing, and returns for rework until it merges', async () => {
    const T = await town('conflict', { capacity: { max_polecats_per_rig: 2 } });
    const a = ok(await api.post(`${T.R}/sling`, { title: 'MAKE-CONFLICT first' }), 201);
    const b = ok(await api.post(`${T.R}/sling`, { title: 'MAKE-CONFLICT second' }), 201);
    await until(async () => (await T.mrs()).some((m) => m.status === 'failed'), { timeout: 60_000, what: 'a failed merge' });
    const failed = (await T.mrs()).find((m) => m.status === 'failed');
    const loser = failed.metadata.source_bead_id;
    const ev = ok(await api.get(`${T.R}/events?bead_id=${failed.id}`));
    assert.ok(ev.some((e) => e.event_type === 'review_completed' && e.new_value === 'failed'));
    // Returned to its polecat with a rework mail, not closed and not lost; its conflicting commit never reached main.
    const evLoser = await T.events(loser);
    assert.ok(evLoser.includes('review_completed'));
    assert.ok(!T.repo.log().includes(`${loser}: scripted work`) || (await T.bead(loser)).status === 'closed');
    // The rework merges origin/main and lands.
    for (const s of [a, b]) await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: `${s.bead.id} closed` });
    assert.ok(T.repo.log().includes(`${loser}: rework`) || T.repo.log().includes(`Merge origin/main`));
    T.repo.cleanup();
  });

  test('a failing quality gate pushes nothing and sends the work back with the gate output', async () => {
    const T = await town('gate');
    const s = ok(await api.post(`${T.R}/sling`, { title: 'BREAK-GATE please' }), 201);
    await until(async () => (await T.mrs()).some((m) => m.status === 'failed'), { timeout: 60_000, what: 'the gate to fail' });
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: 'the rework to merge' });
    assert.throws(() => git(T.repo.bare, 'cat-file', '-e', 'main:BROKEN'), 'the broken tree never reached main');
    const mrs = await T.mrs();
    assert.deepEqual(mrs.map((m) => m.status).sort(), ['closed', 'failed']);
    const mailEvents = ok(await api.get(`/api/towns/${T.t.id}/events?limit=1000`)).filter((e) => e.event_type === 'mail_sent' && e.old_value === 'refinery');
    assert.equal(mailEvents.length, 1, 'one rework mail');
    T.repo.cleanup();
  });

  test('an agent that exits without gt done does not close its bead; retries are bounded, then escalated', async () => {
    const T = await town('early');
    const s = ok(await api.post(`${T.R}/sling`, { title: 'EXIT-EARLY now' }), 201);
    await until(async () => (await T.events(s.bead.id)).includes('agent_exited'), { timeout: 30_000, what: 'the first exit' });
    assert.notEqual((await T.bead(s.bead.id)).status, 'closed');
    await until(async () => (await T.bead(s.bead.id)).status === 'failed', { timeout: 60_000, what: 'the bead to fail after bounded retries' });
    const ev = await T.events(s.bead.id);
    assert.equal(ev.filter((e) => e === 'agent_spawned').length, 5, 'five attempts, then stop');
    assert.ok(ev.includes('escalated'));
    assert.equal((await T.mrs()).length, 0);
    T.repo.cleanup();
  });

  test('capacity: beyond the limit beads wait, then run by priority as slots free', async () => {
    const T = await town('capacity', { capacity: { max_polecats_per_rig: 1 } });
    const first = ok(await api.post(`${T.R}/sling`, { title: 'first' }), 201);
    const low = ok(await api.post(`${T.R}/sling`, { title: 'low', priority: 'low' }), 201);
    const crit = ok(await api.post(`${T.R}/sling`, { title: 'crit', priority: 'critical' }), 201);
    assert.ok(first.agent);
    assert.equal(low.agent, null);
    assert.equal(crit.agent, null);
    for (const s of [first, low, crit]) await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: `${s.bead.id}` });
    const order = T.repo.log().split('\n').filter((l) => l.endsWith('scripted work')).reverse().map((l) => l.split(':')[0]);
    assert.deepEqual(order, [first.bead.id, crit.bead.id, low.bead.id], 'critical before low');
    const agents = ok(await api.get(`${T.R}/agents`));
    assert.equal(agents.length, 1, 'never more than one polecat');
    T.repo.cleanup();
  });

  test('credentials never reach argv, logs or .git/config', async () => {
    const T = await town('creds');
    // The agent waits before `gt done` until the test has looked at the process table.
    const gateDir = mkdtempSync(join(tmpdir(), 'gastown-gate-'));
    chmodSync(gateDir, 0o755);
    const gate = join(gateDir, 'go');
    ok(await api.patch(`/api/towns/${T.t.id}/config`, { env_vars: { SCRIPTED_AGENT_GATE: gate } }));
    const s = ok(await api.post(`${T.R}/sling`, { title: 'hold on' }), 201);
    // Every process table seen until the agent shows up in one: none may carry a secret.
    await until(async () => {
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      assert.ok(!ps.includes(TOKEN), 'git token not in any argv');
      assert.ok(!ps.includes('eyJ'), 'no JWT in any argv');
      return ps.includes('scripted-agent.sh');
    }, { timeout: 60_000, every: 50, what: 'the agent to be running while we look' });
    writeFileSync(gate, '');
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: 'merge' });
    assert.ok(!c.log().includes(TOKEN) && !w.log().includes(TOKEN), 'not in the logs');
    const configs = [];
    const walk = (d) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (f === '.credentials') continue;
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (f === 'config' || f.endsWith('.md') || f.endsWith('.txt')) configs.push(p);
      }
    };
    walk(c.workspace);
    assert.ok(configs.some((p) => p.endsWith(join('.git', 'config')) || p.endsWith('config')));
    for (const p of configs) assert.ok(!readFileSync(p, 'utf8').includes(TOKEN), `token in ${p}`);
    assert.ok(!git(T.repo.bare, 'log', '--all', '-p').includes(TOKEN), 'not in any commit');
    T.repo.cleanup();
    rmSync(gateDir, { recursive: true, force: true });
  });
});

test('dispatch circuit breaker: an unreachable container fails the bead and escalates, no endless loop', async () => {
  const dead = await startWorker({ vars: { GASTOWN_CONTAINER_URL: 'http://127.0.0.1:9', GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  try {
    const a = client(dead.url);
    const t = ok(await a.post('/api/users/u/towns', { name: 'dead' }), 201);
    const rig = ok(await a.post('/api/users/u/rigs', { town_id: t.id, name: 'app', git_url: '/srv/none.git' }), 201);
    const R = `/api/towns/${t.id}/rigs/${rig.id}`;
    const s = ok(await a.post(`${R}/sling`, { title: 'never starts' }), 201);
    // An unreachable container is retried on the slow schedule (5, 10, 20, 40 s): long enough to
    // outlast a restart, bounded all the same.
    await until(async () => ok(await a.get(`${R}/beads/${s.bead.id}`)).status === 'failed', { timeout: 150_000, what: 'the circuit breaker' });
    const events = ok(await a.get(`${R}/events?bead_id=${s.bead.id}`));
    const failed = events.filter((e) => e.event_type === 'dispatch_failed');
    assert.equal(failed.length, 5);
    const spread = Date.parse(failed.at(-1).created_at) - Date.parse(failed[0].created_at);
    assert.ok(spread >= 70_000, `five tries spread over ${spread} ms`);
    assert.ok(events.some((e) => e.event_type === 'escalated'));
    const agent = ok(await a.get(`${R}/agents/${s.agent.id}`));
    assert.equal(agent.status, 'idle');
    assert.equal(agent.hook_bead_id, null);
    // Nothing further is attempted: the only thing the alarm still waits for is chasing the
    // escalation hours from now.
    const { alarm_at: next } = ok(await a.get(`/api/towns/${t.id}/witness`));
    assert.ok(next === null || next > Date.now() + 3_600_000, `alarm at ${next}`);
  } finally {
    await dead.stop();
  }
});
