// State survives a restart of the runtime on the same storage folder, and stopping the runtime
// leaves no workerd process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { alive, descendants } from './lib/procs.mjs';
import { until } from './lib/container.mjs';

/** The workerd processes below one of our `wrangler dev` children (never anyone else's). */
const workerdOf = (w) => descendants(w.pid).filter((p) => p.comm === 'workerd').map((p) => p.pid);

test('towns, beads, agents, config and events survive a restart; no orphaned workerd', async () => {
  const w1 = await startWorker();
  let w2;
  try {
    await restart(w1, (w) => { w2 = w; });
  } finally {
    await w1.stop();
    await w2?.stop();
  }
});

// Creating a town writes its owner's registry row and nothing else: its TownDO gets storage (a
// SQLite file in the local state) on the first call for it, dated as of its creation.
test('a town has no storage until it is first used', async () => {
  const w = await startWorker({ vars: { GASTOWN_DEV_USER_ID: 'sam' } });
  try {
    const api = client(w.url);
    const dir = join(w.persistDir, 'v3', 'do', 'gastown-TownDO');
    const files = () => (existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9a-f]{64}\.sqlite$/.test(f)) : []);
    const before = files().length;
    const used = ok(await api.post('/api/users/sam/towns', { name: 'Used' }), 201);
    const unused = ok(await api.post('/api/users/sam/towns', { name: 'Unused' }), 201);
    assert.equal(files().length, before, 'creating two towns made no TownDO storage');
    const got = ok(await api.get(`/api/towns/${used.id}`));
    assert.deepEqual([got.id, got.name, got.owner_user_id, got.created_at, got.rigs], [used.id, 'Used', 'sam', used.created_at, []]);
    assert.equal(files().length, before + 1, 'the first call made the used town its storage, and only it');
    // The first use may be any call a person makes: the mayor's first message here.
    const sent = ok(await api.post(`/api/towns/${unused.id}/mayor/message`, { message: 'hello' }), 201);
    assert.equal(sent.mayor.role, 'mayor');
    assert.equal(ok(await api.get(`/api/towns/${unused.id}`)).created_at, unused.created_at);
    assert.equal(files().length, before + 2);
  } finally {
    await w.stop();
  }
});

async function restart(w1, started) {
  const api1 = client(w1.url);
  const town = ok(await api1.post('/api/users/pat/towns', { name: 'Durable' }), 201);
  const rig = ok(await api1.post('/api/users/pat/rigs', { town_id: town.id, name: 'keep', git_url: '/srv/keep.git' }), 201);
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  const s = ok(await api1.post(`${R}/sling`, { title: 'remember me' }), 201);
  ok(await api1.patch(`/api/towns/${town.id}/config`, { git_auth: { github_token: 'ghp_persisted_token_abcd' } }));
  const events1 = ok(await api1.get(`/api/towns/${town.id}/events?limit=1000`));
  const first = workerdOf(w1);
  assert.ok(first.length > 0, 'workerd runs below wrangler while the worker is up');
  await w1.stop({ keepState: true });
  // workerd is reaped right after wrangler exits; allow it that moment, then none may remain.
  await until(() => first.every((p) => !alive(p)), { timeout: 10_000, what: 'workerd to exit with wrangler' });

  const w2 = await startWorker({ persistDir: w1.persistDir });
  started(w2);
  const second = workerdOf(w2);
  assert.ok(second.length > 0);
  {
    const api2 = client(w2.url);
    assert.equal(ok(await api2.get('/api/users/pat/towns'))[0].id, town.id);
    assert.deepEqual(ok(await api2.get(`${R}/beads/${s.bead.id}`)), s.bead);
    assert.equal(ok(await api2.get(`${R}/agents/${s.agent.id}`)).hook_bead_id, s.bead.id);
    assert.equal(ok(await api2.get(`/api/towns/${town.id}/config`)).git_auth.github_token, '****abcd');
    // The log is append-only: everything seen before the restart is still there, unchanged.
    const all = ok(await api2.get(`/api/towns/${town.id}/events?limit=1000`));
    assert.deepEqual(all.slice(0, events1.length), events1);
    // Bead ids keep their per-rig prefix and new events continue the sequence.
    const b = ok(await api2.post(`${R}/beads`, { title: 'after restart' }), 201);
    assert.ok(b.id.startsWith('ke-'));
    const after = ok(await api2.get(`/api/towns/${town.id}/events?bead_id=${b.id}`));
    assert.ok(after[0].event_type === 'created' && after[0].id > events1.at(-1).id, 'the sequence continues after the restart');
  }
  await w2.stop();
  await until(() => second.every((p) => !alive(p)), { timeout: 10_000, what: 'the second workerd to exit' });
}
