// One terminal on a page of its own (`#/towns/<town>/terminal/<agent>`): the terminal panel's
// pop-out. It fills the window, reattaches by itself like the panel's terminals, and has its
// own Reconnect button.

import { h } from '../dom';
import { href } from '../router';
import type { TownState } from '../store';
import { AgentTerminal, LEAVE_HINT } from '../terminal';
import { mayorState, Reattacher, statusText } from '../termbar';
import { roleTag, type View } from '../ui';

export class TerminalPage implements View {
  el: HTMLElement;
  private term: AgentTerminal | null = null;
  private title = h('h1', { tabindex: -1 }, 'Terminal');
  private sub = h('span', { class: 'muted small' });
  private statusEl = h('span', { class: 'term-status', role: 'status', 'aria-live': 'polite' });
  private reconnect = h('button', { class: 'btn small', hidden: true, onclick: () => this.term?.reattach() }, 'Reconnect');
  private hint = h('span', { class: 'term-hint muted small', hidden: true }, LEAVE_HINT);
  private host = h('div', { class: 'popout-host' });
  private reattacher: Reattacher;
  private terms = new Map<string, AgentTerminal>();

  constructor(private readonly s: TownState, private readonly agentId: string) {
    this.reattacher = new Reattacher(s);
    this.el = h('div', { class: 'page popout' },
      h('header', { class: 'popout-head row' }, this.title, this.sub, h('span', { class: 'grow' }), this.statusEl, this.reconnect, this.hint,
        h('a', { class: 'btn small', href: href('overview', s.townId) }, 'Back to the town')),
      this.host);
    this.update();
  }

  update(): void {
    const a = this.s.agent(this.agentId);
    if (!this.term && (a || this.s.town)) {
      const writable = a?.role === 'mayor';
      if (writable && mayorState(this.s) === 'unknown') return;
      this.term = new AgentTerminal(this.s.townId, this.agentId, a?.name ?? this.agentId, writable);
      this.term.onStatus = () => this.renderState();
      this.term.onLeave = () => this.title.focus();
      this.terms.set(this.agentId, this.term);
      this.host.appendChild(this.term.el);
    }
    this.title.textContent = a ? `${a.name} terminal` : 'Terminal';
    document.title = `${a?.name ?? 'Terminal'} · Gastown`;
    this.sub.replaceChildren(...(a ? [roleTag(a.role), ' ', a.rig_id ? `rig ${this.s.rig(a.rig_id)?.name ?? ''}` : 'town-wide'] : []));
    this.reattacher.sync(this.terms);
    this.renderState();
  }

  private renderState(): void {
    const t = this.term;
    if (!t) return;
    this.statusEl.className = `term-status ts-${t.status}`;
    this.statusEl.dataset.status = t.status;
    this.statusEl.textContent = statusText(t.status, t.detail, t.writable);
    this.reconnect.hidden = t.status !== 'reconnecting' && t.status !== 'disconnected';
    this.hint.hidden = !t.writable;
  }

  dispose(): void {
    this.term?.dispose();
  }
}
