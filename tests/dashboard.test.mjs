// The browser dashboard end to end, in a real browser (Debian's Chromium via playwright-core)
// against the real stack: workerd (wrangler dev) serving the dashboard's static assets and the
// API, the container program, the built-in demo agents and local bare git repositories.
//
// Every scenario is independent: it makes its own town (through the API when the UI part is not
// what it tests), opens its own page at its own size (1440×900 wide, 390×844 phone) and closes
// it in `finally`, and waits only on observable conditions. The Worker-restart scenario runs a
// Worker of its own. All of it runs under the dashboard's Content-Security-Policy: a violation
// anywhere fails the last test. axe-core (injected through the DevTools protocol, which CSP does
// not govern) checks every view at both sizes for serious or critical violations, and
// screenshots of every view at both sizes go to tests/artifacts/ (look at them: layout matters).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startWorker, ROOT } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, bareRepo, until, CONTAINER_SECRET } from './lib/container.mjs';
import { launchBrowser, stableOrigin, ARTIFACTS } from './lib/browser.mjs';

const WIDE = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const SIZES = [['wide', WIDE], ['phone', PHONE]];
const AXE = readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

let c;
let w;
let origin;
let b;
let api;
const repos = [];
const problems = [];
const VARS = () => ({ GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET });
const SECRET = 'sk_dashboard_secret_value_0042';

before(async () => {
  c = await startContainer();
  w = await startWorker({ vars: VARS() });
  api = client(w.url);
  origin = await stableOrigin(w.url);
  b = await launchBrowser();
  // Every Content-Security-Policy violation (the dashboard is served under a strict one) is
  // reported as a console error, collected per page; checked in the last test.
  await b.context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));
  });
});

after(async () => {
  if (problems.length) console.log('browser problems:\n' + problems.join('\n'));
  await b?.close();
  await origin?.close();
  if (w) await w.stop();
  await c?.stop();
  for (const r of repos) r.cleanup();
});

// ---- helpers ----

function newRepo() {
  const r = bareRepo();
  repos.push(r);
  return r;
}

/** A town (and a rig on a fresh repository) made through the API: `{townId, rigId, repo, R}`. */
async function townWithRig(name, a = api) {
  const repo = newRepo();
  const t = ok(await a.post('/api/users/dev-user/towns', { name }), 201);
  const rig = ok(await a.post('/api/users/dev-user/rigs', { town_id: t.id, name: 'web', git_url: repo.bare }), 201);
  return { townId: t.id, rigId: rig.id, repo, R: `/api/towns/${t.id}/rigs/${rig.id}` };
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) }).catch(() => {});
}

/** A fresh page of the shared browser at `size`, closed afterwards; a failure saves a screenshot. */
async function withPage(name, size, fn, base = () => origin.url) {
  const page = await b.context.newPage();
  await page.setViewportSize(size);
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource|WebSocket connection to/.test(m.text())) problems.push(`${name}: console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  try {
    await fn(page, base());
  } catch (e) {
    await shot(page, `failed-${name.slice(0, 40).replace(/\W+/g, '-')}`);
    throw new Error(`${e.message}\n(at ${page.url()})`);
  } finally {
    await page.close().catch(() => {});
  }
}

const townUrl = (base, townId, rest = '') => `${base}/#/towns/${townId}${rest}`;

/** The visible terminal's text (xterm's DOM renderer keeps the screen in .xterm-rows). */
const screenOf = (page, scope = '.term-panel.active:not([hidden])') => page.locator(`${scope} .xterm-rows`).first().innerText().catch(() => '');
async function screenShows(page, text, { timeout = 20_000, scope } = {}) {
  try {
    await until(async () => (await screenOf(page, scope)).includes(text), { timeout, what: `the terminal to show ${JSON.stringify(text)}` });
  } catch (e) {
    throw new Error(`${e.message}; status: ${await page.locator('.term-status').first().innerText().catch(() => '?')}; screen:\n${await screenOf(page, scope)}`);
  }
}

/** No sideways scrolling: neither the document nor the main area is wider than the window. */
async function assertNoSidewaysScroll(page, what) {
  const m = await page.evaluate(() => {
    const main = document.querySelector('main');
    return { doc: document.documentElement.scrollWidth, win: window.innerWidth, main: main ? main.scrollWidth - main.clientWidth : 0 };
  });
  assert.ok(m.doc <= m.win && m.main <= 1, `${what}: page ${m.doc}px wide in a ${m.win}px window (main overflows by ${m.main}px)`);
}

/** axe-core on the page as it is: no serious or critical violations. Returns the counts. */
async function axeCheck(page, what) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${what}: axe found ${JSON.stringify(bad, null, 1)}`);
  return res;
}

/** Presses Tab until `pred` holds for the focused element; fails if focus stops moving (a trap). */
async function tabUntil(page, pred, { max = 80, shift = false, what = 'the control' } = {}) {
  let last = '';
  let same = 0;
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(shift ? 'Shift+Tab' : 'Tab');
    const here = await page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.tagName}#${el.id}.${el.className}|${el.getAttribute('aria-label') ?? ''}|${(el.textContent ?? '').slice(0, 40)}` : '';
    });
    if (await page.evaluate(pred)) return;
    same = here === last ? same + 1 : 0;
    assert.ok(same < 3, `focus is stuck on ${here}`);
    last = here;
  }
  throw new Error(`Tab never reached ${what}`);
}

/** One rich town (a merged bead, mail, an escalation, a convoy, the mayor) for the views' checks. */
let rich;
function richTown() {
  rich ??= (async () => {
    const t = await townWithRig('Showcase');
    const s = ok(await api.post(`${t.R}/sling`, { title: 'Add a greeting page', body: 'Say hello to visitors.', priority: 'high' }), 201);
    t.beadId = s.bead.id;
    t.polecatId = s.agent.id;
    ok(await api.post(`/api/towns/${t.townId}/mayor/message`, { message: 'Plan the release' }), 201);
    ok(await api.post(`${t.R}/escalations`, { message: 'Disk nearly full', severity: 'high' }), 201);
    const loose = ok(await api.post(`${t.R}/beads`, { title: 'Write the changelog' }), 201);
    ok(await api.post(`/api/towns/${t.townId}/convoys`, { title: 'Release 1', bead_ids: [loose.id] }), 201);
    await until(async () => ok(await api.get(`/api/towns/${t.townId}/merge-queue`)).some((m) => m.source_bead_id === t.beadId && m.status === 'merged'),
      { timeout: 90_000, what: 'the showcase bead to merge' });
    return t;
  })();
  return rich;
}

// ---- scenarios ----

test('the Worker serves the dashboard, and the API still answers JSON', async () => {
  const html = await fetch(`${w.url}/`);
  assert.equal(html.status, 200);
  assert.match(await html.text(), /<div id="app">/);
  // Unknown non-API paths fall back to the app; unknown API paths stay JSON 404s.
  assert.match(await (await fetch(`${w.url}/some/deep/link`, { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html' } })).text(), /<div id="app">/);
  const api404 = await fetch(`${w.url}/api/nope`);
  assert.equal(api404.status, 404);
  assert.equal((await api404.json()).success, false);
  assert.equal((await (await fetch(`${w.url}/health`)).json()).status, 'ok');
});

test('create a town, then add rigs: a malformed URL and an unreachable repository are refused in one line', async () => {
  await withPage('create-town', WIDE, async (page, base) => {
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'Towns', level: 1 }).waitFor();
    // A too-long name is refused by the server, in words.
    await page.getByLabel('Town name').fill('x'.repeat(300));
    await page.getByRole('button', { name: 'Create town' }).click();
    const err = page.locator('form[aria-label="Create a town"] .form-error');
    await err.waitFor();
    assert.match(await err.innerText(), /name/i);
    await page.getByLabel('Town name').fill('Alpha');
    await page.getByRole('button', { name: 'Create town' }).click();
    await page.getByRole('heading', { name: 'Alpha', level: 1 }).waitFor();
    await page.locator('.conn[data-status="connected"]').waitFor();
    assert.match(await page.locator('.conn').innerText(), /Live/);
    await page.getByText('Add a rig').click();
    await page.getByLabel('Name', { exact: true }).fill('web');
    await page.getByLabel('Git URL').fill('definitely not a url');
    await page.getByRole('button', { name: 'Add rig' }).click();
    const rigErr = page.locator('form[aria-label="Add a rig"] .form-error');
    await rigErr.waitFor();
    assert.match(await rigErr.innerText(), /Could not add the rig.*git_url/s);
    // A well-formed URL that leads nowhere is checked through the container (git ls-remote).
    const missing = join(dirname(newRepo().bare), 'missing.git');
    await page.getByLabel('Git URL').fill(missing);
    await page.getByRole('button', { name: 'Add rig' }).click();
    await page.locator('form[aria-label="Add a rig"] .form-error').filter({ hasText: 'cannot reach' }).waitFor();
    const text = await rigErr.innerText();
    assert.equal(text.trim().split('\n').length, 1, `one line: ${text}`);
    assert.doesNotMatch(text, /Some\(|fatal:|exit status/);
    await shot(page, 'add-rig-error-wide');
    const repo = newRepo();
    await page.getByLabel('Git URL').fill(repo.bare);
    await page.getByRole('button', { name: 'Add rig' }).click();
    await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
    await page.locator('.sidenav').getByRole('link', { name: 'web' }).waitFor();
  });
});

test('settings: a reserved name is refused in words; secrets are saved and only ever shown masked', async () => {
  const t = await townWithRig('Settings town');
  await withPage('settings', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId, '/settings'));
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Add variable' }).click();
    const row = page.locator('.env-row').last();
    await row.getByLabel('Variable name').fill('GASTOWN_SNEAKY');
    await row.locator('input').nth(1).fill('1');
    await page.getByRole('button', { name: 'Save settings' }).click();
    const err = page.locator('.sticky-actions .form-error');
    await err.waitFor();
    assert.match(await err.innerText(), /reserved/);
    await row.getByLabel('Variable name').fill('API_TOKEN');
    await row.locator('input').nth(1).fill(SECRET);
    await page.getByLabel('Polecats per rig').fill('2');
    await page.getByLabel('Look every (seconds)').fill('7');
    await page.getByLabel('Model for role polecat').fill('small-model');
    await page.getByLabel('Runtime for rig web').selectOption('codex');
    await page.getByLabel('GitHub token').fill('ghp_dashboardToken0123456789abcdef');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Settings saved').waitFor();
    // Reload: the stored secrets are never put back into the page, only their masks.
    await page.reload();
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    await page.locator('.env-row').first().waitFor();
    const html = await page.content();
    assert.ok(!html.includes(SECRET) && !html.includes('ghp_dashboardToken0123456789abcdef'), 'no secret in the page');
    assert.match(await page.getByLabel('GitHub token').getAttribute('placeholder'), /^\*\*\*\*cdef/);
    assert.equal(await page.getByLabel('GitHub token').inputValue(), '');
    assert.equal(await page.getByLabel('Polecats per rig').inputValue(), '2');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Settings saved').first().waitFor();
    const cfg = ok(await api.get(`/api/towns/${t.townId}/config`));
    assert.match(cfg.env_vars.API_TOKEN, /^\*\*\*\*0042$/);
    assert.match(cfg.git_auth.github_token, /^\*\*\*\*cdef$/);
    assert.equal(cfg.witness.tick_secs, 7);
    assert.equal(cfg.agent.role_overrides.polecat.model, 'small-model');
    assert.equal(cfg.agent.rig_overrides[t.rigId].runtime, 'codex');
  });
});

test('sling a bead: the polecat terminal prints its work, the merge lands as one card, the feed groups it in one row', async () => {
  const t = await townWithRig('Sling town');
  await withPage('sling', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId, `/rigs/${t.rigId}`));
    await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
    await page.getByLabel('Title', { exact: true }).fill('Add a greeting page');
    await page.getByLabel('Body', { exact: true }).fill('Say hello to visitors.');
    await page.getByLabel('Priority', { exact: true }).selectOption('high');
    await page.getByLabel('Model for this work').fill('small-model-1');
    await page.getByRole('button', { name: 'Sling', exact: true }).click();
    const card = page.locator('.bead-card').filter({ hasText: 'Add a greeting page' });
    await card.waitFor();
    const beadId = await card.getAttribute('data-bead-id');
    assert.equal(ok(await api.get(`${t.R}/beads/${beadId}`)).metadata.model, 'small-model-1', 'the model picked for this work');
    const agent = page.locator('.agent-card.role-polecat').first();
    await agent.click();
    await page.waitForFunction(() => location.hash.includes('d=agent:'));
    await page.getByRole('dialog').last().getByRole('button', { name: 'Open terminal' }).click();
    await page.waitForFunction(() => location.hash.includes('term='));
    await screenShows(page, '[gastown demo]');
    await screenShows(page, 'demo agent finished', { timeout: 30_000 });
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !location.hash.includes('d='));
    await page.locator('.sidenav').getByRole('link', { name: /Merge queue/ }).click();
    const mq = page.locator('.mq-merged .mq-item').filter({ hasText: beadId });
    await mq.waitFor({ timeout: 60_000 });
    assert.match(await mq.innerText(), /first attempt/);
    assert.equal(await page.locator('.mq-item').filter({ hasText: beadId }).count(), 1, 'one card per bead');
    await until(() => t.repo.log().split('\n').length > 1, { what: 'a commit on main' });
    // The overview's feed: the bead's whole story is one row, named by its title.
    await page.locator('.sidenav').getByRole('link', { name: 'Overview' }).click();
    const row = page.locator('.feed .feed-group').filter({ hasText: 'Add a greeting page' });
    await row.first().waitFor();
    await until(async () => (await row.count()) === 1 && /closed/.test(await row.innerText()), { what: 'one feed row for the bead, closed' });
    // Filters: by kind (mail shows none of it), then back.
    await page.getByLabel('Kind of activity').selectOption('mail');
    await page.waitForFunction(() => location.hash.includes('feed_kind=mail'));
    await until(async () => (await row.count()) === 0, { what: 'the mail filter to hide the bead' });
    await page.getByLabel('Kind of activity').selectOption('');
    await row.first().waitFor();
    // The list view with a filter, in the URL.
    await page.locator('.sidenav').getByRole('link', { name: 'web' }).click();
    assert.equal(await page.evaluate(() => document.querySelector('main').scrollTop), 0, 'a new page starts at its top');
    await page.getByRole('tab', { name: 'List' }).click();
    await page.getByLabel('Filter beads').fill('greeting');
    await page.waitForFunction(() => location.hash.includes('q=greeting'));
    await page.locator('table.table tbody tr').filter({ hasText: beadId }).getByText('closed').waitFor({ timeout: 30_000 });
  });
});

test('a failing gate: one card per bead with real attempt numbers, the failure in one line, a badge once it needs you', async () => {
  const t = await townWithRig('Gate town');
  ok(await api.patch(`/api/towns/${t.townId}/config`, { refinery: { gates: ['false'] } }));
  const s = ok(await api.post(`${t.R}/sling`, { title: 'Doomed change' }), 201);
  await withPage('gate', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId, '/merge-queue'));
    const card = page.locator('.mq-item').filter({ hasText: 'Doomed change' });
    await card.locator('.err-line').filter({ hasText: 'failed (exit code 1) with no output' }).first().waitFor({ timeout: 60_000 });
    await card.getByText(/attempt [23] of [23]/).waitFor({ timeout: 90_000 });
    assert.equal(await page.locator('.mq-item').filter({ hasText: 'Doomed change' }).count(), 1, 'one card for all the attempts');
    assert.doesNotMatch(await page.locator('main').innerText(), /Some\(/);
    await until(async () => ok(await api.get(`${t.R}/beads/${s.bead.id}`)).status === 'failed', { timeout: 120_000, what: 'the bead to give up' });
    await page.locator('.sidenav a').filter({ hasText: 'Merge queue' }).locator('.count.bad').waitFor();
    await card.locator('.mq-earlier summary').click();
    await card.locator('.mq-attempt').first().waitFor();
    await shot(page, 'merge-queue-failed-wide');
  });
});

test('drawers stack for drill-down, the URL reopens them, and Escape closes the top one', async () => {
  const t = await townWithRig('Drawer town');
  const s = ok(await api.post(`${t.R}/sling`, { title: 'Drill into me' }), 201);
  await withPage('drawers', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId, `/rigs/${t.rigId}?view=list`));
    await page.locator('table.table').getByRole('button', { name: s.bead.id }).click();
    const bead = page.getByRole('dialog', { name: 'Drill into me' });
    await bead.getByText('Timeline').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.closest('[role=dialog]') !== null), true);
    await bead.locator('[data-focus-key=assignee]').click();
    await page.waitForFunction(() => /d=bead:[^,]+,agent:/.test(location.hash));
    const agentDrawer = page.getByRole('dialog').last();
    await agentDrawer.getByText('Agent log').waitFor();
    await agentDrawer.locator('.event-link').first().click();
    await page.waitForFunction(() => /,agent:[^,]+,event:\d+/.test(location.hash));
    await page.getByRole('dialog', { name: /^Event #/ }).waitFor();
    const link = page.url();
    await page.goto('about:blank');
    await page.goto(link);
    await page.getByRole('dialog', { name: /^Event #/ }).waitFor();
    assert.equal(await page.getByRole('dialog').count(), 3);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !location.hash.includes('event:'));
    // The URL changes first; the closed drawer leaves the page on the next redraw.
    await until(async () => (await page.getByRole('dialog').count()) === 2, { timeout: 10_000, what: 'two drawers left' });
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !location.hash.includes('d='));
  });
});

test("a bead's drawer offers the actions its status allows: close, then reopen", async () => {
  const t = await townWithRig('Actions town');
  const bead = ok(await api.post(`${t.R}/beads`, { title: 'Tidy the README' }), 201);
  await withPage('bead-actions', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId, `/rigs/${t.rigId}?view=list`));
    await page.locator('table.table').getByRole('button', { name: bead.id }).click();
    const drawer = page.getByRole('dialog', { name: 'Tidy the README' });
    await drawer.getByRole('button', { name: 'Close', exact: true }).click();
    await drawer.getByRole('button', { name: 'Reopen' }).click();
    await drawer.getByRole('button', { name: 'Close', exact: true }).waitFor();
    await drawer.locator('.timeline').getByText(/reopened|closed → open/).first().waitFor();
  });
});

test('the mayor: "Start the mayor" while its status is unknown or idle (no dead terminal), then a read-write terminal', async () => {
  const t = await townWithRig('Mayor town');
  // The mayor exists as an agent (it ran before) but its status answers late, then says idle:
  // the panel must not attach to a terminal that does not exist.
  ok(await api.post(`/api/towns/${t.townId}/mayor/ensure`));
  await until(async () => ok(await api.get(`/api/towns/${t.townId}/agents`)).some((a) => a.role === 'mayor'), { what: 'the mayor agent' });
  await withPage('mayor', WIDE, async (page, base) => {
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    let release;
    const held = new Promise((r) => { release = r; });
    let fake = true;
    await page.route('**/mayor/status', async (route) => {
      if (!fake) return route.continue();
      await held;
      const real = await route.fetch();
      const body = await real.json();
      body.data.status = 'idle';
      await route.fulfill({ response: real, json: body });
    });
    await page.goto(townUrl(base, t.townId));
    await page.locator('.agent-card.role-mayor').waitFor();
    await page.locator('.term-status[data-status="unknown"]').waitFor();
    await page.getByText('Checking whether the mayor is running').waitFor();
    release();
    await page.getByRole('button', { name: 'Start the mayor' }).waitFor();
    assert.deepEqual(sockets.filter((u) => u.includes('/terminal')), [], 'no terminal socket for a mayor that is not running');
    fake = false;
    await page.unroute('**/mayor/status');
    await page.getByRole('button', { name: 'Start the mayor' }).click();
    await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('.term-status').innerText(), /read-write/);
    await screenShows(page, 'GASTOWN DEMO MAYOR');
    await page.locator('.term-panel.active .xterm').click();
    await page.keyboard.type('Write the docs');
    await screenShows(page, 'Write the docs');
    await page.keyboard.press('Enter');
    await screenShows(page, 'slung', { timeout: 30_000 });
    await page.locator('.feed').getByText(/Write the docs/).first().waitFor({ timeout: 30_000 });
    // The session picker lists the mayor and the town's other agents.
    await page.getByRole('button', { name: 'Sessions ▾' }).click();
    const picker = page.getByRole('dialog', { name: 'Sessions' });
    await picker.locator('.session.role-mayor').waitFor();
    await page.keyboard.press('Escape');
    assert.equal(await picker.isHidden(), true);
  });
});

test('keyboard: no trap — Ctrl+] and Esc Esc leave the mayor terminal, read-only terminals let Tab and Escape through', async () => {
  const t = await townWithRig('Keys town');
  ok(await api.post(`/api/towns/${t.townId}/mayor/ensure`));
  const s = ok(await api.post(`${t.R}/sling`, { title: 'Something to watch' }), 201);
  await withPage('keys', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId));
    await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
    await page.getByText('Esc Esc or Ctrl+] leaves the terminal').waitFor();
    const inTerm = () => page.evaluate(() => !!document.activeElement?.closest('.xterm'));
    await page.locator('.term-panel.active .xterm').click();
    assert.ok(await inTerm());
    await page.keyboard.press('Tab'); // goes to the program (a shell completes with it)
    assert.ok(await inTerm(), 'Tab stays with the writable terminal');
    await page.keyboard.press('Control+BracketRight');
    await page.waitForFunction(() => document.activeElement?.id === 'termtab-mayor');
    await page.locator('.term-panel.active .xterm').click();
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.activeElement?.id === 'termtab-mayor');
    // From the tab, Tab moves on through the page (focus is never stuck).
    await tabUntil(page, () => !document.activeElement?.closest('.termbar-tabs-row'), { what: 'past the tabs' });
    // A read-only terminal: Tab and Shift+Tab move focus out, Escape leaves it.
    await page.goto(townUrl(base, t.townId, `?term=${s.agent.id}`));
    await page.locator(`.term-panel.active[data-agent-id="${s.agent.id}"] .xterm`).click();
    assert.ok(await inTerm());
    await page.keyboard.press('Tab');
    assert.equal(await inTerm(), false, 'Tab leaves a read-only terminal');
    await page.locator(`.term-panel.active[data-agent-id="${s.agent.id}"] .xterm`).click();
    await page.keyboard.press('Shift+Tab');
    assert.equal(await inTerm(), false, 'Shift+Tab leaves a read-only terminal');
    await page.locator(`.term-panel.active[data-agent-id="${s.agent.id}"] .xterm`).click();
    await page.keyboard.press('Escape');
    await page.waitForFunction((id) => document.activeElement?.id === `termtab-${id}`, s.agent.id);
    // `t` focuses the terminal again; `?` lists the keys.
    await page.locator('h1').first().focus();
    await page.keyboard.press('t');
    assert.ok(await inTerm());
    await page.keyboard.press('Escape');
    await page.keyboard.press('?');
    const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
    await help.getByText('Command palette').waitFor();
    await help.getByText('Ctrl+]').first().waitFor();
    await page.keyboard.press('Escape');
    await help.waitFor({ state: 'detached' });
  });
});

test('the terminal panel: resizable by keyboard and remembered, maximised, popped out to its own URL, side by side', async () => {
  const t = await townWithRig('Panel town');
  ok(await api.post(`/api/towns/${t.townId}/mayor/ensure`));
  const s = ok(await api.post(`${t.R}/sling`, { title: 'Watch me work' }), 201);
  await withPage('panel', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId));
    await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
    const height = () => page.locator('.termbar').evaluate((el) => el.getBoundingClientRect().height);
    const before = await height();
    const handle = page.getByRole('separator', { name: /Resize terminals/ });
    await handle.focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowUp');
    await until(async () => (await height()) >= before + 90, { what: 'the panel to grow' });
    const grown = await height();
    await page.reload();
    await page.locator('.termbar').waitFor();
    await until(async () => Math.abs((await height()) - grown) < 2, { what: 'the height to be remembered' });
    // Maximise: the panel fills the window below the top bar; restore.
    await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Maximise terminals' }).click();
    await until(async () => (await height()) > 800, { what: 'the panel to be maximised' });
    await shot(page, 'terminal-maximised-wide');
    await page.getByRole('button', { name: 'Restore the terminal size' }).click();
    await until(async () => Math.abs((await height()) - grown) < 2, { what: 'the panel to be restored' });
    // Side by side: the mayor and a polecat.
    await page.goto(townUrl(base, t.townId, `?term=${s.agent.id}`));
    await page.locator(`.term-panel[data-agent-id="${s.agent.id}"]`).waitFor();
    await page.getByRole('button', { name: 'Terminals side by side' }).click();
    await until(async () => (await page.locator('.termbar-body.split .term-panel:not([hidden])').count()) === 2, { what: 'two terminals side by side' });
    await shot(page, 'terminals-side-by-side-wide');
    await page.getByRole('button', { name: 'Terminals side by side' }).click();
    // Pop out: its own URL, a page with only the terminal.
    const href = await page.getByRole('link', { name: 'Pop out this terminal' }).getAttribute('href');
    assert.equal(href, `#/towns/${t.townId}/terminal/${s.agent.id}`);
  });
  await withPage('popout', WIDE, async (page, base) => {
    await page.goto(`${base}/#/towns/${t.townId}/terminal/${ok(await api.get(`/api/towns/${t.townId}/mayor/status`)).agent.id}`);
    await page.locator('.popout .term-status.ts-connected').waitFor({ timeout: 30_000 });
    await screenShows(page, 'GASTOWN DEMO MAYOR', { scope: '.popout-host' });
    assert.equal(await page.locator('.termbar').isVisible(), false);
    await shot(page, 'terminal-popout-wide');
  });
});

test('terminals reattach by themselves after the Worker restarts (and the page resumes its stream)', async () => {
  const dc = await startContainer();
  const own = await startWorker({ vars: { GASTOWN_CONTAINER_URL: dc.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
  const ownOrigin = await stableOrigin(own.url);
  let w2;
  try {
    const a1 = client(own.url);
    const t = await townWithRig('Restart town', a1);
    ok(await a1.post(`/api/towns/${t.townId}/mayor/ensure`));
    await withPage('restart', WIDE, async (page, base) => {
      await page.goto(townUrl(base, t.townId));
      await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
      await screenShows(page, 'GASTOWN DEMO MAYOR');
      await own.stop({ keepState: true });
      await page.locator('.conn[data-status="reconnecting"], .conn[data-status="disconnected"]').first().waitFor({ timeout: 30_000 });
      await page.locator('.term-status:not(.ts-connected)').waitFor({ timeout: 30_000 });
      await shot(page, 'worker-restart-reconnecting-wide');
      w2 = await startWorker({ vars: { GASTOWN_CONTAINER_URL: dc.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET }, persistDir: own.persistDir });
      ownOrigin.retarget(w2.url);
      await page.locator('.conn[data-status="connected"]').waitFor({ timeout: 60_000 });
      // The mayor's terminal comes back on its own: no reload, no click.
      await page.locator('.term-status.ts-connected').waitFor({ timeout: 60_000 });
      await page.locator('.term-panel.active .xterm').click();
      await page.keyboard.type('after the restart');
      await screenShows(page, 'after the restart');
      // A change made after the restart reaches the page through the resumed stream.
      ok(await client(w2.url).post(`${t.R}/beads`, { title: 'Made after the restart' }), 201);
      await page.locator('.feed').getByText(/Made after the restart/).first().waitFor({ timeout: 20_000 });
    }, () => ownOrigin.url);
  } finally {
    await ownOrigin.close();
    await w2?.stop();
    await own.stop();
    await dc.stop();
  }
});

test('mail, escalations and convoys update live; acknowledge from the page', async () => {
  const t = await townWithRig('Coordination town');
  await withPage('coordination', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId));
    await page.locator('.conn[data-status="connected"]').waitFor();
    await page.getByLabel('Message to the mayor').fill('Fix the footer');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.locator('.sidenav').getByRole('link', { name: /Mail/ }).click();
    await page.locator('.mail').filter({ hasText: 'Fix the footer' }).first().waitFor();
    ok(await api.post(`${t.R}/escalations`, { message: 'Disk nearly full', severity: 'high' }), 201);
    await page.locator('.sidenav').getByRole('link', { name: /Escalations/ }).click();
    const row = page.locator('tr').filter({ hasText: 'Disk nearly full' });
    await row.waitFor();
    await page.locator('.sidenav .count.bad').first().waitFor();
    await row.getByRole('button', { name: 'Acknowledge' }).click();
    await row.getByText('acknowledged').waitFor();
    // The badge means "needs action now": it clears once acknowledged.
    await page.locator('.sidenav .count.bad').waitFor({ state: 'detached' });
    const loose = ok(await api.post(`${t.R}/beads`, { title: 'Write the changelog' }), 201);
    await page.locator('.sidenav').getByRole('link', { name: 'Convoys' }).click();
    await page.getByText('New convoy').click();
    await page.getByLabel('Title', { exact: true }).fill('Release 1');
    await page.locator('.bead-picker label').filter({ hasText: loose.id }).locator('input').check();
    await page.getByRole('button', { name: 'Create convoy' }).click();
    const convoy = page.locator('.convoy').filter({ hasText: 'Release 1' });
    await convoy.waitFor();
    await convoy.getByText(/landed/).waitFor({ timeout: 60_000 });
    // A bead created without slinging waits in Open, and joins an open convoy from the page.
    await page.locator('.sidenav').getByRole('link', { name: 'web' }).click();
    await page.getByLabel('Title', { exact: true }).fill('Later work');
    await page.getByRole('button', { name: 'Create without slinging' }).click();
    await page.locator('.col-open .bead-card').filter({ hasText: 'Later work' }).waitFor();
    ok(await api.post(`/api/towns/${t.townId}/convoys`, { title: 'Release 2', bead_ids: [] }), 201);
    await page.locator('.sidenav').getByRole('link', { name: 'Convoys' }).click();
    const r2 = page.locator('.convoy').filter({ hasText: 'Release 2' });
    await r2.getByRole('button', { name: 'Add to convoy' }).click();
    await r2.getByText(/of 1 closed|landed/).waitFor();
    // Mail to any agent, composed here; filters.
    const polecat = ok(await api.get(`/api/towns/${t.townId}/agents`)).find((a) => a.role === 'polecat');
    await page.locator('.sidenav').getByRole('link', { name: /Mail/ }).click();
    await page.getByText('Compose').click();
    await page.getByLabel('To', { exact: true }).selectOption(polecat.id);
    await page.getByLabel('Subject', { exact: true }).fill('Mind the tests');
    await page.getByLabel('Message', { exact: true }).fill('Run them before gt done.');
    await page.getByRole('button', { name: 'Send mail' }).click();
    await page.locator('.mail').filter({ hasText: 'Mind the tests' }).waitFor();
    await page.getByLabel('Mail of agent').selectOption(polecat.id);
    await page.waitForFunction(() => location.hash.includes('mail_agent='));
    await until(async () => (await page.locator('.mail').filter({ hasText: 'Fix the footer' }).count()) === 0, { what: 'the agent filter' });
    await page.locator('.mail').filter({ hasText: 'Mind the tests' }).waitFor();
  });
});

test('command palette: Ctrl+K jumps to a rig and slings work', async () => {
  const t = await townWithRig('Palette town');
  await withPage('palette', WIDE, async (page, base) => {
    await page.goto(townUrl(base, t.townId));
    await page.locator('.conn[data-status="connected"]').waitFor();
    await page.locator('.rig-card').first().waitFor();
    await page.keyboard.press('Control+k');
    const pal = page.getByRole('dialog', { name: 'Command palette' });
    await pal.waitFor();
    await page.keyboard.type('web');
    await pal.getByRole('option', { name: /web\s*rig/ }).waitFor();
    await shot(page, 'palette-wide');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
    await page.keyboard.press('Control+k');
    await page.keyboard.type('Polish the footer');
    await pal.getByRole('option', { name: /Sling “Polish the footer” at web/ }).waitFor();
    await page.keyboard.press('ArrowDown');
    await page.locator('#palette-list [aria-selected=true]').filter({ hasText: 'Sling' }).waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.bead-card').filter({ hasText: 'Polish the footer' }).waitFor();
  });
});

test('the API page: credentials explained, operations by tag with a filter, $refs open their schema; by keyboard, at both sizes', async () => {
  for (const [label, size] of SIZES) {
    await withPage(`api-${label}`, size, async (page, base) => {
      const errors = [];
      page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      // Reachable without a town: from the help overlay on the towns page.
      await page.goto(`${base}/`);
      await page.getByRole('heading', { name: 'Towns', level: 1 }).waitFor();
      await page.locator('h1').first().focus();
      await page.keyboard.press('?');
      const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
      await help.getByRole('link', { name: 'API reference' }).click();
      await page.getByRole('heading', { name: 'API', level: 1 }).waitFor();
      await help.waitFor({ state: 'detached' });
      assert.equal(await page.evaluate(() => location.hash), '#/api');
      // The document is fetched and rendered: every credential in words, operations by tag.
      await page.locator('.api-op').first().waitFor();
      for (const t of ['Cloudflare Access JWT', 'Cloudflare Access cookie', 'Agent bearer token', 'Stream ticket']) {
        await page.locator('.api-scheme h3').filter({ hasText: t }).waitFor();
      }
      const total = await page.locator('.api-op').count();
      assert.ok(total > 50, `${total} operations`);
      await assertNoSidewaysScroll(page, `api at ${label}`);
      // The filter narrows the operations (and keeps itself in the URL).
      await page.getByLabel('Filter operations').focus();
      await page.keyboard.type('sling');
      await page.waitForFunction(() => location.hash.includes('q=sling'));
      const op = page.locator('.api-op[data-path="/api/towns/{townId}/rigs/{rigId}/sling"]');
      await op.waitFor();
      await until(async () => (await page.locator('.api-op:visible').count()) < total, { what: 'the filter to hide operations' });
      for (const text of await page.locator('.api-op:visible').allInnerTexts()) assert.match(text, /sling/i);
      assert.equal(await op.locator('.api-method').innerText(), 'POST');
      assert.equal(await op.locator('[data-role=body]').innerText(), 'SlingInput');
      assert.equal(await op.locator('[data-role=reply]').innerText(), 'SlingResult');
      assert.match(await op.innerText(), /owner, or an agent of this rig/);
      assert.match(await op.locator('.api-access').innerText(), /RigMember/);
      assert.match(await op.locator('.api-params').innerText(), /townId[\s\S]*required[\s\S]*rigId/);
      assert.equal(await page.locator('.api-auth').isVisible(), false, 'while filtering, only operations and their schemas');
      await assertNoSidewaysScroll(page, `api filtered at ${label}`);
      await shot(page, `api-sling-${label}`);
      // A $ref is a link to its schema on this page: Enter opens the schema's field table.
      await op.locator('[data-role=body] a').focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelector('#schema-SlingInput')?.open === true);
      assert.match(await page.evaluate(() => location.hash), /at=schema-SlingInput/);
      assert.equal(await page.evaluate(() => document.activeElement?.closest('details')?.id), 'schema-SlingInput', 'focus moves to the schema');
      const title = page.locator('#schema-SlingInput tr').filter({ has: page.locator('td code', { hasText: /^title$/ }) });
      assert.match(await title.innerText(), /string[\s\S]*required/);
      await page.locator('#schema-SlingInput tr').filter({ hasText: 'convoy_id' }).filter({ hasText: 'optional' }).waitFor();
      // Another schema opened from its summary, by keyboard; its $refs link on.
      await page.locator('#schema-SlingResult summary').focus();
      await page.keyboard.press('Enter');
      await page.locator('#schema-SlingResult[open]').getByRole('link', { name: 'Bead', exact: true }).waitFor();
      await assertNoSidewaysScroll(page, `api schema open at ${label}`);
      assert.equal(await page.evaluate(() => document.documentElement.scrollHeight <= innerHeight), true, 'only the main area scrolls, not the document');
      assert.deepEqual(await axeCheck(page, `api with schemas open at ${label}`), [], 'no axe violation of any impact');
      await shot(page, `api-schema-${label}`);
      // Clearing the filter brings every operation back.
      await page.getByLabel('Filter operations').fill('');
      await until(async () => (await page.locator('.api-op:visible').count()) === total, { what: 'every operation again' });
      assert.deepEqual(errors, [], 'no console errors');
    });
  }
});

test('phone (390×844): no sideways scroll, navigation drawer, mayor tab and Send on screen, all by keyboard', async () => {
  const t = await townWithRig('Phone town');
  await withPage('phone', PHONE, async (page, base) => {
    await page.goto(townUrl(base, t.townId));
    await page.locator('.conn[data-status="connected"]').waitFor();
    await assertNoSidewaysScroll(page, 'overview');
    assert.equal(await page.locator('.sidenav').isVisible(), false, 'the navigation is a drawer on a phone');
    for (const name of ['Mayor', 'Send']) {
      const loc = page.getByRole(name === 'Mayor' ? 'tab' : 'button', { name, exact: name === 'Send' }).first();
      let box;
      // (The tab is re-rendered as the town's parts arrive: measure once it is settled.)
      await until(async () => {
        box = await loc.boundingBox().catch(() => null);
        return box && box.x >= 0 && box.x + box.width <= PHONE.width && box.y + box.height <= PHONE.height;
      }, { timeout: 10_000, what: `${name} on screen (last seen at ${JSON.stringify(box)})` });
    }
    // Keyboard only: the menu button, the rig link, the sling form.
    await page.locator('h1').first().focus();
    await tabUntil(page, () => document.activeElement?.classList.contains('menu-btn'), { shift: true, what: 'the menu button' });
    await page.keyboard.press('Enter');
    await page.locator('.sidenav').waitFor({ state: 'visible' });
    await shot(page, 'nav-drawer-phone');
    await tabUntil(page, () => document.activeElement?.textContent === 'web', { what: 'the rig link' });
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
    assert.equal(await page.locator('.sidenav').isVisible(), false, 'the drawer closes on navigation');
    await assertNoSidewaysScroll(page, 'rig');
    await tabUntil(page, () => document.activeElement?.getAttribute('name') === 'title', { what: 'the sling title' });
    await page.keyboard.type('Phone work');
    await tabUntil(page, () => document.activeElement?.textContent === 'Sling', { what: 'the Sling button' });
    await page.keyboard.press('Enter');
    await page.locator('.bead-card').filter({ hasText: 'Phone work' }).waitFor();
    // Board columns stack.
    const cols = await page.locator('.board-col').evaluateAll((els) => els.map((e) => Math.round(e.getBoundingClientRect().x)));
    assert.ok(new Set(cols).size === 1, `columns stacked: ${cols}`);
    // The terminal maximised is full screen.
    await page.getByRole('button', { name: 'Maximise terminals' }).click();
    const box = await page.locator('.termbar').boundingBox();
    assert.ok(box.y <= 1 && box.height >= PHONE.height - 2, `full screen: ${JSON.stringify(box)}`);
    await page.getByRole('button', { name: 'Restore the terminal size' }).click();
    // The narrowest phones (360 px): still no sideways scroll anywhere.
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [what, path] of [['overview', ''], ['rig', `/rigs/${t.rigId}`], ['merge queue', '/merge-queue'], ['mail', '/mail'], ['settings', '/settings']]) {
      await page.goto(townUrl(base, t.townId, path));
      await page.locator('h1').first().waitFor();
      await page.locator('.conn[data-status="connected"]').waitFor();
      await assertNoSidewaysScroll(page, `${what} at 360 px`);
    }
  });
});

for (const [label, size] of SIZES) {
  test(`every view at ${size.width}×${size.height}: axe finds nothing serious or critical, no sideways scroll, screenshots`, async () => {
    const t = await richTown();
    const figures = [];
    await withPage(`views-${label}`, size, async (page, base) => {
      const views = [
        ['towns', '/#/', () => page.getByRole('heading', { name: 'Towns', level: 1 }).waitFor()],
        ['api', '/#/api', () => page.locator('.api-op').first().waitFor()],
        ['overview', `/#/towns/${t.townId}`, () => page.locator('.feed .feed-group').first().waitFor()],
        ['rig-board', `/#/towns/${t.townId}/rigs/${t.rigId}`, () => page.locator('.bead-card').first().waitFor()],
        ['rig-list', `/#/towns/${t.townId}/rigs/${t.rigId}?view=list`, () => page.locator('table.table').waitFor()],
        ['merge-queue', `/#/towns/${t.townId}/merge-queue`, () => page.locator('.mq-item').first().waitFor()],
        ['mail', `/#/towns/${t.townId}/mail`, () => page.locator('.mail').first().waitFor()],
        ['escalations', `/#/towns/${t.townId}/escalations`, () => page.locator('tr').filter({ hasText: 'Disk nearly full' }).waitFor()],
        ['convoys', `/#/towns/${t.townId}/convoys`, () => page.locator('.convoy').first().waitFor()],
        ['settings', `/#/towns/${t.townId}/settings`, () => page.getByRole('button', { name: 'Save settings' }).waitFor()],
        ['bead-drawer', `/#/towns/${t.townId}/rigs/${t.rigId}?d=bead:${t.rigId}:${t.beadId}`, () => page.getByRole('dialog').getByText('Timeline').waitFor()],
        ['agent-drawer', `/#/towns/${t.townId}?d=agent:${t.polecatId}`, () => page.getByRole('dialog').getByText('Agent log').waitFor()],
        ['polecat-terminal', `/#/towns/${t.townId}?term=${t.polecatId}`, () => page.locator(`.term-panel[data-agent-id="${t.polecatId}"]`).waitFor()],
        ['terminal-popout', `/#/towns/${t.townId}/terminal/${t.polecatId}`, () => page.locator('.popout-host .xterm').waitFor()],
      ];
      for (const [name, path, ready] of views) {
        await page.goto(`${base}${path}`);
        await ready();
        await page.locator('.conn[data-status="connected"], .conn:not([data-status])').first().waitFor();
        await assertNoSidewaysScroll(page, name);
        const v = await axeCheck(page, `${name} at ${label}`);
        figures.push(`${name}: ${v.length ? v.map((x) => `${x.id} (${x.impact})`).join(', ') : 'none'}`);
        await shot(page, `${name}-${label}`);
      }
      // The palette and the help overlay, over the overview.
      await page.goto(`${base}/#/towns/${t.townId}`);
      await page.locator('.feed .feed-group').first().waitFor();
      await page.keyboard.press('Control+k');
      await page.getByRole('dialog', { name: 'Command palette' }).waitFor();
      await axeCheck(page, `palette at ${label}`);
      await shot(page, `palette-${label}`);
      await page.keyboard.press('Escape');
      await page.locator('h1').first().focus();
      await page.keyboard.press('?');
      await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
      await axeCheck(page, `help at ${label}`);
      await shot(page, `help-${label}`);
    });
    console.log(`axe at ${label}: ${figures.join('; ')}`);
  });
}

test('the whole run stayed under the dashboard\'s Content-Security-Policy without a violation or a page error', async () => {
  const res = await fetch(`${origin.url}/`);
  assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self';.*frame-ancestors 'none'/);
  const bad = problems.filter((p) => /CSP violation|Content Security Policy|page error/i.test(p));
  assert.deepEqual(bad, []);
});
