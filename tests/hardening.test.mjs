// Hardening from the security review, against the real Worker: requests a browser could be
// tricked into sending (the Access cookie rides along by itself) are refused from a foreign
// Origin — the mayor's terminal WebSocket and state-changing calls alike; JSON routes take only
// application/json (no text/plain CSRF); oversized bodies are 413; API and dashboard responses
// carry security headers; a user at the town limit gets a 409 naming it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startWorker } from './lib/worker.mjs';
import { client, ok, fails } from './lib/api.mjs';
import { startContainer, until, CONTAINER_SECRET } from './lib/container.mjs';
import { startJwks, userToken, ACCESS_AUD } from './lib/tokens.mjs';

const FRIEND = 'https://ops.example.com';

let jwks;
let c;
let w;
let cookie;
let town;
let rig;
let mayor;

before(async () => {
  jwks = await startJwks();
  c = await startContainer();
  w = await startWorker({
    vars: {
      GASTOWN_AUTH: 'access', CF_ACCESS_TEAM_DOMAIN: jwks.team, CF_ACCESS_AUD: ACCESS_AUD, ALLOWED_ORIGINS: FRIEND,
      GASTOWN_MAX_TOWNS_PER_USER: '2', GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET,
    },
  });
  cookie = { cookie: `theme=dark; CF_Authorization=${userToken(jwks.team, 'owner')}` };
  const owner = client(w.url, { ...cookie, origin: w.url });
  town = ok(await owner.post('/api/users/owner/towns', { name: 'T' }), 201);
  rig = ok(await owner.post('/api/users/owner/rigs', { town_id: town.id, name: 'r', git_url: 'https://github.com/o/r.git' }), 201);
  mayor = ok(await owner.post(`/api/towns/${town.id}/mayor/message`, { message: 'hi' }), 201).mayor;
  // The relay is under test, not the mayor's program: run a plain echoing one in its session.
  // The town starts its demo mayor on its own, possibly just after a stop: stop and start again
  // until ours is the one running.
  const box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });
  const start = { agent_id: mayor.id, town_id: town.id, rig_id: 'town', role: 'mayor', name: mayor.name, command: ['sh', '-c', 'echo terminal-ready; exec cat'] };
  await until(async () => {
    await box.post(`/agents/${mayor.id}/stop`, {});
    return (await box.post('/agents/start', start)).status === 201;
  }, { timeout: 20_000, what: "our program running in the mayor's session" });
});
after(async () => { await w?.stop(); await c?.stop(); await jwks?.stop(); });

/** Opens a WebSocket; resolves with the HTTP status of the answer (101 when it opened). */
function upgrade(path, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${w.url.replace('http', 'ws')}${path}`, { headers });
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode); });
    ws.on('error', reject);
  });
}

const beadsPath = () => `/api/towns/${town.id}/rigs/${rig.id}/beads`;
const beadTitles = async () => ok(await client(w.url, cookie).get(beadsPath())).map((b) => b.title);

test('the Access cookie with a foreign Origin: no terminal WebSocket, no state change', async () => {
  const terminal = `/api/towns/${town.id}/agents/${mayor.id}/terminal`;
  // The mayor's terminal is read-write: a hijacked socket could type into it.
  assert.equal(await upgrade(terminal, { ...cookie, origin: 'https://evil.example' }), 403);
  assert.equal(await upgrade(`/api/towns/${town.id}/events/ws`, { ...cookie, origin: 'https://evil.example' }), 403);
  // No Origin at all with the cookie: refused too (browsers always send one on these).
  assert.equal(await upgrade(terminal, cookie), 403);
  const evil = client(w.url, { ...cookie, origin: 'https://evil.example' });
  fails(await evil.post(beadsPath(), { title: 'forged' }), 403, "Origin https://evil.example is neither this server's origin");
  fails(await evil.post(`/api/towns/${town.id}/agents/${mayor.id}/stream-ticket`, {}), 403, 'cross-origin');
  fails(await client(w.url, cookie).post(beadsPath(), { title: 'no origin' }), 403, 'must carry an Origin header');
  // Reads stay readable (a cross-site page cannot read the answer anyway).
  ok(await evil.get(beadsPath()));
  // (The demo mayor may have slung "hi" before its session was replaced: look for ours only.)
  const titles = await beadTitles();
  assert.ok(!titles.includes('forged') && !titles.includes('no origin'), JSON.stringify(titles));
});

test('the same from the own origin, or one in ALLOWED_ORIGINS, works', async () => {
  const terminal = `/api/towns/${town.id}/agents/${mayor.id}/terminal`;
  assert.equal(await upgrade(terminal, { ...cookie, origin: w.url }), 101);
  assert.equal(await upgrade(terminal, { ...cookie, origin: FRIEND }), 101);
  assert.equal(await upgrade(`/api/towns/${town.id}/events/ws`, { ...cookie, origin: w.url }), 101);
  ok(await client(w.url, { ...cookie, origin: w.url }).post(beadsPath(), { title: 'same origin' }), 201);
  ok(await client(w.url, { ...cookie, origin: FRIEND }).post(beadsPath(), { title: 'friend' }), 201);
  // A non-browser client with the Access header and no cookie needs no Origin (curl, scripts).
  const header = client(w.url, { 'cf-access-jwt-assertion': userToken(jwks.team, 'owner') });
  ok(await header.post(beadsPath(), { title: 'header' }), 201);
  const titles = await beadTitles();
  for (const t of ['friend', 'header', 'same origin']) assert.ok(titles.includes(t), JSON.stringify(titles));
});

test('JSON routes take only application/json; oversized bodies are 413', async () => {
  const before = await beadTitles();
  const raw = (body, contentType) => fetch(w.url + beadsPath(), {
    method: 'POST', body, headers: { ...cookie, origin: w.url, ...(contentType ? { 'content-type': contentType } : {}) },
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
  for (const ct of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', undefined]) {
    const r = await raw(JSON.stringify({ title: 'smuggled' }), ct);
    assert.equal(r.status, 415, `${ct}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.error, /Content-Type: application\/json/);
  }
  assert.deepEqual(await beadTitles(), before, 'nothing was created');
  const big = await raw(JSON.stringify({ title: 'x', body: 'y'.repeat(1100 * 1024) }), 'application/json');
  assert.equal(big.status, 413);
  assert.match(big.body.error, /larger than/);
});

test('API and dashboard responses carry security headers', async () => {
  const api = await fetch(`${w.url}/api/me`, { headers: cookie });
  assert.equal(api.status, 200);
  assert.match(api.headers.get('content-security-policy'), /default-src 'none'.*frame-ancestors 'none'/);
  const page = await fetch(`${w.url}/`, { headers: { accept: 'text/html' } });
  assert.equal(page.status, 200);
  const csp = page.headers.get('content-security-policy') ?? '';
  for (const d of ["default-src 'self'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) {
    assert.ok(csp.includes(d), `dashboard CSP lacks ${d}: ${csp}`);
  }
  for (const r of [api, page, await fetch(`${w.url}/app.js`)]) {
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  }
});

test('a user reaching GASTOWN_MAX_TOWNS_PER_USER gets a 409 naming the limit', async () => {
  const u = client(w.url, { 'cf-access-jwt-assertion': userToken(jwks.team, 'busy') });
  ok(await u.post('/api/users/busy/towns', { name: 'one' }), 201);
  ok(await u.post('/api/users/busy/towns', { name: 'two' }), 201);
  fails(await u.post('/api/users/busy/towns', { name: 'three' }), 409, 'at most 2 towns per user (set by GASTOWN_MAX_TOWNS_PER_USER)');
  assert.deepEqual(ok(await u.get('/api/users/busy/towns')).map((t) => t.name).sort(), ['one', 'two']);
});
