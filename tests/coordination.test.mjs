// Town coordination on real parts (workerd + the container program + real git + scripted
// agents), with the witness driven directly (POST …/witness/tick runs what the alarm runs) and
// thresholds made short through the town config: killed agents and a dead container are
// recovered, a silent agent is nudged then escalated, a closed bead is never re-dispatched, mail
// reaches a running agent's terminal once, escalations are chased with a bump, a convoy lands
// only after its last merge, a molecule's steps run in order, and an idle town is left alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startWorker, ROOT } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, townOnRepo, until, git, fixture, CONTAINER_SECRET } from './lib/container.mjs';

const SCRIPT = fixture('coordination-agent.sh');
let c;
let w;
let api;
let box;
let markers;
let T;

before(async () => {
  markers = mkdtempSync(join(tmpdir(), 'gastown-markers-'));
  // The agents (uids of their own) leave their markers here.
  chmodSync(markers, 0o1777);
  c = await startContainer();
  w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  api = client(w.url);
  box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });
  T = await town('coord');
});
after(async () => {
  await w?.stop();
  await c?.stop();
  T?.repo.cleanup();
  rmSync(markers, { recursive: true, force: true });
});

async function town(name, extra = {}) {
  const { repo, T: t, R } = await townOnRepo(api, name);
  ok(await api.patch(`/api/towns/${t.id}/config`, {
    agent: { runtime: 'custom', command: `sh ${SCRIPT}` },
    env_vars: { MARKER_DIR: markers },
    capacity: { max_polecats_per_rig: 6 },
    ...extra,
  }));
  const P = `/api/towns/${t.id}`;
  return {
    t, R, P, repo,
    bead: async (id) => ok(await api.get(`${R}/beads/${id}`)),
    events: async (id) => ok(await api.get(`${R}/events?bead_id=${id}&limit=1000`)),
    tick: async () => ok(await api.post(`${P}/witness/tick`, {})),
    sling: async (body) => ok(await api.post(`${R}/sling`, typeof body === 'string' ? { title: body } : body), 201),
  };
}

/** The container's view of an agent's current run, once it is running. */
async function running(agentId) {
  return until(async () => {
    const r = await box.get(`/agents/${agentId}/status`);
    return r.status === 200 && r.body.data.status === 'running' ? r.body.data : null;
  }, { what: `${agentId} running`, timeout: 30_000 });
}

/** The town has seen the run start (its lifecycle report arrived). */
async function reported(X, s) {
  await until(async () => (await X.events(s.bead.id)).some((e) => e.event_type === 'agent_spawned'), { what: 'the start reported' });
}

/** Ends a test's long-running agent without it counting as a crash: the work is closed first. */
async function retire(X, s) {
  ok(await api.post(`${X.R}/beads/${s.bead.id}/close`, { reason: 'test over' }));
  await box.post(`/agents/${s.agent.id}/stop`, {});
}

function terminal(X, agentId) {
  const ws = new WebSocket(`${w.url.replace('http', 'ws')}${X.P}/agents/${agentId}/terminal`);
  const t = { ws, screen: '' };
  ws.on('message', (d, bin) => { if (bin) t.screen += d.toString(); });
  return new Promise((resolve, reject) => { ws.on('open', () => resolve(t)); ws.on('error', reject); });
}

/** The `nudged` events on an agent: one per notice the town sent it (`new_value` mail or witness). */
async function nudges(X, agentId) {
  return ok(await api.get(`${X.P}/events?bead_id=${agentId}&limit=500`)).filter((e) => e.event_type === 'nudged');
}

/**
 * Marks a point in an agent's terminal input: a line typed through the container's notice queue,
 * which types notices first in, first out. Once the line shows on the screen (echoed by the PTY,
 * or by the program), every notice queued before it has been typed too.
 */
async function probe(agentId, text) {
  const r = await box.post(`/agents/${agentId}/nudge`, { key: `probe:${text}`, text });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

const closed = (X, id, timeout = 60_000) => until(async () => (await X.bead(id)).status === 'closed', { timeout, what: `${id} closed` });

test('an idle town arms no fast alarm and makes no container call', async () => {
  const X = await town('idle');
  ok(await api.post(`${X.R}/beads`, { title: 'a bead nobody slung' }), 201);
  const status = ok(await api.get(`${X.P}/witness`));
  assert.deepEqual(status, { alarm_at: null, watching: false });
  const before = (await fetch(`${c.url}/health`).then((r) => r.json())).data.requests_served;
  assert.deepEqual(await X.tick(), []);
  ok(await api.get(`${X.P}/convoys`));
  const afterCount = (await fetch(`${c.url}/health`).then((r) => r.json())).data.requests_served;
  assert.equal(afterCount, before, 'not one request reached the container');
  assert.deepEqual(ok(await api.get(`${X.P}/witness`)), { alarm_at: null, watching: false });
  X.repo.cleanup();
});

test("a killed agent's work is re-dispatched and completes", async () => {
  const X = await town('killed');
  try {
    const s = await X.sling('HANG-FIRST killed agent');
    const run = await running(s.agent.id);
    // Killed once the town knows it started: the container sends its start and exit reports
    // independently, and a start report applied after the exit's would leave the town thinking
    // a dead run is alive until the witness's next regular pass.
    await reported(X, s);
    process.kill(run.pid, 'SIGKILL');
    await closed(X, s.bead.id);
    const ev = (await X.events(s.bead.id)).map((e) => e.event_type);
    assert.equal(ev.filter((e) => e === 'agent_spawned').length, 2, ev.join(' '));
    assert.ok(ev.includes('agent_exited'));
    assert.ok(X.repo.log().includes(`${s.bead.id}: scripted work`));
  } finally {
    X.repo.cleanup();
  }
});

test('the container dying: the witness restarts the hooked work on the next container, which finishes it', async () => {
  const s = await T.sling('HANG-FIRST container gone');
  await running(s.agent.id);
  await reported(T, s);
  const status = ok(await api.get(`${T.P}/witness`));
  assert.equal(status.watching, true);
  assert.ok(status.alarm_at > Date.now() - 1000 && status.alarm_at <= Date.now() + 31_000, 'a fast alarm while work runs');
  process.kill(c.pid, 'SIGKILL');
  const actions = await T.tick();
  assert.ok(actions.some((a) => a.action === 'restart' && a.agent_id === s.agent.id && /container is gone/.test(a.reason)), JSON.stringify(actions));
  assert.equal((await T.bead(s.bead.id)).status, 'in_progress', 'the hook survives');
  await c.stop();
  c = await startContainer({ port: c.port });
  box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });
  // The dispatch that failed while the container was down is retried by the alarm.
  await closed(T, s.bead.id, 90_000);
  const ev = await T.events(s.bead.id);
  assert.ok(ev.some((e) => e.event_type === 'redispatched'));
});

test('a stalled agent gets a nudge, then one escalation', async () => {
  const X = await town('stall', { witness: { stall_after_secs: 1, escalate_stall_after_secs: 1 } });
  let s;
  let term;
  try {
    s = await X.sling('SILENT worker');
    await running(s.agent.id);
    await reported(X, s);
    term = await terminal(X, s.agent.id);
    await until(() => term.screen.includes('working quietly'), { what: 'first words' });
    await X.tick(); // sees the first output: activity
    // Witness passes until one finds it silent for stall_after_secs (the passes before find
    // nothing to do): that pass marks it stalled and nudges it.
    const first = await until(async () => {
      const actions = await X.tick();
      return actions.some((a) => a.agent_id === s.agent.id && a.action !== 'activity') && actions;
    }, { every: 200, what: 'a witness pass finding it silent' });
    assert.ok(first.some((a) => a.action === 'stalled' && a.agent_id === s.agent.id), JSON.stringify(first));
    assert.equal(ok(await api.get(`${X.R}/agents/${s.agent.id}`)).status, 'stalled');
    await until(() => term.screen.includes('The witness has seen no activity'), { what: 'the nudge typed into its terminal' });
    // Then passes until one finds it still stalled escalate_stall_after_secs later.
    const second = await until(async () => {
      const actions = await X.tick();
      return actions.some((a) => a.agent_id === s.agent.id) && actions;
    }, { every: 200, what: 'a witness pass escalating the stall' });
    assert.ok(second.some((a) => a.action === 'escalate_stall'), JSON.stringify(second));
    // One more pass, past both thresholds: it must neither escalate nor nudge again.
    const third = await X.tick();
    assert.ok(!third.some((a) => a.agent_id === s.agent.id), JSON.stringify(third));
    const escalations = ok(await api.get(`${X.P}/escalations`)).filter((e) => e.category === 'witness');
    assert.equal(escalations.length, 1, 'escalated once');
    assert.equal(escalations[0].about, s.bead.id);
    assert.equal((await nudges(X, s.agent.id)).filter((e) => e.new_value === 'witness').length, 1, 'one nudge sent');
    // A nudge sent after those passes is typed after anything they queued: once it is on the
    // screen, a second witness nudge would be too.
    await probe(s.agent.id, 'stall-probe-after-the-passes');
    await until(() => term.screen.includes('stall-probe-after-the-passes'), { what: 'the probe typed' });
    assert.equal(term.screen.split('The witness has seen no activity').length - 1, 1, 'nudged once');
  } finally {
    term?.ws.close();
    if (s) await retire(X, s);
    X.repo.cleanup();
  }
});

test('a closed bead is never re-dispatched', async () => {
  // A town of its own: its one polecat is the agent under test.
  const X = await town('closed');
  try {
    const s = await X.sling('SILENT to be closed');
    const run = await running(s.agent.id);
    await reported(X, s);
    ok(await api.post(`${X.R}/beads/${s.bead.id}/close`, { reason: 'not needed after all' }));
    process.kill(run.pid, 'SIGKILL');
    // Idle only once its exit report was applied.
    await until(async () => ok(await api.get(`${X.R}/agents/${s.agent.id}`)).status === 'idle', { what: 'agent idle' });
    const actions = await X.tick();
    assert.ok(!actions.some((a) => a.agent_id === s.agent.id && a.action === 'restart'), JSON.stringify(actions));
    const agent = ok(await api.get(`${X.R}/agents/${s.agent.id}`));
    assert.equal(agent.hook_bead_id, null);
    // A re-dispatch would be a run of the closed bead on this agent's hook, after a backoff.
    // Rather than wait out the backoff, hand the town new work: the free polecat takes it, and
    // its next run is that work's (run through to the merge), so no run of the closed bead can
    // come after the exit.
    const next = await X.sling('follow-up after the close');
    assert.equal(next.agent.id, s.agent.id, 'the same polecat, free, took the next work');
    await closed(X, next.bead.id);
    const ev = (await X.events(s.bead.id)).map((e) => e.event_type);
    assert.equal(ev.filter((e) => e === 'agent_spawned').length, 1, ev.join(' '));
    assert.equal((await X.bead(s.bead.id)).status, 'closed');
    assert.equal((await X.events(next.bead.id)).filter((e) => e.event_type === 'agent_spawned').length, 1);
  } finally {
    X.repo.cleanup();
  }
});

test("mail reaches a running agent's terminal once; a flood is folded", async () => {
  const X = await town('mail');
  let s;
  let term;
  try {
    s = await X.sling('LISTEN for mail');
    await running(s.agent.id);
    await reported(X, s);
    term = await terminal(X, s.agent.id);
    await until(() => term.screen.includes('listening'), { what: 'the agent listening' });
    // What the agent heard: the town's notices, and the probes marking points in its input.
    const heard = () => term.screen.split('\n').filter((l) => l.startsWith('heard:'));
    const notices = () => heard().filter((l) => !l.startsWith('heard:probe-'));
    const mailNudges = async () => (await nudges(X, s.agent.id)).filter((e) => e.new_value === 'mail');
    ok(await api.post(`${X.R}/mail`, { to: s.agent.id, subject: 'hello there', body: 'read me' }), 201);
    await until(() => term.screen.includes('heard:New mail from the overseer -- run: gt mail inbox'), { what: 'the notice' });
    // A second notice for this mail could only come from a later pass of the town's work loop:
    // run one (a witness pass performs what is due, and answers when it is done), then probe;
    // once the probe is heard, anything that pass sent has been typed.
    await X.tick();
    await probe(s.agent.id, 'probe-1');
    await until(() => term.screen.includes('heard:probe-1'), { what: 'the first probe heard' });
    assert.equal(term.screen.split('heard:New mail').length - 1, 1, 'exactly once');
    assert.equal((await mailNudges()).length, 1, 'one notice sent');
    await Promise.all([1, 2, 3, 4, 5].map(() => api.post(`${X.R}/mail`, { to: s.agent.id, subject: 'flood', body: 'x' })));
    // The town announces all five (one `nudged` event per notice it sends, counting its mails;
    // each mail's request runs a work pass of its own, so it may send up to five) …
    const sent = await until(async () => {
      const n = (await mailNudges()).slice(1);
      return n.reduce((k, e) => k + e.metadata.mails, 0) === 5 && n;
    }, { what: 'the five mails announced' });
    // … and the container types each, or folds it into an identical notice still waiting. Wait
    // until every text sent has been heard, run one more work pass, then probe: the probe is
    // queued after every notice those passes sent, so once it is heard the flood is all typed.
    const text = (n) => (n === 1 ? 'New mail from the overseer -- run: gt mail inbox' : `${n} new mails (latest from the overseer) -- run: gt mail inbox`);
    await until(() => sent.every((e) => notices().slice(1).some((l) => l.includes(text(e.metadata.mails)))), { what: 'every notice sent heard' });
    await X.tick();
    await probe(s.agent.id, 'probe-2');
    await until(() => term.screen.includes('heard:probe-2'), { what: 'the second probe heard' });
    const flood = notices().slice(1);
    assert.ok(flood.length >= 1 && flood.length < 5, `five mails, ${sent.length} notices sent, ${flood.length} typed: ${flood.join(' | ')}`);
    // Notices are typed outside the untrusted fence: no subject a sender wrote is in them.
    assert.ok(heard().every((l) => !l.includes('flood') && !l.includes('hello there')), heard().join(' | '));
    // Every mail is still there to read.
    const inbox = ok(await api.get(`${X.R}/agents/${s.agent.id}/mail?unread=true`));
    assert.equal(inbox.length, 6);
  } finally {
    term?.ws.close();
    if (s) await retire(X, s);
    X.repo.cleanup();
  }
});

test('escalations: acknowledged, and re-escalated with a bump until acknowledged, at most N times', async () => {
  const X = await town('esc', { escalations: { reescalate_after_secs: 1, max_reescalations: 2 } });
  try {
    const e = ok(await api.post(`${X.R}/escalations`, { message: 'the staging database is down', severity: 'low' }), 201);
    const get = async () => ok(await api.get(`${X.P}/escalations`)).find((x) => x.id === e.id);
    const bumps = async () => ok(await api.get(`${X.P}/events?bead_id=${e.id}&limit=500`))
      .filter((x) => x.event_type === 'escalated').map((x) => [x.old_value, x.new_value, x.metadata.re_escalation]);
    assert.equal((await get()).severity, 'low');
    // Each bump falls due reescalate_after_secs after the last (made by a witness pass, or by the
    // alarm, which runs the same pass): run passes until the second has happened.
    const cur = await until(async () => {
      await X.tick();
      const x = await get();
      return x.re_escalation_count >= 2 && x;
    }, { every: 100, what: 'two re-escalations' });
    assert.deepEqual([cur.severity, cur.re_escalation_count], ['high', 2]);
    assert.deepEqual(await bumps(), [['low', 'medium', 1], ['medium', 'high', 2]]);
    // Not a third time. The town plans no further wake for it (its alarm, armed while a bump is
    // due, is gone once it has nothing left to do)…
    await until(async () => ok(await api.get(`${X.P}/witness`)).alarm_at === null, { what: 'no alarm left armed' });
    // …and a pass made after a third bump would be due (by the time the town recorded for the
    // second) changes nothing.
    const due = Date.parse(cur.last_escalated_at) + 1000;
    await until(() => Date.now() > due, { every: 50, what: 'the time a third bump would be due' });
    await X.tick();
    assert.deepEqual([(await get()).re_escalation_count, (await bumps()).length], [2, 2]);
    const inbox = ok(await api.get(`/api/mayor/${X.t.id}/tools/inbox`));
    assert.equal(inbox.filter((m) => m.subject.startsWith('[Re-escalation:')).length, 2, 'each bump reaches the mayor');
    const acked = ok(await api.post(`${X.P}/escalations/${e.id}/acknowledge`, {}));
    assert.equal(acked.acknowledged, true);
    assert.equal(ok(await api.get(`${X.P}/escalations?acknowledged=false`)).length, 0);
  } finally {
    X.repo.cleanup();
  }
});

test('a convoy of three beads lands only after the third merge; adding work reopens it', async () => {
  // An older convoy with nothing in it yet: open all along.
  const early = ok(await api.post(`${T.P}/convoys`, { title: 'waiting for work' }), 201);
  const beads = [];
  for (const title of ['convoy part one', 'convoy part two', 'convoy part three']) beads.push(ok(await api.post(`${T.R}/beads`, { title }), 201));
  const convoy = ok(await api.post(`${T.P}/convoys`, { title: 'release 1', bead_ids: beads.map((b) => b.id) }), 201);
  assert.deepEqual([convoy.total, convoy.closed, convoy.status], [3, 0, 'open']);
  // Stranded (ready work, nobody on it): the scheduler feeds it; the convoy is watched as it goes.
  const snapshots = [];
  await until(async () => {
    const cv = ok(await api.get(`${T.P}/convoys/${convoy.id}`));
    snapshots.push([cv.status, cv.beads.map((b) => b.status)]);
    return cv.status === 'landed';
  }, { timeout: 90_000, every: 50, what: 'the convoy to land' });
  for (const [status, statuses] of snapshots) {
    if (status === 'landed') assert.deepEqual(statuses, ['closed', 'closed', 'closed']);
    else assert.ok(statuses.some((s) => s !== 'closed'), 'open while anything is unmerged');
  }
  const log = T.repo.log();
  for (const b of beads) assert.ok(log.includes(`${b.id}: scripted work`), 'all three merged');
  const events = ok(await api.get(`${T.P}/events?limit=1000`));
  const landedAt = events.find((e) => e.bead_id === convoy.id && e.event_type === 'convoy_landed').id;
  const merges = events.filter((e) => beads.some((b) => b.id === e.bead_id) && e.event_type === 'review_completed' && e.new_value === 'merged');
  assert.equal(merges.length, 3);
  assert.ok(merges.every((m) => m.id < landedAt), 'landed after the third merge');
  const more = ok(await api.post(`${T.R}/beads`, { title: 'convoy follow-up' }), 201);
  const reopened = ok(await api.post(`${T.P}/convoys/${convoy.id}/beads`, { bead_ids: [more.id] }));
  assert.deepEqual([reopened.status, reopened.total], ['open', 4]);
  await closed(T, more.id);
  await until(async () => ok(await api.get(`${T.P}/convoys/${convoy.id}`)).status === 'landed', { what: 'landed again' });
  // The list puts the open convoys before the landed ones (the older, open one first), each
  // part newest first.
  const list = ok(await api.get(`${T.P}/convoys`));
  const at = (id) => list.findIndex((c) => c.id === id);
  assert.ok(at(early.id) >= 0 && at(early.id) < at(convoy.id), JSON.stringify(list.map((c) => [c.id, c.status])));
  const firstLanded = list.findIndex((c) => c.status === 'landed');
  assert.ok(list.slice(firstLanded).every((c) => c.status === 'landed'));
  // Bad input is refused in words.
  const bad = await api.post(`${T.P}/convoys`, { title: 'x', bead_ids: ['nope-zzzzz'] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /bead_ids\[0\]/);
});

test("a molecule's steps run in dependency order and the molecule closes with its last step", async () => {
  const s = await T.sling({ title: 'MOLECULE search feature', formula: 'feature' });
  const mol = ok(await api.get(`${T.R}/beads/${s.bead.id}/molecule`));
  assert.deepEqual(mol.steps.map((x) => [x.step, x.needs]), [
    ['plan', []], ['implement', ['plan']], ['test', ['implement']], ['document', ['implement']], ['finish', ['test', 'document']],
  ]);
  await closed(T, s.bead.id, 90_000);
  assert.equal(git(T.repo.bare, 'show', 'main:steps.log'), 'plan\nimplement\ntest\ndocument\nfinish');
  const after = ok(await api.get(`${T.R}/beads/${s.bead.id}/molecule`));
  assert.equal(after.status, 'closed');
  assert.ok(after.steps.every((x) => x.status === 'closed'));
  // Each step started only after the steps it needs had closed.
  const at = async (bead, to) => (await T.events(bead)).find((e) => e.event_type === 'status_changed' && e.new_value === to).id;
  for (const step of after.steps) {
    for (const need of step.needs) {
      const blocker = after.steps.find((x) => x.step === need);
      assert.ok((await at(blocker.bead_id, 'closed')) < (await at(step.bead_id, 'in_progress')), `${step.step} after ${need}`);
    }
  }
  const unknown = await api.post(`${T.R}/sling`, { title: 'x', formula: 'no-such-formula' });
  assert.equal(unknown.status, 400);
  assert.match(unknown.body.error, /built in: review-fix, feature, bugfix/);
});

