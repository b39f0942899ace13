// Faults and load, the small fast versions (the soak suite, `npm run soak`, runs them at scale):
// a container smaller than the town's capacity, the town's runtime down across `gt done` and
// across a merge, the container down for a while, and the dashboard's Retry on a failed bead.
// Real workerd, the real container program, real git.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, townOnRepo, until, fixture, git, CONTAINER_SECRET } from './lib/container.mjs';

const SCRIPT = fixture('scripted-agent.sh');

/** Its own container (of `maxAgents`) and Worker; everything is stopped by `stop` whatever happened. */
async function stack({ maxAgents = 8 } = {}) {
  const c = await startContainer({ maxAgents });
  let w;
  try {
    w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  } catch (e) {
    await c.stop();
    throw e;
  }
  const s = { c, w, api: client(w.url), cleanups: [] };
  s.stop = async () => {
    await s.w.stop();
    await c.stop();
    for (const f of s.cleanups) f();
  };
  return s;
}

async function scriptedTown(s, name, { capacity, env } = {}) {
  const T = await townOnRepo(s.api, name);
  s.cleanups.push(T.repo.cleanup);
  ok(await s.api.patch(`/api/towns/${T.T.id}/config`, {
    agent: { runtime: 'custom', command: `sh ${SCRIPT}` },
    ...(capacity ? { capacity } : {}),
    ...(env ? { env_vars: env } : {}),
  }));
  T.bead = async (id) => ok(await s.api.get(`${T.R}/beads/${id}`));
  T.events = async (q) => ok(await s.api.get(`${T.R}/events?limit=1000${q ? `&${q}` : ''}`));
  /** Commits on the bare repo's main per bead (the scripted agent's message names its bead). */
  T.commitsFor = (beadId) => T.repo.log().split('\n').filter((l) => l === `${beadId}: scripted work`).length;
  return T;
}

test('a container smaller than the town: every bead waits for a slot, none fails, no attempt is spent', async () => {
  const s = await stack({ maxAgents: 2 });
  try {
    const T = await scriptedTown(s, 'small-container', { capacity: { max_polecats_per_rig: 6, max_polecats_per_town: 6 }, env: { SCRIPTED_AGENT_HOLD: '1' } });
    const slung = [];
    for (let i = 0; i < 6; i++) slung.push(ok(await s.api.post(`${T.R}/sling`, { title: `slot ${i}` }), 201));
    assert.ok(slung.every((x) => x.agent), 'the town hands all six to polecats');
    for (const x of slung) {
      await until(async () => ['closed', 'failed'].includes((await T.bead(x.bead.id)).status), { timeout: 120_000, what: `${x.bead.id} to finish` });
    }
    for (const x of slung) {
      assert.equal((await T.bead(x.bead.id)).status, 'closed', `${x.bead.id} merged`);
      assert.equal(T.commitsFor(x.bead.id), 1, `${x.bead.id} landed once`);
    }
    const events = await T.events();
    const failedStarts = events.filter((e) => e.event_type === 'dispatch_failed');
    assert.deepEqual(failedStarts.map((e) => e.metadata?.error), [], 'a full container is never a failed attempt');
    const spawned = events.filter((e) => e.event_type === 'agent_spawned');
    assert.equal(spawned.length, 6, 'one run per bead');
    assert.equal(events.filter((e) => e.event_type === 'escalated').length, 0);
    // The town learned the container's limit and shows it.
    const health = await (await fetch(`${s.c.url}/health`)).json();
    assert.equal(health.data.max_agents, 2);
  } finally {
    await s.stop();
  }
});

test('the town down across gt done: gt retries, the work is submitted once, one commit lands', async () => {
  const s = await stack();
  const dir = mkdtempSync(join(tmpdir(), 'gastown-reliability-'));
  chmodSync(dir, 0o1777);
  const gate = join(dir, 'go');
  // The Worker stopped with its state kept: its folder goes once the test is over.
  let down;
  try {
    const T = await scriptedTown(s, 'runtime-down', { env: { SCRIPTED_AGENT_GATE: gate } });
    const x = ok(await s.api.post(`${T.R}/sling`, { title: 'survive a restart' }), 201);
    await until(async () => (await T.events(`bead_id=${x.bead.id}`)).some((e) => e.event_type === 'agent_spawned'), { what: 'the run to start' });
    // The Worker goes away (its state kept); only then may the agent call `gt done`.
    const { persistDir, port } = s.w;
    down = s.w;
    await down.stop({ keepState: true });
    writeFileSync(gate, '');
    chmodSync(gate, 0o644);
    const box = () => fetch(`${s.c.url}/sessions`, { headers: { authorization: `Bearer ${CONTAINER_SECRET}` } }).then((r) => r.json());
    await until(async () => (await box()).data.some((r) => r.agent_id === x.agent.id && /retrying in/.test(r.screen ?? '')), {
      timeout: 30_000, what: 'gt done to fail and retry while the town is down',
    });
    s.w = await startWorker({ persistDir, port, vars: { GASTOWN_CONTAINER_URL: s.c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
    s.api = client(s.w.url);
    await until(async () => (await T.bead(x.bead.id)).status === 'closed', { timeout: 90_000, what: 'the bead to merge after the restart' });
    assert.equal(T.commitsFor(x.bead.id), 1, 'the work landed exactly once');
    const events = await T.events(`bead_id=${x.bead.id}`);
    assert.equal(events.filter((e) => e.event_type === 'agent_spawned').length, 1, 'no second run redid the work');
    assert.equal(events.filter((e) => e.event_type === 'review_submitted').length, 1, 'submitted once');
  } finally {
    await s.stop();
    await down?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Retry on a failed bead (status back to open) puts it back to work until it merges', async () => {
  const s = await stack();
  try {
    const T = await scriptedTown(s, 'retry');
    // A runtime whose CLI is not installed: the start is refused for good and the bead fails.
    ok(await s.api.patch(`/api/towns/${T.T.id}/config`, { agent: { runtime: 'claude' } }));
    const x = ok(await s.api.post(`${T.R}/sling`, { title: 'needs a second chance' }), 201);
    await until(async () => (await T.bead(x.bead.id)).status === 'failed', { timeout: 30_000, what: 'the bead to fail' });
    ok(await s.api.patch(`/api/towns/${T.T.id}/config`, { agent: { runtime: 'custom', command: `sh ${SCRIPT}` } }));
    ok(await s.api.patch(`${T.R}/beads/${x.bead.id}/status`, { status: 'open' }));
    await until(async () => (await T.bead(x.bead.id)).status === 'closed', { timeout: 60_000, what: 'the retried bead to merge' });
    assert.equal(T.commitsFor(x.bead.id), 1);
    const kinds = (await T.events(`bead_id=${x.bead.id}`)).map((e) => e.event_type);
    assert.ok(kinds.includes('queued') && kinds.includes('reopened'), kinds.join(' '));
  } finally {
    await s.stop();
  }
});

test('the town down across a merge: the restarted town requeues it at once and records it merged, once', async () => {
  const s = await stack();
  let down;
  try {
    const T = await scriptedTown(s, 'merge-outage');
    ok(await s.api.patch(`/api/towns/${T.T.id}/config`, { refinery: { gates: ['sleep 3'], gate_timeout_secs: 60 }, witness: { tick_secs: 2 } }));
    const x = ok(await s.api.post(`${T.R}/sling`, { title: 'merge through an outage' }), 201);
    const mrs = async () => ok(await s.api.get(`${T.R}/beads?type=merge_request&limit=50`));
    await until(async () => (await mrs()).some((m) => m.status === 'in_progress'), { timeout: 60_000, what: 'the merge to start' });
    const { persistDir, port } = s.w;
    down = s.w;
    await down.stop({ keepState: true });
    // The container finishes the merge while nobody waits for its answer.
    await until(() => T.commitsFor(x.bead.id) === 1, { timeout: 60_000, what: 'the merge to land on main' });
    s.w = await startWorker({ persistDir, port, vars: { GASTOWN_CONTAINER_URL: s.c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
    s.api = client(s.w.url);
    // Far sooner than the merge timeout (a minute of gates here): the next witness look.
    await until(async () => (await T.bead(x.bead.id)).status === 'closed', { timeout: 45_000, what: 'the bead to close after the restart' });
    const [mr] = await mrs();
    assert.equal(mr.status, 'closed');
    assert.equal(T.commitsFor(x.bead.id), 1);
    assert.equal(T.repo.log().split('\n').filter((l) => l.startsWith('Merge branch')).length, 1, 'merged once');
    const reasons = (await T.events(`bead_id=${mr.id}`)).map((e) => e.metadata?.reason).filter(Boolean);
    assert.ok(reasons.includes('witness: the town restarted while it ran'), reasons.join(' | '));
  } finally {
    await s.stop();
    await down?.stop();
  }
});

test('the container down for 20 s: starts are retried on the slow schedule and the work lands', async () => {
  const s = await stack();
  try {
    const T = await scriptedTown(s, 'container-outage');
    const { port } = s.c;
    // The container program goes away, then the work is slung; it comes back on the same port.
    process.kill(s.c.pid, 'SIGKILL');
    await until(async () => { try { await fetch(`${s.c.url}/health`); return false; } catch { return true; } }, { what: 'the container to be gone' });
    const x = ok(await s.api.post(`${T.R}/sling`, { title: 'wait for the container' }), 201);
    await until(async () => (await T.events(`bead_id=${x.bead.id}`)).some((e) => e.event_type === 'dispatch_failed'), { what: 'a failed start' });
    const down = Date.now();
    await until(() => Date.now() - down > 20_000, { every: 500, what: 'twenty seconds of outage' });
    assert.notEqual((await T.bead(x.bead.id)).status, 'failed', 'not given up while the container restarts');
    const back = await startContainer({ port });
    s.cleanups.push(() => back.stop());
    await until(async () => (await T.bead(x.bead.id)).status === 'closed', { timeout: 90_000, what: 'the bead to merge once the container is back' });
    assert.equal(T.commitsFor(x.bead.id), 1);
    const failed = (await T.events(`bead_id=${x.bead.id}`)).filter((e) => e.event_type === 'dispatch_failed');
    assert.ok(failed.length >= 2 && failed.length < 5, `${failed.length} failed starts`);
    assert.ok(failed.every((e) => /cannot be reached/.test(e.metadata?.error ?? '')), JSON.stringify(failed.map((e) => e.metadata?.error)));
  } finally {
    await s.stop();
  }
});
