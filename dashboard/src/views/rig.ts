// A rig: its beads as a board by status or as a filterable list, the sling form (title, body,
// priority) and the rig's agents. Board/list and the filters live in the URL.

import * as api from '../api';
import type { Bead, BeadStatus } from '../api';
import { busy, confirmDialog, errorSlot, field, fill, fillIfChanged, h, timeEl, toast } from '../dom';
import { current, goPage, openDrawer, setParam } from '../router';
import type { TownState } from '../store';
import { agentCard, beadCard, empty, roleTag, section, type View } from '../ui';

const COLUMNS: { status: BeadStatus; label: string }[] = [
  { status: 'open', label: 'Open' },
  { status: 'in_progress', label: 'In progress' },
  { status: 'in_review', label: 'In review' },
  { status: 'closed', label: 'Closed' },
  { status: 'failed', label: 'Failed' },
];

export class RigView implements View {
  el: HTMLElement;
  private title = h('h1', { tabindex: -1 }, 'Rig');
  private meta = h('p', { class: 'muted' });
  private beadsHost = h('div');
  private filterBar = h('div', { class: 'filters' });
  private filterCount = h('span', { class: 'muted' });
  private agents = h('div', { class: 'agent-grid', role: 'list', 'aria-label': 'Agents of this rig' });
  private tabs: HTMLButtonElement[];
  private search = h('input', { type: 'search', placeholder: 'Filter by id, title, assignee…', 'aria-label': 'Filter beads' });
  private statusSel = h('select', { 'aria-label': 'Filter by status' }, h('option', { value: '' }, 'All statuses'), COLUMNS.map((c) => h('option', { value: c.status }, c.label)));
  private prioSel = h('select', { 'aria-label': 'Filter by priority' }, h('option', { value: '' }, 'All priorities'), ['critical', 'high', 'medium', 'low'].map((p) => h('option', { value: p }, p)));

  constructor(private readonly s: TownState, private readonly rigId: string, userId: string) {
    const title = h('input', { name: 'title', required: true, maxlength: 200, placeholder: 'What should be done?', autocomplete: 'off' });
    const body = h('textarea', { name: 'body', rows: 3, placeholder: 'Details, acceptance criteria… (optional)' });
    const prio = h('select', { name: 'priority' }, ['critical', 'high', 'medium', 'low'].map((p) => h('option', { value: p, selected: p === 'medium' }, p)));
    const model = h('input', { name: 'model', placeholder: 'the town’s (see Settings)', autocomplete: 'off', pattern: '[A-Za-z0-9._:\\/@\\-]{1,100}' });
    const err = errorSlot();
    const sling = h('form', { class: 'grid-form sling-form', 'aria-label': 'Sling a bead' },
      field('Title', title), field('Priority', prio), h('div', { class: 'span-all' }, field('Body', body)),
      field('Model for this work', model, 'Optional: overrides the runtime’s model for this bead only.'),
      h('div', { class: 'form-actions' }, h('button', { class: 'btn primary', type: 'submit' }, 'Sling'),
        h('button', { class: 'btn', type: 'button', onclick: async (ev: Event) => {
          err.show(null);
          if (!title.value.trim()) { title.reportValidity(); return; }
          await busy(ev.target as HTMLButtonElement, 'Creating the bead', async () => {
            const b = await api.post<Bead>(`${api.R(s.townId, rigId)}/beads`, { title: title.value.trim(), body: body.value.trim() || undefined, priority: prio.value });
            title.value = '';
            body.value = '';
            toast(`${b.id} created (not slung: it waits in Open)`);
            await s.reload('beads');
          });
        } }, 'Create without slinging')), err);
    sling.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      const btn = sling.querySelector<HTMLButtonElement>('button[type=submit]');
      if (btn) btn.disabled = true;
      try {
        const r = await api.post<{ bead: Bead; agent: { name: string } | null }>(`${api.R(s.townId, rigId)}/sling`, {
          title: title.value.trim(), body: body.value.trim() || undefined, priority: prio.value,
          metadata: model.value.trim() ? { model: model.value.trim() } : undefined,
        });
        title.value = '';
        body.value = '';
        model.value = '';
        toast(r.agent ? `${r.bead.id} slung to ${r.agent.name}` : `${r.bead.id} queued: every polecat slot is busy`);
        await s.reload('beads', 'agents');
      } catch (e) {
        err.show(`Could not sling — ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        if (btn) btn.disabled = false;
      }
    });

    const mk = (view: string, label: string) => h('button', {
      role: 'tab', class: 'tab', id: `tab-${view}`, 'aria-controls': 'beads-panel',
      onclick: () => setParam('view', view === 'board' ? null : view),
    }, label) as HTMLButtonElement;
    this.tabs = [mk('board', 'Board'), mk('list', 'List')];
    this.tabs.forEach((t, i) => t.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') { this.tabs[(i + 1) % 2].focus(); this.tabs[(i + 1) % 2].click(); }
    }));
    fill(this.filterBar, this.search, this.statusSel, this.prioSel, this.filterCount);
    this.search.addEventListener('input', () => setParam('q', this.search.value || null));
    this.statusSel.addEventListener('change', () => setParam('status', this.statusSel.value || null));
    this.prioSel.addEventListener('change', () => setParam('priority', this.prioSel.value || null));

    const del = h('button', { class: 'btn danger small', onclick: async (ev: Event) => {
      const rig = s.rig(rigId);
      if (!(await confirmDialog(`Delete rig “${rig?.name ?? rigId}”?`, 'Its beads and agents are deleted with it. The git repository is not touched.', 'Delete rig'))) return;
      await busy(ev.target as HTMLButtonElement, 'Deleting the rig', async () => {
        await api.del(`/api/users/${encodeURIComponent(userId)}/rigs/${encodeURIComponent(rigId)}`);
        toast('Rig deleted');
        await s.reload('town', 'agents');
        goPage('overview', s.townId);
      });
    } }, 'Delete rig');

    this.el = h('div', { class: 'page rig' },
      h('header', { class: 'page-head row' }, h('div', null, this.title, this.meta), del),
      section('Sling work', sling),
      h('section', { class: 'panel', 'aria-labelledby': 'beads-h' },
        h('div', { class: 'row between' }, h('h2', { id: 'beads-h' }, 'Beads'),
          h('div', { role: 'tablist', 'aria-label': 'Bead views', class: 'tabs' }, this.tabs)),
        h('div', { id: 'beads-panel', role: 'tabpanel' }, this.filterBar, this.beadsHost)),
      section('Agents of this rig', this.agents));
    this.update();
  }

  update(): void {
    const s = this.s;
    const rig = s.rig(this.rigId);
    this.title.textContent = rig ? `Rig ${rig.name}` : 'Rig';
    fill(this.meta, rig ? [h('code', null, rig.git_url), ' · branch ', h('code', null, rig.default_branch), rig.bead_prefix ? [' · prefix ', h('code', null, rig.bead_prefix)] : null] : s.town ? 'This rig does not exist (any more).' : 'Loading…');
    const p = current().params;
    const view = p.get('view') === 'list' ? 'list' : 'board';
    this.tabs.forEach((t) => {
      const sel = t.id === `tab-${view}`;
      t.setAttribute('aria-selected', String(sel));
      t.tabIndex = sel ? 0 : -1;
    });
    const beads = [...(s.beads.get(this.rigId) ?? [])].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    this.filterBar.hidden = view !== 'list';
    const key = JSON.stringify([view, p.get('q'), p.get('status'), p.get('priority'), beads, s.agents.map((a) => a.name)]);
    fillIfChanged(this.beadsHost, key, () => view === 'board' ? this.board(beads) : this.list(beads));
    const agents = s.agents.filter((a) => a.rig_id === this.rigId);
    fillIfChanged(this.agents, JSON.stringify([agents, s.sessions]), () =>
      agents.length ? agents.map((a) => h('div', { role: 'listitem' }, agentCard(a, s))) : empty('No agents yet: sling a bead and a polecat is named for it.'));
  }

  private board(beads: Bead[]): HTMLElement {
    return h('div', { class: 'board' }, COLUMNS.map((c) => {
      const col = beads.filter((b) => b.status === c.status);
      return h('section', { class: `board-col col-${c.status}`, 'aria-label': `${c.label}: ${col.length}` },
        h('h3', null, c.label, h('span', { class: 'count' }, String(col.length))),
        h('div', { class: 'board-cards' }, col.length ? col.map((b) => beadCard(b, this.s)) : h('p', { class: 'empty small' }, '—')));
    }));
  }

  private list(beads: Bead[]): HTMLElement {
    const p = current().params;
    const q = (p.get('q') ?? '').toLowerCase();
    const st = p.get('status') ?? '';
    const pr = p.get('priority') ?? '';
    if (this.search.value !== (p.get('q') ?? '')) this.search.value = p.get('q') ?? '';
    this.statusSel.value = st;
    this.prioSel.value = pr;
    const rows = beads.filter((b) => (!st || b.status === st) && (!pr || b.priority === pr)
      && (!q || `${b.id} ${b.title} ${this.s.agentName(b.assignee_agent_id)}`.toLowerCase().includes(q)));
    this.filterCount.textContent = `${rows.length} of ${beads.length}`;
    return h('div', null,
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Id', 'Title', 'Status', 'Priority', 'Assignee', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, rows.map((b) => {
          const a = this.s.agent(b.assignee_agent_id);
          return h('tr', null,
            h('td', null, h('button', { class: 'link', 'data-focus-key': `row-${b.id}`, onclick: () => openDrawer({ kind: 'bead', rigId: this.rigId, beadId: b.id }) }, h('code', null, b.id))),
            h('td', null, b.title),
            h('td', null, h('span', { class: `badge badge-${b.status}` }, b.status.replace('_', ' '))),
            h('td', null, h('span', { class: `badge badge-prio-${b.priority}` }, b.priority)),
            h('td', null, a ? h('button', { class: 'link', onclick: () => openDrawer({ kind: 'agent', agentId: a.id }) }, roleTag(a.role), ' ', a.name) : '—'),
            h('td', null, timeEl(b.updated_at)));
        })))) : empty(beads.length ? 'No bead matches the filter.' : 'No beads yet: sling one above.'));
  }
}
