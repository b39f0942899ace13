// State survives a restart of the runtime on the same storage folder, and stopping the runtime
// leaves no workerd process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startWorker } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';

function workerdPids() {
  try {
    return execFileSync('pgrep', ['-f', 'workerd serve'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

test('towns, beads, agents, config and events survive a restart; no orphaned workerd', async () => {
  const before = workerdPids();
  const w1 = await startWorker();
  const api1 = client(w1.url);
  const town = ok(await api1.post('/api/users/pat/towns', { name: 'Durable' }), 201);
  const rig = ok(await api1.post('/api/users/pat/rigs', { town_id: town.id, name: 'keep', git_url: '/srv/keep.git' }), 201);
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  const s = ok(await api1.post(`${R}/sling`, { title: 'remember me' }), 201);
  ok(await api1.patch(`/api/towns/${town.id}/config`, { git_auth: { github_token: 'ghp_persisted_token_abcd' } }));
  const events1 = ok(await api1.get(`/api/towns/${town.id}/events?limit=1000`));
  assert.ok(workerdPids().length > before.length, 'workerd runs while the worker is up');
  await w1.stop({ keepState: true });
  assert.deepEqual(workerdPids(), before, 'SIGTERM leaves no workerd behind');

  const w2 = await startWorker({ persistDir: w1.persistDir });
  try {
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
  } finally {
    await w2.stop();
  }
  assert.deepEqual(workerdPids(), before);
});
