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

// ---- shapes (as the Worker serialises them) ----

export type BeadStatus = 'open' | 'in_progress' | 'in_review' | 'closed' | 'failed';
export type Priority = 'critical' | 'high' | 'medium' | 'low';
export type Role = 'mayor' | 'polecat' | 'refinery' | 'witness';

export interface Me { user_id: string; email: string | null; kind: string }
export interface Town { id: string; name: string; owner_user_id: string; created_at: string; updated_at: string }
export interface Rig { id: string; town_id?: string; name: string; git_url: string; default_branch: string; bead_prefix?: string; created_at: string }
export interface TownInfo extends Town { rigs: Rig[] }
export interface Bead {
  id: string; type: string; status: BeadStatus; title: string; body: string | null; rig_id: string | null;
  parent_id: string | null; assignee_agent_id: string | null; priority: Priority; labels: string[];
  metadata: Record<string, unknown>; created_by: string; created_at: string; updated_at: string; closed_at: string | null;
}
export interface Agent {
  id: string; rig_id: string | null; role: Role; name: string; status: string; hook_bead_id: string | null;
  dispatch_attempts: number; spawn_epoch: number; last_activity_at: string | null; checkpoint: unknown; created_at: string;
}
export interface BeadEvent {
  id: number; bead_id: string; rig_id: string | null; agent_id: string | null; actor: string; event_type: string;
  old_value: string | null; new_value: string | null; metadata: Record<string, unknown>; created_at: string;
}
export interface Dependency { bead_id: string; depends_on_bead_id: string; type: string; created_at: string }
export interface Escalation {
  id: string; severity: string; category: string | null; message: string; source_agent_id: string | null; rig_id: string | null;
  about: string | null; acknowledged: boolean; acknowledged_at: string | null; re_escalation_count: number; created_at: string; last_escalated_at: string;
}
export interface Session { name: string; role: Role; agent_id: string; rig_id: string | null; status: 'active' | 'idle' | 'dead'; writable: boolean }
export interface MergeEntry {
  id: string; rig_id: string | null; source_bead_id: string; agent_id: string; branch: string; target_branch: string;
  status: 'pending' | 'running' | 'in_review' | 'merged' | 'failed'; summary: string | null; merge_commit: string | null; output: string | null;
  attempts: number; created_at: string;
  /** Merge strategy `pr`: the pull request (GitHub) / merge request (GitLab) it was delivered as. */
  pr?: PullRequestView | null;
}
export interface PullRequestView {
  forge: string; repo: string; number: number; url: string | null; head_sha: string | null;
  state: 'open' | 'merged' | 'closed' | null; checks: 'pending' | 'success' | 'failure' | 'none' | null;
  review: 'none' | 'approved' | 'changes_requested' | 'commented' | null; next_poll_at: string | null;
}
export interface Convoy { id: string; title: string; status: 'open' | 'landed'; total: number; closed: number; bead_ids: string[]; created_at: string; landed_at: string | null; beads?: Bead[] }
export interface Mail { id: string; from: string; to: string; to_agent_id: string; subject: string; body: string; read_at: string | null; created_at: string }
export interface MayorStatus { status: 'starting' | 'active' | 'idle'; agent: Agent | null; keep_alive: boolean }
export interface AgentLogEvent { id: number; event_type: string; data: unknown; created_at: string }
export interface TownConfig {
  agent: { runtime: string; model: string | null; command: string | null; rig_overrides: Record<string, RuntimeChoice>; role_overrides: Record<string, RuntimeChoice> };
  env_vars: Record<string, string>;
  git_auth: { github_token: string | null; gitlab_token: string | null; gitlab_instance_url: string | null; github_url: string | null };
  refinery: { gates: string[]; gate_timeout_secs: number; merge_strategy: string };
  capacity: { max_polecats_per_rig: number; max_polecats_per_town: number };
  escalations: { reescalate_after_secs: number; max_reescalations: number };
  witness?: { tick_secs: number; stall_after_secs: number; escalate_stall_after_secs: number; gupp_after_secs: number; start_timeout_secs: number };
}
export interface RuntimeChoice { runtime?: string | null; model?: string | null; command?: string | null }

// ---- paths ----

export const T = (townId: string) => `/api/towns/${encodeURIComponent(townId)}`;
export const R = (townId: string, rigId: string) => `${T(townId)}/rigs/${encodeURIComponent(rigId)}`;

/** Is this a secret the server masks (`****` + last 4)? */
export const isMasked = (v: string | null | undefined) => typeof v === 'string' && v.startsWith('****');
