// The terminal panel on every town page: the mayor's terminal (read-write) is always the first
// tab, agent terminals open as further read-only tabs, and the session picker lists every
// session (mayor, witness, refinery, polecats) with its role colour and status. The open tab is
// in the URL (`term=<agentId>`). A message box sends mail to the mayor (starting it on the first
// message).
//
// The panel is resizable (drag the handle, or focus it and use the arrow keys; the height is
// remembered in localStorage), can be maximised (full screen on phones), collapsed, popped out
// to a page of its own (`#/towns/<town>/terminal/<agent>`), and on wide screens shows several
// terminals side by side. Terminals reattach by themselves whenever their agent runs again.

import * as api from './api';
import type { Session } from './api';
import { busy, fillIfChanged, h, toast } from './dom';
import { current, hrefTerminal, setParam } from './router';
import type { TownState } from './store';
import { AgentTerminal, LEAVE_HINT, type TermStatus } from './terminal';

const MAYOR = 'mayor';
const LS_HEIGHT = 'gastown.termbar.height';
const LS_COLLAPSED = 'gastown.termbar.collapsed';
const LS_SPLIT = 'gastown.termbar.split';
const MIN_H = 120;
/** Side by side only where there is room for it. */
export const SPLIT_MIN_WIDTH = 1200;
const MAX_SPLIT = 3;

const store = {
  get: (k: string) => { try { return localStorage.getItem(k); } catch { return null; } },
  set: (k: string, v: string) => { try { localStorage.setItem(k, v); } catch { /* private mode */ } },
};

/** The mayor: not known yet (its status has not loaded), not running, or running / starting. */
export function mayorState(s: TownState): 'unknown' | 'idle' | 'running' {
  if (s.mayor) return s.mayor.status === 'idle' ? 'idle' : 'running';
  if (s.unavailable.has('mayor')) {
    const id = s.agents.find((a) => a.role === 'mayor')?.id;
    return s.sessions.find((x) => x.agent_id === id)?.status === 'active' ? 'running' : 'idle';
  }
  return 'unknown';
}

export function mayorId(s: TownState): string | null {
  return s.mayor?.agent?.id ?? s.agents.find((a) => a.role === 'mayor')?.id ?? null;
}

/** Is this agent expected to be running (so its terminal should be attached)? */
export function expectRunning(s: TownState, agentId: string): boolean {
  const a = s.agent(agentId);
  if (a?.role === 'mayor' || agentId === mayorId(s)) return mayorState(s) !== 'idle';
  if (s.sessions.find((x) => x.agent_id === agentId)?.status === 'active') return true;
  if (!a) return !s.agents.length;
  return a.status === 'working' || a.status === 'stalled';
}

/** Keeps a set of terminals attached while their agents run: new runs, stream reconnects. */
export class Reattacher {
  private epochs = new Map<string, number>();
  private stream = '';
  constructor(private readonly s: TownState) {}

  sync(terms: Map<string, AgentTerminal>): void {
    const streamBack = this.stream !== '' && this.stream !== 'connected' && this.s.streamStatus === 'connected';
    this.stream = this.s.streamStatus;
    for (const [id, t] of terms) {
      const epoch = this.s.agent(id)?.spawn_epoch ?? -1;
      const newRun = this.epochs.has(id) && epoch > (this.epochs.get(id) ?? -1);
      this.epochs.set(id, epoch);
      t.setRunning(expectRunning(this.s, id));
      if (newRun || streamBack) t.reattach();
    }
  }
}

export function statusText(st: TermStatus | 'not-running' | 'unknown', detail: string, writable?: boolean): string {
  const mode = writable === undefined ? '' : writable ? ' · read-write' : ' · read-only';
  if (st === 'not-running') return 'mayor not running';
  if (st === 'unknown') return 'checking the mayor…';
  return `${st}${detail ? ` (${detail})` : ''}${mode}`;
}

export class TermBar {
  readonly el: HTMLElement;
  private tablist = h('div', { role: 'tablist', 'aria-label': 'Terminals', class: 'term-tabs' });
  private body = h('div', { class: 'termbar-body' });
  private statusEl = h('span', { class: 'term-status', role: 'status', 'aria-live': 'polite' });
  private hintEl = h('span', { class: 'term-hint muted small' }, LEAVE_HINT);
  private reconnectBtn: HTMLButtonElement;
  private closeBtn = h('button', { class: 'icon-btn term-close', hidden: true, onclick: () => { if (this.active !== MAYOR) this.closeTab(this.active); } }, '×') as HTMLButtonElement;
  private pickerBtn: HTMLButtonElement;
  private picker = h('div', { class: 'session-picker', role: 'dialog', 'aria-label': 'Sessions', hidden: true });
  private collapseBtn: HTMLButtonElement;
  private maxBtn: HTMLButtonElement;
  private splitBtn: HTMLButtonElement;
  private popLink: HTMLAnchorElement;
  private handle: HTMLElement;
  /** Agent ids of the open tabs other than the mayor's, in opening order. */
  private tabs: string[] = [];
  private terms = new Map<string, AgentTerminal>();
  private panels = new Map<string, HTMLElement>();
  private active = MAYOR;
  private collapsed = store.get(LS_COLLAPSED) === '1';
  private maximised = false;
  private split = store.get(LS_SPLIT) === '1';
  private height: number;
  private offEvents: () => void;
  private reattacher: Reattacher;
  private onResize = () => { this.applyHeight(); this.renderPanel(); };

  constructor(private readonly s: TownState) {
    this.reattacher = new Reattacher(s);
    this.height = Number(store.get(LS_HEIGHT)) || Math.round(Math.min(280, window.innerHeight * 0.3));
    this.pickerBtn = h('button', { class: 'btn small', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', onclick: () => this.togglePicker() }, 'Sessions ▾') as HTMLButtonElement;
    this.collapseBtn = h('button', { class: 'icon-btn', 'aria-label': 'Collapse terminals', 'aria-expanded': 'true', onclick: () => this.setCollapsed(!this.collapsed) }, '▾') as HTMLButtonElement;
    this.maxBtn = h('button', { class: 'icon-btn', 'aria-label': 'Maximise terminals', 'aria-pressed': 'false', title: 'Maximise', onclick: () => this.setMaximised(!this.maximised) }, '⤢') as HTMLButtonElement;
    this.splitBtn = h('button', { class: 'icon-btn split-btn', 'aria-label': 'Terminals side by side', 'aria-pressed': String(this.split), title: 'Side by side', onclick: () => this.setSplit(!this.split) }, '‖') as HTMLButtonElement;
    this.popLink = h('a', { class: 'icon-btn', href: '#', target: '_blank', rel: 'noopener', 'aria-label': 'Pop out this terminal', title: 'Pop out' }, '↗') as HTMLAnchorElement;
    this.reconnectBtn = h('button', { class: 'btn small', hidden: true, onclick: () => this.terms.get(this.activeAgentId() ?? '')?.reattach() }, 'Reconnect') as HTMLButtonElement;
    const msg = h('input', { name: 'mayor-message', placeholder: 'Message the mayor…', 'aria-label': 'Message to the mayor', autocomplete: 'off' });
    const send = h('form', { class: 'mayor-msg' }, msg, h('button', { class: 'btn small primary', type: 'submit' }, 'Send'));
    send.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!msg.value.trim()) return;
      await busy(send.querySelector('button'), 'Messaging the mayor', async () => {
        await api.post(`${api.T(s.townId)}/mayor/message`, { message: msg.value.trim() });
        msg.value = '';
        toast('Sent to the mayor');
        await s.reload('mayor', 'agents', 'sessions');
      });
    });
    this.picker.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.stopPropagation(); this.togglePicker(false); this.pickerBtn.focus(); } });
    this.handle = h('div', {
      class: 'term-resize', role: 'separator', tabindex: 0, 'aria-orientation': 'horizontal', 'aria-label': 'Resize terminals (arrow keys)',
      'aria-valuemin': MIN_H, 'aria-valuemax': this.maxHeight(), 'aria-valuenow': this.height,
      onkeydown: (e: KeyboardEvent) => {
        const step = e.shiftKey ? 80 : 20;
        const next = e.key === 'ArrowUp' ? this.height + step : e.key === 'ArrowDown' ? this.height - step : e.key === 'Home' ? MIN_H : e.key === 'End' ? this.maxHeight() : null;
        if (next === null) return;
        e.preventDefault();
        this.setHeight(next);
      },
      onpointerdown: (e: PointerEvent) => this.drag(e),
    });
    this.el = h('section', { class: 'termbar', 'aria-label': 'Terminals' },
      this.handle,
      h('div', { class: 'termbar-head' },
        h('div', { class: 'termbar-tabs-row' }, this.tablist, this.closeBtn, h('div', { class: 'picker-wrap' }, this.pickerBtn, this.picker)),
        h('div', { class: 'termbar-state' }, this.statusEl, this.reconnectBtn, this.hintEl),
        h('span', { class: 'grow' }), send,
        h('div', { class: 'termbar-tools' }, this.splitBtn, this.popLink, this.maxBtn, this.collapseBtn)),
      this.body);
    this.applyHeight();
    this.setCollapsed(this.collapsed);
    // A new run of an agent whose terminal is open: attach again to see it from the start.
    this.offEvents = s.onEventRaw((e) => {
      if (e.event_type === 'agent_spawned' && e.agent_id) this.terms.get(e.agent_id)?.reattach();
    });
    window.addEventListener('resize', this.onResize);
    this.update();
  }

  dispose(): void {
    this.offEvents();
    window.removeEventListener('resize', this.onResize);
    this.terms.forEach((t) => t.dispose());
    this.terms.clear();
  }

  private maxHeight(): number {
    return Math.max(MIN_H, window.innerHeight - 48 - 60);
  }

  private applyHeight(): void {
    this.height = Math.min(Math.max(MIN_H, this.height), this.maxHeight());
    this.el.style.setProperty('--termbar-h', `${this.height}px`);
    this.handle.setAttribute('aria-valuenow', String(this.height));
    this.handle.setAttribute('aria-valuemax', String(this.maxHeight()));
  }

  private setHeight(px: number): void {
    this.height = Math.round(px);
    this.applyHeight();
    store.set(LS_HEIGHT, String(this.height));
    if (this.collapsed) this.setCollapsed(false);
    if (this.maximised) this.setMaximised(false);
    this.refitAll();
  }

  private drag(e: PointerEvent): void {
    e.preventDefault();
    const startY = e.clientY;
    const startH = this.height;
    this.handle.setPointerCapture(e.pointerId);
    const move = (ev: PointerEvent) => this.setHeight(startH + (startY - ev.clientY));
    const up = () => { this.handle.removeEventListener('pointermove', move); this.handle.removeEventListener('pointerup', up); };
    this.handle.addEventListener('pointermove', move);
    this.handle.addEventListener('pointerup', up);
  }

  private refitAll(): void {
    requestAnimationFrame(() => this.terms.forEach((t) => t.refit()));
  }

  private setCollapsed(c: boolean): void {
    this.collapsed = c;
    store.set(LS_COLLAPSED, c ? '1' : '0');
    if (c && this.maximised) this.setMaximised(false);
    this.el.classList.toggle('collapsed', c);
    this.collapseBtn.setAttribute('aria-expanded', String(!c));
    this.collapseBtn.setAttribute('aria-label', c ? 'Expand terminals' : 'Collapse terminals');
    this.collapseBtn.textContent = c ? '▴' : '▾';
    if (!c) this.refitAll();
  }

  setMaximised(m: boolean): void {
    this.maximised = m;
    if (m && this.collapsed) this.setCollapsed(false);
    this.el.classList.toggle('maximised', m);
    document.body.classList.toggle('term-maximised', m);
    this.maxBtn.setAttribute('aria-pressed', String(m));
    this.maxBtn.setAttribute('aria-label', m ? 'Restore the terminal size' : 'Maximise terminals');
    this.maxBtn.textContent = m ? '⤡' : '⤢';
    this.refitAll();
  }

  private setSplit(on: boolean): void {
    this.split = on;
    store.set(LS_SPLIT, on ? '1' : '0');
    this.splitBtn.setAttribute('aria-pressed', String(on));
    this.renderPanel();
    this.refitAll();
  }

  /** Focus the active terminal (the `t` shortcut). */
  focusTerminal(): void {
    if (this.collapsed) this.setCollapsed(false);
    const t = this.terms.get(this.activeAgentId() ?? '');
    if (t) t.focus();
    else document.getElementById(`termtab-${this.active}`)?.focus();
  }

  toggleMaximised(): void { this.setMaximised(!this.maximised); }

  private togglePicker(open = this.picker.hidden): void {
    this.picker.hidden = !open;
    this.pickerBtn.setAttribute('aria-expanded', String(open));
    if (open) {
      this.renderPicker(true);
      this.picker.querySelector<HTMLElement>('button')?.focus();
    }
  }

  private activeAgentId(): string | null {
    return this.active === MAYOR ? mayorId(this.s) : this.active;
  }

  /** Route or state changed. */
  update(): void {
    const want = current().params.get('term');
    const mid = mayorId(this.s);
    const target = !want || want === mid ? MAYOR : want;
    if (target !== MAYOR && !this.tabs.includes(target)) this.tabs.push(target);
    if (target !== this.active) {
      this.active = target;
      if (this.collapsed) this.setCollapsed(false);
    }
    this.renderTabs();
    this.renderPanel();
    this.reattacher.sync(this.terms);
    this.renderState();
    if (!this.picker.hidden) this.renderPicker(false);
  }

  private session(agentId: string | null): Session | undefined {
    return this.s.sessions.find((x) => x.agent_id === agentId);
  }

  private renderTabs(): void {
    const mid = mayorId(this.s);
    const ids = [MAYOR, ...this.tabs];
    const ms = mayorState(this.s);
    const key = JSON.stringify([ids, this.active, this.s.sessions, this.s.agents.map((a) => [a.name, a.status]), ms]);
    fillIfChanged(this.tablist, key, () => ids.map((id) => {
      const agentId = id === MAYOR ? mid : id;
      const a = this.s.agent(agentId);
      const role = id === MAYOR ? 'mayor' : a?.role ?? 'polecat';
      const st = id === MAYOR ? (ms === 'idle' ? 'not running' : ms === 'unknown' ? 'idle' : this.session(agentId)?.status ?? 'active')
        : this.session(agentId)?.status ?? (a && (a.status === 'working' || a.status === 'stalled') ? 'active' : 'idle');
      const selected = id === this.active;
      const tab = h('button', {
        role: 'tab', class: `term-tab role-${role}`, id: `termtab-${id}`, 'aria-selected': String(selected), tabindex: selected ? 0 : -1,
        'aria-controls': 'term-panel', 'data-focus-key': `termtab-${id}`,
        onclick: () => setParam('term', id === MAYOR ? null : id, false),
        onkeydown: (e: KeyboardEvent) => {
          const i = ids.indexOf(id);
          const next = e.key === 'ArrowRight' ? ids[(i + 1) % ids.length] : e.key === 'ArrowLeft' ? ids[(i - 1 + ids.length) % ids.length] : null;
          if (next) { setParam('term', next === MAYOR ? null : next, false); requestAnimationFrame(() => document.getElementById(`termtab-${next}`)?.focus()); }
          if (e.key === 'Delete' && id !== MAYOR) this.closeTab(id);
        },
      }, h('span', { class: `dot st-${st.replace(' ', '-')}`, 'aria-hidden': 'true' }), id === MAYOR ? 'Mayor' : a?.name ?? id.slice(0, 8), h('span', { class: 'sr-only' }, `, ${st}${id === MAYOR ? ', read-write' : ', read-only'}`));
      return tab;
    }));
    // The tablist holds only tabs: the open agent tab's close button sits beside it.
    const a = this.s.agent(this.active);
    this.closeBtn.hidden = this.active === MAYOR;
    this.closeBtn.setAttribute('aria-label', `Close ${a?.name ?? 'agent'} terminal`);
    this.closeBtn.title = 'Close this terminal (Delete on its tab)';
  }

  private closeTab(id: string): void {
    this.tabs = this.tabs.filter((t) => t !== id);
    this.terms.get(id)?.dispose();
    this.terms.delete(id);
    this.panels.get(id)?.remove();
    this.panels.delete(id);
    if (this.active === id) setParam('term', null, false);
    else this.update();
  }

  private terminalFor(agentId: string, tabId: string): AgentTerminal {
    let term = this.terms.get(agentId);
    if (term) return term;
    const a = this.s.agent(agentId);
    const writable = tabId === MAYOR || a?.role === 'mayor';
    term = new AgentTerminal(this.s.townId, agentId, a?.name ?? (writable ? 'Mayor' : agentId), writable);
    term.onStatus = () => this.renderState();
    term.onLeave = () => {
      document.getElementById(`termtab-${tabId}`)?.focus();
    };
    this.terms.set(agentId, term);
    const panel = h('div', { class: 'term-panel', role: 'tabpanel', 'aria-labelledby': `termtab-${tabId}`, 'data-agent-id': agentId },
      h('div', { class: 'term-caption' }, writable ? 'Mayor' : a?.name ?? agentId), term.el);
    this.panels.set(agentId, panel);
    this.body.appendChild(panel);
    return term;
  }

  private placeholder(): 'unknown' | 'idle' | null {
    if (this.active !== MAYOR) return null;
    const mid = mayorId(this.s);
    const ms = mayorState(this.s);
    if (ms === 'unknown') return 'unknown';
    // The mayor is not running and this page has not shown its terminal: offer to start it.
    if (!mid || (ms === 'idle' && !this.terms.has(mid))) return 'idle';
    return null;
  }

  private renderPanel(): void {
    const agentId = this.activeAgentId();
    const ph = this.placeholder();
    this.el.classList.toggle('compact', ph !== null);
    const mid = mayorId(this.s);
    this.popLink.hidden = ph !== null || !agentId;
    if (agentId) this.popLink.href = hrefTerminal(this.s.townId, agentId);
    if (ph) {
      const startKey = `ph-${ph}-${mid}`;
      [...this.panels.values()].forEach((p) => { p.hidden = true; p.id = ''; });
      if (this.body.dataset.renderKey !== startKey) {
        this.body.querySelector('.mayor-start')?.remove();
        this.body.dataset.renderKey = startKey;
        this.body.appendChild(ph === 'unknown'
          ? h('div', { class: 'mayor-start', id: 'term-panel', role: 'tabpanel', 'aria-labelledby': 'termtab-mayor' }, h('p', null, 'Checking whether the mayor is running…'))
          : h('div', { class: 'mayor-start', id: 'term-panel', role: 'tabpanel', 'aria-labelledby': 'termtab-mayor' },
            h('p', null, 'The mayor plans work and slings it to the rigs. It is not running.'),
            h('button', { class: 'btn primary', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Starting the mayor', async () => {
              await api.post(`${api.T(this.s.townId)}/mayor/ensure`);
              await this.s.reload('mayor', 'agents', 'sessions');
            }) }, 'Start the mayor')));
      }
      this.body.classList.remove('split');
      return;
    }
    this.body.querySelector('.mayor-start')?.remove();
    if (!agentId) return;
    this.body.dataset.renderKey = `term-${agentId}`;
    this.terminalFor(agentId, this.active);
    // Side by side: the active terminal and the most recently opened others, where there is room.
    const splitOn = this.split && window.innerWidth >= SPLIT_MIN_WIDTH && this.panels.size > 1;
    this.splitBtn.hidden = window.innerWidth < SPLIT_MIN_WIDTH || this.tabs.length === 0;
    const shown = new Set<string>([agentId]);
    if (splitOn) {
      const order = [mid, ...this.tabs].filter((x): x is string => !!x && this.panels.has(x));
      for (const id of order.reverse()) if (shown.size < MAX_SPLIT) shown.add(id);
    }
    this.body.classList.toggle('split', splitOn);
    for (const [id, p] of this.panels) {
      p.hidden = !shown.has(id);
      p.id = id === agentId ? 'term-panel' : '';
      p.classList.toggle('active', id === agentId);
    }
    this.refitAll();
  }

  private renderState(): void {
    const ph = this.placeholder();
    const term = this.terms.get(this.activeAgentId() ?? '');
    const mayorIdle = mayorState(this.s) === 'idle';
    if (ph || !term) {
      this.setStatus(ph === 'unknown' ? 'unknown' : 'not-running', '');
      this.reconnectBtn.hidden = true;
      this.hintEl.hidden = true;
      return;
    }
    this.setStatus(this.active === MAYOR && mayorIdle && term.status === 'waiting' ? 'not-running' : term.status, term.detail, term.writable);
    // Only where trying again now can help: not while live, and not for a run that ended or an agent that is not running.
    this.reconnectBtn.hidden = term.status !== 'reconnecting' && term.status !== 'disconnected';
    this.hintEl.hidden = !term.writable;
  }

  private setStatus(st: TermStatus | 'not-running' | 'unknown', detail: string, writable?: boolean): void {
    this.statusEl.className = `term-status ts-${st}`;
    this.statusEl.dataset.status = st;
    this.statusEl.textContent = statusText(st, detail, writable);
  }

  private renderPicker(force: boolean): void {
    const order = { mayor: 0, witness: 1, refinery: 2, polecat: 3 } as Record<string, number>;
    // Sessions, plus agents that have none right now (a witness or refinery between runs).
    const list: Session[] = [...this.s.sessions];
    for (const a of this.s.agents) {
      if (!list.some((x) => x.agent_id === a.id)) list.push({ name: a.name, role: a.role, agent_id: a.id, rig_id: a.rig_id, status: a.status === 'dead' ? 'dead' : 'idle', writable: a.role === 'mayor' });
    }
    list.sort((a, b) => (order[a.role] - order[b.role]) || a.name.localeCompare(b.name));
    if (force) delete this.picker.dataset.renderKey;
    fillIfChanged(this.picker, JSON.stringify(list), () => [
      h('h3', { class: 'sr-only' }, 'Sessions'),
      list.length ? h('ul', { class: 'plain' }, list.map((x) => h('li', null, h('button', {
        class: `session role-${x.role}`, 'data-focus-key': `session-${x.agent_id}`,
        onclick: () => { this.togglePicker(false); setParam('term', x.role === 'mayor' ? null : x.agent_id, false); },
      }, h('span', { class: `dot st-${x.status}`, 'aria-hidden': 'true' }), h('strong', null, x.name), h('span', { class: `role-tag role-${x.role}` }, x.role),
      h('span', { class: `badge badge-st-${x.status}` }, x.status), x.writable ? h('span', { class: 'muted small' }, 'read-write') : null)))) :
        h('p', { class: 'empty' }, this.s.unavailable.has('sessions') ? 'Sessions are not available.' : 'No sessions yet.'),
    ]);
  }
}
