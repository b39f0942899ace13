// The dashboard's entry point: the page shell (top bar with the live-connection status, the
// town's side navigation, the main view, the terminal bar and the drawer stack), wired to the
// hash route and to the open town's state. One TownState (and one event stream) per open town.

import * as api from './api';
import type { Me } from './api';
import { DrawerStack } from './drawers';
import { fill, fillIfChanged, h, showError, toast, toastHost } from './dom';
import { closeTopDrawer, current, go, goPage, href, hrefTerminal, openDrawer, setParam, type Page, type Route } from './router';
import { TownState } from './store';
import { TermBar } from './termbar';
import { openHelp, openPalette, type PaletteItem } from './palette';
import { TerminalPage } from './views/terminal';
import type { Bead, Town } from './api';
import { needsAction } from './ui';
import type { View } from './ui';
import { ApiView } from './views/apidoc';
import { ConvoysView, EscalationsView, MailView, MergeQueueView } from './views/lists';
import { OverviewView } from './views/overview';
import { RigView } from './views/rig';
import { SettingsView } from './views/settings';
import { TownsView } from './views/towns';

let me: Me = { user_id: 'me', email: null, kind: 'user' };

const statusPill = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite' });
const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
const sidenav = h('nav', { class: 'sidenav', id: 'sidenav', 'aria-label': 'Town' });
// On small screens the navigation is a drawer behind this button.
const menuBtn = h('button', { class: 'icon-btn menu-btn', 'aria-label': 'Menu', 'aria-expanded': 'false', 'aria-controls': 'sidenav', onclick: () => setNavOpen(!document.body.classList.contains('nav-open')) }, '☰');
const navScrim = h('div', { class: 'nav-scrim', onclick: () => setNavOpen(false) });
const paletteBtn = h('button', { class: 'btn small palette-btn', title: 'Command palette (Ctrl+K)', onclick: () => showPalette() }, h('span', { 'aria-hidden': 'true' }, '⌕'), h('span', { class: 'palette-btn-label' }, ' Jump to…'), h('kbd', { class: 'palette-kbd' }, 'Ctrl K'));
const helpBtn = h('button', { class: 'icon-btn', 'aria-label': 'Keyboard shortcuts ?', title: 'Keyboard shortcuts (?)', onclick: () => openHelp() }, '?');

function setNavOpen(open: boolean): void {
  document.body.classList.toggle('nav-open', open);
  menuBtn.setAttribute('aria-expanded', String(open));
  if (open) sidenav.querySelector<HTMLElement>('a.active, a')?.focus();
}
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
      menuBtn,
      h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'G'), h('span', { class: 'brand-name' }, 'Gastown')),
      crumbs, h('span', { class: 'grow' }), paletteBtn, statusPill, helpBtn, userEl),
    // Drawers open over the page but not over the terminal bar, so a terminal opened from a
    // drawer is visible at once.
    // Toasts sit bottom-left, clear of the drawers (right) and the page headings (top).
    h('div', { class: 'layout' }, sidenav, navScrim, toastHost(), main, drawerHost),
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
  statusPill.title = st === 'connected' ? 'Live: updates arrive as they happen' : t.streamDetail;
}

function renderNav(r: Route): void {
  menuBtn.hidden = !town || !r.townId || r.page === 'terminal';
  if (!town || !r.townId || r.page === 'terminal') {
    sidenav.hidden = true;
    if (r.page === 'api') fillIfChanged(crumbs, 'api', () => [h('a', { href: '#/' }, 'Towns'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', { 'aria-current': 'page' }, 'API')]);
    else fillIfChanged(crumbs, 'towns', () => h('span', null, 'Towns'));
    return;
  }
  sidenav.hidden = false;
  const s = town;
  // Badges mean "needs action now": open escalations, beads whose merges failed for good, unread
  // mail to the person.
  const { openEsc, failedMr, unreadMail } = needsAction(s);
  const link = (label: string, target: string, active: boolean, extra?: HTMLElement | null) =>
    h('a', { href: target, class: active ? 'active' : '', 'aria-current': active ? 'page' : false }, label, extra ?? null);
  const rigLinks = s.rigs.map((rig) => link(rig.name, href('rig', s.townId, rig.id), r.page === 'rig' && r.rigId === rig.id));
  const key = JSON.stringify([r.page, r.rigId, s.rigs.map((x) => [x.id, x.name]), openEsc, failedMr, unreadMail, s.town?.name]);
  fillIfChanged(sidenav, key, () => [
    h('div', { class: 'nav-town' }, h('span', { class: 'muted small' }, 'Town'), h('strong', null, s.town?.name ?? '…')),
    link('Overview', href('overview', s.townId), r.page === 'overview'),
    h('div', { class: 'nav-group' }, h('span', { class: 'nav-label', id: 'nav-rigs' }, 'Rigs'),
      h('div', { role: 'group', 'aria-labelledby': 'nav-rigs', class: 'nav-rigs' }, rigLinks.length ? rigLinks : h('span', { class: 'muted small nav-empty' }, 'none yet'))),
    link('Merge queue', href('merge-queue', s.townId), r.page === 'merge-queue', failedMr ? h('span', { class: 'count bad', 'aria-label': `${failedMr} failed, needs action` }, String(failedMr)) : null),
    link('Mail', href('mail', s.townId), r.page === 'mail', unreadMail ? h('span', { class: 'count', 'aria-label': `${unreadMail} unread` }, String(unreadMail)) : null),
    link('Escalations', href('escalations', s.townId), r.page === 'escalations', openEsc ? h('span', { class: 'count bad', 'aria-label': `${openEsc} open` }, String(openEsc)) : null),
    link('Convoys', href('convoys', s.townId), r.page === 'convoys'),
    link('Settings', href('settings', s.townId), r.page === 'settings'),
    h('a', { href: '#/', class: 'nav-back' }, '← All towns'),
    h('a', { href: href('api'), class: 'nav-api' }, 'API reference'),
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
    case 'terminal': return new TerminalPage(s, r.agentId!);
    default: throw new Error('unreachable');
  }
}

function route(): void {
  const r = current();
  openTown(r.page === 'towns' || r.page === 'api' || r.page === 'notfound' ? undefined : r.townId);
  const key = `${r.page}|${r.townId ?? ''}|${r.rigId ?? ''}`;
  if (key !== viewKey) {
    viewKey = key;
    view?.dispose?.();
    view = r.page === 'towns' ? new TownsView(me.user_id)
      : r.page === 'api' ? new ApiView(me)
      : r.page === 'notfound' ? { el: h('div', { class: 'page' }, h('h1', { tabindex: -1 }, 'Not found'), h('p', null, h('a', { href: '#/' }, 'Back to the towns'))), update() {} }
      : makeView(r);
    fill(main, view.el);
    // A new page starts at its top, not where the last one was scrolled to.
    main.scrollTop = 0;
    setNavOpen(false);
    document.body.classList.toggle('popout-mode', r.page === 'terminal');
    document.title = r.page === 'towns' ? 'Gastown' : r.page === 'api' ? 'API · Gastown' : `${r.page} · Gastown`;
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

/** Typing into a field (or a terminal): single-key shortcuts are off. */
function typing(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) || !!el.closest('.xterm'));
}

let gPending = 0;
const G_KEYS: Record<string, Page> = { o: 'overview', q: 'merge-queue', l: 'mail', e: 'escalations', c: 'convoys', s: 'settings' };

document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented) return;
  const t = e.target as HTMLElement | null;
  if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === 'k') {
    e.preventDefault();
    showPalette();
    return;
  }
  if (e.key === 'Escape') {
    // Escape belongs to the program inside the writable terminal, and to an open modal dialog.
    if (t?.closest('.term-host[data-writable="true"]') || document.querySelector('dialog[open]')) return;
    if (document.body.classList.contains('nav-open')) { e.preventDefault(); setNavOpen(false); menuBtn.focus(); return; }
    if (current().drawers.length) {
      e.preventDefault();
      closeTopDrawer();
    }
    return;
  }
  if (typing(t) || e.ctrlKey || e.metaKey || e.altKey || document.querySelector('dialog[open]')) return;
  const r = current();
  if (gPending && Date.now() - gPending < 1200 && e.key === 'a') {
    gPending = 0;
    e.preventDefault();
    goPage('api');
    return;
  }
  if (gPending && Date.now() - gPending < 1200 && G_KEYS[e.key] && r.townId) {
    gPending = 0;
    e.preventDefault();
    goPage(G_KEYS[e.key], r.townId);
    return;
  }
  gPending = 0;
  if (e.key === '?') { e.preventDefault(); openHelp(); }
  else if (e.key === 'g') gPending = Date.now();
  else if (e.key === 't' && termbar) { e.preventDefault(); termbar.focusTerminal(); }
  else if (e.key === 'm' && termbar) { e.preventDefault(); termbar.toggleMaximised(); }
});

let townsCache: Town[] = [];
function showPalette(): void {
  void api.get<Town[]>(`/api/users/${encodeURIComponent(me.user_id)}/towns`).then((t) => { townsCache = t; }).catch(() => {});
  const s = town;
  openPalette(() => {
    const items: PaletteItem[] = townsCache.map((t) => ({ label: t.name, hint: 'town', run: () => goPage('overview', t.id) }));
    items.push({ label: 'All towns', hint: 'page', run: () => go({ page: 'towns', params: new Map(), drawers: [] }) });
    items.push({ label: 'API reference', hint: 'page', keywords: 'openapi routes endpoints', run: () => goPage('api') });
    if (s) {
      const pages: [Page, string][] = [['overview', 'Overview'], ['merge-queue', 'Merge queue'], ['mail', 'Mail'], ['escalations', 'Escalations'], ['convoys', 'Convoys'], ['settings', 'Settings']];
      for (const [p, label] of pages) items.push({ label, hint: `page · ${s.town?.name ?? ''}`, run: () => goPage(p, s.townId) });
      for (const rig of s.rigs) items.push({ label: rig.name, hint: 'rig', run: () => goPage('rig', s.townId, rig.id) });
      for (const a of s.agents) {
        items.push({ label: a.name, hint: `${a.role} · open`, run: () => openDrawer({ kind: 'agent', agentId: a.id }) });
        items.push({ label: `${a.name} terminal`, hint: `${a.role} · terminal`, keywords: 'terminal', run: () => setParam('term', a.role === 'mayor' ? null : a.id, false) });
        items.push({ label: `${a.name} terminal, popped out`, hint: `${a.role} · new window`, keywords: 'pop out window', run: () => window.open(hrefTerminal(s.townId, a.id), '_blank', 'noopener') });
      }
      for (const [rigId, beads] of s.beads) for (const b of beads) items.push({ label: `${b.id} · ${b.title}`, hint: `bead · ${b.status.replace('_', ' ')}`, run: () => openDrawer({ kind: 'bead', rigId, beadId: b.id }) });
    }
    return items;
  }, (q) => {
    if (!s || q.length < 3) return [];
    return s.rigs.map((rig) => ({ label: `Sling “${q}” at ${rig.name}`, hint: 'sling', run: async () => {
      try {
        const res = await api.post<{ bead: Bead; agent: { name: string } | null }>(`${api.R(s.townId, rig.id)}/sling`, { title: q });
        toast(res.agent ? `${res.bead.id} slung to ${res.agent.name}` : `${res.bead.id} queued: every polecat slot is busy`);
        await s.reload('beads', 'agents');
      } catch (err) {
        showError(err, 'Could not sling');
      }
    } }));
  });
}

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
