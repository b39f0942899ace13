// The town's live event stream (a hibernating WebSocket on the TownDO): sling, done and merge
// arrive as typed events with increasing sequence numbers, exactly as the REST log has them;
// a client reconnecting with ?since=<seq> receives what it missed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { join } from 'node:path';
import { ROOT } from './lib/worker.mjs';
import { ok } from './lib/api.mjs';
import { startStack, townOnRepo, until, fixture } from './lib/container.mjs';

let stack;
let w;
let api;
let repo;
let T;
let R;

before(async () => {
  stack = await startStack();
  ({ w, api } = stack);
  ({ repo, T, R } = await townOnRepo(api, 'stream'));
  ok(await api.patch(`/api/towns/${T.id}/config`, { agent: { runtime: 'custom', command: `sh ${fixture('scripted-agent.sh')}` } }));
});
after(async () => { await stack?.stop(); repo?.cleanup(); });

function stream(query = '') {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${w.url.replace('http', 'ws')}/api/towns/${T.id}/events/ws${query}`);
    const s = { ws, messages: [] };
    ws.on('message', (d) => s.messages.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve(s));
    ws.on('unexpected-response', (_q, res) => reject(new Error(`refused ${res.statusCode}`)));
    ws.on('error', reject);
  });
}
const events = (s) => s.messages.filter((m) => m.type === 'event');

test('sling → dispatch → done → merge arrive live, in order, identical to the REST log', async () => {
  const s = await stream();
  await until(() => s.messages.some((m) => m.type === 'ready'), { what: 'ready' });
  const slung = ok(await api.post(`${R}/sling`, { title: 'watch me' }), 201);
  await until(() => events(s).some((m) => m.event.bead_id === slung.bead.id && m.event.event_type === 'closed'), { timeout: 30_000, what: 'closed over the stream' });
  const live = events(s).filter((m) => m.event.bead_id === slung.bead.id);
  const seqs = events(s).map((m) => m.seq);
  assert.ok(seqs.every((q, i) => i === 0 || q > seqs[i - 1]), 'sequence numbers increase');
  const rest = ok(await api.get(`${R}/events?bead_id=${slung.bead.id}&limit=1000`));
  assert.deepEqual(live.map((m) => m.event), rest.slice(0, live.length), 'the same events the log has');
  const kinds = live.map((m) => m.event.event_type + (m.event.new_value ? `:${m.event.new_value}` : ''));
  const order = ['created:open', 'hooked:', 'status_changed:in_progress', 'agent_spawned:', 'review_submitted:', 'review_completed:merged', 'closed'];
  let at = 0;
  for (const k of kinds) if (at < order.length && k.startsWith(order[at])) at += 1;
  assert.equal(at, order.length, `expected ${order} in order within ${kinds}`);
  assert.ok(live.every((m) => m.entity === 'issue'));
  assert.ok(events(s).some((m) => m.entity === 'merge_request'), 'merge requests are typed as such');
  s.ws.close();
});

test('reconnecting with ?since replays exactly what was missed', async () => {
  const s = await stream();
  await until(() => s.messages.some((m) => m.type === 'ready'), { what: 'ready' });
  const lastSeen = s.messages.find((m) => m.type === 'ready').seq;
  s.ws.close();
  ok(await api.post(`${R}/beads`, { title: 'while you were away' }), 201);
  const missed = ok(await api.get(`/api/towns/${T.id}/events?after_id=${lastSeen}&limit=1000`));
  assert.ok(missed.length >= 1);
  const again = await stream(`?since=${lastSeen}`);
  await until(() => again.messages.some((m) => m.type === 'ready'), { what: 'ready after replay' });
  const replayed = events(again).map((m) => m.event);
  assert.deepEqual(replayed.slice(0, missed.length), missed);
  assert.equal(again.messages.find((m) => m.type === 'ready').seq >= missed.at(-1).id, true);
  again.ws.send('ping');
  await until(() => again.messages.some((m) => m.type === 'pong'), { what: 'pong' });
  again.ws.close();
  assert.equal((await api.get(`/api/towns/${T.id}/events/ws?since=-1`)).status, 400);
  assert.equal((await api.get(`/api/towns/${T.id}/events/ws`)).status, 400, 'not a WebSocket');
});

test("an agent's event log: lifecycle and gt calls arrive live and match the backfill", async () => {
  const slung = ok(await api.post(`${R}/sling`, { title: 'log me' }), 201);
  const agent = slung.agent.id;
  const ws = new WebSocket(`${w.url.replace('http', 'ws')}/api/towns/${T.id}/agents/${agent}/events/ws?since=0`);
  const got = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  await until(() => got.some((m) => m.type === 'event' && m.event.event_type === 'exited'), { timeout: 30_000, what: 'the run to exit' });
  const live = got.filter((m) => m.type === 'event').map((m) => m.event);
  const types = live.map((e) => e.event_type + (e.data.command ? `:${e.data.command}` : ''));
  assert.ok(types.indexOf('started') < types.indexOf('gt:done') && types.indexOf('gt:done') < types.indexOf('exited'), types.join(','));
  assert.equal(live.find((e) => e.event_type === 'gt').data.exit_code, 0);
  const backfill = ok(await api.get(`/api/towns/${T.id}/agents/${agent}/events?after_id=0`));
  assert.deepEqual(live, backfill.slice(0, live.length));
  ws.close();
  assert.equal((await api.get(`/api/towns/${T.id}/agents/hq-nope0/events`)).status, 404);
});
