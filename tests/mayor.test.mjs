// The mayor end to end with the built-in demo runtimes (no LLM): a person's first message starts
// the mayor and is kept; the demo mayor delegates it by slinging a bead; a demo polecat does it and
// the refinery merges it. A request typed into the mayor's terminal is delegated too, and a
// message sent while the mayor runs reaches it through a notice typed into its session.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { ok } from './lib/api.mjs';
import { startStack, townOnRepo, until } from './lib/container.mjs';

let stack;
let w;
let api;
let repo;
let T;
let R;

before(async () => {
  stack = await startStack();
  ({ w, api } = stack);
  ({ repo, T, R } = await townOnRepo(api, 'mayor-town', 'web'));
});
after(async () => { await stack?.stop(); repo?.cleanup(); });

const beadTitled = async (title) => ok(await api.get(`${R}/beads?limit=500`)).find((b) => b.title === title);
async function landed(title) {
  const b = await until(() => beadTitled(title), { timeout: 30_000, what: `a bead "${title}"` });
  await until(async () => (await beadTitled(title)).status === 'closed', { timeout: 30_000, what: `"${title}" closed` });
  assert.ok(repo.log().includes(`${title} (${b.id}) [gastown demo]`), repo.log());
  return b;
}

test("the first message starts the mayor, which delegates it; the work lands on main", async () => {
  assert.equal(ok(await api.get(`/api/towns/${T.id}/mayor/status`)).status, 'idle');
  const m = ok(await api.post(`/api/towns/${T.id}/mayor/message`, { message: 'Add a greeting' }), 201);
  assert.equal(m.session, 'starting');
  await until(async () => ok(await api.get(`/api/towns/${T.id}/mayor/status`)).status === 'active', { what: 'the mayor to run' });
  const bead = await landed('Add a greeting');
  assert.equal(bead.created_by, `agent:${m.mayor.id}`, 'slung by the mayor');
  const mail = ok(await api.get(`/api/mayor/${T.id}/tools/inbox`));
  assert.ok(mail.every((x) => x.read), 'the mayor read its mail');
  const sessions = ok(await api.get(`/api/towns/${T.id}/sessions`));
  assert.deepEqual(sessions.filter((s) => s.role === 'mayor').map((s) => [s.status, s.writable]), [['active', true]]);
});

test('a request typed into the mayor terminal, and mail to a running mayor, are both delegated', async () => {
  const mayor = ok(await api.get(`/api/towns/${T.id}/mayor/status`)).agent;
  const ws = new WebSocket(`${w.url.replace('http', 'ws')}/api/towns/${T.id}/agents/${mayor.id}/terminal`);
  let screen = '';
  ws.on('message', (d, bin) => { if (bin) screen += d.toString(); });
  await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  ws.send(Buffer.from('Write the docs\r'));
  await landed('Write the docs');
  await until(() => screen.includes('slung') && screen.includes('Write the docs'), { what: 'the mayor saying what it did' });
  ok(await api.post(`/api/towns/${T.id}/mayor/message`, { message: 'Fix the footer' }), 201);
  await landed('Fix the footer');
  await until(() => screen.includes('New mail from the overseer'), { what: 'the notice typed into the session' });
  ws.close();
  // Ensure is idempotent while it runs.
  assert.equal(ok(await api.post(`/api/towns/${T.id}/mayor/ensure`)).status, 'active');
});
