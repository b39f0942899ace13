// The terminal bar on every town page: the mayor's terminal (read-write) is always the first
// tab, agent terminals open as further read-only tabs, and the session picker lists every
// session with its role colour and status. The open tab is in the URL (`term=<agentId>`).
// A message box sends mail to the mayor (starting it on the first message).

import * as api from './api';
import type { Session } from './api';
import { busy, fill, fillIfChanged, h, toast } from './dom';
import { current, setParam } from './router';
import type { TownState } from './store';
import { AgentTerminal, type TermStatus } from './terminal';

const MAYOR = 'mayor';

export class TermBar {
  readonly el: HTMLElement;
  private tablist = h('div', { role: 'tablist', 'aria-label': 'Terminals', class: 'term-tabs' });
  private body = h('div', { class: 'termbar-body' });
  private statusEl = h('span', { class: 'term-status', role: 'status', 'aria-live': 'polite' });
  private pickerBtn: HTMLButtonElement;
  private picker = h('div', { class: 'session-picker', role: 'dialog', 'aria-label': 'Sessions', hidden: true });
  private collapseBtn: HTMLButtonElement;
  /** Agent ids of the open tabs other than the mayor's, in opening order. */
  private tabs: string[] = [];
  private terms = new Map<string, AgentTerminal>();
  private panels = new Map<string, HTMLElement>();
  private active = MAYOR;
  private collapsed = false;
  private offEvents: () => void;

  constructor(private readonly s: TownState) {
    this.pickerBtn = h('button', { class: 'btn small', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', onclick: () => this.togglePicker() }, 'Sessions ▾') as HTMLButtonElement;
    this.collapseBtn = h('button', { class: 'icon-btn', 'aria-label': 'Collapse terminals', 'aria-expanded': 'true', onclick: () => this.setCollapsed(!this.collapsed) }, '▾') as HTMLButtonElement;
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
    this.el = h('section', { class: 'termbar', 'aria-label': 'Terminals' },
      h('div', { class: 'termbar-head' }, this.tablist, h('div', { class: 'picker-wrap' }, this.pickerBtn, this.picker), this.statusEl, h('span', { class: 'grow' }), send, this.collapseBtn),
      this.body);
    // A new run of an agent whose terminal is open: attach again to see it from the start.
    this.offEvents = s.onEventRaw((e) => {
      if (e.event_type === 'agent_spawned' && e.agent_id) this.terms.get(e.agent_id)?.restart();
    });
    this.update();
  }

  dispose(): void {
    this.offEvents();
    this.terms.forEach((t) => t.dispose());
    this.terms.clear();
  }

  private setCollapsed(c: boolean): void {
    this.collapsed = c;
    this.el.classList.toggle('collapsed', c);
    this.collapseBtn.setAttribute('aria-expanded', String(!c));
    this.collapseBtn.setAttribute('aria-label', c ? 'Expand terminals' : 'Collapse terminals');
    this.collapseBtn.textContent = c ? '▴' : '▾';
    if (!c) requestAnimationFrame(() => this.terms.get(this.activeAgentId() ?? '')?.refit());
  }

  private togglePicker(open = this.picker.hidden): void {
    this.picker.hidden = !open;
    this.pickerBtn.setAttribute('aria-expanded', String(open));
    if (open) {
      this.renderPicker(true);
      this.picker.querySelector<HTMLElement>('button')?.focus();
    }
  }

  private mayorId(): string | null {
    return this.s.mayor?.agent?.id ?? this.s.agents.find((a) => a.role === 'mayor')?.id ?? null;
  }

  private activeAgentId(): string | null {
    return this.active === MAYOR ? this.mayorId() : this.active;
  }

  /** Route or state changed. */
  update(): void {
    const want = current().params.get('term');
    const mayorId = this.mayorId();
    const target = !want || want === mayorId ? MAYOR : want;
    if (target !== MAYOR && !this.tabs.includes(target)) this.tabs.push(target);
    if (target !== this.active) {
      this.active = target;
      if (this.collapsed) this.setCollapsed(false);
    }
    this.renderTabs();
    this.renderPanel();
    if (!this.picker.hidden) this.renderPicker(false);
  }

  private session(agentId: string | null): Session | undefined {
    return this.s.sessions.find((x) => x.agent_id === agentId);
  }

  private renderTabs(): void {
    const mayorId = this.mayorId();
    const ids = [MAYOR, ...this.tabs];
    const key = JSON.stringify([ids, this.active, this.s.sessions, this.s.agents.map((a) => a.name)]);
    fillIfChanged(this.tablist, key, () => ids.map((id) => {
      const agentId = id === MAYOR ? mayorId : id;
      const a = this.s.agent(agentId);
      const role = id === MAYOR ? 'mayor' : a?.role ?? 'polecat';
      const st = this.session(agentId)?.status ?? (id === MAYOR && !mayorId ? 'not started' : 'idle');
      const selected = id === this.active;
      const tab = h('button', {
        role: 'tab', class: `term-tab role-${role}`, id: `termtab-${id}`, 'aria-selected': String(selected), tabindex: selected ? 0 : -1,
        'aria-controls': 'term-panel', 'data-focus-key': `termtab-${id}`,
        onclick: () => setParam('term', id === MAYOR ? null : id, false),
        onkeydown: (e: KeyboardEvent) => {
          const i = ids.indexOf(id);
          const next = e.key === 'ArrowRight' ? ids[(i + 1) % ids.length] : e.key === 'ArrowLeft' ? ids[(i - 1 + ids.length) % ids.length] : null;
          if (next) { setParam('term', next === MAYOR ? null : next, false); requestAnimationFrame(() => document.getElementById(`termtab-${next}`)?.focus()); }
          if ((e.key === 'Delete') && id !== MAYOR) this.closeTab(id);
        },
      }, h('span', { class: `dot st-${st.replace(' ', '-')}`, 'aria-hidden': 'true' }), id === MAYOR ? 'Mayor' : a?.name ?? id.slice(0, 8), h('span', { class: 'sr-only' }, `, ${st}${id === MAYOR ? ', read-write' : ', read-only'}`));
      if (id === MAYOR) return tab;
      return h('span', { class: 'tab-wrap' }, tab, h('button', { class: 'tab-close', 'aria-label': `Close ${a?.name ?? 'agent'} terminal`, onclick: () => this.closeTab(id) }, '×'));
    }));
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

  private renderPanel(): void {
    const mayorId = this.mayorId();
    const agentId = this.activeAgentId();
    // The mayor has never run: offer to start it rather than a dead terminal.
    const placeholder = this.active === MAYOR && (!mayorId || (this.s.mayor?.status === 'idle' && !this.terms.has(mayorId)));
    this.el.classList.toggle('compact', placeholder);
    if (placeholder) {
      const startKey = `start-${mayorId}-${this.s.mayor?.status}`;
      if (this.body.dataset.renderKey !== startKey) {
        [...this.panels.values()].forEach((p) => { p.hidden = true; });
        this.body.querySelector('.mayor-start')?.remove();
        this.body.dataset.renderKey = startKey;
        this.body.appendChild(h('div', { class: 'mayor-start', id: 'term-panel', role: 'tabpanel', 'aria-labelledby': 'termtab-mayor' },
          h('p', null, 'The mayor plans work and slings it to the rigs. It is not running.'),
          h('button', { class: 'btn primary', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Starting the mayor', async () => {
            await api.post(`${api.T(this.s.townId)}/mayor/ensure`);
            await this.s.reload('mayor', 'agents', 'sessions');
          }) }, 'Start the mayor')));
        this.setStatus('not-running', '');
      }
      return;
    }
    this.body.querySelector('.mayor-start')?.remove();
    if (!agentId) return;
    this.body.dataset.renderKey = `term-${agentId}`;
    let term = this.terms.get(agentId);
    if (!term) {
      const a = this.s.agent(agentId);
      const writable = this.active === MAYOR || a?.role === 'mayor';
      term = new AgentTerminal(this.s.townId, agentId, a?.name ?? (writable ? 'Mayor' : agentId), writable);
      const t = term;
      term.onStatus = (st, d) => { if (this.activeAgentId() === agentId) this.setStatus(st, d, t.writable); };
      this.terms.set(agentId, term);
      const panel = h('div', { class: 'term-panel', role: 'tabpanel', 'aria-labelledby': `termtab-${this.active}` }, term.el);
      this.panels.set(agentId, panel);
      this.body.appendChild(panel);
    }
    for (const [id, p] of this.panels) {
      const on = id === agentId;
      p.hidden = !on;
      p.id = on ? 'term-panel' : '';
    }
    this.setStatus(term.status, '', term.writable);
    requestAnimationFrame(() => term!.refit());
  }

  private setStatus(st: TermStatus | 'not-running', detail: string, writable?: boolean): void {
    const mode = writable === undefined ? '' : writable ? ' · read-write' : ' · read-only';
    this.statusEl.className = `term-status ts-${st}`;
    this.statusEl.textContent = st === 'not-running' ? 'mayor not running' : `${st}${detail ? ` (${detail})` : ''}${mode}`;
  }

  private renderPicker(force: boolean): void {
    const order = { mayor: 0, witness: 1, refinery: 2, polecat: 3 } as Record<string, number>;
    const list = [...this.s.sessions].sort((a, b) => (order[a.role] - order[b.role]) || a.name.localeCompare(b.name));
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

  /** For the whole bar: hidden state across page changes. */
  clear(): void {
    fill(this.body);
  }
}
