// The dashboard's entry point: the page shell (top bar with the live-connection status, the
// town's side navigation, the main view, the terminal bar and the drawer stack), wired to the
// hash route and to the open town's state. One TownState (and one event stream) per open town.

import * as api from './api';
import type { Me } from './api';
import { DrawerStack } from './drawers';
import { fill, fillIfChanged, h, toastHost } from './dom';
import { closeTopDrawer, current, href, type Route } from './router';
import { TownState } from './store';
import { TermBar } from './termbar';
import type { View } from './ui';
import { ConvoysView, EscalationsView, MailView, MergeQueueView } from './views/lists';
import { OverviewView } from './views/overview';
import { RigView } from './views/rig';
import { SettingsView } from './views/settings';
import { TownsView } from './views/towns';

let me: Me = { user_id: 'me', email: null, kind: 'user' };

const statusPill = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite' });
const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
const sidenav = h('nav', { class: 'sidenav', 'aria-label': 'Town' });
const main = h('main', { id: 'main', tabindex: -1 });
const termHost = h('div', { class: 'term-host-slot' });
const drawerHost = h('div');
const userEl = h('span', { class: 'user muted small' });

let town: TownState | null = null;
let termbar: TermBar | null = null;
let drawers: DrawerStack | null = null;
let view: View | null = null;
let viewKey = '';
let frame = 0;

function shell(): HTMLElement {
  return h('div', { class: 'app' },
    h('a', { class: 'skip', href: '#main', onclick: (e: Event) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'G'), 'Gastown'),
      crumbs, h('span', { class: 'grow' }), statusPill, userEl),
    // Drawers open over the page but not over the terminal bar, so a terminal opened from a
    // drawer is visible at once.
    // Toasts sit bottom-left, clear of the drawers (right) and the page headings (top).
    h('div', { class: 'layout' }, sidenav, toastHost(), main, drawerHost),
    termHost);
}

function renderStatus(): void {
  if (!town) {
    fill(statusPill, h('span', { class: 'dot st-idle', 'aria-hidden': 'true' }), 'No town open');
    statusPill.className = 'conn';
    return;
  }
  const st = town.streamStatus;
  const t = town;
  statusPill.className = `conn conn-${st}`;
  statusPill.dataset.status = st;
  fill(statusPill, h('span', { class: `dot conn-dot-${st}`, 'aria-hidden': 'true' }),
    h('span', { class: 'conn-label' }, st === 'connected' ? 'Live' : st === 'connecting' ? 'Connecting…' : st === 'reconnecting' ? 'Reconnecting…' : 'Disconnected'),
    t.streamDetail && st !== 'connected' ? h('span', { class: 'muted small' }, ` ${t.streamDetail}`) : null,
    st === 'reconnecting' || st === 'disconnected' ? h('button', { class: 'btn small', onclick: () => t.reconnectNow() }, 'Reconnect now') : null);
}

function renderNav(r: Route): void {
  if (!town || !r.townId) {
    sidenav.hidden = true;
    fill(crumbs, h('span', null, 'Towns'));
    return;
  }
  sidenav.hidden = false;
  const s = town;
  const openEsc = s.escalations.filter((e) => !e.acknowledged).length;
  const failedMr = s.mergeQueue.filter((m) => m.status === 'failed').length;
  const link = (label: string, target: string, active: boolean, extra?: HTMLElement | null) =>
    h('a', { href: target, class: active ? 'active' : '', 'aria-current': active ? 'page' : false }, label, extra ?? null);
  const rigLinks = s.rigs.map((rig) => link(rig.name, href('rig', s.townId, rig.id), r.page === 'rig' && r.rigId === rig.id));
  const key = JSON.stringify([r.page, r.rigId, s.rigs.map((x) => [x.id, x.name]), openEsc, failedMr, s.town?.name]);
  fillIfChanged(sidenav, key, () => [
    h('div', { class: 'nav-town' }, h('span', { class: 'muted small' }, 'Town'), h('strong', null, s.town?.name ?? '…')),
    link('Overview', href('overview', s.townId), r.page === 'overview'),
    h('div', { class: 'nav-group' }, h('span', { class: 'nav-label', id: 'nav-rigs' }, 'Rigs'),
      h('div', { role: 'group', 'aria-labelledby': 'nav-rigs', class: 'nav-rigs' }, rigLinks.length ? rigLinks : h('span', { class: 'muted small nav-empty' }, 'none yet'))),
    link('Merge queue', href('merge-queue', s.townId), r.page === 'merge-queue', failedMr ? h('span', { class: 'count bad', 'aria-label': `${failedMr} failed` }, String(failedMr)) : null),
    link('Mail', href('mail', s.townId), r.page === 'mail'),
    link('Escalations', href('escalations', s.townId), r.page === 'escalations', openEsc ? h('span', { class: 'count bad', 'aria-label': `${openEsc} open` }, String(openEsc)) : null),
    link('Convoys', href('convoys', s.townId), r.page === 'convoys'),
    link('Settings', href('settings', s.townId), r.page === 'settings'),
    h('a', { href: '#/', class: 'nav-back' }, '← All towns'),
  ]);
  const pageName: Record<string, string> = { overview: 'Overview', 'merge-queue': 'Merge queue', mail: 'Mail', escalations: 'Escalations', convoys: 'Convoys', settings: 'Settings' };
  const rigName = r.page === 'rig' ? s.rig(r.rigId)?.name ?? 'rig' : null;
  fillIfChanged(crumbs, JSON.stringify([s.town?.name, r.page, rigName]), () => [
    h('a', { href: '#/' }, 'Towns'), h('span', { 'aria-hidden': 'true' }, ' / '),
    h('a', { href: href('overview', s.townId) }, s.town?.name ?? '…'),
    r.page !== 'overview' ? [h('span', { 'aria-hidden': 'true' }, ' / '), h('span', { 'aria-current': 'page' }, rigName ?? pageName[r.page] ?? '')] : null,
  ]);
}

function openTown(townId: string | undefined): void {
  if (town?.townId === townId) return;
  termbar?.dispose();
  drawers?.dispose();
  town?.stop();
  fill(termHost);
  fill(drawerHost);
  town = termbar = drawers = null;
  if (!townId) return;
  town = new TownState(townId);
  termbar = new TermBar(town);
  drawers = new DrawerStack(town);
  termHost.appendChild(termbar.el);
  drawerHost.appendChild(drawers.el);
  town.subscribe(schedule);
  town.start();
}

function makeView(r: Route): View {
  const s = town!;
  switch (r.page) {
    case 'overview': return new OverviewView(s, me.user_id);
    case 'rig': return new RigView(s, r.rigId!, me.user_id);
    case 'merge-queue': return new MergeQueueView(s);
    case 'mail': return new MailView(s);
    case 'escalations': return new EscalationsView(s);
    case 'convoys': return new ConvoysView(s);
    case 'settings': return new SettingsView(s);
    default: throw new Error('unreachable');
  }
}

function route(): void {
  const r = current();
  openTown(r.page === 'towns' || r.page === 'notfound' ? undefined : r.townId);
  const key = `${r.page}|${r.townId ?? ''}|${r.rigId ?? ''}`;
  if (key !== viewKey) {
    viewKey = key;
    view?.dispose?.();
    view = r.page === 'towns' ? new TownsView(me.user_id)
      : r.page === 'notfound' ? { el: h('div', { class: 'page' }, h('h1', { tabindex: -1 }, 'Not found'), h('p', null, h('a', { href: '#/' }, 'Back to the towns'))), update() {} }
      : makeView(r);
    fill(main, view.el);
    document.title = r.page === 'towns' ? 'Gastown' : `${r.page} · Gastown`;
    // Page changes move focus to the new page's heading, as a screen reader user expects.
    if (!r.drawers.length) main.querySelector<HTMLElement>('h1')?.focus({ preventScroll: true });
  }
  drawers?.sync(r.drawers);
  render();
}

function schedule(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => { frame = 0; render(); });
}

function render(): void {
  const r = current();
  renderStatus();
  renderNav(r);
  view?.update();
  termbar?.update();
  drawers?.update();
  if (town?.loadError && r.page !== 'towns') {
    fillIfChanged(main, `error-${town.loadError}`, () => h('div', { class: 'page' }, h('h1', { tabindex: -1 }, 'Cannot open this town'),
      h('p', { class: 'form-error', role: 'alert' }, town!.loadError), h('p', null, h('a', { href: '#/' }, 'Back to the towns'))));
    viewKey = '';
  }
}

document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || e.defaultPrevented) return;
  const t = e.target as HTMLElement | null;
  // Escape belongs to the program inside a terminal, and to an open modal dialog.
  if (t?.closest('.xterm') || document.querySelector('dialog[open]')) return;
  if (current().drawers.length) {
    e.preventDefault();
    closeTopDrawer();
  }
});
window.addEventListener('online', () => town?.reconnectNow());

async function boot(): Promise<void> {
  document.getElementById('app')!.replaceWith(shell());
  try {
    me = await api.get<Me>('/api/me');
    userEl.textContent = me.email ?? me.user_id;
  } catch (e) {
    fill(main, h('div', { class: 'page' }, h('h1', null, 'Cannot reach Gastown'), h('p', { class: 'form-error', role: 'alert' }, e instanceof Error ? e.message : String(e))));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

void boot();
