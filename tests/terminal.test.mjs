// Live terminals through workerd: browser ↔ Worker ↔ TownContainerDO ↔ container ↔ a real
// program under a PTY. Typing reaches the mayor's session and its echo comes back; other
// sessions are read-only; resize reaches the PTY; a viewer attaching mid-stream gets scrollback
// plus live output with no gap and no duplicate; several viewers see the same bytes; the upgrade
// itself is authenticated (Access credentials, or a single-use stream ticket for that terminal).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startWorker, JWT_SECRET } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, CONTAINER_SECRET } from './lib/container.mjs';
import { startJwks, userToken, ACCESS_AUD, agentToken } from './lib/tokens.mjs';

let jwks;
let c;
let w;
let owner;
let town;
let mayor;
let witness;
let box;
let ownerAuth;

before(async () => {
  jwks = await startJwks();
  c = await startContainer();
  w = await startWorker({ vars: { GASTOWN_AUTH: 'access', CF_ACCESS_TEAM_DOMAIN: jwks.team, CF_ACCESS_AUD: ACCESS_AUD, GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  ownerAuth = { 'cf-access-jwt-assertion': userToken(jwks.team, 'owner') };
  owner = client(w.url, ownerAuth);
  box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });
  town = ok(await owner.post('/api/users/owner/towns', { name: 'T' }), 201);
  const rig = ok(await owner.post('/api/users/owner/rigs', { town_id: town.id, name: 'r', git_url: 'https://github.com/o/r.git' }), 201);
  mayor = ok(await owner.post(`/api/towns/${town.id}/mayor/message`, { message: 'hi' }), 201).mayor;
  witness = ok(await owner.post(`/api/towns/${town.id}/rigs/${rig.id}/agents`, { role: 'witness' }), 201);
});
after(async () => { await w?.stop(); await c?.stop(); await jwks?.stop(); });
// Every test starts its own programs and opens its own terminals; whatever is left is ended here.
const sockets = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const agent of [mayor, witness]) await box.post(`/agents/${agent.id}/stop`, {});
});

/**
 * Starts a program for an agent directly in the container (the part under test is the relay).
 * The town keeps its mayor alive and starts it again when it exits; this run's epoch is far
 * above any the town uses, so the container replaces the town's run with it, never the reverse.
 */
async function run(agent, script) {
  await box.post(`/agents/${agent.id}/stop`, {});
  const r = await box.post('/agents/start', { agent_id: agent.id, town_id: town.id, rig_id: 'town', role: agent.role, name: agent.name, epoch: 1_000_000_000, command: ['sh', '-c', script] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

/** Opens a terminal; resolves with a handle collecting bytes and control messages. */
function open(path, headers = ownerAuth) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${w.url.replace('http', 'ws')}${path}`, { headers });
    sockets.push(ws);
    const t = { ws, bytes: Buffer.alloc(0), control: [], closed: false };
    ws.on('message', (data, isBinary) => {
      if (isBinary) t.bytes = Buffer.concat([t.bytes, data]);
      else t.control.push(JSON.parse(data.toString()));
    });
    ws.on('close', () => { t.closed = true; });
    ws.on('open', () => resolve(t));
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
}
const term = (agent) => `/api/towns/${town.id}/agents/${agent.id}/terminal`;
/** Polls `fn` (every 20 ms) until it is true, or fails naming `what` after `timeout` ms. */
async function until(fn, what, timeout = 10_000) {
  const end = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
/**
 * Sends `line` to the program and waits for its next answer (a line matching `answer` after
 * everything seen so far); `null` when none came within `timeout` (the line may have been cut
 * by a signal: the caller asks again).
 */
async function ask(t, line, answer, timeout = 2_000) {
  const from = t.bytes.length;
  t.ws.send(Buffer.from(`${line}\r`));
  try {
    await until(() => answer.test(t.bytes.subarray(from).toString()), `an answer to ${line}`, timeout);
  } catch {
    return null;
  }
  return answer.exec(t.bytes.subarray(from).toString());
}
/** Asks until the answer satisfies `done` (each ask waits for its answer: no fixed pause). */
async function askUntil(t, line, answer, done, what, timeout = 20_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const m = await ask(t, line, answer);
    if (m && done(m)) return m;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
  }
}

test("typing reaches the mayor's program and its echo comes back; resize reaches the PTY", async () => {
  await run(mayor, 'echo ready; while read l; do if [ "$l" = size ]; then stty size; else echo "got:$l"; fi; done');
  const t = await open(term(mayor));
  await until(() => t.bytes.includes('ready'), 'scrollback');
  t.ws.send(Buffer.from('hello mayor\r'));
  await until(() => t.bytes.includes('got:hello mayor'), 'echo from the program');
  t.ws.send(JSON.stringify({ type: 'resize', cols: 101, rows: 37 }));
  // Ask until the program reports the new size (frames are ordered, so once is normally enough;
  // a resize right after another is applied when the container's settle time has passed).
  const m = await askUntil(t, 'size', /(\d+) (\d+)\r\n/, (x) => x[0] === '37 101\r\n', 'stty size after resize');
  assert.equal(m[0], '37 101\r\n');
  t.ws.close();
});

test('a resize storm is debounced: few SIGWINCH reach the program, and the last size wins', async () => {
  await run(mayor, `n=0; trap 'n=$((n+1))' WINCH; echo ready; while true; do if read l; then echo "winch=$n size=$(stty size)"; fi; done`);
  const t = await open(term(mayor));
  await until(() => t.bytes.includes('ready'), 'ready');
  for (let i = 0; i < 60; i++) t.ws.send(JSON.stringify({ type: 'resize', cols: 80 + i, rows: 30 }));
  // The storm's last size is applied once it settles: ask until the program reports it.
  const m = await askUntil(t, 'x', /winch=(\d+) size=(\d+ \d+)\r\n/, (x) => x[2] === '30 139', 'the final size');
  const winch = Number(m[1]);
  assert.ok(winch >= 1 && winch <= 10, `60 resizes reached the program as ${winch} SIGWINCH`);
  t.ws.close();
});

test('input to a non-mayor session is refused and the client is told', async () => {
  await run(witness, 'echo watching; while read l; do echo "got:$l"; done');
  const t = await open(term(witness));
  await until(() => t.bytes.includes('watching'), 'output');
  t.ws.send(Buffer.from('rm -rf /\r'));
  await until(() => t.control.some((m) => m.type === 'error' && /read-only/.test(m.error)), 'refusal');
  // The container refuses input before it reaches the PTY. To show that nothing got through,
  // type a line the legitimate way (a notice, through the container's API) after the refusal
  // and wait for the program's answer to it: input typed before would have been answered first.
  const n = await box.post(`/agents/${witness.id}/nudge`, { key: 'after-refusal', text: 'legit' });
  assert.equal(n.status, 200, JSON.stringify(n.body));
  await until(() => t.bytes.includes('got:legit'), 'the answer to a line typed after the refusal');
  assert.deepEqual(t.bytes.toString().match(/got:[^\r\n]*/g), ['got:legit'], 'nothing else reached the program');
  t.ws.close();
});

test('attaching mid-stream: scrollback + live equals the output exactly; three viewers agree; the exit is reported', async () => {
  const N = 3000;
  // The program (echo off, so its output is only its lines) prints the first half once a line is
  // typed after the first viewer attached, and the second half once another is typed after the
  // others attached mid-stream. Lines are typed through the container's notices.
  const type = async (text) => {
    const r = await box.post(`/agents/${witness.id}/nudge`, { key: text, text });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  await run(witness, `stty -echo; read go; i=0; while [ $i -lt ${N / 2} ]; do i=$((i+1)); echo line-$i; done; read more; while [ $i -lt ${N} ]; do i=$((i+1)); echo line-$i; done; exit 4`);
  const expected = Array.from({ length: N }, (_, i) => `line-${i + 1}\r\n`).join('');
  const first = await open(term(witness));
  await type('go');
  await until(() => first.bytes.includes(`line-${N / 2}\r\n`), 'the first half');
  const others = [await open(term(witness)), await open(term(witness))]; // mid-stream
  await type('more');
  const all = [first, ...others];
  await until(() => all.every((t) => t.control.some((m) => m.type === 'exit')), 'exit reported to every viewer', 20_000);
  for (const t of all) {
    assert.equal(t.bytes.toString(), expected, 'no gap, no duplicate');
    const exit = t.control.find((m) => m.type === 'exit');
    assert.equal(exit.code, 4);
  }
});

test('closing one viewer does not disturb the others', async () => {
  await run(witness, 'i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo tick-$i; sleep 0.05; done');
  const [a, b, d] = [await open(term(witness)), await open(term(witness)), await open(term(witness))];
  await until(() => a.bytes.includes('tick-5\r\n'), 'ticks');
  b.ws.terminate();
  await until(() => a.control.some((m) => m.type === 'exit') && d.control.some((m) => m.type === 'exit'), 'the others run to the end');
  assert.ok(a.bytes.includes('tick-40\r\n') && d.bytes.includes('tick-40\r\n'));
  assert.equal(a.bytes.toString(), d.bytes.toString());
});

test('the session list names each agent with its role and state', async () => {
  await run(mayor, 'sleep 5');
  const sessions = ok(await owner.get(`/api/towns/${town.id}/sessions`));
  const m = sessions.find((s) => s.agent_id === mayor.id);
  assert.deepEqual([m.role, m.status, m.writable], ['mayor', 'active', true]);
  const wi = sessions.find((s) => s.agent_id === witness.id);
  assert.equal(wi.writable, false);
  assert.ok(['active', 'idle'].includes(wi.status));
});

test('upgrade authentication: owner credentials or one fresh ticket; everything else refused before any byte', async () => {
  await run(witness, 'echo secret-output; sleep 5');
  const refused = async (path, headers, status) => {
    await assert.rejects(open(path, headers), (e) => e.status === status, `${path} → ${status}`);
  };
  await refused(term(witness), {}, 401); // no credential at all
  await refused(term(witness), { 'cf-access-jwt-assertion': userToken(jwks.team, 'stranger') }, 404); // another user's town
  await refused(term(witness), { authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: town.id, rig_id: witness.rig_id, agent_id: witness.id, role: 'witness' })}` }, 403);

  const mint = async (agent) => ok(await owner.post(`/api/towns/${town.id}/agents/${agent.id}/stream-ticket`));
  const tk = await mint(witness);
  assert.ok(tk.url.startsWith(term(witness)));
  const t = await open(tk.url, {}); // a ticket alone is enough, once
  await until(() => t.bytes.includes('secret-output'), 'ticketed output');
  t.ws.close();
  await refused(tk.url, {}, 401); // replayed
  const other = await mint(mayor);
  await refused(`${term(witness)}?ticket=${other.ticket}`, {}, 403); // another agent's ticket
  await refused(`${term(witness)}?ticket=${tk.ticket.slice(0, -4)}AAAA`, {}, 401); // forged signature
  await refused(`${term(witness)}?ticket=garbage`, {}, 401);
  // Expired: a ticket whose minute has passed (signed here with the town's secret and an old exp).
  const { createHmac } = await import('node:crypto');
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const h = enc({ alg: 'HS256', typ: 'JWT' });
  const p = enc({ kind: 'stream', user_id: 'owner', town_id: town.id, agent_id: witness.id, jti: 'old', iat: now - 120, exp: now - 60 });
  const sig = createHmac('sha256', JWT_SECRET).update(`${h}.${p}`).digest('base64url');
  await refused(`${term(witness)}?ticket=${h}.${p}.${sig}`, {}, 401);
  // A ticket for another town's terminal path is refused too.
  const townB = ok(await client(w.url, { 'cf-access-jwt-assertion': userToken(jwks.team, 'b') }).post('/api/users/b/towns', { name: 'B' }), 201);
  const tk2 = await mint(witness);
  await refused(`/api/towns/${townB.id}/agents/${witness.id}/terminal?ticket=${tk2.ticket}`, {}, 403);
  // Minting needs ownership.
  const stranger = client(w.url, { 'cf-access-jwt-assertion': userToken(jwks.team, 'stranger') });
  assert.equal((await stranger.post(`/api/towns/${town.id}/agents/${witness.id}/stream-ticket`)).status, 404);
  // The town's event stream is the owner's only.
  const events = `/api/towns/${town.id}/events/ws`;
  await refused(events, {}, 401);
  await refused(events, { 'cf-access-jwt-assertion': userToken(jwks.team, 'stranger') }, 404);
  (await open(events)).ws.close();
  // Not a WebSocket: a clear 400.
  assert.equal((await owner.get(term(witness))).status, 400);
});

test("deleting an agent stops its process (its token already stopped working)", async () => {
  await run(witness, 'echo alive; sleep 60');
  const before = await box.get(`/agents/${witness.id}/status`);
  assert.equal(before.data.status, 'running');
  ok(await owner.del(`/api/towns/${town.id}/rigs/${witness.rig_id}/agents/${witness.id}`));
  const after = await box.get(`/agents/${witness.id}/status`);
  assert.equal(after.data.status, 'exited');
  assert.equal(after.data.exit.reason, 'stopped');
});
