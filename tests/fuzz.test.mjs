// Fuzzing the HTTP API with schemathesis (pinned in tests/fuzz/requirements.txt, installed by
// scripts/setup.sh into .cache/fuzz-venv) against the real Worker and container program, with the
// Worker's own OpenAPI document (api/openapi.json, which GET /api/openapi.json serves). Every operation is called with generated
// valid and invalid inputs — as the town's owner (a Cloudflare Access token, verified against a
// loopback JWKS: the production path), as a polecat and as the mayor (their own JWTs) — and no
// answer may be a server error, an undocumented status, a wrong content type or a body that does
// not match the documented schema. Path ids are pinned to real objects made below, so requests
// reach the handlers instead of 404ing on random ids.
//
// The seed is printed; `FUZZ_SEED=<n> node --test tests/fuzz.test.mjs` replays a run.
// `FUZZ_MAX_EXAMPLES` changes the examples per operation (default 10).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker, JWT_SECRET, ROOT } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { agentToken, userToken, startJwks, ACCESS_AUD } from './lib/tokens.mjs';
import { startContainer, bareRepo, CONTAINER_SECRET } from './lib/container.mjs';
import { track } from './lib/procs.mjs';

const SCHEMATHESIS = join(ROOT, '.cache', 'fuzz-venv', 'bin', 'schemathesis');
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
const MAX_EXAMPLES = Number(process.env.FUZZ_MAX_EXAMPLES || 10);
/** Each caller's wall-clock budget in seconds (schemathesis's --max-time; a hard stop follows a minute later). */
const BUDGET_S = { owner: 100, polecat: 50, mayor: 30 };
const OWNER = 'fuzz-owner';

/**
 * Operations never fuzzed, and why. Everything else in the document is, by someone.
 */
const EXCLUDED = {
  // WebSocket upgrades: documented as 101 with no body; schemathesis speaks plain HTTP only.
  get_towns_townId_events_ws: 'WebSocket upgrade (101)',
  get_towns_townId_agents_agentId_terminal: 'WebSocket upgrade (101)',
  get_towns_townId_agents_agentId_events_ws: 'WebSocket upgrade (101)',
  // Forge webhooks: the body must carry an HMAC (GitHub) or token (GitLab) made with the town's
  // secret, so generated bodies are all refused (401) before anything is parsed.
  post_webhooks_github_townId: 'needs a signature over the body',
  post_webhooks_gitlab_townId: 'needs the town\'s webhook token',
};

/** Which operations each caller fuzzes, by the route's access level (`x-access`). */
const AS = {
  owner: () => true,
  // A polecat may call its rig's routes and its own agent routes; every other route refuses it
  // (the authorization matrix in tests/auth.test.mjs covers those refusals).
  polecat: (access) => ['Public', 'Authenticated', 'RigMember', 'AgentSelf'].includes(access),
  mayor: (access) => ['Mayor'].includes(access),
};

let jwks;
let c;
let w;
let repo;
let dir;
const ids = {};
const tokens = {};

before(async () => {
  assert.ok(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is missing: run \`bash scripts/setup.sh\``);
  console.log(`fuzz seed ${SEED}: replay with FUZZ_SEED=${SEED} node --test tests/fuzz.test.mjs`);
  dir = mkdtempSync(join(tmpdir(), 'gastown-fuzz-')); // 0700: the config names no secret, but still
  jwks = await startJwks();
  c = await startContainer();
  w = await startWorker({
    vars: {
      GASTOWN_AUTH: 'access', CF_ACCESS_TEAM_DOMAIN: jwks.team, CF_ACCESS_AUD: ACCESS_AUD,
      GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET,
    },
    // Info level: a reload of the dev server mid-run shows in a failure's report
    // (FUZZ_LOG_LEVEL=debug also says what set it off). All of it lands in tests/artifacts.
    logLevel: process.env.FUZZ_LOG_LEVEL ?? 'info', logLimit: 4_000_000,
  });
  tokens.owner = userToken(jwks.team, OWNER, undefined, { expiresIn: 3600 });
  const api = client(w.url, { 'cf-access-jwt-assertion': tokens.owner });
  repo = bareRepo();
  const U = `/api/users/${OWNER}`;
  const town = ok(await api.post(`${U}/towns`, { name: 'Fuzz' }), 201);
  const rig = ok(await api.post(`${U}/rigs`, { town_id: town.id, name: 'app', git_url: repo.bare }), 201);
  const T = `/api/towns/${town.id}`;
  const R = `${T}/rigs/${rig.id}`;
  const agent = ok(await api.post(`${R}/agents`, { role: 'polecat' }), 201);
  const bead = ok(await api.post(`${R}/beads`, { title: 'fuzzed bead', body: 'b', labels: ['x'] }), 201);
  const other = ok(await api.post(`${R}/beads`, { title: 'its dependency' }), 201);
  ok(await api.post(`${R}/beads/${bead.id}/dependencies`, { depends_on_bead_id: other.id }), 201);
  const formulas = ok(await api.get(`${T}/formulas`));
  const formula = (Array.isArray(formulas) ? formulas[0] : Object.values(formulas)[0])?.name ?? Object.keys(formulas)[0];
  ok(await api.post(`${R}/beads/${other.id}/molecule`, { formula }), 201);
  const mail = ok(await api.post(`${R}/mail`, { to: agent.id, subject: 's', body: 'b' }), 201);
  const esc = ok(await api.post(`${R}/escalations`, { message: 'fuzz escalation' }), 201);
  const convoy = ok(await api.post(`${T}/convoys`, { title: 'fuzz convoy', bead_ids: [bead.id] }), 201);
  const greeting = ok(await api.post(`${T}/mayor/message`, { message: 'hello' }), 201);
  // Objects only the DELETE operations get, so deleting them leaves the rest in place.
  const doomedTown = ok(await api.post(`${U}/towns`, { name: 'Doomed' }), 201);
  const doomedRig = ok(await api.post(`${U}/rigs`, { town_id: town.id, name: 'doomed', git_url: repo.bare }), 201);
  const doomedAgent = ok(await api.post(`${R}/agents`, { role: 'polecat' }), 201);
  const doomedBead = ok(await api.post(`${R}/beads`, { title: 'doomed bead' }), 201);
  Object.assign(ids, {
    town, rig, agent, bead, other, mail, esc, convoy, mayor: greeting.mayor, mayorMail: greeting.mail,
    doomedTown, doomedRig, doomedAgent, doomedBead,
  });
  tokens.polecat = agentToken(JWT_SECRET, { town_id: town.id, rig_id: rig.id, agent_id: agent.id, role: 'polecat' });
  tokens.mayor = agentToken(JWT_SECRET, { town_id: town.id, rig_id: null, agent_id: greeting.mayor.id, role: 'mayor' });
});

after(async () => {
  if (w) {
    mkdirSync(join(ROOT, 'tests', 'artifacts'), { recursive: true });
    rmSync(join(ROOT, 'tests', 'artifacts', 'fuzz-worker.log'), { force: true });
    writeFileSync(join(ROOT, 'tests', 'artifacts', 'fuzz-worker.log'), redact(w.log()), { mode: 0o600 });
  }
  await w?.stop();
  await c?.stop();
  await jwks?.stop();
  repo?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const toml = (v) => JSON.stringify(v); // a JSON string is a valid TOML basic string

/** schemathesis.toml for one caller: auth from the environment, path ids pinned to the fixtures. */
function config(as) {
  const { town, rig, agent, bead, other, mail, esc, convoy, mayorMail, doomedTown, doomedRig, doomedAgent, doomedBead } = ids;
  const params = {
    'path.userId': OWNER, 'path.townId': town.id, 'path.rigId': rig.id, 'path.agentId': agent.id,
    'path.beadId': bead.id, 'path.dependsOn': other.id, 'path.mailId': as === 'mayor' ? mayorMail.id : mail.id,
    'path.escalationId': esc.id, 'path.convoyId': convoy.id,
    // No merge request exists (nothing was pushed): retry answers 404 through the real lookup.
    'path.mrId': bead.id,
  };
  const table = (o) => `{ ${Object.entries(o).map(([k, v]) => `${toml(k)} = ${toml(v)}`).join(', ')} }`;
  const op = (id, p) => `[[operations]]\ninclude-operation-id = ${toml(id)}\nparameters = ${table({ ...params, ...p })}\n`;
  const auth = {
    owner: '[auth.openapi.accessJwt]\napi_key = "${FUZZ_TOKEN}"',
    polecat: '[auth.openapi.agentBearer]\nbearer = "${FUZZ_TOKEN}"',
    mayor: '[auth.openapi.agentBearer]\nbearer = "${FUZZ_TOKEN}"',
  }[as];
  return [
    `parameters = ${table(params)}`,
    '',
    auth,
    '',
    // The DELETE operations each get an object of their own.
    op('delete_users_userId_towns_townId', { 'path.townId': doomedTown.id }),
    op('delete_users_userId_rigs_rigId', { 'path.rigId': doomedRig.id }),
    op('delete_towns_townId_rigs_rigId_agents_agentId', { 'path.agentId': doomedAgent.id }),
    op('delete_towns_townId_rigs_rigId_beads_beadId', { 'path.beadId': doomedBead.id }),
  ].join('\n');
}

/** Runs schemathesis as `as`; resolves with its exit code and output. */
async function fuzz(as) {
  const doc = JSON.parse(readFileSync(join(ROOT, 'api', 'openapi.json'), 'utf8'));
  const chosen = [];
  for (const ops of Object.values(doc.paths)) {
    for (const op of Object.values(ops)) {
      if (!EXCLUDED[op.operationId] && AS[as](op['x-access'])) chosen.push(op.operationId);
    }
  }
  const file = join(dir, `${as}.toml`);
  writeFileSync(file, config(as), { mode: 0o600 });
  const args = [
    // The checked-in document: the one the Worker serves (built in with include_str!).
    '--config-file', file, 'run', join(ROOT, 'api', 'openapi.json'), '--url', w.url,
    '--include-operation-id-regex', `^(${chosen.join('|')})$`,
    // Every check there is, but those that cannot apply here:
    // - positive_data_acceptance: a body the schema admits may still be refused by the rules the
    //   schema cannot say (a status change the bead's state forbids is 409, a bead id in a body
    //   that names no bead is 404, a name already taken is 409);
    // - object_level_authorization: needs two users' credentials in a WFC auth file; tests/auth.test.mjs
    //   checks every route against every kind of caller instead.
    '--checks', 'all', '--exclude-checks', 'positive_data_acceptance,object_level_authorization',
    '--phases', 'examples,coverage,fuzzing',
    '--max-examples', String(MAX_EXAMPLES), '--max-time', String(BUDGET_S[as]), '--seed', String(SEED),
    // Security parameters come from the config (a real token), never generated at random.
    '--generation-with-security-parameters', 'false',
    // One worker: schemathesis's threads race in CPython 3.11's linecache and AST checks (internal
    // errors that say nothing about the API).
    '--workers', '1', '--request-timeout', '30', '--no-color', '--output-truncate', 'true',
  ];
  console.log(`${as}: ${chosen.length} operations: FUZZ_TOKEN=… ${SCHEMATHESIS} ${args.map((a) => (/^[\w./:,=-]+$/.test(a) ? a : `'${a}'`)).join(' ')}`);
  const child = track(spawn(SCHEMATHESIS, args, {
    cwd: dir, env: { ...process.env, FUZZ_TOKEN: tokens[as], NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), (BUDGET_S[as] + 60) * 1000);
  const code = await new Promise((r) => child.on('exit', (c2, sig) => r(c2 ?? sig)));
  clearTimeout(timer);
  // Each failure's curl line carries the caller's credential: it never reaches a log or a file
  // (an agent under test could read a world-readable report; the containment test looks).
  out = out.split(tokens[as]).join('<token>');
  // The whole report (every failure with its curl line) for a look after the run.
  mkdirSync(join(ROOT, 'tests', 'artifacts'), { recursive: true });
  const report = join(ROOT, 'tests', 'artifacts', `fuzz-${as}.txt`);
  rmSync(report, { force: true }); // a mode applies only to a file being created
  writeFileSync(report, out, { mode: 0o600 });
  return { code, out, operations: chosen.length };
}

/** Every credential the run made, replaced (for anything that reaches the console). */
const redact = (text) => Object.values(tokens).reduce((t, tok) => t.split(tok).join('<token>'), text);

/** The report's failure section boiled down: each operation that failed, its checks and statuses. */
function failureHeadlines(out) {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => /^=+ FAILURES =+$/.test(l.trim()));
  const end = lines.findIndex((l, i) => i > start && /^=+ (WARNINGS|SUMMARY) =+$/.test(l.trim()));
  const section = start < 0 ? lines : lines.slice(start, end < 0 ? undefined : end);
  const picked = [];
  section.forEach((l, i) => {
    const t = l.trim();
    if (/^_{3,} .* _{3,}$|^- [A-Z]/.test(t)) picked.push(t);
    // A status line, then the first line of the body that came with it.
    if (/^\[\d{3}\]/.test(t)) picked.push(t, (section.slice(i + 1).find((n) => n.trim()) ?? '').trim().slice(0, 300));
  });
  return [...new Set(picked)].slice(0, 40);
}

/** wrangler's dev proxy's own answer to a request in flight while it reloads the runtime. */
const DEV_SERVER_RESTART = 'Your worker restarted mid-request';

/**
 * Whether every failure in the report is wrangler's dev proxy answering 503 because it was
 * reloading the runtime: an answer our Worker never gives (and production has no such proxy).
 */
function onlyDevServerRestarts(out) {
  const found = failureHeadlines(out);
  const statuses = found.filter((l) => /^\[\d{3}\]/.test(l));
  return statuses.length > 0 && statuses.every((l) => l.startsWith('[503]'))
    && found.filter((l) => l.includes(DEV_SERVER_RESTART)).length === statuses.length;
}

for (const as of ['owner', 'polecat', 'mayor']) {
  test(`fuzzing every operation as the ${as} finds no server error and no answer off the schema`, { timeout: (2 * BUDGET_S[as] + 180) * 1000 }, async () => {
    const started = Date.now();
    let { code, out } = await fuzz(as);
    // Seen in CI and in 1 of 11 runs here, with no file of ours changing: the dev server
    // reloads its runtime mid-run and its proxy answers the request in flight itself.
    // That alone earns one more run with the same seed, which must then pass on its own; any
    // answer of our Worker's among the failures fails the test at once.
    if (code !== 0 && onlyDevServerRestarts(out)) {
      const server = redact(w.log()).split('\n').filter((l) => /reload|restart/i.test(l)).slice(-10);
      console.log(`${as}: the dev server restarted mid-run (wrangler's proxy answered "${DEV_SERVER_RESTART}"; it said:\n${server.join('\n')}); running again`);
      ({ code, out } = await fuzz(as));
    }
    const summary = out.split('\n').filter((l) => /(Operations:\s+\d|Tested:|generated,|^Seed:|^=+ .* in [\d.]+s =+$|^ (✅|❌|🚫) +[A-Z][a-z]+ \(in)/.test(l));
    console.log(summary.map((l) => `${as}: ${l.trim()}`).join('\n'));
    console.log(`${as}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (code !== 0) {
      // CI shows only the first lines of a failure: the failures' headlines and what the dev
      // server printed go first (a 503 from wrangler's proxy reads very differently from a 500
      // of ours), the report's tail after them.
      const found = failureHeadlines(out);
      const server = redact(w.log()).split('\n').filter((l) => /restart|reload|error|panic|exception|✘|uncaught| 5\d\d /i.test(l)).slice(-20);
      console.log(`${as}: failures:\n${found.join('\n')}\n${as}: the dev server said:\n${server.join('\n')}`);
      assert.fail(`schemathesis as the ${as} found problems (seed ${SEED}; replay with FUZZ_SEED=${SEED}; the whole report is in tests/artifacts/fuzz-${as}.txt):\n${found.join('\n')}\n--- the dev server said:\n${server.join('\n')}\n--- the report's tail:\n${out.slice(-12000)}`);
    }
  });
}
