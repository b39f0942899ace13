// Towns for the reliability suite: set-up on local bare repositories, an event tail that keeps
// the town's whole event log in order (the ground for restarts, refusals and peaks), the final
// classification of every slung bead, and the commits each bead left on each repository's main.
import { execFileSync } from 'node:child_process';
import { bareRepo } from '../../tests/lib/container.mjs';
import { ok } from '../../tests/lib/api.mjs';
import { sleep } from './procs.mjs';

export const USER = 'soak';
const TERMINAL = new Set(['closed', 'failed']);

/** A town with `rigs` rigs (each on a fresh bare repository) and `config` patched in. */
export async function makeTown(api, { name, rigs, config }) {
  const town = ok(await api.post(`/api/users/${USER}/towns`, { name }), 201);
  const list = [];
  for (let i = 0; i < rigs; i++) {
    const repo = bareRepo();
    const rig = ok(await api.post(`/api/users/${USER}/rigs`, { town_id: town.id, name: `r${i}`, git_url: repo.bare }), 201);
    list.push({ repo, rig, R: `/api/towns/${town.id}/rigs/${rig.id}` });
  }
  ok(await api.patch(`/api/towns/${town.id}/config`, config));
  return { town, id: town.id, rigs: list, cleanup: () => list.forEach((r) => r.repo.cleanup()) };
}

/** One sling; `{bead, agent}` or `{error}` (never retried: a retry could slung the same work twice). */
export async function sling(api, rig, title) {
  try {
    const r = await api.post(`${rig.R}/sling`, { title });
    if (r.status === 201 && r.data?.bead?.id) return { bead: r.data.bead, agent: r.data.agent, rig };
    return { error: `${r.status}: ${JSON.stringify(r.body).slice(0, 300)}` };
  } catch (e) {
    return { error: String(e?.cause?.code ?? e?.message ?? e) };
  }
}

/** Slings `n` beads over the rigs (round robin) with `concurrency` requests in flight. */
export async function slingMany(api, rigs, n, { concurrency = 8, title = (i) => `soak ${i}`, onSlung = () => {} } = {}) {
  const out = new Array(n);
  let next = 0;
  const lat = [];
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      const t0 = Date.now();
      out[i] = await sling(api, rigs[i % rigs.length], title(i));
      lat.push(Date.now() - t0);
      if (out[i].bead) onSlung(out[i]);
    }
  }));
  return { results: out, latencies: lat };
}

/**
 * Tails `GET /api/towns/:id/events` (by `after_id`, in order) and keeps what the suite measures:
 * each bead's status, runs (spawn/exit per agent and epoch), witness restarts with whether the
 * run they restarted was still alive, dispatch failures, escalations, submissions and merges.
 */
export class Observer {
  constructor(api, townId) {
    this.api = api;
    this.townId = townId;
    this.after = 0;
    this.events = [];
    this.status = new Map(); // bead → status
    this.terminalAt = new Map(); // bead → ms of its first closed/failed
    this.lastSpawn = new Map(); // agent → epoch of its last agent_spawned
    this.exited = new Map(); // agent → Set(epochs with agent_exited)
    this.restarts = []; // {agent, bead, epoch, at, reason, aliveByEvents}
    this.dispatchFailed = []; // {bead, agent, attempt, error, at}
    this.escalated = new Map(); // bead → count
    this.submitted = new Map(); // bead → review_submitted count
    this.merged = new Map(); // MR → merge commit
    this.tracked = new Set();
    this.inReview = 0;
    this.peakInReview = 0;
    this.pollErrors = 0;
    this.lastPollOk = 0;
  }

  track(beadId) { this.tracked.add(beadId); }

  #apply(e) {
    this.events.push(e);
    const at = Date.parse(e.created_at);
    const meta = e.metadata ?? {};
    switch (e.event_type) {
      case 'status_changed': {
        this.status.set(e.bead_id, e.new_value);
        if (TERMINAL.has(e.new_value) && !this.terminalAt.has(e.bead_id)) this.terminalAt.set(e.bead_id, at);
        break;
      }
      case 'agent_spawned':
        this.lastSpawn.set(e.agent_id, Number(e.new_value));
        break;
      case 'agent_exited': {
        if (!this.exited.has(e.agent_id)) this.exited.set(e.agent_id, new Set());
        this.exited.get(e.agent_id).add(Number(meta.epoch));
        break;
      }
      case 'redispatched':
        if (e.new_value === 'restart') {
          const epoch = this.lastSpawn.get(e.agent_id);
          // The run the witness gave up on had reported its start and not (yet) its exit.
          const aliveByEvents = epoch !== undefined && !this.exited.get(e.agent_id)?.has(epoch);
          this.restarts.push({ agent: e.agent_id, bead: e.bead_id, epoch, at, reason: meta.reason, aliveByEvents });
        }
        break;
      case 'dispatch_failed':
        this.dispatchFailed.push({ bead: e.bead_id, agent: e.agent_id, attempt: meta.attempt, error: String(meta.error ?? ''), at });
        break;
      case 'escalated':
        if (e.old_value == null) this.escalated.set(e.bead_id, (this.escalated.get(e.bead_id) ?? 0) + 1);
        break;
      case 'review_submitted':
        this.submitted.set(e.bead_id, (this.submitted.get(e.bead_id) ?? 0) + 1);
        break;
      case 'review_completed':
        if (e.new_value === 'merged') this.merged.set(e.bead_id, meta.merge_commit);
        break;
      default:
    }
  }

  /** Reads every event since the last poll. False when the Worker did not answer. */
  async poll() {
    try {
      for (;;) {
        const r = await this.api.get(`/api/towns/${this.townId}/events?after_id=${this.after}&limit=1000`);
        if (r.status !== 200 || !Array.isArray(r.data)) throw new Error(`events: ${r.status}`);
        for (const e of r.data) {
          this.#apply(e);
          this.after = Math.max(this.after, e.id);
        }
        if (r.data.length < 1000) break;
      }
      let n = 0;
      for (const b of this.tracked) if (this.status.get(b) === 'in_review') n++;
      this.inReview = n;
      this.peakInReview = Math.max(this.peakInReview, n);
      this.lastPollOk = Date.now();
      return true;
    } catch {
      this.pollErrors++;
      return false;
    }
  }

  /** Polls every `every` ms until `stop()`. */
  run(every = 500) {
    this.stopped = false;
    this.loop = (async () => {
      while (!this.stopped) {
        await this.poll();
        await sleep(every);
      }
    })();
  }

  async stop() {
    this.stopped = true;
    await this.loop;
  }

  counts() {
    const c = { closed: 0, failed: 0, in_review: 0, in_progress: 0, open: 0, unknown: 0 };
    for (const b of this.tracked) {
      const s = this.status.get(b) ?? 'open';
      c[s in c ? s : 'unknown']++;
    }
    return c;
  }

  allTerminal() {
    for (const b of this.tracked) if (!TERMINAL.has(this.status.get(b))) return false;
    return this.tracked.size > 0;
  }
}

async function pages(api, path) {
  const out = [];
  for (let offset = 0; ; offset += 500) {
    const r = ok(await api.get(`${path}${path.includes('?') ? '&' : '?'}limit=500&offset=${offset}`));
    out.push(...r);
    if (r.length < 500) return out;
  }
}

/**
 * Commits on each repository's `main`, per bead: the demo agent commits "<title> (<bead>)
 * [gastown demo]" and the refinery merges "Merge branch 'gt/<agent>/<bead>' into main".
 */
export function commitsOnMain(repos) {
  const commits = new Map();
  const merges = new Map();
  for (const bare of repos) {
    const log = execFileSync('git', ['-C', bare, 'log', '--format=%H %P%x09%s', 'main'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    for (const line of log.split('\n')) {
      if (!line) continue;
      const [hp, subject = ''] = line.split('\t');
      const parents = hp.trim().split(' ').length - 1;
      let m;
      if (parents >= 2 && (m = /^Merge branch 'gt\/[^/]+\/([^']+)' into /.exec(subject))) merges.set(m[1], (merges.get(m[1]) ?? 0) + 1);
      else if (parents === 1 && (m = /\(([^()\s]+)\) \[gastown demo\]$/.exec(subject))) commits.set(m[1], (commits.get(m[1]) ?? 0) + 1);
    }
  }
  return { commits, merges };
}

/**
 * The end state of every slung bead, from the API (authoritative), the event log and git:
 *   merged   closed, with its commit on main
 *   failed   failed (escalated or not)
 *   active   not finished but still somewhere the town will pick it up again: hooked by an agent,
 *            with a pending/running merge request, or waiting in the dispatch queue (its last
 *            dispatch event is `queued`)
 *   lost     not finished and none of the above — nothing in the town will ever finish it — or
 *            closed with no commit of it on main
 * Duplicates: commits of one bead on main beyond the first (and merges beyond the first).
 */
export async function classify(api, t, obs, slung) {
  const beads = new Map();
  for (const r of t.rigs) for (const b of await pages(api, `${r.R}/beads`)) beads.set(b.id, b);
  const agents = ok(await api.get(`/api/towns/${t.id}/agents`));
  const hooked = new Set(agents.map((a) => a.hook_bead_id).filter(Boolean));
  const mq = ok(await api.get(`/api/towns/${t.id}/merge-queue`));
  const reviewing = new Set(mq.filter((m) => m.status === 'pending' || m.status === 'running').map((m) => m.source_bead_id));
  const lastDispatch = new Map();
  for (const e of obs.events) if (e.event_type === 'queued' || e.event_type === 'hooked') lastDispatch.set(e.bead_id, e.event_type);
  const failReason = new Map();
  for (const e of obs.events) if (e.event_type === 'status_changed' && e.new_value === 'failed') failReason.set(e.bead_id, e.metadata?.reason ?? '?');
  const { commits, merges } = commitsOnMain(t.rigs.map((r) => r.repo.bare));

  const out = { merged: [], failed: [], active: [], lost: [], closedWithoutCommit: [], duplicates: [], extraCommits: 0, extraMerges: 0, failedEscalated: 0, failReasons: {} };
  for (const s of slung) {
    const id = s.bead.id;
    const b = beads.get(id);
    const status = b?.status ?? 'missing';
    const nc = commits.get(id) ?? 0;
    const nm = merges.get(id) ?? 0;
    if (nc > 1 || nm > 1) {
      out.duplicates.push({ bead: id, commits: nc, merges: nm });
      out.extraCommits += Math.max(0, nc - 1);
      out.extraMerges += Math.max(0, nm - 1);
    }
    if (status === 'closed') {
      if (nc >= 1) out.merged.push(id);
      else { out.closedWithoutCommit.push(id); out.lost.push(id); }
    } else if (status === 'failed') {
      out.failed.push(id);
      if (obs.escalated.get(id)) out.failedEscalated++;
      const why = String(failReason.get(id) ?? b?.metadata?.reason ?? '?');
      const key = why.replace(/\b[a-z0-9]+-[a-z0-9]{5}\b|\d+/g, '#').split(/[;\n]/)[0].slice(0, 100);
      out.failReasons[key] = (out.failReasons[key] ?? 0) + 1;
    } else if (hooked.has(id) || reviewing.has(id) || lastDispatch.get(id) === 'queued') {
      out.active.push({ bead: id, status });
    } else {
      out.lost.push(id);
    }
  }
  return out;
}

/**
 * Witness restarts judged against the container's own log: a restart is false when the run it
 * gave up on (the agent's last reported epoch) had started in a container instance that was still
 * up and had not exited at the restart's time.
 */
export function judgeRestarts(obs, container) {
  const started = new Map();
  const ended = new Map();
  for (const l of container?.lines ?? []) {
    const key = `${l.fields.agent_id}#${l.fields.epoch}`;
    if (l.msg === 'started') started.set(key, { t: l.t, instance: l.instance });
    else if (!ended.has(key)) ended.set(key, l.t);
  }
  const out = [];
  for (const r of obs.restarts) {
    const key = `${r.agent}#${r.epoch}`;
    const s = started.get(key);
    let aliveByContainer = null;
    let end = null;
    if (s) {
      const inst = container.instances[s.instance];
      end = Math.min(ended.get(key) ?? Infinity, inst?.endedAt ?? Infinity);
      aliveByContainer = s.t <= r.at && end > r.at;
    }
    const iso = (x) => (x == null || !Number.isFinite(x) ? null : new Date(x).toISOString());
    out.push({ ...r, aliveByContainer, restartAt: iso(r.at), runStartedAt: iso(s?.t), runEndedAt: iso(end) });
  }
  return out;
}
