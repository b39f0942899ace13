// The browser dashboard end to end, in a real browser (Debian's Chromium via playwright-core)
// against the real stack: workerd (wrangler dev) serving the dashboard's static assets and the
// API, the container program, the built-in demo agents and a local bare git repository.
// A person creates a town, gets a clear error for a bad git URL, adds a rig, changes settings
// (secrets come back masked), slings a bead, watches the polecat in its live terminal, sees the
// merge land and the bead close, drills down through stacked drawers, types to the mayor, and
// sees the page reconnect on its own after the Worker restarts — all of it under the dashboard's
// Content-Security-Policy, with no violation reported.
// Screenshots of each view go to tests/artifacts/ (look at them: layout matters too).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { startWorker } from './lib/worker.mjs';
import { client, ok } from './lib/api.mjs';
import { startContainer, bareRepo, until, CONTAINER_SECRET } from './lib/container.mjs';
import { launchBrowser, stableOrigin } from './lib/browser.mjs';

let c;
let w;
let w2;
let origin;
let b;
let page;
let repo;
let api;
let townId;
let rigId;
let beadId;
const VARS = () => ({ GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET });
const SECRET = 'sk_dashboard_secret_value_0042';

before(async () => {
  c = await startContainer();
  w = await startWorker({ vars: VARS() });
  api = client(w.url);
  origin = await stableOrigin(w.url);
  repo = bareRepo();
  b = await launchBrowser();
  // Every Content-Security-Policy violation (the dashboard is served under a strict one) is
  // reported as a console error, which the browser helper collects; checked in the last test.
  await b.context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));
  });
  page = b.page;
  page.setDefaultTimeout(20_000);
});

after(async () => {
  if (b && b.problems.length) console.log('browser problems:\n' + b.problems.join('\n'));
  await b?.close();
  await origin?.close();
  await w2?.stop();
  if (w) {
    await w.stop({ keepState: true });
    rmSync(dirname(w.persistDir), { recursive: true, force: true });
  }
  await c?.stop();
  repo?.cleanup();
});

/** The visible terminal's text (xterm's DOM renderer keeps the screen in .xterm-rows). */
const screen = () => page.locator('.term-panel:not([hidden]) .xterm-rows').innerText().catch(() => '');
async function screenShows(text, timeout = 20_000) {
  try {
    await until(async () => (await screen()).includes(text), { timeout, what: `the terminal to show ${JSON.stringify(text)}` });
  } catch (e) {
    await b.shot(`failed-terminal-${text.replace(/\W+/g, '-')}`);
    throw new Error(`${e.message}; at ${page.url()}; status: ${await page.locator('.term-status').innerText().catch(() => '?')}; screen:\n${await screen()}`);
  }
}
/** A browser scenario: on failure, a screenshot of the page as it was goes to tests/artifacts/. */
function scenario(name, fn) {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      await b.shot(`failed-${name.slice(0, 40).replace(/\W+/g, '-')}`).catch(() => {});
      throw new Error(`${e.message}\n(at ${page.url()})`);
    }
  });
}
const hashHas = (s) => page.waitForFunction((x) => location.hash.includes(x), s);

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

scenario('create a town from the towns page', async () => {
  await page.goto(`${origin.url}/`);
  await page.getByRole('heading', { name: 'Towns', level: 1 }).waitFor();
  await b.shot('01-towns-empty');
  // An empty name is refused by the browser; a too-long one by the server, in words.
  await page.getByLabel('Town name').fill('x'.repeat(300));
  await page.getByRole('button', { name: 'Create town' }).click();
  const err = page.locator('form[aria-label="Create a town"] .form-error');
  await err.waitFor();
  assert.match(await err.innerText(), /name/i);
  await page.getByLabel('Town name').fill('Alpha');
  await page.getByRole('button', { name: 'Create town' }).click();
  await page.getByRole('heading', { name: 'Alpha', level: 1 }).waitFor();
  townId = /#\/towns\/([^/?]+)/.exec(page.url())[1];
  await page.locator('.conn[data-status="connected"]').waitFor();
  assert.equal(await page.locator('.conn').innerText().then((t) => t.includes('Live')), true);
});

scenario('adding a rig with an invalid git URL shows the error in words', async () => {
  await page.getByText('Add a rig').click();
  await page.getByLabel('Name', { exact: true }).fill('web');
  await page.getByLabel('Git URL').fill('definitely not a url');
  await page.getByRole('button', { name: 'Add rig' }).click();
  const err = page.locator('form[aria-label="Add a rig"] .form-error');
  await err.waitFor();
  const text = await err.innerText();
  assert.match(text, /Could not add the rig/);
  assert.match(text, /git_url/);
  await b.shot('02-add-rig-error');
});

scenario('add a rig on a local repository; it appears in the navigation and opens its page', async () => {
  await page.getByLabel('Git URL').fill(repo.bare);
  await page.getByRole('button', { name: 'Add rig' }).click();
  await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
  rigId = /\/rigs\/([^/?]+)/.exec(page.url())[1];
  await page.locator('.sidenav').getByRole('link', { name: 'web' }).waitFor();
  await page.locator('.sidenav').getByRole('link', { name: 'Overview' }).click();
  await page.locator('.rig-card').filter({ hasText: 'web' }).waitFor();
  await b.shot('03-overview-with-rig');
});

scenario('settings: a reserved name is refused in words; secrets are saved and only ever shown masked', async () => {
  await page.locator('.sidenav').getByRole('link', { name: 'Settings' }).click();
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
  // Saving again without touching the secrets keeps them (the masks are sent back).
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByText('Settings saved').first().waitFor();
  const cfg = ok(await api.get(`/api/towns/${townId}/config`));
  assert.match(cfg.env_vars.API_TOKEN, /^\*\*\*\*0042$/);
  assert.match(cfg.git_auth.github_token, /^\*\*\*\*cdef$/);
  await b.shot('04-settings');
});

scenario('sling a bead: the polecat appears, and its terminal prints its work', async () => {
  await page.locator('.sidenav').getByRole('link', { name: 'web' }).click();
  await page.getByRole('heading', { name: 'Rig web', level: 1 }).waitFor();
  await page.getByLabel('Title', { exact: true }).fill('Add a greeting page');
  await page.getByLabel('Body', { exact: true }).fill('Say hello to visitors.');
  await page.getByLabel('Priority', { exact: true }).selectOption('high');
  await page.getByRole('button', { name: 'Sling' }).click();
  const card = page.locator('.bead-card').filter({ hasText: 'Add a greeting page' });
  await card.waitFor();
  beadId = await card.getAttribute('data-bead-id');
  // The polecat shows up among the rig's agents, live (no reload).
  const agent = page.locator('.agent-card.role-polecat').first();
  await agent.waitFor();
  await b.shot('05-rig-board');
  await agent.click();
  await hashHas('d=agent:');
  const drawer = page.getByRole('dialog').last();
  await drawer.getByRole('button', { name: 'Open terminal' }).click();
  await hashHas('term=');
  // The demo polecat's own words (the screen shows the latest rows of its output).
  await screenShows('[gastown demo]');
  await screenShows('demo agent finished', 30_000);
  await b.shot('06-agent-drawer-and-terminal');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('d='));
});

scenario('the merge lands: the queue entry goes to merged and the bead to closed', async () => {
  await page.locator('.sidenav').getByRole('link', { name: /Merge queue/ }).click();
  await page.getByRole('heading', { name: 'Merge queue', level: 1 }).waitFor();
  await page.locator('.mq-merged .mq-item').filter({ hasText: beadId }).waitFor({ timeout: 60_000 });
  await b.shot('07-merge-queue');
  assert.ok(repo.log().length > 0);
  await until(() => repo.log().includes(beadId) || repo.log().split('\n').length > 1, { what: 'a commit on main' });
  await page.locator('.sidenav').getByRole('link', { name: 'web' }).click();
  await page.locator('.col-closed .bead-card').filter({ hasText: 'Add a greeting page' }).waitFor({ timeout: 30_000 });
  // The list view with a filter, in the URL.
  await page.getByRole('tab', { name: 'List' }).click();
  await page.getByLabel('Filter beads').fill('greeting');
  await hashHas('q=greeting');
  await page.locator('table.table tbody tr').filter({ hasText: beadId }).getByText('closed').waitFor();
  await b.shot('08-rig-list');
});

scenario('drawers stack for drill-down, the URL reopens them, and Escape closes the top one', async () => {
  await page.locator('table.table').getByRole('button', { name: beadId }).click();
  const bead = page.getByRole('dialog', { name: 'Add a greeting page' });
  await bead.waitFor();
  await bead.getByText('Timeline').waitFor();
  await bead.locator('.timeline').getByText(/closed/).first().waitFor();
  await bead.getByRole('button', { name: 'Reopen' }).waitFor();
  // Focus moved into the drawer.
  assert.equal(await page.evaluate(() => document.activeElement?.closest('[role=dialog]') !== null), true);
  await bead.locator('[data-focus-key=assignee]').click();
  await hashHas('d=bead:');
  await page.waitForFunction(() => /d=bead:[^,]+,agent:/.test(location.hash));
  const agentDrawer = page.getByRole('dialog').last();
  await agentDrawer.getByText('Agent log').waitFor();
  await agentDrawer.locator('.event-link').first().click();
  await page.waitForFunction(() => /,agent:[^,]+,event:\d+/.test(location.hash));
  await page.getByRole('dialog', { name: /^Event #/ }).waitFor();
  await b.shot('09-stacked-drawers');
  // A link reopens the same stack.
  const link = page.url();
  await page.goto('about:blank');
  await page.goto(link);
  await page.getByRole('dialog', { name: /^Event #/ }).waitFor();
  assert.equal(await page.getByRole('dialog').count(), 3);
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('event:'));
  assert.equal(await page.getByRole('dialog').count(), 2);
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('d='));
});

scenario('talk to the mayor: its terminal is read-write and echoes what is typed; the session picker lists it', async () => {
  await page.locator('.sidenav').getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('tab', { name: /Mayor/ }).click();
  await page.getByRole('button', { name: 'Start the mayor' }).click();
  await page.locator('.term-status.ts-connected').waitFor({ timeout: 30_000 });
  assert.match(await page.locator('.term-status').innerText(), /read-write/);
  await screenShows('GASTOWN DEMO MAYOR');
  await page.locator('.term-panel:not([hidden]) .xterm').click();
  await page.keyboard.type('Write the docs');
  await screenShows('Write the docs');
  await page.keyboard.press('Enter');
  await screenShows('slung', 30_000);
  // The mayor's request becomes a bead on the rig, shown live.
  await page.locator('.feed').getByText(/Write the docs/).first().waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Sessions ▾' }).click();
  const picker = page.getByRole('dialog', { name: 'Sessions' });
  await picker.locator('.session.role-mayor').waitFor();
  await picker.locator('.session.role-polecat').first().waitFor();
  await b.shot('10-mayor-terminal-and-sessions');
  await page.keyboard.press('Escape');
  assert.equal(await picker.isHidden(), true);
  await b.shot('11-overview-live');
});

scenario('mail, escalations and convoys update live; acknowledge and close from the page', async () => {
  // A message to the mayor from the terminal bar is mail, listed on the Mail page.
  await page.getByLabel('Message to the mayor').fill('Fix the footer');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('.sidenav').getByRole('link', { name: 'Mail' }).click();
  await page.locator('.mail').filter({ hasText: 'Fix the footer' }).first().waitFor();
  await b.shot('12-mail');
  // An escalation raised elsewhere appears live, counted in the navigation; acknowledge it here.
  ok(await api.post(`/api/towns/${townId}/rigs/${rigId}/escalations`, { message: 'Disk nearly full', severity: 'high' }), 201);
  await page.locator('.sidenav').getByRole('link', { name: /Escalations/ }).click();
  const row = page.locator('tr').filter({ hasText: 'Disk nearly full' });
  await row.waitFor();
  await page.locator('.sidenav .count.bad').first().waitFor();
  await b.shot('13-escalations');
  await row.getByRole('button', { name: 'Acknowledge' }).click();
  await row.getByText('acknowledged').waitFor();
  // A convoy of one open bead (creating it sends the bead to a polecat): it lands live when the
  // bead's work merges.
  const loose = ok(await api.post(`/api/towns/${townId}/rigs/${rigId}/beads`, { title: 'Write the changelog' }), 201);
  await page.locator('.sidenav').getByRole('link', { name: 'Convoys' }).click();
  await page.getByText('New convoy').click();
  await page.getByLabel('Title', { exact: true }).fill('Release 1');
  await page.locator('.bead-picker label').filter({ hasText: loose.id }).locator('input').check();
  await page.getByRole('button', { name: 'Create convoy' }).click();
  const convoy = page.locator('.convoy').filter({ hasText: 'Release 1' });
  await convoy.waitFor();
  await convoy.getByText(/landed/).waitFor({ timeout: 60_000 });
  await convoy.locator('summary').click();
  await convoy.locator('.badge-closed').last().waitFor();
  await b.shot('14-convoys');
});

scenario("a bead's drawer offers the actions its status allows: close, then reopen", async () => {
  const bead = ok(await api.post(`/api/towns/${townId}/rigs/${rigId}/beads`, { title: 'Tidy the README' }), 201);
  await page.locator('.sidenav').getByRole('link', { name: 'web' }).click();
  await page.getByRole('tab', { name: 'List' }).click();
  await page.locator('table.table').getByRole('button', { name: bead.id }).click();
  const drawer = page.getByRole('dialog', { name: 'Tidy the README' });
  await drawer.getByRole('button', { name: 'Close', exact: true }).click();
  await drawer.getByRole('button', { name: 'Reopen' }).click();
  await drawer.getByRole('button', { name: 'Close', exact: true }).waitFor();
  await drawer.locator('.timeline').getByText(/reopened|closed → open/).first().waitFor();
  await b.shot('15-bead-actions');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('d='));
});

scenario('the page reconnects by itself after the Worker restarts, resuming the stream', async () => {
  await page.locator('.sidenav').getByRole('link', { name: 'Overview' }).click();
  await page.locator('.conn[data-status="connected"]').waitFor();
  await w.stop({ keepState: true });
  await page.locator('.conn[data-status="reconnecting"], .conn[data-status="disconnected"]').first().waitFor({ timeout: 30_000 });
  await b.shot('16-reconnecting');
  w2 = await startWorker({ vars: VARS(), persistDir: w.persistDir });
  origin.retarget(w2.url);
  await page.getByRole('button', { name: 'Reconnect now' }).click().catch(() => {});
  await page.locator('.conn[data-status="connected"]').waitFor({ timeout: 60_000 });
  // A change made after the restart reaches the page through the resumed stream, without a reload.
  const api2 = client(w2.url);
  ok(await api2.post(`/api/towns/${townId}/rigs/${rigId}/beads`, { title: 'Made after the restart' }), 201);
  await page.locator('.feed').getByText(/Made after the restart/).first().waitFor({ timeout: 20_000 });
  await b.shot('17-reconnected');
  const pageErrors = b.problems.filter((p) => p.startsWith('page error'));
  assert.deepEqual(pageErrors, []);
});

test('the whole flow ran under the dashboard\'s Content-Security-Policy without a violation', async () => {
  const res = await fetch(`${origin.url}/`);
  assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self';.*frame-ancestors 'none'/);
  assert.ok(b.page.url().startsWith(origin.url), 'the scenarios ran on the dashboard');
  const violations = b.problems.filter((p) => /CSP violation|Content Security Policy/i.test(p));
  assert.deepEqual(violations, []);
});
