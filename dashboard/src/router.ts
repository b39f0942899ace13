// Hash routing: the URL names the page, the open drawers (a stack, bottom first) and the open
// terminal tab, so a copied link reopens exactly what was on screen. Hash routes never reach the
// server, so they work behind any static host and Cloudflare Access alike.
//
//   #/                                   towns
//   #/api                                the API reference (?q=<filter>&at=<element id>)
//   #/towns/<town>[/<page>]              overview, merge-queue, mail, escalations, convoys, settings
//   #/towns/<town>/rigs/<rig>            a rig (?view=board|list&status=&q=)
//   #/towns/<town>/terminal/<agent>      one terminal on a page of its own (the pop-out)
//   …?d=bead:<rig>:<bead>,agent:<id>,event:<seq>&term=<agentId>

export type Page = 'towns' | 'api' | 'overview' | 'rig' | 'merge-queue' | 'mail' | 'escalations' | 'convoys' | 'settings' | 'terminal' | 'notfound';

export type DrawerSpec =
  | { kind: 'bead'; rigId: string; beadId: string }
  | { kind: 'agent'; agentId: string }
  | { kind: 'event'; eventId: number };

export interface Route {
  page: Page;
  townId?: string;
  rigId?: string;
  /** The pop-out terminal's agent. */
  agentId?: string;
  params: Map<string, string>;
  drawers: DrawerSpec[];
}

const TOWN_PAGES: Page[] = ['merge-queue', 'mail', 'escalations', 'convoys', 'settings'];

export function parseHash(hash = location.hash): Route {
  const raw = hash.replace(/^#/, '');
  const [path, query = ''] = raw.split('?', 2);
  const params = new Map<string, string>();
  for (const part of query.split('&')) {
    if (!part) continue;
    const [k, v = ''] = part.split('=', 2);
    params.set(decodeURIComponent(k), decodeURIComponent(v));
  }
  const drawers = parseDrawers(params.get('d') ?? '');
  params.delete('d');
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  const route: Route = { page: 'notfound', params, drawers };
  if (seg.length === 0) route.page = 'towns';
  else if (seg[0] === 'api' && seg.length === 1) route.page = 'api';
  else if (seg[0] === 'towns' && seg[1]) {
    route.townId = seg[1];
    if (seg.length === 2) route.page = 'overview';
    else if (seg[2] === 'rigs' && seg[3] && seg.length === 4) { route.page = 'rig'; route.rigId = seg[3]; }
    else if (seg[2] === 'terminal' && seg[3] && seg.length === 4) { route.page = 'terminal'; route.agentId = seg[3]; }
    else if (seg.length === 3 && TOWN_PAGES.includes(seg[2] as Page)) route.page = seg[2] as Page;
  }
  return route;
}

function parseDrawers(s: string): DrawerSpec[] {
  const out: DrawerSpec[] = [];
  for (const tok of s.split(',')) {
    const [kind, a, b] = tok.split(':');
    if (kind === 'bead' && a && b) out.push({ kind, rigId: a, beadId: b });
    else if (kind === 'agent' && a) out.push({ kind, agentId: a });
    else if (kind === 'event' && a && /^\d+$/.test(a)) out.push({ kind, eventId: Number(a) });
  }
  return out;
}

export function drawerKey(d: DrawerSpec): string {
  switch (d.kind) {
    case 'bead': return `bead:${d.rigId}:${d.beadId}`;
    case 'agent': return `agent:${d.agentId}`;
    case 'event': return `event:${d.eventId}`;
  }
}

const enc = (s: string) => encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%2C/gi, ',');

export function buildHash(r: Route): string {
  let path = r.page === 'api' ? '/api' : '/';
  if (r.townId && r.page !== 'api') {
    path = `/towns/${enc(r.townId)}`;
    if (r.page === 'rig' && r.rigId) path += `/rigs/${enc(r.rigId)}`;
    else if (r.page === 'terminal' && r.agentId) path += `/terminal/${enc(r.agentId)}`;
    else if (r.page !== 'overview' && r.page !== 'towns') path += `/${r.page}`;
  }
  const q: string[] = [];
  for (const [k, v] of r.params) if (v) q.push(`${enc(k)}=${enc(v)}`);
  if (r.drawers.length) q.push(`d=${r.drawers.map(drawerKey).map(enc).join(',')}`);
  return `#${path}${q.length ? `?${q.join('&')}` : ''}`;
}

export function current(): Route {
  return parseHash();
}

/** Changes the URL (one history entry), which re-renders through the hashchange listener. */
export function go(r: Route, replace = false): void {
  const hash = buildHash(r);
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(null, '', hash);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else location.hash = hash;
}

export function goPage(page: Page, townId?: string, rigId?: string): void {
  // Moving between pages keeps the terminal tab but closes drawers.
  const cur = current();
  const params = new Map<string, string>();
  const term = cur.params.get('term');
  if (term && townId === cur.townId) params.set('term', term);
  go({ page, townId, rigId, params, drawers: [] });
}

export function openDrawer(d: DrawerSpec): void {
  const r = current();
  // Opening what is already on top does nothing; a drawer already lower in the stack is brought up.
  const key = drawerKey(d);
  const drawers = r.drawers.filter((x) => drawerKey(x) !== key);
  go({ ...r, drawers: [...drawers, d] });
}

export function closeTopDrawer(): void {
  const r = current();
  if (!r.drawers.length) return;
  go({ ...r, drawers: r.drawers.slice(0, -1) });
}

export function closeAllDrawers(): void {
  const r = current();
  go({ ...r, drawers: [] });
}

export function setParam(k: string, v: string | null, replace = true): void {
  const r = current();
  const params = new Map(r.params);
  if (v) params.set(k, v);
  else params.delete(k);
  go({ ...r, params }, replace);
}

export function href(page: Page, townId?: string, rigId?: string): string {
  return buildHash({ page, townId, rigId, params: new Map(), drawers: [] });
}

export function hrefTerminal(townId: string, agentId: string): string {
  return buildHash({ page: 'terminal', townId, agentId, params: new Map(), drawers: [] });
}
