// `node bench/profile.mjs [op] [n]`: where one control-plane operation spends its time inside
// workerd. Starts our Worker (dev auth, no container), makes a town, a rig and a bead, then runs
// the op `n` times (default 500) under V8's sampling CPU profiler, attached over the inspector
// port `wrangler dev` opens. Prints the functions with the most self time (wasm functions carry
// their Rust names) and the share of wasm, JS, GC and idle. Ops: get-bead, list-beads,
// create-bead, update-status, create-town, send-mail, check-mail (a mail sent, then checked by a
// polecat: subtract send-mail), health. PROFILE_INCLUSIVE and PROFILE_CALLERS (regexes over
// function names) add the time in and below, and the callers of, matching functions. A tool for
// finding the next fix; it asserts nothing.
import { WebSocket } from 'ws';
import { startWorker, JWT_SECRET } from '../tests/lib/worker.mjs';
import { agentToken } from '../tests/lib/tokens.mjs';

const OP = process.argv[2] ?? 'get-bead';
const N = Number(process.argv[3] ?? 500);
const TOP = Number(process.env.PROFILE_TOP ?? 40);

const w = await startWorker({ vars: { GASTOWN_MAX_OPEN_BEADS_PER_TOWN: '10000000', GASTOWN_MAX_TOWNS_PER_USER: '100000', GASTOWN_MAX_AGENTS_PER_RIG: '100000', GASTOWN_DEV_USER_ID: 'dev' } });
try {
  const api = async (method, path, body, headers = {}) => {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
    const r = await fetch(w.url + path, init);
    const text = await r.text();
    if (r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    const j = JSON.parse(text);
    return j.data ?? j;
  };
  const town = await api('POST', '/api/users/dev/towns', { name: 'prof' });
  const rig = await api('POST', `/api/users/dev/rigs`, { town_id: town.id, name: 'r', git_url: 'https://github.com/bench/r.git' });
  const R = `/api/towns/${town.id}/rigs/${rig.id}`;
  const bead = await api('POST', `${R}/beads`, { title: 'b' });
  for (let i = 0; i < 99; i++) await api('POST', `${R}/beads`, { title: `b${i}` });
  // PROFILE_SLINGS=n: first sling n beads in the town (the container is unreachable, so their
  // dispatches keep failing and being retried): the op then runs in a busy town.
  for (let i = 0; i < Number(process.env.PROFILE_SLINGS ?? 0); i++) await api('POST', `${R}/sling`, { title: `s${i}` });
  const polecat = await api('POST', `${R}/agents`, { role: 'polecat' });
  const asPolecat = { authorization: `Bearer ${agentToken(JWT_SECRET, { town_id: town.id, rig_id: rig.id, agent_id: polecat.id, role: 'polecat' })}` };
  const sendMail = () => api('POST', `${R}/mail`, { to: polecat.id, subject: `m${k++}`, body: 'b' });
  let k = 0;
  const ops = {
    'send-mail': sendMail,
    'check-mail': async () => {
      await sendMail();
      await api('POST', `${R}/agents/${polecat.id}/mail/check`, undefined, asPolecat);
    },
    'health': () => api('GET', '/health'),
    'create-town': () => api('POST', '/api/users/dev/towns', { name: `t${k++}` }),
    'get-bead': () => api('GET', `${R}/beads/${bead.id}`),
    'list-beads': () => api('GET', `${R}/beads?limit=100`),
    'create-bead': () => api('POST', `${R}/beads`, { title: `p${k++}` }),
    'update-status': () => api('PATCH', `${R}/beads/${bead.id}/status`, { status: k++ % 2 ? 'open' : 'in_progress' }),
  };
  const op = ops[OP];
  if (!op) throw new Error(`unknown op ${OP}: one of ${Object.keys(ops).join(', ')}`);
  for (let i = 0; i < 50; i++) await op();

  const [target] = await (await fetch(`http://127.0.0.1:${w.inspectorPort}/json`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl, { maxPayload: 1 << 30 });
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  let id = 0;
  const pending = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  });
  const send = (method, params = {}) => new Promise((ok) => { const i = ++id; pending.set(i, ok); ws.send(JSON.stringify({ id: i, method, params })); });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: Number(process.env.PROFILE_INTERVAL_US ?? 100) });
  await send('Profiler.start');
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await op();
  const ms = performance.now() - t0;
  const { result } = await send('Profiler.stop');
  ws.close();

  const { nodes, samples, timeDeltas } = result.profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  samples.forEach((s, i) => {
    const n = byId.get(s);
    const dt = timeDeltas[i] ?? 0;
    total += dt;
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'}  ${f.url.split('/').pop()}${f.url.endsWith('.js') ? `:${f.lineNumber + 1}:${f.columnNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const kind = (k) => (k.startsWith('(idle)') ? 'idle' : k.startsWith('(garbage') ? 'gc' : k.startsWith('(program)') ? 'program' : /wasm|\$func|::/.test(k) ? 'wasm' : 'js');
  const kinds = {};
  for (const [k, v] of self) kinds[kind(k)] = (kinds[kind(k)] ?? 0) + v;
  console.log(`${OP}: ${N} requests in ${ms.toFixed(0)} ms (${(ms / N).toFixed(2)} ms each, end to end)`);
  console.log('share of samples:', Object.entries(kinds).map(([k, v]) => `${k} ${(100 * v / total).toFixed(1)}%`).join(', '));
  console.log('per request, µs:', Object.entries(kinds).map(([k, v]) => `${k} ${(v / N).toFixed(0)}`).join(', '));
  // PROFILE_INCLUSIVE=<regex>: also the time spent in, or below, each function whose name matches.
  if (process.env.PROFILE_INCLUSIVE) {
    const re = new RegExp(process.env.PROFILE_INCLUSIVE);
    const selfOf = new Map();
    samples.forEach((s, i) => selfOf.set(s, (selfOf.get(s) ?? 0) + (timeDeltas[i] ?? 0)));
    const parent = new Map();
    for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const incl = new Map();
    for (const [id, t] of selfOf) {
      const seen = new Set();
      for (let p = id; p !== undefined; p = parent.get(p)) {
        const name = byId.get(p).callFrame.functionName;
        if (re.test(name) && !seen.has(name)) {
          seen.add(name);
          incl.set(name, (incl.get(name) ?? 0) + t);
        }
      }
    }
    console.log('inclusive, µs/req:');
    for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${(v / N).toFixed(1).padStart(8)}  ${k.slice(0, 140)}`);
  }
  // PROFILE_CALLERS=<regex>: who calls the functions whose name matches (the five nearest
  // frames above each sample in one of them, by time).
  if (process.env.PROFILE_CALLERS) {
    const re = new RegExp(process.env.PROFILE_CALLERS);
    const parent = new Map();
    for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const stacks = new Map();
    samples.forEach((s, i) => {
      if (!re.test(byId.get(s).callFrame.functionName)) return;
      const chain = [];
      for (let p = parent.get(s); p !== undefined && chain.length < 5; p = parent.get(p)) {
        const f = byId.get(p).callFrame;
        chain.push(`${f.functionName || '(anonymous)'}${f.url.endsWith('.js') ? `:${f.lineNumber + 1}` : ''}`);
      }
      const key = chain.join(' < ');
      stacks.set(key, (stacks.get(key) ?? 0) + (timeDeltas[i] ?? 0));
    });
    console.log('callers, µs/req:');
    for (const [k, v] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`${(v / N).toFixed(1).padStart(8)}  ${k.slice(0, 220)}`);
  }
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`${(v / N).toFixed(1).padStart(8)} µs/req  ${(100 * v / total).toFixed(1).padStart(5)}%  ${k.slice(0, 140)}`);
  }
} finally {
  await w.stop();
}
