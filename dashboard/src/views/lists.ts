// Town-wide lists: the merge queue (pending / running / in review on the forge / merged / failed,
// pull request link with its state, checks and review, gate output, retry),
// mail, escalations (acknowledge) and convoys (progress, landed, create, add beads).

import * as api from '../api';
import type { Bead, Convoy, ConvoyDetail, MergeEntry } from '../api';
import { badge, busy, errorSlot, field, fill, fillIfChanged, h, timeEl, toast } from '../dom';
import { current, openDrawer, setParam } from '../router';
import type { TownState } from '../store';
import { empty, errorBlock, humanError, mergeAttempts, progress, roleTag, unavailable, type View } from '../ui';

const MQ_COLS: MergeEntry['status'][] = ['pending', 'running', 'in_review', 'merged', 'failed'];
const MQ_TITLES: Record<MergeEntry['status'], string> = { pending: 'Pending', running: 'Running', in_review: 'In review', merged: 'Merged', failed: 'Failed' };

/** The pull request a merge request was delivered as: link, state, checks and review. */
function prLine(pr: NonNullable<MergeEntry['pr']>): HTMLElement {
  const label = `${pr.forge === 'gitlab' ? '!' : '#'}${pr.number}`;
  const link = pr.url && /^https?:\/\//.test(pr.url)
    ? h('a', { href: pr.url, target: '_blank', rel: 'noopener noreferrer' }, `${pr.repo} ${label}`)
    : h('span', null, `${pr.repo} ${label}`);
  const review = pr.review && pr.review !== 'none' ? pr.review.replace('_', ' ') : 'no review yet';
  return h('div', { class: 'small mq-pr', 'data-pr-state': pr.state ?? '' }, link, ' ',
    badge(pr.state ?? 'open', `pr-${pr.state ?? 'open'}`), ' ',
    h('span', { class: 'muted' }, `checks: ${pr.checks ?? 'pending'} · ${review}`));
}

function beadLink(s: TownState, rigId: string | null, beadId: string): HTMLElement {
  const b = s.bead(beadId);
  const rig = rigId ?? b?.rig_id ?? null;
  const label = b ? `${beadId} · ${b.title}` : beadId;
  return rig ? h('button', { class: 'link', onclick: () => openDrawer({ kind: 'bead', rigId: rig, beadId }) }, label) : h('span', null, label);
}

function agentLink(s: TownState, agentId: string | null): HTMLElement | string {
  const a = s.agent(agentId);
  if (!a) return agentId ?? '—';
  return h('button', { class: 'link', onclick: () => openDrawer({ kind: 'agent', agentId: a.id }) }, roleTag(a.role), ' ', a.name);
}

export class MergeQueueView implements View {
  el: HTMLElement;
  private body = h('div');
  constructor(private readonly s: TownState) {
    this.el = h('div', { class: 'page' }, h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Merge queue'),
      h('p', { class: 'muted' }, 'The refinery merges one request at a time per rig, after the quality gates pass.')), this.body);
    this.update();
  }

  update(): void {
    const s = this.s;
    fillIfChanged(this.body, JSON.stringify([s.mergeQueue, s.unavailable.has('mergeQueue'), s.agents.length, s.beads.size]), () => {
      if (s.unavailable.has('mergeQueue')) return unavailable('Merge requests');
      // One card per bead: its latest attempt decides the column; earlier ones are inside it.
      // The "In review" column appears only while pull requests are open (merge strategy `pr`),
      // so a town that merges directly keeps its four columns.
      const byBead = [...mergeAttempts(s.mergeQueue).values()];
      const cols = MQ_COLS.filter((st) => st !== 'in_review' || byBead.some((list) => list[list.length - 1].status === st));
      return h('div', { class: 'mq' }, cols.map((st) => {
        const items = byBead.filter((list) => list[list.length - 1].status === st).reverse();
        return h('section', { class: `panel mq-col mq-${st}`, 'aria-label': `${MQ_TITLES[st]}: ${items.length}` },
          h('h2', null, MQ_TITLES[st], h('span', { class: 'count' }, String(items.length))),
          items.length ? h('ul', { class: 'plain mq-list' }, items.map((list) => this.item(list))) : empty('—'));
      }));
    });
  }

  private item(list: MergeEntry[]): HTMLElement {
    const s = this.s;
    const m = list[list.length - 1];
    const n = list.length;
    const earlier = list.slice(0, -1).reverse();
    return h('li', { class: `mq-item mq-item-${m.status}`, 'data-mr-id': m.id, 'data-bead-id': m.source_bead_id },
      h('div', { class: 'row between' }, h('div', null, beadLink(s, m.rig_id, m.source_bead_id)), badge(m.status, `mq-${m.status}`)),
      m.branch ? h('div', { class: 'muted small' }, h('code', null, m.branch), ' → ', h('code', null, m.target_branch)) : null,
      h('div', { class: 'muted small' }, agentLink(s, m.agent_id), ' · ', timeEl(m.created_at), ' · ', h('span', { class: 'attempt' }, n > 1 ? `attempt ${n} of ${n}` : 'first attempt')),
      m.summary ? h('p', { class: 'small' }, m.summary) : null,
      m.pr ? prLine(m.pr) : null,
      m.merge_commit ? h('div', { class: 'small' }, 'merged as ', h('code', null, m.merge_commit.slice(0, 12))) : null,
      m.status === 'failed' ? [
        errorBlock(m.output, m.pr ? 'Gate / review / check output' : 'Gate / conflict output'),
        h('button', { class: 'btn small', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Retrying the merge', async () => {
          try {
            await api.post(`${api.T(s.townId)}/merge-queue/${encodeURIComponent(m.id)}/retry`);
          } catch (e) {
            if (e instanceof api.ApiError && e.noRoute) throw new Error('this server cannot retry merges yet (no retry route)');
            throw e;
          }
          toast(`${m.id} queued again`);
          await s.reload('mergeQueue');
        }) }, 'Retry'),
      ] : null,
      earlier.length ? h('details', { class: 'mq-earlier' }, h('summary', { class: 'muted small' }, `${earlier.length} earlier attempt${earlier.length > 1 ? 's' : ''}`),
        h('ol', { class: 'plain' }, earlier.map((e) => h('li', { class: 'mq-attempt' },
          h('div', { class: 'small' }, `attempt ${list.indexOf(e) + 1}: `, badge(e.status, `mq-${e.status}`), ' ', timeEl(e.created_at), ' ', h('code', { class: 'muted' }, e.id)),
          e.status === 'failed' ? h('p', { class: 'small err-line' }, humanError(e.output).line) : null)))) : null);
  }
}

export class MailView implements View {
  el: HTMLElement;
  private body = h('div');
  private filters = h('div', { class: 'filters' });
  private fState = h('select', { 'aria-label': 'Show mail' }, h('option', { value: '' }, 'All mail'), h('option', { value: 'unread' }, 'Unread'), h('option', { value: 'read' }, 'Read'));
  private fAgent = h('select', { 'aria-label': 'Mail of agent' });
  private to = h('select', { name: 'mail-to', required: true });
  constructor(private readonly s: TownState) {
    const subject = h('input', { name: 'mail-subject', required: true, maxlength: 200, autocomplete: 'off' });
    const text = h('textarea', { name: 'mail-body', rows: 3, required: true });
    const err = errorSlot();
    const form = h('form', { class: 'grid-form', 'aria-label': 'Compose mail' }, field('To', this.to), field('Subject', subject),
      h('div', { class: 'span-all' }, field('Message', text)), h('div', { class: 'form-actions' }, h('button', { class: 'btn primary', type: 'submit' }, 'Send mail')), err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      const a = s.agent(this.to.value);
      try {
        if (!a || a.role === 'mayor') {
          await api.post(`${api.T(s.townId)}/mayor/message`, { message: `${subject.value.trim()}\n\n${text.value.trim()}` });
        } else {
          const rigId = a.rig_id ?? s.rigs[0]?.id;
          if (!rigId) throw new Error('add a rig first');
          await api.post(`${api.R(s.townId, rigId)}/mail`, { to: a.id, subject: subject.value.trim(), body: text.value.trim() });
        }
        subject.value = '';
        text.value = '';
        toast(`Mail sent to ${a?.name ?? 'the mayor'}`);
        await s.reload('mail', 'agents');
      } catch (e) {
        err.show(`Not sent — ${humanError(e instanceof Error ? e.message : String(e)).line}`);
      }
    });
    this.fState.addEventListener('change', () => setParam('mail', this.fState.value || null));
    this.fAgent.addEventListener('change', () => setParam('mail_agent', this.fAgent.value || null));
    this.filters.append(this.fState, this.fAgent);
    this.el = h('div', { class: 'page' }, h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Mail'),
      h('p', { class: 'muted' }, 'Every message between agents and to the mayor, newest first.')),
    h('details', { class: 'panel' }, h('summary', null, 'Compose'), form),
    h('section', { class: 'panel', 'aria-label': 'Messages' }, this.filters, this.body));
    this.update();
  }

  update(): void {
    const s = this.s;
    const p = current().params;
    const st = p.get('mail') ?? '';
    const ag = p.get('mail_agent') ?? '';
    const agents = [...s.agents].sort((a, b) => a.name.localeCompare(b.name));
    fillIfChanged(this.to, JSON.stringify(agents.map((a) => a.id)), () => [h('option', { value: '' }, 'the mayor'), agents.filter((a) => a.role !== 'mayor').map((a) => h('option', { value: a.id }, `${a.name} (${a.role})`))]);
    fillIfChanged(this.fAgent, JSON.stringify(agents.map((a) => a.id)), () => [h('option', { value: '' }, 'Any agent'), agents.map((a) => h('option', { value: a.id }, `${a.name} (${a.role})`))]);
    this.fState.value = st;
    this.fAgent.value = ag;
    const list = s.mail.filter((m) => (!st || (st === 'unread' ? !m.read_at : !!m.read_at)) && (!ag || m.to_agent_id === ag || m.from === ag || m.from === s.agent(ag)?.name));
    fillIfChanged(this.body, JSON.stringify([list, s.unavailable.has('mail'), s.agents.length, st, ag]), () => {
      if (s.unavailable.has('mail')) return unavailable('Town mail lists');
      if (!list.length) return empty(s.mail.length ? 'No mail matches the filters.' : 'No mail yet.');
      return h('ul', { class: 'plain mail-list' }, list.map((m) => h('li', { class: `mail ${m.read_at ? 'read' : 'unread'}` },
        h('div', { class: 'mail-head' }, h('strong', null, m.subject || '(no subject)'), ' ',
          h('span', { class: 'muted' }, `${m.from} → `), agentLink(s, m.to_agent_id) ?? m.to_agent_id, ' ',
          m.read_at ? h('span', { class: 'muted small' }, 'read') : badge('unread', 'open'), ' ', timeEl(m.created_at)),
        h('details', null, h('summary', { class: 'muted small' }, 'Message'), h('pre', { class: 'mail-body' }, m.body)))));
    });
  }
}

export class EscalationsView implements View {
  el: HTMLElement;
  private body = h('div');
  constructor(private readonly s: TownState) {
    this.el = h('div', { class: 'page' }, h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Escalations'),
      h('p', { class: 'muted' }, 'Problems that need a person. Unacknowledged ones are raised again, more urgently, after a while.')), h('section', { class: 'panel' }, this.body));
    this.update();
  }

  update(): void {
    const s = this.s;
    fillIfChanged(this.body, JSON.stringify([s.escalations, s.agents.length]), () => {
      if (s.unavailable.has('escalations')) return unavailable('Escalations');
      if (!s.escalations.length) return empty('No escalations. All quiet.');
      return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Severity', 'Message', 'From', 'About', 'Raised', 'State'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, s.escalations.map((e) => h('tr', { class: e.acknowledged ? 'muted-row' : '' },
          h('td', null, h('span', { class: `badge badge-sev-${e.severity}` }, e.severity), e.re_escalation_count ? h('small', { class: 'muted' }, ` ×${e.re_escalation_count + 1}`) : null),
          h('td', null, humanError(e.message).raw ? errorBlock(e.message) : e.message, e.category ? h('div', { class: 'muted small' }, e.category) : null),
          h('td', null, e.source_agent_id ? agentLink(s, e.source_agent_id) : 'a person'),
          h('td', null, e.about ? beadLink(s, e.rig_id, e.about) : '—'),
          h('td', null, timeEl(e.last_escalated_at)),
          h('td', null, e.acknowledged ? h('span', { class: 'muted' }, 'acknowledged ', timeEl(e.acknowledged_at)) :
            h('button', { class: 'btn small', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Acknowledging', async () => {
              await api.post(`${api.T(s.townId)}/escalations/${encodeURIComponent(e.id)}/acknowledge`);
              await s.reload('escalations');
            }) }, 'Acknowledge')))))));
    });
  }
}

export class ConvoysView implements View {
  el: HTMLElement;
  private body = h('div');
  private picker = h('div', { class: 'bead-picker', role: 'group', 'aria-label': 'Beads for the convoy' });
  /** Convoys whose bead list is open: they stay open when a live update re-renders the list. */
  private opened = new Set<string>();

  constructor(private readonly s: TownState) {
    const title = h('input', { name: 'convoy-title', required: true, placeholder: 'Release 1.2', autocomplete: 'off' });
    const err = errorSlot();
    const form = h('form', { class: 'grid-form', 'aria-label': 'Create a convoy' }, field('Title', title),
      h('div', { class: 'span-all' }, h('p', { class: 'label' }, 'Beads'), this.picker),
      h('div', { class: 'form-actions' }, h('button', { class: 'btn primary', type: 'submit' }, 'Create convoy')), err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      const ids = [...this.picker.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);
      try {
        await api.post(`${api.T(s.townId)}/convoys`, { title: title.value.trim(), bead_ids: ids });
        title.value = '';
        toast('Convoy created');
        await s.reload('convoys');
      } catch (e) {
        err.show(e instanceof api.ApiError && e.noRoute ? 'This server cannot create convoys yet.' : `Could not create the convoy — ${humanError(e instanceof Error ? e.message : String(e)).line}`);
      }
    });
    this.el = h('div', { class: 'page' }, h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Convoys'),
      h('p', { class: 'muted' }, 'A convoy tracks a batch of beads; it lands when every one of them is closed.')),
    h('section', { class: 'panel' }, this.body),
    h('details', { class: 'panel' }, h('summary', null, 'New convoy'), form));
    this.update();
  }

  update(): void {
    const s = this.s;
    const open = [...s.beads.values()].flat().filter((b) => b.status !== 'closed');
    // Live updates re-render the list: keep what the person already ticked.
    const ticked = new Set([...this.picker.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value));
    fillIfChanged(this.picker, JSON.stringify(open.map((b) => [b.id, b.title])), () =>
      open.length ? open.map((b) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: b.id, checked: ticked.has(b.id) }), ' ', h('code', null, b.id), ' ', b.title)) : empty('No open beads to add.'));
    fillIfChanged(this.body, JSON.stringify([s.convoys, s.unavailable.has('convoys'), open.map((b) => b.id)]), () => {
      if (s.unavailable.has('convoys')) return unavailable('Convoys');
      if (!s.convoys.length) return empty('No convoys yet.');
      return h('ul', { class: 'plain convoy-list' }, s.convoys.map((c) => h('li', { class: 'convoy' },
        h('div', { class: 'row between' }, h('strong', null, c.title),
          c.status === 'landed' ? h('span', { class: 'badge badge-closed' }, `landed ${c.landed_at ? new Date(c.landed_at).toLocaleString() : ''}`) : h('span', { class: 'muted' }, `${c.closed} of ${c.total} closed`)),
        progress(c.closed, c.total, `${c.title}: ${c.closed} of ${c.total} closed`),
        h('details', { open: this.opened.has(c.id), ontoggle: (ev: Event) => {
          const d = ev.target as HTMLDetailsElement;
          if (d.open) { this.opened.add(c.id); void this.expand(c.id, d); } else this.opened.delete(c.id);
        } },
          h('summary', null, 'Beads'), h('div', { class: 'convoy-beads' }, c.bead_ids.map((id) => h('div', null, beadLink(s, null, id))))),
        c.status === 'open' ? this.addForm(c, open) : null)));
    });
  }

  /** Adds an open bead that is not in the convoy yet. */
  private addForm(c: Convoy, open: Bead[]): HTMLElement | null {
    const candidates = open.filter((b) => !c.bead_ids.includes(b.id));
    if (!candidates.length) return null;
    const sel = h('select', { 'aria-label': `Bead to add to ${c.title}` }, candidates.map((b) => h('option', { value: b.id }, `${b.id} · ${b.title}`)));
    return h('div', { class: 'row convoy-add' }, sel, h('button', { class: 'btn small', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Adding to the convoy', async () => {
      await api.post(`${api.T(this.s.townId)}/convoys/${encodeURIComponent(c.id)}/beads`, { bead_ids: [sel.value] });
      toast(`${sel.value} added to ${c.title}`);
      await this.s.reload('convoys', 'beads');
    }) }, 'Add to convoy'));
  }

  /** The convoy with its beads (statuses), fetched when opened. */
  private async expand(id: string, host: HTMLElement): Promise<void> {
    const list = host.querySelector('.convoy-beads');
    if (!list) return;
    try {
      const c = await api.get<ConvoyDetail>(`${api.T(this.s.townId)}/convoys/${encodeURIComponent(id)}`);
      fill(list, c.beads.map((b) => h('div', { class: 'row' }, beadLink(this.s, b.rig_id, b.id), ' ', badge(b.status))));
    } catch {
      /* keep the id list */
    }
  }
}

