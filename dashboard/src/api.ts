// The Worker's JSON API as typed functions. Every response is `{success, data}` or
// `{success:false, error}`; failures become an `ApiError` carrying the server's own words
// (a 400 names the field), so views can show them to the person as they are.
// Same origin as the page: Cloudflare Access's cookie rides along, no tokens in the browser.

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly noRoute = false) {
    super(message);
  }
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('cannot reach the Gastown server (is it running?)', 0);
  }
  const text = await res.text();
  let json: { success?: boolean; data?: T; error?: string } | null = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON: a proxy or an HTML error page */
  }
  if (json && json.success === true) return json.data as T;
  const message = json?.error ?? `the server answered ${res.status} ${res.statusText}`.trim();
  // A route the server does not have yet (an older Worker) answers "no route for …".
  throw new ApiError(message, res.status, res.status === 404 && /^no route for/.test(message));
}

export const get = <T>(p: string) => call<T>('GET', p);
export const post = <T>(p: string, b: unknown = {}) => call<T>('POST', p, b);
export const patch = <T>(p: string, b: unknown) => call<T>('PATCH', p, b);
export const del = <T>(p: string) => call<T>('DELETE', p);

// ---- shapes: generated from the Worker's Rust types (`api.gen.ts`, rewritten by
// `npm run gen:api`; `npm test` fails if it no longer matches the code) ----

import type * as G from './api.gen';
export type {
  Agent, Bead, BeadEvent, BeadStatus, Convoy, ConvoyDetail, Escalation, Health, Mail, MayorStatus, Me, Priority, Rig, RuntimeChoice, Session,
  TownConfig, TownInfo,
} from './api.gen';
export type Role = G.AgentRole;
export type Town = G.UserTown;
export type MergeEntry = G.ReviewEntry;
export type PullRequestView = G.PrView;
export type AgentLogEvent = G.AgentEvent;
/** `GET …/dependencies` (not yet typed on the server). */
export interface Dependency { bead_id: string; depends_on_bead_id: string; type: string; created_at: string }

// ---- paths ----

export const T = (townId: string) => `/api/towns/${encodeURIComponent(townId)}`;
export const R = (townId: string, rigId: string) => `${T(townId)}/rigs/${encodeURIComponent(rigId)}`;

/** Is this a secret the server masks (`****` + last 4)? */
export const isMasked = (v: string | null | undefined) => typeof v === 'string' && v.startsWith('****');
