// `npm run bench:api`: control-plane latency of our Worker, side by side with Kilo's TypeScript
// `cloudflare-gastown` Worker (the reference) when BENCH_REFERENCE_DIR points at a checkout of
// it. Both run on our pinned wrangler/workerd, at once, in development auth with the container
// unreachable (ours: no GASTOWN_CONTAINER_URL, so its TownContainerDO answers 503; the
// reference: no [[containers]] in its temporary config), and one keep-alive client (node's
// http, see lib/api-worker.mjs) sends them the same operations, round-robin over the operations and A/B alternating
// per sample, so drift on this shared machine hits both alike. Prints per operation the median,
// p95, the ratio to our own /health, and the ratio ours/reference (also net of each side's
// /health); requests go straight to each Worker's workerd, past the proxy `wrangler dev` puts in
// front (see lib/api-worker.mjs; a section at the end measures that shared hop); then cold start (the first
// request that reaches a Durable Object on a fresh workerd, median of BENCH_API_COLD starts),
// workerd RSS after a 1000-bead load, list flatness (100 of 100 vs 100 of BENCH_API_BIG), and the
// witness tick of a town with BENCH_API_BIG closed beads vs an empty town (ours only: the
// reference has no tick route, its witness is the alarm). Then the same table for our Worker in
// Cloudflare Access auth (a local JWKS), which the reference does not have.
//
// Knobs: BENCH_API_N samples per op (200), BENCH_API_WARMUP (20), BENCH_API_BIG beads of the
// big rig (10000), BENCH_API_COLD fresh starts (3), BENCH_API_ACCESS=0 skips the Access run,
// BENCH_API_DASHBOARD=0 the dashboard pass, BENCH_API_VIA=proxy times through wrangler's port,
// BENCH_API_CLIENT=fetch sends with node's fetch instead of node's http (lib/api-worker.mjs),
// BENCH_API_SETTLE=0 stops waiting for the Workers' processes to go quiet before each timed
// request, BENCH_API_FLOOR=0 leaves out the runtime floor (bench/floor-worker).
//
// Ours runs as an API Worker, like the reference: wrangler.toml without its [assets] table (see
// lib/api-worker.mjs); a last pass measures what the dashboard's asset routing adds under wrangler dev.
// The reference's code is never copied here: it is read from BENCH_REFERENCE_DIR at run time.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startWorker, freePort, JWT_SECRET, ROOT, WRANGLER } from '../tests/lib/worker.mjs';
import { descendants } from '../tests/lib/procs.mjs';
import { apiOnlyConfig, call, CLIENT, cpuLedger, settle, workerProcess, wranglerPids } from './lib/api-worker.mjs';
import { agentToken, startJwks, userToken, ACCESS_AUD } from '../tests/lib/tokens.mjs';

const N = Number(process.env.BENCH_API_N ?? 200);
const WARMUP = Number(process.env.BENCH_API_WARMUP ?? 20);
const BIG = Number(process.env.BENCH_API_BIG ?? 10_000);
// Beads created after the big rig's load, which the "events since a time" page returns.
const RECENT = 20;
const COLD = Number(process.env.BENCH_API_COLD ?? 3);
const ACCESS = process.env.BENCH_API_ACCESS !== '0';
const DASHBOARD = process.env.BENCH_API_DASHBOARD !== '0';
const VIA_PROXY = process.env.BENCH_API_VIA === 'proxy';
const SETTLE = process.env.BENCH_API_SETTLE !== '0';
const FLOOR = process.env.BENCH_API_FLOOR !== '0';
const REF_DIR = process.env.BENCH_REFERENCE_DIR ? resolve(process.env.BENCH_REFERENCE_DIR) : null;
// Parallel requests while loading beads: enough to keep the DO busy, few enough for 2 cores.
const LOAD_CONCURRENCY = 16;
// Our Worker's per-town limits would refuse the big load and the hundreds of slings and towns.
const NO_LIMITS = { GASTOWN_MAX_TOWNS_PER_USER: '100000', GASTOWN_MAX_OPEN_BEADS_PER_TOWN: '10000000', GASTOWN_MAX_AGENTS_PER_RIG: '100000' };
// Tokens live for the whole run (the Access default of 5 min would expire mid-run).
const LONG = { expiresIn: 6 * 3600 };

const log = (...a) => console.error('[bench:api]', ...a);
const tmp = mkdtempSync(join(tmpdir(), 'gastown-bench-api-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

// ---- load --------------------------------------------------------------------------------------

/** Runs `fn(i)` for i in [0, n) with at most `conc` in flight. */
async function pool(n, conc, fn) {
  let next = 0;
  const out = new Array(n);
  await Promise.all(Array.from({ length: Math.min(conc, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

const workerdRssKb = (w) => descendants(w.pid).filter((p) => p.comm === 'workerd').reduce((s, p) => s + p.rssKb, 0);
const iso = (ms) => new Date(ms).toISOString();
/** A list answer that must hold something (an empty one would mean the op found nothing to read). */
const some = (list) => {
  if (!Array.isArray(list) || !list.length) throw new Error(`expected a non-empty list, got ${JSON.stringify(list)?.slice(0, 200)}`);
  return list;
};

// ---- the two systems ---------------------------------------------------------------------------
// Each maps the benchmark's operations to its own routes and bodies. Ours: src/router.rs.
// The reference: its src/gastown.worker.ts (rig routes need no token in development).

/** Our Worker; `dashboard: true` runs it from wrangler.toml itself, assets and all. */
function ours({ mode = 'dev', jwks, dashboard = false } = {}) {
  const user = mode === 'access' ? 'bench-sub' : 'bench';
  const userHeaders = mode === 'access' ? { 'cf-access-jwt-assertion': userToken(jwks.team, user, undefined, LONG) } : {};
  // In dev auth the operator is the bench user, so its towns are its own, as a person's always
  // are under Access (the dev operator creating a town for another user id takes a slower path).
  const vars = mode === 'access'
    ? { ...NO_LIMITS, GASTOWN_AUTH: 'access', ENVIRONMENT: 'production', CF_ACCESS_TEAM_DOMAIN: jwks.team, CF_ACCESS_AUD: ACCESS_AUD }
    : { ...NO_LIMITS, GASTOWN_DEV_USER_ID: user };
  let url;
  const u = (m, p, b) => call(url, m, p, b, userHeaders);
  const R = (t, r) => `/api/towns/${t.id}/rigs/${r.id}`;
  return {
    name: mode === 'access' ? 'ours (Access)' : dashboard ? 'ours + assets' : 'ours',
    async start() {
      const config = dashboard ? undefined : apiOnlyConfig(tmp);
      const w = await startWorker({ vars, config, dir: join(tmp, `ours-${mode}-${Date.now()}`) });
      ({ url: w.direct, pid: w.workerdPid } = await workerProcess(w));
      url = VIA_PROXY ? w.url : w.direct;
      return w;
    },
    firstDoPath: `/api/users/${user}/towns`,
    firstDoHeaders: userHeaders,
    health: () => call(url, 'GET', '/health'),
    createTown: (name) => u('POST', `/api/users/${user}/towns`, { name }),
    createRig: (t, name) => u('POST', `/api/users/${user}/rigs`, { town_id: t.id, name, git_url: `https://github.com/bench/${name}.git` }),
    createBead: (t, r, title) => u('POST', `${R(t, r)}/beads`, { title }),
    getBead: (t, r, b) => u('GET', `${R(t, r)}/beads/${b.id}`),
    listBeads: (t, r, limit) => u('GET', `${R(t, r)}/beads?limit=${limit}`),
    setStatus: (t, r, b, status) => u('PATCH', `${R(t, r)}/beads/${b.id}/status`, { status }),
    sling: (t, r, title) => u('POST', `${R(t, r)}/sling`, { title }),
    events: (t, limit) => u('GET', `/api/towns/${t.id}/events?limit=${limit}`),
    // The events stamped after `afterMs` (ours takes `since` inclusively).
    eventsSince: (t, afterMs, limit) => u('GET', `/api/towns/${t.id}/events?since=${iso(afterMs + 1)}&limit=${limit}`),
    beadEvents: (t, r, b) => u('GET', `${R(t, r)}/events?bead_id=${b.id}&limit=100`).then(some),
    registerAgent: (t, r) => u('POST', `${R(t, r)}/agents`, { role: 'polecat' }),
    sendMail: (t, r, from, to, i) => u('POST', `${R(t, r)}/mail`, { to: to.id, subject: `s${i}`, body: 'b' }),
    /** The agent's own `gt mail check` (takes the unread mail, marked read), with its JWT. */
    async checkMail(t, r, agent) {
      const h = { authorization: `Bearer ${agent.token ??= agentToken(JWT_SECRET, { town_id: t.id, rig_id: r.id, agent_id: agent.id, role: 'polecat' }, LONG)}` };
      const taken = await call(url, 'POST', `${R(t, r)}/agents/${agent.id}/mail/check`, undefined, h);
      if (!taken.length) throw new Error('no unread mail');
    },
    witnessTick: (t) => u('POST', `/api/towns/${t.id}/witness/tick`),
  };
}

function reference(dir) {
  const user = 'bench';
  let url;
  const u = (m, p, b) => call(url, m, p, b);
  const R = (t, r) => `/api/towns/${t.id}/rigs/${r.id}`;
  let config;
  return {
    name: 'TS ref',
    async start() {
      config ??= referenceConfig(dir);
      const port = await freePort();
      const w = await startWorker({
        gastown: false,
        cwd: dir,
        config,
        port,
        dir: join(tmp, `ref-${Date.now()}`),
        // Its JWT secret as a plain string (its code accepts one in place of a Secrets Store
        // binding); Kilo's API unreachable, so nothing leaves the machine.
        vars: { GASTOWN_JWT_SECRET: JWT_SECRET, GASTOWN_API_URL: `http://127.0.0.1:${port}`, KILO_API_URL: 'http://127.0.0.1:9' },
        readyTimeoutMs: 120_000,
        logLimit: 20_000,
      });
      ({ url: w.direct, pid: w.workerdPid } = await workerProcess(w));
      url = VIA_PROXY ? w.url : w.direct;
      return w;
    },
    firstDoPath: `/api/users/${user}/towns`,
    firstDoHeaders: {},
    health: () => call(url, 'GET', '/health'),
    createTown: (name) => u('POST', `/api/users/${user}/towns`, { name }),
    createRig: (t, name) => u('POST', `/api/users/${user}/rigs`, { town_id: t.id, name, git_url: `https://github.com/bench/${name}.git` }),
    createBead: (t, r, title) => u('POST', `${R(t, r)}/beads`, { type: 'issue', title }).then((b) => ({ ...b, id: b.bead_id })),
    getBead: (t, r, b) => u('GET', `${R(t, r)}/beads/${b.id}`),
    listBeads: (t, r, limit) => u('GET', `${R(t, r)}/beads?limit=${limit}`),
    // Its body names the acting agent (checked against the token outside development).
    setStatus: (t, r, b, status, agent) => u('PATCH', `${R(t, r)}/beads/${b.id}/status`, { status, agent_id: agent.id }),
    sling: (t, r, title) => u('POST', `${R(t, r)}/sling`, { title }),
    // Its town-wide event feed lives under the user's route.
    events: (t, limit) => u('GET', `/api/users/${user}/towns/${t.id}/events?limit=${limit}`),
    // Its `since` is exclusive (`created_at > ?`), newest first.
    eventsSince: (t, afterMs, limit) => u('GET', `/api/users/${user}/towns/${t.id}/events?since=${iso(afterMs)}&limit=${limit}`),
    beadEvents: (t, r, b) => u('GET', `${R(t, r)}/events?bead_id=${b.id}&limit=100`).then(some),
    registerAgent: (t, r) => {
      const name = `bench-${Math.random().toString(36).slice(2, 10)}`;
      return u('POST', `${R(t, r)}/agents`, { role: 'polecat', name, identity: name });
    },
    sendMail: (t, r, from, to, i) => u('POST', `${R(t, r)}/mail`, { from_agent_id: from.id, to_agent_id: to.id, subject: `s${i}`, body: 'b' }),
    // Its check returns the undelivered mail and marks it delivered in the same call: that call
    // is its whole "check mail + mark read".
    async checkMail(t, r, agent) {
      const inbox = await u('GET', `${R(t, r)}/agents/${agent.id}/mail`);
      if (!inbox.length) throw new Error('no unread mail');
    },
    witnessTick: null,
  };
}

/**
 * The runtime floor (bench/floor-worker): a plain JS Worker doing the least each op needs, one
 * RPC call to a SQLite Durable Object running only the op's own statements. Timed alongside, it
 * says what this runtime charges for a request of each kind before any application logic, so a
 * ratio to the reference can be read against the best any Worker could do here.
 */
function floor() {
  let url;
  const u = (m, p, b) => call(url, m, p, b);
  const R = (t, r) => `/towns/${t.id}/rigs/${r.id}`;
  return {
    name: 'floor',
    async start() {
      const w = await startWorker({ gastown: false, cwd: join(ROOT, 'bench', 'floor-worker'), dir: join(tmp, `floor-${Date.now()}`) });
      ({ url: w.direct, pid: w.workerdPid } = await workerProcess(w));
      url = VIA_PROXY ? w.url : w.direct;
      return w;
    },
    health: () => call(url, 'GET', '/health'),
    createTown: (name) => u('POST', '/users/bench', { name }),
    createRig: (t, name) => u('POST', `/towns/${t.id}/rigs`, { name }),
    createBead: (t, r, title) => u('POST', `${R(t, r)}/beads`, { title }),
    getBead: (t, r, b) => u('GET', `${R(t, r)}/beads/${b.id}`),
    listBeads: (t, r, limit) => u('GET', `${R(t, r)}/beads?limit=${limit}`),
    setStatus: (t, r, b, status) => u('PATCH', `${R(t, r)}/beads/${b.id}/status`, { status }),
    sling: (t, r, title) => u('POST', `${R(t, r)}/sling`, { title }),
    events: (t, limit) => u('GET', `/towns/${t.id}/events?limit=${limit}`),
    eventsSince: (t, afterMs, limit) => u('GET', `/towns/${t.id}/events?since=${iso(afterMs + 1)}&limit=${limit}`),
    beadEvents: (t, r, b) => u('GET', `${R(t, r)}/events?bead_id=${b.id}&limit=100`).then(some),
    registerAgent: (t, r) => u('POST', `${R(t, r)}/agents`, {}),
    sendMail: (t, r, from, to, i) => u('POST', `${R(t, r)}/mail`, { to: to.id, subject: `s${i}` }),
    async checkMail(t, r, agent) {
      const taken = await u('POST', `${R(t, r)}/agents/${agent.id}/mail/check`);
      if (!taken.length) throw new Error('no unread mail');
    },
    witnessTick: null,
  };
}

// ---- the reference checkout: install, temporary config ------------------------------------------

/** A JSON-with-comments file as an object (comments outside strings, trailing commas). */
function parseJsonc(text) {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2) + 1;
    } else out += c;
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
}

const mtime = (p) => statSync(p).mtimeMs;

/**
 * Installs the reference's npm dependencies at its lockfile's versions when node_modules is
 * missing or older than the lockfile. Kilo's monorepo locks every package in one pnpm lockfile at
 * its root (its packages refuse npm), so: the pnpm version its root package.json names, a
 * frozen-lockfile install filtered to this folder, production dependencies only (its dev
 * dependencies are its own wrangler and test tools; we run our pinned wrangler), no install
 * scripts. A folder with its own package-lock.json gets `npm ci`.
 */
function installReference(dir) {
  const nm = join(dir, 'node_modules');
  let cmd;
  let lock;
  if (existsSync(join(dir, 'package-lock.json'))) {
    lock = join(dir, 'package-lock.json');
    cmd = { file: 'npm', args: ['ci', '--no-audit', '--no-fund', '--ignore-scripts', '--omit=dev'], cwd: dir };
  } else {
    let root = dir;
    while (!existsSync(join(root, 'pnpm-lock.yaml')) && dirname(root) !== root) root = dirname(root);
    lock = join(root, 'pnpm-lock.yaml');
    if (!existsSync(lock)) throw new Error(`no lockfile: neither ${dir}/package-lock.json nor a pnpm-lock.yaml in ${dir} or above it (clone the whole repository, see README "Benchmarks")`);
    const pm = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager ?? '';
    const version = /^pnpm@([0-9][^+]*)/.exec(pm)?.[1];
    if (!version) throw new Error(`${root}/package.json names no pnpm version in "packageManager" (${JSON.stringify(pm)})`);
    cmd = { file: 'npx', args: ['-y', `pnpm@${version}`, 'install', '--frozen-lockfile', '--prod', '--ignore-scripts', '--filter', `./${relative(root, dir)}`], cwd: root };
  }
  if (existsSync(nm) && mtime(nm) >= mtime(lock)) return `node_modules up to date with ${lock}`;
  log(`installing the reference's dependencies: (in ${cmd.cwd}) ${cmd.file} ${cmd.args.join(' ')}`);
  try {
    execFileSync(cmd.file, cmd.args, { cwd: cmd.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' }, maxBuffer: 64 << 20 });
  } catch (e) {
    throw new Error(`installing its dependencies failed (${cmd.file} ${cmd.args.join(' ')}):\n${String(e.stderr ?? e.message).slice(-2000)}`);
  }
  // pnpm leaves the folder's mtime alone when nothing changed: mark it as installed now.
  const now = new Date();
  utimesSync(nm, now, now);
  return `installed from ${lock}`;
}

/**
 * A temporary wrangler config for the reference, made from its own wrangler.jsonc: the same entry
 * point, compatibility date and flags, Durable Objects and migrations; without containers (so the
 * container is unreachable, as for ours), routes, Smart Placement and the Secrets Store (its JWT
 * secret comes as a plain variable); ENVIRONMENT=development, its development auth bypass (no
 * Cloudflare Access, no agent-token checks on rig routes).
 */
function referenceConfig(dir) {
  const src = parseJsonc(readFileSync(join(dir, 'wrangler.jsonc'), 'utf8'));
  const cfg = {
    name: 'gastown-reference',
    main: resolve(dir, src.main),
    compatibility_date: src.compatibility_date,
    compatibility_flags: src.compatibility_flags,
    durable_objects: src.durable_objects,
    migrations: src.migrations,
    vars: { ...src.vars, ENVIRONMENT: 'development' },
  };
  // Kept out of its checkout: wrangler writes its .wrangler/ folder beside the config.
  const file = join(tmp, 'reference-wrangler.json');
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

/** Why the reference cannot run here, or null (installs its dependencies when needed; a failed start is reported later). */
function checkReference(dir) {
  if (!existsSync(join(dir, 'wrangler.jsonc')) || !existsSync(join(dir, 'src', 'gastown.worker.ts'))) {
    return `${dir} is not the cloudflare-gastown folder (no wrangler.jsonc and src/gastown.worker.ts)`;
  }
  try {
    log(installReference(dir));
  } catch (e) {
    return e.message;
  }
  return null;
}

// ---- statistics and tables ---------------------------------------------------------------------

const median = (a) => quantile(a, 0.5);
function quantile(a, q) {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (pos - lo);
}
const ms = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

// ---- one side: state to measure against ----------------------------------------------------------

/**
 * Towns and rigs the operations read and write, made the same way on each side:
 * a 1000-bead rig (RSS is read right after it), a rig of exactly 100, a scratch rig for writes,
 * a sling rig, two agents for mail, and a separate town with a rig of BIG beads.
 */
async function prepare(sys, w) {
  // The Worker's workerd (its CPU per op), and every process of its wrangler (to wait for quiet).
  const c = { sys, pid: w.workerdPid, procs: wranglerPids(w) };
  const t0 = performance.now();
  c.town = await sys.createTown(`bench-main-${Date.now()}`);
  c.r1k = await sys.createRig(c.town, 'r1k');
  await pool(1000, LOAD_CONCURRENCY, (i) => sys.createBead(c.town, c.r1k, `thousand ${i}`));
  c.rssAfter1kKb = workerdRssKb(w);
  c.r100 = await sys.createRig(c.town, 'r100');
  c.b100 = await pool(100, LOAD_CONCURRENCY, (i) => sys.createBead(c.town, c.r100, `hundred ${i}`));
  c.scratch = await sys.createRig(c.town, 'scratch');
  c.slingRig = await sys.createRig(c.town, 'sling');
  c.from = await sys.registerAgent(c.town, c.scratch);
  c.to = await sys.registerAgent(c.town, c.scratch);
  c.statusBead = await sys.createBead(c.town, c.scratch, 'status flips');
  c.status = 'open';
  log(`${sys.name}: main town ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (workerd RSS after the 1000-bead load: ${(c.rssAfter1kKb / 1024).toFixed(1)} MB)`);
  const t1 = performance.now();
  c.bigTown = await sys.createTown(`bench-big-${Date.now()}`);
  c.big = await sys.createRig(c.bigTown, 'big');
  c.bigBeads = await pool(BIG, LOAD_CONCURRENCY, (i) => sys.createBead(c.bigTown, c.big, `big ${i}`));
  c.bigLoadS = (performance.now() - t1) / 1000;
  log(`${sys.name}: ${BIG} beads loaded in ${c.bigLoadS.toFixed(1)} s`);
  // Then RECENT more, stamped after every bead of the load: the page of the events since then
  // holds exactly those, at the end of a history of BIG.
  c.bigCutMs = Math.max(...c.bigBeads.map((b) => Date.parse(b.created_at)));
  while (Date.now() <= c.bigCutMs + 1) await new Promise((r) => setTimeout(r, 2));
  for (let i = 0; i < RECENT; i++) {
    const b = await sys.createBead(c.bigTown, c.big, `recent ${i}`);
    if (!(Date.parse(b.created_at) > c.bigCutMs)) throw new Error(`${sys.name}: a recent bead stamped ${b.created_at}, not after the load's last ${iso(c.bigCutMs)}`);
  }
  return c;
}

/** The little the dashboard pass needs: a rig of 100 beads, a scratch rig, an agent. */
async function prepareSmall(sys, w) {
  const c = { sys, pid: w.workerdPid, procs: wranglerPids(w) };
  c.town = await sys.createTown(`bench-small-${Date.now()}`);
  c.r100 = await sys.createRig(c.town, 'r100');
  c.b100 = await pool(100, LOAD_CONCURRENCY, (i) => sys.createBead(c.town, c.r100, `hundred ${i}`));
  c.scratch = await sys.createRig(c.town, 'scratch');
  c.from = await sys.registerAgent(c.town, c.scratch);
  c.statusBead = await sys.createBead(c.town, c.scratch, 'status flips');
  c.status = 'open';
  return c;
}

/** The measured operations: `run(c, i)` does one sample; `before` does untimed set-up for it. */
const OPS = [
  { name: 'health', run: (c) => c.sys.health() },
  { name: 'create town', run: (c, i) => c.sys.createTown(`t${i}-${Math.random().toString(36).slice(2, 8)}`) },
  { name: 'create bead', run: (c, i) => c.sys.createBead(c.town, c.scratch, `bead ${i}`) },
  { name: 'get bead', run: (c, i) => c.sys.getBead(c.town, c.r100, c.b100[(i + 1000) % 100]) },
  { name: 'list 100 of 100 beads', run: (c) => c.sys.listBeads(c.town, c.r100, 100) },
  { name: `list 100 of ${BIG} beads`, run: (c) => c.sys.listBeads(c.bigTown, c.big, 100) },
  { name: 'list 500 of 1000 beads', run: (c) => c.sys.listBeads(c.town, c.r1k, 500) },
  {
    name: 'update status',
    run: async (c) => {
      c.status = c.status === 'open' ? 'in_progress' : 'open';
      await c.sys.setStatus(c.town, c.scratch, c.statusBead, c.status, c.from);
    },
  },
  { name: 'sling', run: (c, i) => c.sys.sling(c.town, c.slingRig, `slung ${i}`) },
  { name: 'list events (100)', run: (c) => c.sys.events(c.town, 100) },
  { name: 'list events (500)', run: (c) => c.sys.events(c.town, 500) },
  // One bead's events (its creation) among the big rig's: flat only when read through an index.
  { name: `events of 1 bead of ${BIG}`, run: (c, i) => c.sys.beadEvents(c.bigTown, c.big, c.bigBeads[Math.abs(i * 7919) % c.bigBeads.length]) },
  // The last few events of a long history, asked by time (a client catching up after a while).
  {
    name: `events since a time (${RECENT} of ${BIG})`,
    run: async (c) => {
      const page = await c.sys.eventsSince(c.bigTown, c.bigCutMs, 100);
      if (page.length !== RECENT) throw new Error(`${c.sys.name}: ${page.length} events since the cut, expected ${RECENT}`);
    },
  },
  {
    name: 'check mail + mark read',
    // One new message per sample, sent untimed, so each check finds exactly one unread.
    before: (c, i) => c.sys.sendMail(c.town, c.scratch, c.from, c.to, i),
    run: (c) => c.sys.checkMail(c.town, c.scratch, c.to),
  },
];

/**
 * Warm-up, then N samples of every op, round-robin; the sides alternate who goes first.
 * Alongside the latencies, each side's workerd CPU time per op (`samples[k].cpu[op]`, ns summed
 * over the N samples): from just before an op's request to just before that side's next
 * request, so work a Worker does after answering (a drive loop, a flush) counts to the op that
 * caused it; an op's untimed set-up (`before`) counts to nothing.
 */
async function measure(ctxs, ops = OPS) {
  const samples = ctxs.map(() => Object.fromEntries(ops.map((o) => [o.name, []])));
  const ledger = cpuLedger(ctxs.map((c) => c.pid));
  const pids = ctxs.flatMap((c) => c.procs);
  const settled = { n: 0, late: 0 };
  for (let i = -WARMUP; i < N; i++) {
    for (const op of ops) {
      const order = ctxs.map((_, k) => k);
      if (((i % 2) + 2) % 2 === 1) order.reverse();
      for (const k of order) {
        const c = ctxs[k];
        ledger.mark(k, null);
        if (op.before) await op.before(c, i);
        if (SETTLE) {
          settled.n++;
          if (!(await settle(pids))) settled.late++;
        }
        ledger.mark(k, i >= 0 ? op.name : null);
        const t = performance.now();
        await op.run(c, i);
        const dt = performance.now() - t;
        if (i >= 0) samples[k][op.name].push(dt);
      }
    }
    if (i >= 0 && (i + 1) % 50 === 0) log(`${i + 1}/${N} samples`);
  }
  ctxs.forEach((_, k) => ledger.mark(k, null));
  samples.forEach((s, k) => { s.cpu = ledger.totals[k]; });
  if (SETTLE) log(`waited for quiet before ${settled.n} requests, ${settled.late} did not settle within 250 ms`);
  return samples;
}

/**
 * Per op: median, p95 and ratio to /health; with the reference, its median and p95, the ratio of
 * the medians, and the same ratio net of each side's own /health median (the request's way
 * through wrangler's proxy and the Worker's entry, which both pay alike: what is left is the
 * op's own cost); and each side's workerd CPU per op with their ratio.
 */
function opTable(names, samples, ops = OPS) {
  const health = median(samples[0].health);
  // workerd CPU per sample of the op, ms (see measure); '—' where the pid was not known.
  const cpu = (k, name) => (samples[k].cpu && samples[k][name].length ? samples[k].cpu[name] / samples[k][name].length / 1e6 : NaN);
  const head = ['op', `${names[0]} median ms`, 'p95 ms', '×/health', 'CPU ms'];
  if (samples.length > 1) head.push(`${names[1]} median ms`, 'p95 ms', 'CPU ms', `${names[0]}/${names[1]}`, 'net of /health', 'CPU ratio');
  const rows = ops.map((o) => {
    const a = samples[0][o.name];
    const row = [o.name, ms(median(a)), ms(quantile(a, 0.95)), ratio(median(a), health), ms(cpu(0, o.name))];
    if (samples.length > 1) {
      const b = samples[1][o.name];
      const net = o.name === 'health' ? '—' : ratio(median(a) - health, median(b) - median(samples[1].health));
      row.push(ms(median(b)), ms(quantile(b, 0.95)), ms(cpu(1, o.name)), ratio(median(a), median(b)), net, ratio(cpu(0, o.name), cpu(1, o.name)));
    }
    return row;
  });
  return table(head, rows);
}

/**
 * Per op: the floor's median and CPU, each side's median over the floor's, and — with the
 * reference — the floor's over the reference's: the lowest ours/TS ratio any Worker could
 * reach here, since no implementation of the op does less than the floor does.
 */
function floorTable(names, samples, f) {
  const cpu = (s, name) => s.cpu[name] / s[name].length / 1e6;
  const head = ['op', 'floor median ms', 'CPU ms', ...names.map((n) => `${n}/floor`)];
  if (samples.length > 1) head.push(`floor/${names[1]}`);
  return table(head, OPS.map((o) => {
    const m = median(f[o.name]);
    const row = [o.name, ms(m), ms(cpu(f, o.name)), ...samples.map((s) => ratio(median(s[o.name]), m))];
    if (samples.length > 1) row.push(ratio(m, median(samples[1][o.name])));
    return row;
  }));
}

/** Closes every bead of the big town, then times witness ticks there vs in an empty town. */
async function witness(c) {
  const t0 = performance.now();
  await pool(c.bigBeads.length, LOAD_CONCURRENCY, (i) => c.sys.setStatus(c.bigTown, c.big, c.bigBeads[i], 'closed'));
  log(`${c.sys.name}: ${c.bigBeads.length} beads closed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const empty = await c.sys.createTown(`bench-empty-${Date.now()}`);
  const ops = [
    { name: 'witness tick, empty town', run: () => c.sys.witnessTick(empty) },
    { name: `witness tick, ${BIG} closed beads`, run: () => c.sys.witnessTick(c.bigTown) },
  ];
  const [s] = await measure([c], ops);
  const e = median(s[ops[0].name]);
  const b = median(s[ops[1].name]);
  return table(['op', 'median ms', 'p95 ms', '×empty'], ops.map((o) => [o.name, ms(median(s[o.name])), ms(quantile(s[o.name], 0.95)), ratio(median(s[o.name]), e)]))
    + `\nwitness tick with ${BIG} closed beads / empty town: ${ratio(b, e)} (goal ≤ 1.2×)`;
}

function flatness(names, samples) {
  return names.map((n, k) => {
    const a = median(samples[k]['list 100 of 100 beads']);
    const b = median(samples[k][`list 100 of ${BIG} beads`]);
    return `${n}: list 100 of 100 ${ms(a)} ms, list 100 of ${BIG} ${ms(b)} ms → ${ratio(b, a)}`;
  }).join('\n');
}

/**
 * /health through wrangler's port and straight to the Worker, interleaved, per side. A side
 * that stops answering (its wrangler gone after a long run) is reported, not fatal: this
 * section comes after every figure the goals name.
 */
async function proxyHop(sides, workers) {
  const t = workers.map(() => ({ proxy: [], direct: [], failed: null }));
  for (let i = -WARMUP; i < N; i++) {
    for (let k = 0; k < workers.length; k++) {
      if (t[k].failed) continue;
      for (const via of i % 2 ? ['direct', 'proxy'] : ['proxy', 'direct']) {
        const t0 = performance.now();
        try {
          await call(via === 'proxy' ? workers[k].url : workers[k].direct, 'GET', '/health');
        } catch (e) {
          t[k].failed = `${via}: ${e.message}`;
          break;
        }
        if (i >= 0) t[k][via].push(performance.now() - t0);
      }
    }
  }
  return table(['worker', 'through the proxy ms', 'direct ms', 'the hop ms'], sides.map((s, k) => {
    if (t[k].failed) return [s.name, `not measured (${t[k].failed})`, '', ''];
    const [p, d] = [median(t[k].proxy), median(t[k].direct)];
    return [s.name, ms(p), ms(d), ms(p - d)];
  }));
}

// ---- cold start --------------------------------------------------------------------------------

/** Fresh workerd (new storage), /health answers, then the first request that reaches a DO. */
async function coldStart(sys) {
  const t = performance.now();
  const w = await sys.start();
  const ready = performance.now() - t;
  try {
    const t1 = performance.now();
    await call(w.url, 'GET', sys.firstDoPath, undefined, sys.firstDoHeaders);
    return { firstDo: performance.now() - t1, ready };
  } finally {
    await w.stop();
  }
}

// ---- main --------------------------------------------------------------------------------------

const out = [];
const print = (s = '') => { out.push(s); console.log(s); };

const commit = (() => { try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return '?'; } })();
const wranglerVersion = (() => { try { return execFileSync(WRANGLER, ['--version'], { encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } }).trim().split('\n').pop(); } catch { return '?'; } })();

let ref = null;
let refWhy = 'BENCH_REFERENCE_DIR is not set';
if (REF_DIR) {
  refWhy = checkReference(REF_DIR);
  if (!refWhy) ref = reference(REF_DIR);
}

print(`# bench:api — ${new Date().toISOString().slice(0, 10)}, commit ${commit}, wrangler ${wranglerVersion}, N=${N} (warm-up ${WARMUP}), big rig ${BIG} beads, ${COLD} cold starts, client ${CLIENT}`);
if (!ref) print(`reference: not measured — ${refWhy}`);
else print(`reference: ${REF_DIR}`);

// Cold starts first, on an otherwise idle machine; the sides alternate.
const cold = { ours: [], ref: [] };
const dev = ours();
for (let i = 0; i < COLD; i++) {
  cold.ours.push(await coldStart(dev));
  if (ref) {
    try {
      cold.ref.push(await coldStart(ref));
    } catch (e) {
      refWhy = `it did not start: ${e.message.slice(0, 1500)}`;
      print(`reference: not measured — ${refWhy}`);
      ref = null;
    }
  }
}

// Dev auth, all sides at once (the floor, when measured, is the last).
const sides = [dev, ...(ref ? [ref] : []), ...(FLOOR ? [floor()] : [])];
const workers = [];
const ctxs = [];
try {
  for (const s of sides) workers.push(await s.start());
  for (let k = 0; k < sides.length; k++) ctxs.push(await prepare(sides[k], workers[k]));
  const names = sides.map((s) => s.name);
  const samples = await measure(ctxs);
  const real = FLOOR ? sides.length - 1 : sides.length;
  print();
  print(`## Dev auth${ref ? ', ours vs the TypeScript reference (same workerd, interleaved A/B)' : ''}`);
  print(opTable(names.slice(0, real), samples.slice(0, real)));
  if (FLOOR) {
    print();
    print('## The runtime floor (bench/floor-worker: one RPC to a SQLite DO running only the op\'s statements), timed in the same rounds');
    print(floorTable(names.slice(0, real), samples.slice(0, real), samples[real]));
  }
  print();
  print('## Cold start (first request reaching a Durable Object after /health answers; median of fresh starts)');
  const coldRow = (name, a) => [name, ms(median(a.map((x) => x.firstDo))), a.map((x) => ms(x.firstDo)).join(' / '), ms(median(a.map((x) => x.ready)))];
  const coldRows = [coldRow('ours', cold.ours)];
  if (cold.ref.length === cold.ours.length && ref) coldRows.push(coldRow('TS ref', cold.ref));
  print(table(['worker', 'first DO request ms', 'each start', 'spawn → /health ms'], coldRows));
  if (coldRows.length > 1) print(`cold start ours/TS: ${ratio(median(cold.ours.map((x) => x.firstDo)), median(cold.ref.map((x) => x.firstDo)))} (goal ≤ 1.2×)`);
  print();
  print('## workerd RSS after the 1000-bead load (sum over the workerd processes of each wrangler)');
  print(ctxs.map((c) => `${c.sys.name}: ${(c.rssAfter1kKb / 1024).toFixed(1)} MB`).join('\n'));
  if (ref) print(`RSS ours/TS: ${ratio(ctxs[0].rssAfter1kKb, ctxs[1].rssAfter1kKb)} (goal ≤ 1×)`);
  print(`after the whole run: ${workers.map((w, k) => `${sides[k].name} ${(workerdRssKb(w) / 1024).toFixed(1)} MB`).join(', ')}`);
  print();
  print('## List flatness (list 100 of 100 vs 100 of the big rig)');
  print(flatness(names, samples));
  print(`bead load time (${BIG} beads, ${LOAD_CONCURRENCY} in flight): ${ctxs.map((c) => `${c.sys.name} ${c.bigLoadS.toFixed(1)} s`).join(', ')}`);
  print();
  print('## Witness tick (ours; the reference has no tick route)');
  print(await witness(ctxs[0]));
  print();
  print('## wrangler\'s proxy hop (/health through wrangler\'s port vs the Worker\'s own socket; the tables above use the latter)');
  print(await proxyHop(sides, workers));
} finally {
  for (const w of workers) await w.stop();
}

// Access auth: ours only (the reference has no Access mode to compare with).
if (ACCESS) {
  const jwks = await startJwks();
  const acc = ours({ mode: 'access', jwks });
  let w;
  try {
    w = await acc.start();
    const c = await prepare(acc, w);
    const samples = await measure([c]);
    print();
    print('## Access auth (ours only; a local JWKS, RS256 user tokens, agent JWTs)');
    print(opTable([acc.name], samples));
    print(flatness([acc.name], samples));
    print(`workerd RSS after the 1000-bead load: ${(c.rssAfter1kKb / 1024).toFixed(1)} MB`);
  } finally {
    await w?.stop();
    await jwks.stop();
  }
}

// The dashboard's asset routing: the same Worker run from wrangler.toml as it is (what `npm run
// dev` serves), against the API-only copy every table above measures, on a few ops.
if (DASHBOARD) {
  const pair = [ours(), ours({ dashboard: true })];
  const ws = [];
  try {
    for (const s of pair) ws.push(await s.start());
    const cs = [];
    for (let k = 0; k < pair.length; k++) cs.push(await prepareSmall(pair[k], ws[k]));
    const ops = OPS.filter((o) => ['health', 'create bead', 'get bead', 'list 100 of 100 beads', 'update status'].includes(o.name));
    const samples = await measure(cs, ops);
    print();
    print('## The dashboard\'s asset routing under wrangler dev (ours: API-only copy vs wrangler.toml with [assets])');
    print(table(['op', 'API only ms', 'with [assets] ms', 'added ms'], ops.map((o) => {
      const [a, b] = samples.map((x) => median(x[o.name]));
      return [o.name, ms(a), ms(b), ms(b - a)];
    })));
  } finally {
    for (const w of ws) await w.stop();
  }
}

if (process.env.BENCH_API_OUT) writeFileSync(process.env.BENCH_API_OUT, out.join('\n') + '\n');
