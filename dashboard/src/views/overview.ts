// The town overview: rigs (and adding one), the agents grid with role colours and statuses,
// the live activity feed, open escalations and convoy progress.

import * as api from '../api';
import type { Rig } from '../api';
import { busy, errorSlot, field, fillIfChanged, h, toast } from '../dom';
import { current, goPage, href, setParam } from '../router';
import type { TownState } from '../store';
import { entityName, eventKind as kindOf, agentCard, describeEvent, empty, feedRow, groupFeed, humanError, progress, section, unavailable, type View } from '../ui';

export function addRigForm(s: TownState, userId: string): HTMLElement {
  const name = h('input', { name: 'rig-name', required: true, placeholder: 'web', autocomplete: 'off' });
  const url = h('input', { name: 'git-url', required: true, placeholder: 'https://github.com/org/repo.git or /path/to/repo.git', autocomplete: 'off' });
  const branch = h('input', { name: 'default-branch', value: 'main', autocomplete: 'off' });
  const err = errorSlot();
  const form = h('form', { class: 'grid-form', 'aria-label': 'Add a rig' },
    field('Name', name), field('Git URL', url), field('Default branch', branch),
    h('div', { class: 'form-actions' }, h('button', { class: 'btn primary', type: 'submit' }, 'Add rig')), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    const btn = form.querySelector<HTMLButtonElement>('button[type=submit]');
    if (btn) btn.disabled = true;
    try {
      const rig = await api.post<Rig & { git_check?: string }>(`/api/users/${encodeURIComponent(userId)}/rigs`, {
        town_id: s.townId, name: name.value.trim(), git_url: url.value.trim(), default_branch: branch.value.trim() || 'main',
      });
      name.value = '';
      url.value = '';
      toast(rig.git_check ? `Rig “${rig.name}” added (${rig.git_check})` : `Rig “${rig.name}” added`);
      await s.reload('town');
      await s.reload('beads', 'agents');
      goPage('rig', s.townId, rig.id);
    } catch (e) {
      // The server's message names the field, e.g. "git_url: …".
      err.show(`Could not add the rig — ${humanError(e instanceof Error ? e.message : String(e)).line}`);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  return form;
}

export class OverviewView implements View {
  el: HTMLElement;
  private rigs = h('div', { class: 'rig-cards' });
  private agents = h('div', { class: 'agent-grid', role: 'list', 'aria-label': 'Agents' });
  private feed = h('ol', { class: 'feed', 'aria-label': 'Activity' });
  private feedFilters = h('div', { class: 'filters feed-filters' });
  private fRig = h('select', { 'aria-label': 'Activity of rig' });
  private fAgent = h('select', { 'aria-label': 'Activity of agent' });
  private fKind = h('select', { 'aria-label': 'Kind of activity' },
    h('option', { value: '' }, 'All kinds'), ['work', 'agent', 'merge', 'mail', 'escalation'].map((k) => h('option', { value: k }, k)));
  private escalations = h('div');
  private convoys = h('div');
  private title = h('h1', { tabindex: -1 }, 'Town');

  constructor(private readonly s: TownState, userId: string) {
    const add = h('details', { class: 'add-rig' }, h('summary', null, 'Add a rig'), addRigForm(s, userId));
    this.el = h('div', { class: 'page overview' },
      h('header', { class: 'page-head' }, this.title),
      h('div', { class: 'cols' },
        h('div', { class: 'col-main' },
          section('Rigs', this.rigs, add),
          section('Agents', this.agents),
          section('Open escalations', this.escalations),
          section('Convoys', this.convoys)),
        h('div', { class: 'col-side' }, section('Activity', this.feedFilters, this.feed))));
    this.feedFilters.append(this.fRig, this.fAgent, this.fKind);
    this.fRig.addEventListener('change', () => setParam('feed_rig', this.fRig.value || null));
    this.fAgent.addEventListener('change', () => setParam('feed_agent', this.fAgent.value || null));
    this.fKind.addEventListener('change', () => setParam('feed_kind', this.fKind.value || null));
    this.update();
  }

  update(): void {
    const s = this.s;
    this.title.textContent = s.town?.name ?? 'Town';
    fillIfChanged(this.rigs, JSON.stringify([s.rigs, [...s.beads.entries()].map(([k, v]) => [k, v.map((b) => b.status)])]), () =>
      s.rigs.length ? s.rigs.map((r) => {
        const beads = s.beads.get(r.id) ?? [];
        const count = (st: string) => beads.filter((b) => b.status === st).length;
        return h('a', { class: 'card rig-card', href: href('rig', s.townId, r.id) },
          h('div', { class: 'card-top' }, h('strong', null, r.name), r.bead_prefix ? h('span', { class: 'muted small' }, 'prefix ', h('code', null, r.bead_prefix)) : null),
          h('div', { class: 'muted small ellipsis' }, r.git_url, ' · ', r.default_branch),
          h('div', { class: 'counts' },
            h('span', null, h('b', null, count('open')), ' open'),
            h('span', null, h('b', null, count('in_progress')), ' working'),
            h('span', null, h('b', null, count('in_review')), ' review'),
            h('span', null, h('b', null, count('closed')), ' closed'),
            count('failed') ? h('span', { class: 'bad' }, h('b', null, count('failed')), ' failed') : null));
      }) : empty('No rigs yet. Add one to start slinging work.'));
    const order = { mayor: 0, witness: 1, refinery: 2, polecat: 3 } as Record<string, number>;
    const agents = [...s.agents].sort((a, b) => (order[a.role] - order[b.role]) || a.name.localeCompare(b.name));
    fillIfChanged(this.agents, JSON.stringify([agents, s.sessions, s.beads.size]), () =>
      s.unavailable.has('agents') ? unavailable('Agents') : agents.length ? agents.map((a) => h('div', { role: 'listitem' }, agentCard(a, s))) : empty('No agents yet. Sling a bead at a rig and a polecat appears here.'));
    const p = current().params;
    const [fr, fa, fk] = [p.get('feed_rig') ?? '', p.get('feed_agent') ?? '', p.get('feed_kind') ?? ''];
    fillIfChanged(this.fRig, JSON.stringify(s.rigs.map((r) => r.name)), () => [h('option', { value: '' }, 'All rigs'), s.rigs.map((r) => h('option', { value: r.id }, r.name))]);
    fillIfChanged(this.fAgent, JSON.stringify(s.agents.map((a) => a.name)), () => [h('option', { value: '' }, 'All agents'), s.agents.map((a) => h('option', { value: a.id }, `${a.name} (${a.role})`))]);
    this.fRig.value = fr;
    this.fAgent.value = fa;
    this.fKind.value = fk;
    const groups = groupFeed(s.feed, s).filter((g) => (!fr || g.rigId === fr) && (!fa || g.agentIds.includes(fa) || g.key === fa) && (!fk || g.events.some((e) => kindOf(e) === fk))).slice(0, 25);
    // Keyed by the words shown: an event's text improves once its bead or agent has loaded.
    fillIfChanged(this.feed, JSON.stringify(groups.map((g) => [g.key, g.events.map((e) => [e.id, describeEvent(e, s)]), entityName(g.key, s)])), () =>
      groups.length ? groups.map((g) => feedRow(g, s)) : empty(s.feed.length ? 'Nothing matches the filters.' : 'Nothing has happened yet.'));
    const open = s.escalations.filter((e) => !e.acknowledged);
    fillIfChanged(this.escalations, JSON.stringify([open, s.unavailable.has('escalations')]), () =>
      s.unavailable.has('escalations') ? unavailable('Escalations') : open.length ? h('ul', { class: 'plain' }, open.slice(0, 5).map((e) => h('li', { class: `esc sev-${e.severity}` },
        h('span', { class: `badge badge-sev-${e.severity}` }, e.severity), ' ', humanError(e.message).line, ' ',
        h('button', { class: 'btn small', onclick: (ev: Event) => busy(ev.target as HTMLButtonElement, 'Acknowledging', async () => {
          await api.post(`${api.T(s.townId)}/escalations/${encodeURIComponent(e.id)}/acknowledge`);
          await s.reload('escalations');
        }) }, 'Acknowledge')))) : empty('No open escalations.'));
    fillIfChanged(this.convoys, JSON.stringify([s.convoys, s.unavailable.has('convoys')]), () =>
      s.unavailable.has('convoys') ? unavailable('Convoys') : s.convoys.length ? h('ul', { class: 'plain' }, s.convoys.slice(0, 6).map((c) => h('li', { class: 'convoy-line' },
        h('a', { href: href('convoys', s.townId) }, c.title), ' ',
        c.status === 'landed' ? h('span', { class: 'badge badge-closed' }, 'landed') : h('span', { class: 'muted' }, `${c.closed}/${c.total}`),
        progress(c.closed, c.total, `${c.title}: ${c.closed} of ${c.total} closed`)))) : empty('No convoys.'));
  }
}
