// Drawers slide in from the right and stack for drill-down (bead → agent → event); the stack is
// in the URL. Each drawer is a labelled dialog: opening one moves focus into it, Escape closes
// the top one and focus returns to whatever opened it.

import * as api from './api';
import type { AgentLogEvent, Bead, BeadEvent, Dependency } from './api';
import { badge, busy, fill, fillIfChanged, h, timeEl, toast } from './dom';
import { closeAllDrawers, closeTopDrawer, drawerKey, openDrawer, setParam, type DrawerSpec } from './router';
import type { TownState } from './store';
import { agentStatus, describeEvent, empty, eventItem, roleTag } from './ui';

interface Drawer { key: string; el: HTMLElement; heading: HTMLElement; update(): void; dispose(): void; opener: HTMLElement | null }

function dl(rows: [string, unknown][]): HTMLElement {
  return h('dl', { class: 'fields' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v instanceof Node ? v : v === null || v === undefined || v === '' ? '—' : String(v))]));
}

/** An agent-log entry in words: "gt done → exit code 0", "run 3 started", "exited (exit code 1)". */
function logLabel(e: AgentLogEvent): string {
  const d = (e.data && typeof e.data === 'object' ? e.data : {}) as Record<string, unknown>;
  const code = (x: unknown) => (typeof x === 'number' ? `exit code ${x}` : null);
  if (e.event_type === 'gt') {
    const cmd = Array.isArray(d.command) ? d.command.join(' ') : String(d.command ?? '');
    const c = code(d.exit_code);
    return `gt ${cmd.replace(/^gt\s+/, '')}`.trim() + (c ? ` → ${c}` : '');
  }
  if (e.event_type === 'started') return `run ${d.epoch ?? ''} started`.replace('  ', ' ');
  if (e.event_type === 'exited') {
    const how = code(d.code) ?? (d.signal !== null && d.signal !== undefined ? `signal ${d.signal}` : null);
    return `run ${d.epoch ?? ''} exited${how ? ` (${how})` : ''}${d.reason ? `: ${String(d.reason)}` : ''}`.replace('  ', ' ');
  }
  return e.event_type.replace(/_/g, ' ');
}

function json(v: unknown): HTMLElement | string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object' && Object.keys(v as object).length === 0) return '—';
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

function shell(title: string, subtitle: Node | string, body: HTMLElement, depth: number): { el: HTMLElement; heading: HTMLElement } {
  const id = `drawer-h-${Math.random().toString(36).slice(2, 8)}`;
  const heading = h('h2', { id, tabindex: -1 }, title);
  const el = h('div', { class: 'drawer', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': id, 'data-depth': depth },
    h('div', { class: 'drawer-head' },
      h('div', null, heading, h('div', { class: 'muted small' }, subtitle)),
      h('div', { class: 'row' },
        depth > 0 ? h('button', { class: 'btn small', onclick: () => closeTopDrawer(), 'aria-label': 'Back to the previous drawer' }, '← Back') : null,
        h('button', { class: 'icon-btn', 'aria-label': 'Close drawer', title: 'Close (Esc)', onclick: () => closeTopDrawer() }, '×'))),
    h('div', { class: 'drawer-body' }, body));
  return { el, heading };
}

function beadDrawer(s: TownState, rigId: string, beadId: string, depth: number): Omit<Drawer, 'key' | 'opener'> {
  const body = h('div');
  const sub = h('span');
  const { el, heading } = shell(beadId, sub, body, depth);
  el.dataset.beadId = beadId;
  let bead: Bead | null = null;
  let deps: Dependency[] = [];
  let events: BeadEvent[] = [];
  let error: string | null = null;
  const R = api.R(s.townId, rigId);
  const load = async () => {
    try {
      [bead, deps, events] = await Promise.all([
        api.get<Bead>(`${R}/beads/${encodeURIComponent(beadId)}`),
        api.get<Dependency[]>(`${R}/beads/${encodeURIComponent(beadId)}/dependencies`).catch(() => []),
        api.get<BeadEvent[]>(`${R}/events?bead_id=${encodeURIComponent(beadId)}&limit=500`).catch(() => []),
      ]);
      error = null;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    render();
  };
  const act = (label: string, done: string, fn: () => Promise<unknown>, cls = 'btn') => h('button', { class: cls, onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, label, async () => {
    await fn();
    toast(`${beadId} ${done}`);
    await load();
  }) }, label);
  const render = () => {
    if (error) { fill(body, h('p', { class: 'form-error', role: 'alert' }, error)); return; }
    if (!bead) { fill(body, h('p', { class: 'muted' }, 'Loading…')); return; }
    const b = bead;
    heading.textContent = b.title;
    fill(sub, h('code', null, b.id), ' · ', b.type.replace('_', ' '));
    const a = s.agent(b.assignee_agent_id);
    const actions: HTMLElement[] = [];
    if (b.status === 'closed') actions.push(act('Reopen', 'reopened', () => api.patch(`${R}/beads/${encodeURIComponent(b.id)}/status`, { status: 'open', reason: 'reopened from the dashboard' })));
    else if (b.status === 'failed') actions.push(act('Retry', 'is open again for another try', () => api.patch(`${R}/beads/${encodeURIComponent(b.id)}/status`, { status: 'open', reason: 'retried from the dashboard' }), 'btn primary'));
    else actions.push(act('Close', 'closed', () => api.post(`${R}/beads/${encodeURIComponent(b.id)}/close`, { reason: 'closed from the dashboard' })));
    fillIfChanged(body, JSON.stringify([b, deps, events.length, a?.name]), () => [
      h('div', { class: 'row' }, badge(b.status), badge(b.priority, `prio-${b.priority}`), h('span', { class: 'grow' }), ...actions),
      b.body ? h('div', { class: 'bead-body' }, b.body) : null,
      dl([
        ['Id', h('code', null, b.id)],
        ['Rig', s.rig(b.rig_id)?.name ?? b.rig_id],
        ['Assignee', a ? h('button', { class: 'link', 'data-focus-key': 'assignee', onclick: () => openDrawer({ kind: 'agent', agentId: a.id }) }, roleTag(a.role), ' ', a.name) : b.assignee_agent_id],
        ['Parent', b.parent_id],
        ['Labels', b.labels.length ? b.labels.join(', ') : null],
        ['Created by', b.created_by],
        ['Created', timeEl(b.created_at)],
        ['Updated', timeEl(b.updated_at)],
        ['Closed', b.closed_at ? timeEl(b.closed_at) : null],
        ['Metadata', json(b.metadata)],
      ]),
      h('h3', null, 'Dependencies'),
      deps.length ? h('ul', { class: 'plain' }, deps.map((d) => {
        const other = d.bead_id === b.id ? d.depends_on_bead_id : d.bead_id;
        return h('li', null, d.bead_id === b.id ? `${d.type} on ` : `${d.type} by `,
          h('button', { class: 'link', onclick: () => openDrawer({ kind: 'bead', rigId, beadId: other }) }, other));
      })) : empty('None.'),
      h('h3', null, 'Timeline'),
      events.length ? h('ol', { class: 'feed timeline' }, events.map((e) => eventItem(e, s))) : empty('No events.'),
    ]);
  };
  const off = s.onEventRaw((e) => { if (e.bead_id === beadId || e.metadata?.source_bead_id === beadId) void load(); });
  render();
  void load();
  return { el, heading, update: render, dispose: off };
}

function agentDrawer(s: TownState, agentId: string, depth: number): Omit<Drawer, 'key' | 'opener'> {
  const body = h('div');
  const sub = h('span');
  const { el, heading } = shell('Agent', sub, body, depth);
  el.dataset.agentId = agentId;
  let log: AgentLogEvent[] = [];
  const loadLog = async () => {
    try {
      log = await api.get<AgentLogEvent[]>(`${api.T(s.townId)}/agents/${encodeURIComponent(agentId)}/events?limit=1000`);
    } catch { /* shown as empty */ }
    render();
  };
  const render = () => {
    const a = s.agent(agentId);
    if (!a) { fill(body, h('p', { class: 'muted' }, s.agents.length ? 'This agent no longer exists.' : 'Loading…')); return; }
    heading.textContent = a.name;
    fill(sub, roleTag(a.role), ' ', a.rig_id ? `rig ${s.rig(a.rig_id)?.name ?? a.rig_id}` : 'town-wide');
    const st = agentStatus(a, s);
    const hook = a.hook_bead_id ? s.bead(a.hook_bead_id) : undefined;
    const recent = log.slice(-30).reverse();
    const townEvents = s.feed.filter((e) => e.agent_id === agentId).slice(-15).reverse();
    fillIfChanged(body, JSON.stringify([a, st, log.length, townEvents.map((e) => e.id), hook?.title]), () => [
      h('div', { class: 'row' }, h('span', { class: `badge badge-st-${st}` }, st), h('span', { class: 'grow' }),
        h('button', { class: 'btn primary', onclick: () => { setParam('term', a.id, false); } }, a.role === 'mayor' ? 'Open terminal (read-write)' : 'Open terminal')),
      dl([
        ['Role', roleTag(a.role)],
        ['Status', `${st} (${a.status})`],
        ['Hook', a.hook_bead_id ? (a.rig_id ? h('button', { class: 'link', 'data-focus-key': 'hook', onclick: () => openDrawer({ kind: 'bead', rigId: a.rig_id!, beadId: a.hook_bead_id! }) }, a.hook_bead_id, hook ? ` · ${hook.title}` : '') : a.hook_bead_id) : 'nothing hooked'],
        ['Dispatch attempts', a.dispatch_attempts],
        ['Runs', a.spawn_epoch],
        ['Last activity', a.last_activity_at ? timeEl(a.last_activity_at) : null],
        ['Joined', timeEl(a.created_at)],
        ['Checkpoint', json(a.checkpoint)],
      ]),
      h('h3', null, 'Recent town events'),
      townEvents.length ? h('ol', { class: 'feed' }, townEvents.map((e) => eventItem(e, s))) : empty('None in the recent activity.'),
      h('h3', null, 'Agent log'),
      recent.length ? h('ol', { class: 'feed' }, recent.map((e) => h('li', { class: 'event' }, h('strong', null, logLabel(e)), ' ', timeEl(e.created_at),
        e.data && typeof e.data === 'object' && Object.keys(e.data).length ? h('details', null, h('summary', { class: 'muted small' }, `Details of this ${e.event_type === 'gt' ? 'gt call' : e.event_type} entry`), json(e.data)) : null))) : empty('No log entries yet.'),
    ]);
  };
  const off = s.onEventRaw((e) => { if (e.agent_id === agentId) void loadLog(); });
  const unsub = s.subscribe(render);
  render();
  void loadLog();
  return { el, heading, update: render, dispose: () => { off(); unsub(); } };
}

function eventDrawer(s: TownState, eventId: number, depth: number): Omit<Drawer, 'key' | 'opener'> {
  const body = h('div');
  const { el, heading } = shell(`Event #${eventId}`, 'town event', body, depth);
  let ev: BeadEvent | undefined = s.feed.find((e) => e.id === eventId);
  const render = () => {
    if (!ev) { fill(body, h('p', { class: 'muted' }, 'Loading…')); return; }
    const e = ev;
    const a = s.agent(e.agent_id);
    fillIfChanged(body, JSON.stringify([e, a?.name]), () => [
      h('p', { class: 'lead' }, describeEvent(e, s)),
      dl([
        ['Type', e.event_type],
        ['Bead', e.rig_id ? h('button', { class: 'link', onclick: () => openDrawer({ kind: 'bead', rigId: e.rig_id!, beadId: e.bead_id }) }, e.bead_id) : e.bead_id],
        ['Agent', a ? h('button', { class: 'link', onclick: () => openDrawer({ kind: 'agent', agentId: a.id }) }, roleTag(a.role), ' ', a.name) : e.agent_id],
        ['Rig', s.rig(e.rig_id)?.name ?? e.rig_id],
        ['Actor', e.actor],
        ['Old value', e.old_value],
        ['New value', e.new_value],
        ['At', timeEl(e.created_at)],
        ['Metadata', json(e.metadata)],
      ]),
    ]);
  };
  if (!ev) {
    api.get<BeadEvent[]>(`${api.T(s.townId)}/events?after_id=${eventId - 1}&limit=1`).then((l) => {
      ev = l.find((x) => x.id === eventId);
      if (!ev) fill(body, h('p', { class: 'form-error', role: 'alert' }, `Event ${eventId} was not found.`));
      else render();
    }).catch((e) => fill(body, h('p', { class: 'form-error', role: 'alert' }, String(e.message ?? e))));
  }
  render();
  return { el, heading, update: render, dispose: () => {} };
}

export class DrawerStack {
  readonly el = h('div', { class: 'drawer-stack' });
  private scrim = h('div', { class: 'scrim', onclick: () => closeAllDrawers() });
  private open: Drawer[] = [];

  constructor(private readonly s: TownState) {
    this.el.appendChild(this.scrim);
  }

  /** Makes the open drawers match the URL's stack. */
  sync(specs: DrawerSpec[]): void {
    const keys = specs.map(drawerKey);
    // Close what is no longer in the stack (top first), returning focus to its opener.
    let refocus: HTMLElement | null = null;
    for (const d of [...this.open].reverse()) {
      if (!keys.includes(d.key)) {
        d.dispose();
        d.el.remove();
        refocus = d.opener;
      }
    }
    this.open = this.open.filter((d) => keys.includes(d.key));
    let added: Drawer | null = null;
    specs.forEach((spec, i) => {
      const key = keys[i];
      if (this.open.some((d) => d.key === key)) return;
      const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      const made = spec.kind === 'bead' ? beadDrawer(this.s, spec.rigId, spec.beadId, i)
        : spec.kind === 'agent' ? agentDrawer(this.s, spec.agentId, i) : eventDrawer(this.s, spec.eventId, i);
      added = { ...made, key, opener };
      this.open.push(added);
    });
    // Order and depth follow the URL.
    this.open.sort((a, b) => keys.indexOf(a.key) - keys.indexOf(b.key));
    this.open.forEach((d, i) => {
      d.el.dataset.depth = String(i);
      d.el.classList.toggle('top', i === this.open.length - 1);
      d.el.style.setProperty('--behind', String(this.open.length - 1 - i));
      d.el.inert = i !== this.open.length - 1;
      this.el.appendChild(d.el);
    });
    this.el.classList.toggle('has-drawers', this.open.length > 0);
    if (added) (added as Drawer).heading.focus();
    else if (refocus?.isConnected) refocus.focus();
    else if (refocus) this.open.at(-1)?.heading.focus();
  }

  update(): void {
    this.open.forEach((d) => d.update());
  }

  dispose(): void {
    this.open.forEach((d) => d.dispose());
    this.open = [];
  }
}
