// The open town's state, kept current by the event stream: a full load when the stream is
// ready (first connect, or a gap too large to replay), then targeted reloads of what each
// event touched, coalesced over a short window so a burst of events costs one round of requests.
// Routes the server may not have yet (an older Worker) are remembered as `unavailable` and
// the views say so instead of failing.

import * as api from './api';
import type { Agent, Bead, BeadEvent, Convoy, Escalation, Mail, MayorStatus, MergeEntry, Rig, Session, TownInfo } from './api';
import { TownStream, type StreamMessage, type StreamStatus } from './stream';

export type Part = 'town' | 'agents' | 'beads' | 'sessions' | 'escalations' | 'mergeQueue' | 'convoys' | 'mail' | 'mayor';

const FEED_SIZE = 60;
const COALESCE_MS = 120;

export class TownState {
  town: TownInfo | null = null;
  rigs: Rig[] = [];
  agents: Agent[] = [];
  /** Issue beads by rig id. */
  beads = new Map<string, Bead[]>();
  sessions: Session[] = [];
  escalations: Escalation[] = [];
  mergeQueue: MergeEntry[] = [];
  convoys: Convoy[] = [];
  mail: Mail[] = [];
  mayor: MayorStatus | null = null;
  /** Newest last. */
  feed: BeadEvent[] = [];
  unavailable = new Set<Part>();
  loadError: string | null = null;
  streamStatus: StreamStatus = 'connecting';
  streamDetail = '';
  /** Bumped on every change; views compare it to skip work. */
  version = 0;

  private stream: TownStream;
  private dirty = new Set<Part>();
  private dirtyRigs = new Set<string>();
  private timer: number | undefined;
  private listeners = new Set<() => void>();
  private eventListeners = new Set<(e: BeadEvent) => void>();

  constructor(readonly townId: string) {
    this.stream = new TownStream(townId, {
      onEvent: (m) => this.onEvent(m),
      onReady: (seq, resync) => { if (resync) void this.loadAll(seq); },
      onStatus: (s, d) => { this.streamStatus = s; this.streamDetail = d; this.changed(); },
    });
  }

  start(): void { this.stream.start(); }
  stop(): void { this.stream.stop(); clearTimeout(this.timer); this.listeners.clear(); this.eventListeners.clear(); }
  reconnectNow(): void { this.stream.reconnectNow(); }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Raw events, for views that show timelines (the bead and agent drawers). */
  onEventRaw(fn: (e: BeadEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  private changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  rig(id: string | null | undefined): Rig | undefined { return this.rigs.find((r) => r.id === id); }
  agent(id: string | null | undefined): Agent | undefined { return this.agents.find((a) => a.id === id); }
  bead(id: string | null | undefined): Bead | undefined {
    for (const list of this.beads.values()) {
      const b = list.find((x) => x.id === id);
      if (b) return b;
    }
    return undefined;
  }
  agentName(id: string | null | undefined): string { return this.agent(id)?.name ?? id ?? '—'; }

  /** Everything, after the stream is ready at `seq` (so no event after it can be missed). */
  async loadAll(seq: number): Promise<void> {
    try {
      this.town = await api.get<TownInfo>(api.T(this.townId));
      this.rigs = this.town.rigs;
      this.loadError = null;
    } catch (e) {
      this.loadError = e instanceof Error ? e.message : String(e);
      this.changed();
      return;
    }
    const from = Math.max(0, seq - FEED_SIZE);
    const feed = api.get<BeadEvent[]>(`${api.T(this.townId)}/events?after_id=${from}&limit=${FEED_SIZE}`).then((f) => {
      // Keep live events that arrived while this was loading.
      const seen = new Set(f.map((e) => e.id));
      this.feed = [...f, ...this.feed.filter((e) => !seen.has(e.id))].sort((a, b) => a.id - b.id).slice(-FEED_SIZE);
    }).catch(() => {});
    this.rigs.forEach((r) => this.dirtyRigs.add(r.id));
    await Promise.all([feed, this.refresh(new Set<Part>(['agents', 'beads', 'sessions', 'escalations', 'mergeQueue', 'convoys', 'mail', 'mayor']))]);
    this.changed();
  }

  /** Reload parts now (after an action of the person's, without waiting for its event). */
  async reload(...parts: Part[]): Promise<void> {
    if (parts.includes('beads')) this.rigs.forEach((r) => this.dirtyRigs.add(r.id));
    await this.refresh(new Set(parts));
    this.changed();
  }

  private onEvent(m: StreamMessage): void {
    const e = m.event;
    this.feed.push(e);
    if (this.feed.length > FEED_SIZE) this.feed.splice(0, this.feed.length - FEED_SIZE);
    for (const fn of this.eventListeners) fn(e);
    const t = e.event_type;
    const mark = (...p: Part[]) => p.forEach((x) => this.dirty.add(x));
    if (e.rig_id) this.dirtyRigs.add(e.rig_id);
    switch (m.entity) {
      case 'issue': mark('beads', 'convoys'); break;
      case 'merge_request': mark('mergeQueue', 'beads'); break;
      case 'escalation': mark('escalations'); break;
      case 'message': mark('mail'); break;
      case 'convoy': mark('convoys'); break;
      case 'agent': mark('agents', 'sessions', 'mayor'); break;
      default: mark('beads', 'agents');
    }
    if (/^(hooked|unhooked|agent_|dispatch_failed|assigned|status_changed|closed|reopened|checkpoint)/.test(t)) mark('agents', 'sessions', 'mayor');
    if (/^review_/.test(t)) mark('mergeQueue', 'beads');
    if (/^mail_/.test(t)) mark('mail');
    if (t === 'escalated') mark('escalations');
    if (t === 'deleted' || (m.entity === 'deleted')) mark('town', 'beads', 'agents', 'sessions');
    // The activity feed changed now; the rest follows after the reloads.
    this.changed();
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => {
      const parts = this.dirty;
      this.dirty = new Set();
      void this.refresh(parts).then(() => this.changed());
    }, COALESCE_MS);
  }

  private async refresh(parts: Set<Part>): Promise<void> {
    const t = api.T(this.townId);
    const jobs: Promise<unknown>[] = [];
    const opt = <X>(part: Part, p: Promise<X>, set: (x: X) => void, fallback?: () => Promise<X>) =>
      // Each part is shown as soon as it arrives (the views cope with the others still loading).
      jobs.push(p.then((x) => { this.unavailable.delete(part); set(x); this.changed(); }).catch(async (e) => {
        if (e instanceof api.ApiError && e.noRoute) {
          if (fallback) {
            try { set(await fallback()); return; } catch { /* fall through */ }
          }
          this.unavailable.add(part);
        }
      }));
    if (parts.has('town')) {
      jobs.push(api.get<TownInfo>(t).then((x) => { this.town = x; this.rigs = x.rigs; }).catch(() => {}));
    }
    if (parts.has('agents')) opt('agents', api.get<Agent[]>(`${t}/agents`), (x) => { this.agents = x; }, () => this.agentsFallback());
    if (parts.has('sessions')) opt('sessions', api.get<Session[]>(`${t}/sessions`), (x) => { this.sessions = x; });
    if (parts.has('escalations')) opt('escalations', api.get<Escalation[]>(`${t}/escalations`), (x) => { this.escalations = x; });
    if (parts.has('mergeQueue')) opt('mergeQueue', api.get<MergeEntry[]>(`${t}/merge-queue`), (x) => { this.mergeQueue = x; }, () => this.mergeQueueFallback());
    if (parts.has('convoys')) opt('convoys', api.get<Convoy[]>(`${t}/convoys`), (x) => { this.convoys = x; });
    if (parts.has('mail')) opt('mail', api.get<Mail[]>(`${t}/mail`), (x) => { this.mail = x; });
    if (parts.has('mayor')) opt('mayor', api.get<MayorStatus>(`${t}/mayor/status`), (x) => { this.mayor = x; });
    if (parts.has('beads')) {
      const rigs = [...this.dirtyRigs].filter((id) => this.rig(id));
      this.dirtyRigs.clear();
      for (const id of rigs) {
        jobs.push(api.get<Bead[]>(`${api.R(this.townId, id)}/beads?type=issue&limit=500`).then((b) => { this.beads.set(id, b); }).catch(() => {}));
      }
    }
    await Promise.all(jobs);
  }

  /** Before `GET /api/towns/:id/agents` existed: every rig's agents plus the mayor. */
  private async agentsFallback(): Promise<Agent[]> {
    const lists = await Promise.all(this.rigs.map((r) => api.get<Agent[]>(`${api.R(this.townId, r.id)}/agents`).catch(() => [] as Agent[])));
    const mayor = await api.get<MayorStatus>(`${api.T(this.townId)}/mayor/status`).catch(() => null);
    return [...(mayor?.agent ? [mayor.agent] : []), ...lists.flat()];
  }

  /** Before `GET …/merge-queue` existed: merge-request beads, mapped to queue statuses. */
  private async mergeQueueFallback(): Promise<MergeEntry[]> {
    const status = { open: 'pending', in_progress: 'running', in_review: 'running', closed: 'merged', failed: 'failed' } as const;
    const lists = await Promise.all(this.rigs.map((r) => api.get<Bead[]>(`${api.R(this.townId, r.id)}/beads?type=merge_request&limit=500`).catch(() => [] as Bead[])));
    return lists.flat().map((b) => {
      const m = b.metadata as Record<string, unknown>;
      return {
        id: b.id, rig_id: b.rig_id, source_bead_id: String(m.source_bead_id ?? ''), agent_id: String(m.agent_id ?? b.assignee_agent_id ?? ''),
        branch: String(m.branch ?? ''), target_branch: String(m.target_branch ?? ''), status: status[b.status], summary: b.body,
        merge_commit: (m.merge_commit as string) ?? null, output: (m.output as string) ?? null, attempts: Number(m.attempts ?? 0), created_at: b.created_at, pr: null,
      };
    }).sort((a, b) => b.created_at.localeCompare(a.created_at));
  }
}
