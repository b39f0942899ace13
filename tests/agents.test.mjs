// Real agent CLIs through the whole pipeline: claude, codex, opencode, gemini and kilo, installed
// from the npm registry at the versions pinned in container/agent-clis.json, each started by the
// container under a PTY as an agent uid with a prepared HOME, talking to a loopback stand-in for
// the model API (tests/lib/model-standin.mjs, the one part that cannot exist here). The stand-in
// plays a coding agent: it answers the CLI's real requests with shell tool calls that edit,
// commit and run `gt done`; the refinery merges; the commit lands on the bare repo's main. Then the
// failures a real user meets: CLI missing, key rejected, model endpoint errors, and a CLI that
// sits at a prompt nobody answers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import WebSocket from 'ws';
import { startWorker, ROOT } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, townOnRepo, until, git, CONTAINER_SECRET } from './lib/container.mjs';
import { startModelStandin, DEFAULT_SCRIPT } from './lib/model-standin.mjs';

const KEY = 'sk-standin-key-0123456789abcdefghij';
const RUNTIMES = {
  claude: { model: 'claude-sonnet-4-5', api: 'anthropic.messages' },
  codex: { model: 'gpt-5-codex', api: 'openai.responses' },
  opencode: { model: 'gastown/standin-model', api: 'openai.chat' },
  gemini: { model: 'gemini-2.5-pro', api: 'gemini.stream' },
  kilo: { model: 'openai/gpt-5', api: 'openai.responses' },
};

/** Installs the pinned CLIs (skipped when present) where every agent uid can run them. */
function installClis() {
  // Agents run as other uids: the cache must sit below folders they can pass through.
  const traversable = (p) => { for (let d = p; d !== dirname(d); d = dirname(d)) if (!(statSync(d).mode & 0o001)) return false; return true; };
  const env = { ...process.env, ...(traversable(ROOT) ? {} : { GASTOWN_AGENT_CLI_CACHE: '/var/tmp/gastown-agent-clis' }) };
  const out = execFileSync('bash', [join(ROOT, 'scripts/agent-clis.sh')], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 900_000 });
  return out.trim().split('\n').at(-1);
}

let c; let w; let api; let bin;
const models = [];
const repos = [];

before(async () => {
  bin = installClis();
  c = await startContainer({ agentPath: bin });
  w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  api = client(w.url);
});
after(async () => {
  await w?.stop();
  await c?.stop();
  for (const m of models) await m.stop();
  for (const r of repos) r.cleanup();
});

const box = (path, method = 'GET') => fetch(`${c.url}${path}`, { method, headers: { authorization: `Bearer ${CONTAINER_SECRET}` } }).then((r) => r.json());

/** A town whose polecats run `runtime` against a fresh stand-in. */
async function town(runtime, { key = KEY, script, config = {} } = {}) {
  const m = await startModelStandin({ key: KEY, script });
  models.push(m);
  const T = await townOnRepo(api, `${runtime}-${models.length}`);
  repos.push(T.repo);
  ok(await api.patch(`/api/towns/${T.T.id}/config`, {
    agent: { runtime, model: RUNTIMES[runtime]?.model ?? null },
    env_vars: { MODEL_API_KEY: key, MODEL_BASE_URL: m.url },
    ...config,
  }));
  const events = async (id) => ok(await api.get(`${T.R}/events?bead_id=${id}&limit=500`));
  const bead = async (id) => ok(await api.get(`${T.R}/beads/${id}`));
  const escalations = async () => ok(await api.get(`/api/towns/${T.T.id}/escalations`));
  return { ...T, m, events, bead, escalations };
}

/** Why a bead did not get where a test waited for it: its events and the agent's screen. */
async function explain(X, beadId, agentId, e) {
  const ev = (await X.events(beadId)).map((x) => `${x.event_type} ${x.new_value ?? ''} ${JSON.stringify(x.metadata).slice(0, 600)}`);
  const s = (await box('/sessions')).data.filter((x) => x.agent_id === agentId).at(-1);
  return new Error(`${e.message}\nevents:\n${ev.join('\n')}\nscreen:\n${s?.screen ?? '(not running)'}\nmodel requests: ${X.m.requests.map((r) => `${r.method} ${r.path} ${r.status ?? ''}`).join(', ')}\ncontainer log:\n${c.log().slice(-3000)}`);
}

describe('each real CLI: sling → CLI under the PTY → model stand-in → edit, commit, gt done → merged', () => {
  for (const [runtime, spec] of Object.entries(RUNTIMES)) {
    test(runtime, async () => {
      const X = await town(runtime);
      const s = ok(await api.post(`${X.R}/sling`, { title: `Add the ${runtime} feature`, body: `MARKER-${runtime}-body: make it so.` }), 201);
      try {
        await until(async () => (await X.bead(s.bead.id)).status === 'closed', { timeout: 240_000, what: `${runtime}'s work merged` });
      } catch (e) { throw await explain(X, s.bead.id, s.agent.id, e); }
      // The commit the CLI made through its shell tool is on main.
      assert.equal(git(X.repo.bare, 'show', `main:work/${s.bead.id}.txt`), `done by ${s.agent.name}`);
      // What the real CLI sent: its own API, the town's model and key, the bead inside the prompt.
      // `gt done` ran inside the tool call; the CLI then sends the tool's result back.
      await until(() => X.m.modelRequests().some((r) => r.step?.text), { timeout: 60_000, what: `${runtime} sending the tool result back` });
      const calls = X.m.modelRequests();
      assert.ok(calls.every((r) => r.api === spec.api), calls.map((r) => r.api).join());
      const model = spec.model.split('/').at(-1);
      assert.ok(calls.some((r) => r.model?.includes(model)), `model ${model}: ${calls.map((r) => r.model)}`);
      assert.ok(calls.every((r) => r.key === KEY));
      assert.ok(calls.some((r) => JSON.stringify(r.body).includes(`MARKER-${runtime}-body`)), 'the bead reached the model');
      assert.ok(calls.some((r) => r.step?.command?.includes('gt done')), 'the stand-in asked for gt done');
      const all = JSON.stringify(X.m.requests);
      for (const other of Object.keys(RUNTIMES).filter((o) => o !== runtime)) assert.ok(!all.includes(`MARKER-${other}-body`), `nothing of ${other}'s town`);
      // The CLI's own screen went through the PTY (what the terminal relay shows a person).
      const run = (await box(`/agents/${s.agent.id}/status`)).data;
      assert.ok(run.output_bytes > 500, `${runtime} drew its TUI: ${run.output_bytes} bytes`);
    });
  }
});

describe('failures a real user meets end in an escalation that names the cause', () => {
  test('a runtime whose CLI is not installed fails at once, with the fix', async () => {
    const bare = await startContainer();
    try {
      const w2 = await startWorker({ vars: { GASTOWN_CONTAINER_URL: bare.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
      try {
        const api2 = client(w2.url);
        const T = await townOnRepo(api2, 'no-cli');
        repos.push(T.repo);
        ok(await api2.patch(`/api/towns/${T.T.id}/config`, { agent: { runtime: 'claude' } }));
        const s = ok(await api2.post(`${T.R}/sling`, { title: 'needs claude' }), 201);
        await until(async () => ok(await api2.get(`${T.R}/beads/${s.bead.id}`)).status === 'failed', { what: 'the bead failed' });
        const ev = ok(await api2.get(`${T.R}/events?bead_id=${s.bead.id}&limit=100`));
        assert.equal(ev.filter((e) => e.event_type === 'dispatch_failed').length, 1, 'no retries: retrying cannot install it');
        const esc = ok(await api2.get(`/api/towns/${T.T.id}/escalations`));
        assert.ok(esc.some((e) => /`claude` CLI is not installed/.test(e.message) && /INSTALL_CLAUDE=1/.test(e.message)), JSON.stringify(esc));
      } finally { await w2.stop(); }
    } finally { await bare.stop(); }
  });

  test('a rejected key (401) and a failing endpoint (429, 500) are quoted from the screen; nothing loops', async () => {
    for (const [fault, key, words] of [['none', 'sk-wrong-key-000000000000000000', /401|invalid|api key|authentication/i], ['429', KEY, /429|rate|overloaded|try again|too many/i], ['500', KEY, /500|internal|error/i]]) {
      const X = await town('codex', { key, config: { witness: { stall_after_secs: 5, escalate_stall_after_secs: 5, tick_secs: 5 } } });
      if (fault !== 'none') X.m.setFault(fault);
      const s = ok(await api.post(`${X.R}/sling`, { title: `meets ${fault === 'none' ? 'a bad key' : fault}` }), 201);
      try {
        await until(async () => (await X.escalations()).length > 0, { timeout: 180_000, every: 2000, what: `an escalation for ${fault}` });
      } catch (e) { throw await explain(X, s.bead.id, s.agent.id, e); }
      const esc = await X.escalations();
      assert.ok(esc.some((e) => /last lines of its screen/.test(e.message) && words.test(e.message)), `${fault}: ${esc.map((e) => e.message).join('\n---\n')}`);
      // Bounded: the CLI's own retries aside, the town starts it at most MAX_ATTEMPTS (5) times.
      const spawned = (await X.events(s.bead.id)).filter((e) => e.event_type === 'agent_spawned').length;
      assert.ok(spawned >= 1 && spawned <= 5, `${fault}: started ${spawned} times`);
      assert.notEqual((await X.bead(s.bead.id)).status, 'closed');
      ok(await api.post(`${X.R}/beads/${s.bead.id}/close`, { reason: 'test over' }));
      await box(`/agents/${s.agent.id}/stop`, 'POST');
    }
  });

  test('an unreachable model endpoint and a CLI waiting at a prompt are escalated with what it shows', async () => {
    const X = await town('claude', { config: { witness: { stall_after_secs: 5, escalate_stall_after_secs: 5, tick_secs: 5 } } });
    await X.m.stop();
    models.splice(models.indexOf(X.m), 1);
    const s = ok(await api.post(`${X.R}/sling`, { title: 'talks to nobody' }), 201);
    try {
      await until(async () => (await X.escalations()).length > 0, { timeout: 180_000, every: 2000, what: 'an escalation' });
    } catch (e) { throw await explain(X, s.bead.id, s.agent.id, e); }
    const esc = await X.escalations();
    // claude shows the error and waits at its prompt: the witness quotes exactly that.
    assert.ok(esc.some((e) => /last lines of its screen/.test(e.message) && /Connection refused|ECONNREFUSED/i.test(e.message)), esc.map((e) => e.message).join('\n---\n'));
    ok(await api.post(`${X.R}/beads/${s.bead.id}/close`, { reason: 'test over' }));
    await box(`/agents/${s.agent.id}/stop`, 'POST');
  });
});

test('the mayor on claude: a request typed into its terminal becomes a slung bead through a real tool call', async () => {
  const script = (prompt) => (/PLEASE-SLING/.test(prompt) ? 'gt sling --rig app "Sling typed to the mayor"' : /You are a polecat/.test(prompt) ? DEFAULT_SCRIPT() : null);
  const X = await town('demo', { script, config: { agent: { runtime: 'demo', role_overrides: { mayor: { runtime: 'claude', model: 'claude-sonnet-4-5' } } } } });
  ok(await api.post(`/api/towns/${X.T.id}/mayor/ensure`));
  const mayor = await until(async () => {
    const st = ok(await api.get(`/api/towns/${X.T.id}/mayor/status`));
    return st.status === 'active' && st.agent ? st.agent : null;
  }, { timeout: 60_000, what: 'the mayor running' });
  // Its first turn (the role prompt) is answered before anything is typed.
  await until(() => X.m.modelRequests().length > 0, { timeout: 120_000, what: "the mayor's first model request" });
  const ws = new WebSocket(`${c.url.replace('http', 'ws')}/agents/${mayor.id}/pty?write=1`, { headers: { authorization: `Bearer ${CONTAINER_SECRET}` } });
  let screen = '';
  ws.on('message', (d, binary) => { if (binary) screen += d.toString(); });
  await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  try {
    // Its answer to the role prompt on screen: the TUI is back at its input box.
    await until(async () => (await box(`/agents/${mayor.id}/status`)).data.screen?.includes('Done: I ran'), { timeout: 60_000, what: "the mayor's first answer on screen" });
    ws.send(Buffer.from('PLEASE-SLING a greeting page'));
    // Text, then Enter on its own (as the container types nudges), once the TUI shows the text in
    // its input box: it took the text as typed input, and the Enter submits all of it.
    await until(async () => (await box(`/agents/${mayor.id}/status`)).data.screen?.includes('PLEASE-SLING a greeting page'), { timeout: 30_000, what: 'the typed text in its input box' });
    ws.send(Buffer.from('\r'));
    const bead = await until(async () => ok(await api.get(`${X.R}/beads?limit=50`)).find((b) => b.title === 'Sling typed to the mayor'), { timeout: 120_000, what: 'the slung bead' });
    assert.ok(X.m.modelRequests().some((r) => r.step?.command?.startsWith('gt sling')), 'a real tool call slung it');
    await until(async () => (await X.bead(bead.id)).status === 'closed', { timeout: 120_000, what: 'the slung work merged' });
  } catch (e) {
    throw new Error(`${e.message}\nscreen tail: ${screen.slice(-2000)}`);
  } finally { ws.close(); }
});
