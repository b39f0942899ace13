// The HTTP API end to end on a real workerd (wrangler dev), in local dev auth: towns, rigs,
// beads, dependencies, sling, agents, hook, prime, mail, checkpoint, done, events, the agent
// event log, the mayor and its tools, config masking, and input validation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, JWT_SECRET } from './lib/worker.mjs';
import { client, ok, fails } from './lib/api.mjs';
import { agentToken } from './lib/tokens.mjs';

let w;
let api;
let town;
let rig;
let rig2;
const U = '/api/users/alice';

before(async () => {
  w = await startWorker();
  api = client(w.url);
  town = ok(await api.post(`${U}/towns`, { name: 'Alpha' }), 201);
  rig = ok(await api.post(`${U}/rigs`, { town_id: town.id, name: 'gas-town', git_url: '/srv/git/gas-town.git' }), 201);
  rig2 = ok(await api.post(`${U}/rigs`, { town_id: town.id, name: 'backend', git_url: 'https://github.com/org/backend.git', default_branch: 'develop' }), 201);
});
after(async () => { await w?.stop(); });

const R = () => `/api/towns/${town.id}/rigs/${rig.id}`;
const R2 = () => `/api/towns/${town.id}/rigs/${rig2.id}`;
const asAgent = (agent, rigId = rig.id, role = 'polecat') =>
  api.with({ authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: town.id, rig_id: rigId, agent_id: agent.id, role })}` });

describe('health and identity', () => {
  test('/health needs no auth and is bare JSON', async () => {
    const r = await api.get('/health');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok');
  });
  test('/api/me names the dev user', async () => {
    assert.deepEqual(ok(await api.get('/api/me')), { user_id: 'dev-user', email: null, kind: 'dev' });
  });
  test('unknown routes are 404, wrong methods 405', async () => {
    fails(await api.get('/api/nope'), 404, 'no route');
    fails(await api.call('PUT', `/api/towns/${town.id}`), 405, 'not allowed');
  });
});

describe('towns and rigs', () => {
  test('list, get, duplicate names and cascade delete', async () => {
    const towns = ok(await api.get(`${U}/towns`));
    assert.deepEqual(towns.map((t) => t.name), ['Alpha']);
    assert.equal(ok(await api.get(`${U}/towns/${town.id}`)).owner_user_id, 'alice');
    fails(await api.post(`${U}/towns`, { name: 'Alpha' }), 409, 'already have a town');
    fails(await api.post(`${U}/towns`, { name: '' }), 400, 'name');
    fails(await api.post(`${U}/towns`, { name: 'x'.repeat(65) }), 400, 'name');
    const info = ok(await api.get(`/api/towns/${town.id}`));
    assert.deepEqual(info.rigs.map((r) => r.name).sort(), ['backend', 'gas-town']);
    assert.equal(rig.bead_prefix, 'gt');
    assert.equal(rig2.default_branch, 'develop');
    assert.equal(ok(await api.get(`${U}/towns/${town.id}/rigs`)).length, 2);
    assert.equal(ok(await api.get(`${U}/rigs?town_id=${town.id}`)).length, 2);
    assert.equal(ok(await api.get(`${U}/rigs/${rig.id}`)).git_url, '/srv/git/gas-town.git');

    // A throwaway town with a rig, work and an agent log: deleting it removes everything.
    const t2 = ok(await api.post(`${U}/towns`, { name: 'Doomed' }), 201);
    const r2 = ok(await api.post(`${U}/rigs`, { town_id: t2.id, name: 'r', git_url: 'file:///srv/r.git' }), 201);
    const s = ok(await api.post(`/api/towns/${t2.id}/rigs/${r2.id}/sling`, { title: 'w' }), 201);
    ok(await api.post(`/api/towns/${t2.id}/rigs/${r2.id}/agents/${s.agent.id}/events`, { event_type: 'x' }), 201);
    ok(await api.del(`${U}/towns/${t2.id}`));
    fails(await api.get(`${U}/towns/${t2.id}`), 404);
    fails(await api.get(`/api/towns/${t2.id}`), 404, 'town not found');
    fails(await api.get(`${U}/rigs/${r2.id}`), 404);
  });

  test('rig validation names the field', async () => {
    const cases = [
      [{ town_id: town.id, name: '../evil', git_url: '/srv/x.git' }, 'name:'],
      [{ town_id: town.id, name: 'ok', git_url: 'https://user:pw@github.com/o/r.git' }, 'git_url:'],
      [{ town_id: town.id, name: 'ok', git_url: '-uhttps://x' }, 'git_url:'],
      [{ town_id: town.id, name: 'ok', git_url: 'https://github.com/o/r.git', default_branch: 'a..b' }, 'default_branch:'],
      [{ town_id: town.id, name: 'ok', git_url: 'https://github.com/o/r.git', bead_prefix: 'hq' }, 'bead_prefix:'],
      [{ town_id: town.id, name: 'ok', git_url: 42 }, 'git_url:'],
      [{ town_id: town.id, name: 'ok' }, 'missing field `git_url`'],
      [{ town_id: town.id, name: 'ok', git_url: 'https://github.com/o/r.git', extra: 1 }, 'unknown field `extra`'],
      [{ town_id: 'not-my-town', name: 'ok', git_url: 'https://github.com/o/r.git' }, 'town_id:'],
    ];
    for (const [body, frag] of cases) fails(await api.post(`${U}/rigs`, body), 400, frag);
    fails(await api.post(`${U}/rigs`, { town_id: town.id, name: 'gas-town', git_url: '/srv/x.git' }), 409, 'already has a rig');
  });

  test('deleting a rig removes its beads and agents', async () => {
    const r = ok(await api.post(`${U}/rigs`, { town_id: town.id, name: 'temp', git_url: '/srv/t.git' }), 201);
    const s = ok(await api.post(`/api/towns/${town.id}/rigs/${r.id}/sling`, { title: 'temp work' }), 201);
    ok(await api.del(`${U}/rigs/${r.id}`));
    fails(await api.get(`/api/towns/${town.id}/rigs/${r.id}/beads/${s.bead.id}`), 404);
    const agents = ok(await api.get(`/api/mayor/${town.id}/tools/rigs`));
    assert.ok(!agents.some((x) => x.id === r.id));
    fails(await api.del(`${U}/rigs/${r.id}`), 404);
  });
});

describe('beads', () => {
  test('create, get, list with filters, pagination', async () => {
    const a = ok(await api.post(`${R()}/beads`, { title: 'Alpha bead', body: 'details', priority: 'critical', labels: ['ui'], metadata: { k: 1 } }), 201);
    assert.match(a.id, /^gt-[0-9a-z]{5}$/);
    assert.equal(a.status, 'open');
    assert.equal(a.type, 'issue');
    assert.deepEqual(a.metadata, { k: 1 });
    assert.equal(a.created_by, 'user:dev-user');
    const b = ok(await api.post(`${R()}/beads`, { title: 'Beta bead' }), 201);
    assert.deepEqual(ok(await api.get(`${R()}/beads/${a.id}`)), a);
    ok(await api.post(`${R()}/beads/${b.id}/close`, { reason: 'dup' }));
    const open = ok(await api.get(`${R()}/beads?status=open`));
    assert.ok(open.some((x) => x.id === a.id) && !open.some((x) => x.id === b.id));
    assert.equal(ok(await api.get(`${R()}/beads?status=closed`)).filter((x) => x.id === b.id).length, 1);
    assert.equal(ok(await api.get(`${R()}/beads?limit=1`)).length, 1);
    const page2 = ok(await api.get(`${R()}/beads?limit=1&offset=1`));
    assert.notEqual(page2[0].id, ok(await api.get(`${R()}/beads?limit=1`))[0].id);
    // Rig scoping: a bead of another rig is not found through this rig, and lists do not mix.
    const other = ok(await api.post(`${R2()}/beads`, { title: 'Backend bead' }), 201);
    assert.match(other.id, /^ba-/);
    fails(await api.get(`${R()}/beads/${other.id}`), 404, 'bead not found');
    assert.ok(!ok(await api.get(`${R()}/beads`)).some((x) => x.id === other.id));
  });

  test('a page is the beads themselves: awkward text, nested metadata, newest first', async () => {
    // Pages are built as JSON by the runtime's SQLite, single beads by the Worker's own encoder:
    // each listed bead must be exactly the bead as created and as read alone.
    const text = 'quote " backslash \\ tab \t newline \n bell \u0007 del \u007f ü 漢 🚀 </script>';
    const made = [];
    for (let i = 0; i < 5; i++) {
      made.push(ok(await api.post(`${R2()}/beads`, {
        title: `${text} ${i}`,
        body: i % 2 ? null : `body\r\n${text}`,
        labels: i % 2 ? [] : ['a"b', 'ü'],
        metadata: { n: 1.5, i: -3, big: 9007199254740991, arr: [1, { x: null }, 's\n'], b: true, s: text, nested: { deep: [i] } },
      }), 201));
    }
    const page = ok(await api.get(`${R2()}/beads?limit=500`));
    for (const m of made) {
      const listed = page.find((x) => x.id === m.id);
      assert.deepEqual(listed, m);
      assert.deepEqual(ok(await api.get(`${R2()}/beads/${m.id}`)), listed);
    }
    const times = page.map((x) => x.created_at);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    assert.deepEqual(ok(await api.get(`${R2()}/beads?limit=2&offset=1`)), page.slice(1, 3));
    assert.deepEqual(ok(await api.get(`${R2()}/beads?status=in_review`)), []);
    const events = ok(await api.get(`${R2()}/events?limit=1000`));
    const created = events.filter((e) => e.event_type === 'created' && made.some((m) => m.id === e.bead_id));
    assert.deepEqual(created.map((e) => e.metadata.title), made.map((m) => m.title));
    assert.deepEqual(events.map((e) => e.id), [...events.map((e) => e.id)].sort((a, b) => a - b), 'oldest first');
  });

  test('bad input gets a 400 naming the field, never a 500', async () => {
    const cases = [
      [{ title: 5 }, 'title: invalid type'],
      [{ title: 'x', priority: 'urgent' }, 'priority: unknown variant'],
      [{ title: 'x', type: 'message' }, 'type:'],
      [{ title: 'x', type: 'spaceship' }, 'type: unknown variant'],
      [{ title: '' }, 'title: must not be empty'],
      [{ title: 'x'.repeat(501) }, 'title: is 501 characters long'],
      [{ title: 'x', labels: 'ui' }, 'labels: invalid type'],
      [{ title: 'x', metadata: [1] }, 'metadata: must be a JSON object'],
      [{ title: 'x', parent_id: 'gt-nope0' }, 'parent_id:'],
      ['{"title": ', 'not valid JSON'],
      ['[1,2]', 'must be a JSON object'],
    ];
    for (const [body, frag] of cases) fails(await api.post(`${R()}/beads`, body), 400, frag);
    const big = JSON.stringify({ title: 'x', body: 'y'.repeat(1100 * 1024) });
    fails(await api.post(`${R()}/beads`, big), 413, 'larger than');
    fails(await api.get(`${R()}/beads?status=done`), 400, 'status: unknown variant `done`, expected one of');
    fails(await api.get(`${R()}/beads?limit=-1`), 400, 'limit:');
    fails(await api.get(`${R()}/beads?limit=100000`), 400, 'limit:');
    fails(await api.get(`${R()}/beads/gt-zzzzz`), 404, 'bead not found');
    fails(await api.get(`/api/towns/${town.id}/rigs/no-such-rig/beads`), 404, 'rig not found');
  });

  test('status transitions are enforced', async () => {
    const b = ok(await api.post(`${R()}/beads`, { title: 'machine' }), 201);
    fails(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'in_review' }), 409, 'cannot go from open to in_review');
    fails(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'finished' }), 400, 'status: unknown variant');
    assert.equal(ok(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'in_progress' })).status, 'in_progress');
    assert.equal(ok(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'in_review' })).status, 'in_review');
    const closed = ok(await api.post(`${R()}/beads/${b.id}/close`, {}));
    assert.ok(closed.closed_at);
    fails(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'failed' }), 409);
    const reopened = ok(await api.patch(`${R()}/beads/${b.id}/status`, { status: 'open' }));
    assert.equal(reopened.closed_at, null);
    const evs = ok(await api.get(`/api/towns/${town.id}/events?bead_id=${b.id}`)).map((e) => e.event_type);
    assert.deepEqual(evs, ['created', 'status_changed', 'status_changed', 'status_changed', 'closed', 'status_changed', 'reopened']);
  });

  test('dependencies, cycles refused with 409, delete cascades to children', async () => {
    const a = ok(await api.post(`${R()}/beads`, { title: 'a' }), 201);
    const b = ok(await api.post(`${R()}/beads`, { title: 'b' }), 201);
    const c = ok(await api.post(`${R()}/beads`, { title: 'c', parent_id: a.id }), 201);
    ok(await api.post(`${R()}/beads/${a.id}/dependencies`, { depends_on_bead_id: b.id }), 201);
    ok(await api.post(`${R()}/beads/${b.id}/dependencies`, { depends_on_bead_id: c.id, type: 'blocks' }), 201);
    fails(await api.post(`${R()}/beads/${c.id}/dependencies`, { depends_on_bead_id: a.id }), 409, 'cycle');
    fails(await api.post(`${R()}/beads/${a.id}/dependencies`, { depends_on_bead_id: b.id, type: 'needs' }), 400, 'type: unknown variant');
    const deps = ok(await api.get(`${R()}/beads/${b.id}/dependencies`));
    assert.deepEqual(deps.depends_on.map((d) => d.depends_on_bead_id), [c.id]);
    assert.deepEqual(deps.dependents.map((d) => d.bead_id), [a.id]);
    ok(await api.del(`${R()}/beads/${b.id}/dependencies/${c.id}`));
    fails(await api.del(`${R()}/beads/${b.id}/dependencies/${c.id}`), 404);
    const del = ok(await api.del(`${R()}/beads/${a.id}`));
    assert.deepEqual(del.deleted.sort(), [a.id, c.id].sort());
    fails(await api.get(`${R()}/beads/${c.id}`), 404);
  });
});

describe('sling, agents, hook, done', () => {
  test('sling makes an in-progress bead hooked to a named polecat in one step', async () => {
    const s = ok(await api.post(`${R()}/sling`, { title: 'Add login', body: 'OAuth please', priority: 'high', metadata: { model: 'x' } }), 201);
    assert.equal(s.bead.status, 'in_progress');
    assert.equal(s.bead.assignee_agent_id, s.agent.id);
    assert.equal(s.agent.hook_bead_id, s.bead.id);
    assert.equal(s.agent.role, 'polecat');
    assert.equal(s.agent.rig_id, rig.id);
    assert.match(s.agent.name, /^[a-z]+$/);
    // Dispatch follows at once (here with no container, so it records its failures afterwards).
    const evs = ok(await api.get(`${R()}/events?bead_id=${s.bead.id}`)).map((e) => e.event_type);
    assert.deepEqual(evs.slice(0, 4), ['created', 'assigned', 'hooked', 'status_changed']);
    const s2 = ok(await api.post(`${R()}/sling`, { title: 'Second' }), 201);
    assert.notEqual(s2.agent.name, s.agent.name);
    fails(await api.post(`${R()}/sling`, {}), 400, 'missing field `title`');
  });

  test('agents: register, list by role, singletons, hook rules, prime, checkpoint, done', async () => {
    const ref = ok(await api.post(`${R()}/agents`, { role: 'refinery' }), 201);
    fails(await api.post(`${R()}/agents`, { role: 'refinery' }), 409, 'already has a refinery');
    fails(await api.post(`${R()}/agents`, { role: 'janitor' }), 400, 'role: unknown variant');
    const p = ok(await api.post(`${R()}/agents`, { role: 'polecat', name: 'furiosa-2' }), 201);
    fails(await api.post(`${R()}/agents`, { role: 'polecat', name: 'furiosa-2' }), 409);
    const refineries = ok(await api.get(`${R()}/agents?role=refinery`));
    assert.deepEqual(refineries.map((a) => a.id), [ref.id]);
    fails(await api.get(`${R()}/agents?status=sleeping`), 400, 'status:');
    assert.equal(ok(await api.get(`${R()}/agents/${p.id}`)).name, 'furiosa-2');
    fails(await api.get(`${R2()}/agents/${p.id}`), 404, 'agent not found');

    const b = ok(await api.post(`${R()}/beads`, { title: 'hook me' }), 201);
    const me = asAgent(p);
    const hooked = ok(await me.post(`${R()}/agents/${p.id}/hook`, { bead_id: b.id }));
    assert.equal(hooked.hook_bead_id, b.id);
    assert.equal(ok(await api.get(`${R()}/beads/${b.id}`)).status, 'in_progress');
    const b2 = ok(await api.post(`${R()}/beads`, { title: 'second hook' }), 201);
    fails(await me.post(`${R()}/agents/${p.id}/hook`, { bead_id: b2.id }), 409, 'unhook it first');

    const prime = ok(await me.get(`${R()}/agents/${p.id}/prime`));
    assert.equal(prime.agent.id, p.id);
    assert.equal(prime.hook.id, b.id);
    assert.equal(prime.rig.name, 'gas-town');
    assert.equal(prime.town.id, town.id);

    assert.deepEqual(ok(await me.post(`${R()}/agents/${p.id}/checkpoint`, { data: { step: 2 } })).checkpoint, { step: 2 });
    fails(await me.post(`${R()}/agents/${p.id}/checkpoint`, {}), 400, 'missing field `data`');

    fails(await me.post(`${R()}/agents/${p.id}/done`, { branch: 'has space' }), 400, 'branch:');
    // Only the agent's own branch for its hooked bead, refused before anything is pushed.
    fails(await me.post(`${R()}/agents/${p.id}/done`, { branch: 'main' }), 403, 'only its own branch');
    fails(await me.post(`${R()}/agents/${p.id}/done`, { branch: `gt/furiosa-2/${b2.id}` }), 403, 'only its own branch');
    // This suite runs without a container: the town cannot push, so nothing is submitted and
    // nothing is lost (the pipeline suites cover the merge request itself).
    fails(await me.post(`${R()}/agents/${p.id}/done`, { branch: `gt/furiosa-2/${b.id}`, summary: 'did it' }), 502, 'could not push');
    assert.equal(ok(await api.get(`${R()}/beads/${b.id}`)).status, 'in_progress');
    assert.equal(ok(await api.get(`${R()}/agents/${p.id}`)).hook_bead_id, b.id);
    assert.deepEqual(ok(await api.get(`${R()}/beads?type=merge_request`)), []);
    ok(await me.del(`${R()}/agents/${p.id}/hook`));
    fails(await me.post(`${R()}/agents/${p.id}/done`, { branch: 'x' }), 409, 'nothing on its hook');

    // Unhook returns unfinished work to open.
    ok(await me.post(`${R()}/agents/${p.id}/hook`, { bead_id: b2.id }));
    ok(await me.del(`${R()}/agents/${p.id}/hook`));
    assert.equal(ok(await api.get(`${R()}/beads/${b2.id}`)).status, 'open');

    // Deleting an agent revokes its token at once and reopens what it held.
    ok(await me.post(`${R()}/agents/${p.id}/hook`, { bead_id: b2.id }));
    ok(await api.del(`${R()}/agents/${p.id}`));
    assert.equal(ok(await api.get(`${R()}/beads/${b2.id}`)).status, 'open');
    fails(await me.get(`${R()}/beads`), 401, 'no longer exists');
  });

  test('mail between agents and from the overseer, unread first', async () => {
    const a = ok(await api.post(`${R()}/agents`, { role: 'polecat' }), 201);
    const b = ok(await api.post(`${R()}/agents`, { role: 'polecat' }), 201);
    const sent = ok(await asAgent(a).post(`${R()}/mail`, { to: `gas-town/polecats/${b.name}`, subject: 'hello', body: 'from a' }), 201);
    assert.equal(sent.from, a.id);
    assert.equal(sent.to_agent_id, b.id);
    ok(await api.post(`${R()}/mail`, { to: b.id, subject: 'from you', body: 'hi' }), 201);
    fails(await api.post(`${R()}/mail`, { to: 'gas-town/polecats/nobody', subject: 's', body: 'b' }), 400, 'to:');
    const inbox = ok(await asAgent(b).get(`${R()}/agents/${b.id}/mail`));
    assert.deepEqual(inbox.map((m) => [m.subject, m.read]), [['hello', false], ['from you', false]]);
    assert.equal(inbox[1].from, 'overseer');
    ok(await asAgent(b).post(`${R()}/agents/${b.id}/mail/${sent.id}/read`));
    const unread = ok(await asAgent(b).get(`${R()}/agents/${b.id}/mail?unread=true`));
    assert.deepEqual(unread.map((m) => m.subject), ['from you']);
    fails(await asAgent(a).post(`${R()}/agents/${a.id}/mail/${sent.id}/read`), 404);
    const prime = ok(await asAgent(b).get(`${R()}/agents/${b.id}/prime`));
    assert.equal(prime.unread_mail.length, 1);
    // `gt mail check`: what is unread, oldest first, marked read by the same call.
    ok(await api.post(`${R()}/mail`, { to: b.id, subject: 'later', body: 'second' }), 201);
    const taken = ok(await asAgent(b).post(`${R()}/agents/${b.id}/mail/check`));
    assert.deepEqual(taken.map((m) => [m.subject, m.body, m.read]), [['from you', 'hi', true], ['later', 'second', true]]);
    assert.ok(taken.every((m) => m.read_at));
    assert.deepEqual(ok(await asAgent(b).post(`${R()}/agents/${b.id}/mail/check`)), []);
    assert.deepEqual(ok(await asAgent(b).get(`${R()}/agents/${b.id}/mail?unread=true`)), []);
    fails(await asAgent(a).post(`${R()}/agents/${b.id}/mail/check`), 403);
  });

  test('escalations: raised by an agent, routed to the mayor, listed and acknowledged', async () => {
    const a = ok(await api.post(`${R()}/agents`, { role: 'polecat' }), 201);
    const e = ok(await asAgent(a).post(`${R()}/escalations`, { message: 'need a database for tests', severity: 'high', category: 'env' }), 201);
    assert.equal(e.type, 'escalation');
    fails(await asAgent(a).post(`${R()}/escalations`, { message: 'x', severity: 'apocalyptic' }), 400, 'severity: unknown variant');
    fails(await asAgent(a).post(`${R()}/escalations`, { message: '' }), 400, 'message');
    const open = ok(await api.get(`/api/towns/${town.id}/escalations?acknowledged=false`));
    const mine = open.find((x) => x.id === e.id);
    assert.deepEqual([mine.severity, mine.category, mine.source_agent_id, mine.acknowledged], ['high', 'env', a.id, false]);
    const mayorMail = ok(await api.get(`/api/towns/${town.id}/events?bead_id=${e.id}`));
    assert.ok(mayorMail.length >= 1);
    const acked = ok(await api.post(`/api/towns/${town.id}/escalations/${e.id}/acknowledge`));
    assert.equal(acked.acknowledged, true);
    assert.ok(!ok(await api.get(`/api/towns/${town.id}/escalations?acknowledged=false`)).some((x) => x.id === e.id));
    assert.ok(ok(await api.get(`/api/towns/${town.id}/escalations?acknowledged=true`)).some((x) => x.id === e.id));
    fails(await api.post(`/api/towns/${town.id}/escalations/hq-nope0/acknowledge`), 404, 'escalation not found');
    fails(await api.get(`/api/towns/${town.id}/escalations?acknowledged=maybe`), 400, 'acknowledged');
    // The town's lists are its newest `limit` (1–500), newest first.
    const e2 = ok(await asAgent(a).post(`${R()}/escalations`, { message: 'second problem', severity: 'low' }), 201);
    assert.deepEqual(ok(await api.get(`/api/towns/${town.id}/escalations?limit=1`)).map((x) => x.id), [e2.id]);
    assert.deepEqual(ok(await api.get(`/api/towns/${town.id}/escalations?limit=2`)).map((x) => x.id), [e2.id, e.id]);
    const mail = ok(await api.get(`/api/towns/${town.id}/mail?limit=1`));
    assert.deepEqual(mail.map((m) => m.subject), ['[Escalation:low] second problem']);
    for (const list of ['escalations', 'mail', 'merge-queue', 'convoys']) {
      fails(await api.get(`/api/towns/${town.id}/${list}?limit=0`), 400, 'limit');
      fails(await api.get(`/api/towns/${town.id}/${list}?limit=501`), 400, 'limit');
      fails(await api.get(`/api/towns/${town.id}/${list}?limit=many`), 400, 'limit');
    }
  });

  test('agent event log: cursor, bounded payloads, only for real agents', async () => {
    const a = ok(await api.post(`${R()}/agents`, { role: 'polecat' }), 201);
    const me = asAgent(a);
    for (let i = 0; i < 5; i++) ok(await me.post(`${R()}/agents/${a.id}/events`, { event_type: 'tool', data: { i } }), 201);
    const huge = ok(await me.post(`${R()}/agents/${a.id}/events`, { event_type: 'output', data: { text: 'z'.repeat(300_000) } }), 201);
    const page = ok(await me.get(`${R()}/agents/${a.id}/events?after_id=2&limit=2`));
    assert.deepEqual(page.map((e) => e.data.i), [2, 3]);
    const last = ok(await api.get(`${R()}/agents/${a.id}/events?after_id=${huge.id - 1}`));
    assert.equal(last[0].data.truncated, true);
    assert.ok(last[0].data.original_bytes > 300_000);
    fails(await api.get(`${R()}/agents/gt-nope0/events`), 404, 'agent not found');
    fails(await me.get(`${R()}/agents/${a.id}/events?limit=5000`), 400, 'limit:');
  });
});

describe('events, config, mayor', () => {
  test('rig events are filtered to the rig; town events see all', async () => {
    ok(await api.post(`${R2()}/beads`, { title: 'only backend' }), 201);
    const rigEvents = ok(await api.get(`${R2()}/events?limit=1000`));
    assert.ok(rigEvents.length > 0);
    assert.ok(rigEvents.every((e) => e.rig_id === rig2.id));
    const all = ok(await api.get(`/api/towns/${town.id}/events?limit=1000`));
    assert.ok(all.some((e) => e.rig_id === rig.id) && all.some((e) => e.rig_id === rig2.id));
    const cursor = all[all.length - 2].id;
    assert.equal(ok(await api.get(`/api/towns/${town.id}/events?after_id=${cursor}`)).length, 1);
    assert.ok(ok(await api.get(`${U}/towns/${town.id}/events`)).length > 0);
    fails(await api.get(`/api/towns/${town.id}/events?since=yesterday`), 400, 'since:');
    // `since` in the real runtime's SQLite (a bisection in one statement): the events stamped at
    // or after a time, in event order, alone or with a rig and a cursor.
    const at = (e) => Date.parse(e.created_at);
    const cut = all[Math.floor(all.length / 2)].created_at;
    const want = (es) => es.filter((e) => at(e) >= Date.parse(cut)).map((e) => e.id);
    const since = `since=${encodeURIComponent(cut)}&limit=1000`;
    assert.deepEqual(ok(await api.get(`/api/towns/${town.id}/events?${since}`)).map((e) => e.id), want(all));
    assert.deepEqual(ok(await api.get(`${R2()}/events?${since}`)).map((e) => e.id), want(rigEvents));
    assert.deepEqual(ok(await api.get(`/api/towns/${town.id}/events?${since}&after_id=${cursor}`)).map((e) => e.id), want(all.slice(-1)));
    const later = new Date(at(all[all.length - 1]) + 1).toISOString();
    assert.deepEqual(ok(await api.get(`/api/towns/${town.id}/events?since=${encodeURIComponent(later)}`)), []);
  });

  test('config: secrets masked on read, a masked value sent back keeps the secret', async () => {
    const token = 'ghp_0123456789abcdefghij1234';
    const c = ok(await api.patch(`/api/towns/${town.id}/config`, {
      env_vars: { OPENAI_API_KEY: 'sk-live-abcdefghijklmnop', LOG_LEVEL: 'debug' },
      git_auth: { github_token: token },
      agent: { runtime: 'claude', model: 'sonnet' },
      refinery: { gates: ['cargo test'] },
      capacity: { max_polecats_per_rig: 3 },
    }));
    assert.equal(c.git_auth.github_token, '****1234');
    assert.equal(c.env_vars.OPENAI_API_KEY, '****mnop');
    assert.equal(c.env_vars.LOG_LEVEL, 'debug');
    const got = ok(await api.get(`/api/towns/${town.id}/config`));
    assert.ok(!JSON.stringify(got).includes(token));
    const back = ok(await api.patch(`/api/towns/${town.id}/config`, { env_vars: got.env_vars, git_auth: { github_token: got.git_auth.github_token } }));
    assert.deepEqual(back, got);
    fails(await api.patch(`/api/towns/${town.id}/config`, { git_auth: { github_token: '****9999' } }), 400, 'git_auth.github_token');
    fails(await api.patch(`/api/towns/${town.id}/config`, { env_vars: { GASTOWN_X: '1' } }), 400, 'env_vars.GASTOWN_X');
    fails(await api.patch(`/api/towns/${town.id}/config`, { capacity: { max_polecats_per_rig: 0 } }), 400, 'capacity.max_polecats_per_rig');
    fails(await api.patch(`/api/towns/${town.id}/config`, { agent: { runtime: 'skynet' } }), 400, 'agent.runtime');
    fails(await api.patch(`/api/towns/${town.id}/config`, { surprise: true }), 400, 'unknown field');
    fails(await api.patch(`/api/towns/${town.id}/config`, [1]), 400);
    assert.equal(ok(await api.get(`/api/towns/${town.id}/config`)).capacity.max_polecats_per_rig, 3);
  });

  test('mayor message becomes mail to the mayor; mayor tools filter by rig', async () => {
    const m = ok(await api.post(`/api/towns/${town.id}/mayor/message`, { message: 'Plan the login work' }), 201);
    assert.equal(m.mayor.role, 'mayor');
    assert.equal(m.mayor.rig_id, null);
    assert.equal(m.mail.from, 'overseer');
    assert.match(m.mail.id, /^hq-/);
    fails(await api.post(`/api/towns/${town.id}/mayor/message`, { message: '' }), 400, 'message');
    const again = ok(await api.post(`/api/towns/${town.id}/mayor/message`, { message: 'again' }), 201);
    assert.equal(again.mayor.id, m.mayor.id);

    const mayor = api.with({ authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: town.id, rig_id: null, agent_id: m.mayor.id, role: 'mayor' })}` });
    const rigs = ok(await mayor.get(`/api/mayor/${town.id}/tools/rigs`));
    assert.equal(rigs.length, 2);
    const s = ok(await mayor.post(`/api/mayor/${town.id}/tools/sling`, { rig_id: rig2.id, title: 'from the mayor' }), 201);
    assert.equal(s.bead.rig_id, rig2.id);
    assert.equal(s.bead.created_by, `agent:${m.mayor.id}`);
    fails(await mayor.post(`/api/mayor/${town.id}/tools/sling`, { title: 'no rig' }), 400, 'rig_id');
    const beads = ok(await mayor.get(`/api/mayor/${town.id}/tools/rigs/${rig2.id}/beads`));
    assert.ok(beads.length > 0 && beads.every((b) => b.rig_id === rig2.id));
    const agents = ok(await mayor.get(`/api/mayor/${town.id}/tools/rigs/${rig2.id}/agents`));
    assert.ok(agents.length > 0 && agents.every((a) => a.rig_id === rig2.id));
    fails(await mayor.get(`/api/mayor/${town.id}/tools/rigs/nope/beads`), 404);
    const mail = ok(await mayor.post(`/api/mayor/${town.id}/tools/mail`, { to: s.agent.id, subject: 'go', body: 'start' }), 201);
    assert.equal(mail.from, m.mayor.id);
    const taken = ok(await mayor.post(`/api/mayor/${town.id}/tools/inbox/check`));
    assert.ok(taken.every((x) => x.read), 'taken mail is marked read');
    assert.deepEqual(taken.filter((x) => x.from === 'overseer').map((x) => x.body), ['Plan the login work', 'again']);
    assert.deepEqual(ok(await mayor.post(`/api/mayor/${town.id}/tools/inbox/check`)), []);
  });
});
