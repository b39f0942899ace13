// Test credentials: agent tokens (HS256, the same claims the town mints) and Cloudflare Access
// tokens (RS256) served by a loopback JWKS endpoint, so the Worker runs its production checks.
import { createHmac, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ROOT } from './worker.mjs';

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const enc = (obj) => b64u(JSON.stringify(obj));
const now = () => Math.floor(Date.now() / 1000);

export function agentToken(secret, claims, { expiresIn = 3600 } = {}) {
  const header = enc({ alg: 'HS256', typ: 'JWT' });
  const payload = enc({ ...claims, iat: now(), exp: now() + expiresIn });
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${b64u(sig)}`;
}

export const ACCESS_AUD = 'a'.repeat(64);
const privateKey = createPrivateKey(readFileSync(join(ROOT, 'tests/fixtures/access-test-key.pem')));

export function accessToken(team, claims, { kid = 'test-kid', expiresIn = 300, key = privateKey } = {}) {
  const header = enc({ alg: 'RS256', kid, typ: 'JWT' });
  const payload = enc({ iss: team, aud: [ACCESS_AUD], iat: now(), nbf: now() - 1, exp: now() + expiresIn, ...claims });
  const sig = sign('sha256', Buffer.from(`${header}.${payload}`), key);
  return `${header}.${payload}.${b64u(sig)}`;
}

export const userToken = (team, sub, email = `${sub}@example.com`, opts) =>
  accessToken(team, { sub, email, type: 'app', identity_nonce: 'n' }, opts);

/** An Access service token's JWT: no person, an empty `sub`, the client id as `common_name`. */
export const serviceToken = (team, clientId, opts) =>
  accessToken(team, { sub: '', common_name: `${clientId}.access`, type: 'app' }, opts);

/** Serves `<team>/cdn-cgi/access/certs` on loopback; `kids` can be changed to simulate rotation. */
export async function startJwks() {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const state = { kids: ['test-kid'], hits: 0 };
  const server = createServer((req, res) => {
    if (req.url !== '/cdn-cgi/access/certs') { res.writeHead(404).end(); return; }
    state.hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.kids.map((kid) => ({ ...jwk, kid, alg: 'RS256', use: 'sig' })) }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const team = `http://127.0.0.1:${server.address().port}`;
  return { team, state, stop: () => new Promise((r) => server.close(r)) };
}
