// Merge strategy `pr` on real parts: workerd + the container program + real git, with GitHub and
// GitLab played by loopback stand-ins (tests/lib/forge-*.mjs) that speak their REST APIs, merge
// on the local bare repositories and send signed webhooks. A polecat's gated work is opened as a
// pull request; review comments send it back for rework and its next `gt done` updates the same
// pull request; the forge's merge closes the bead with the merge commit; forged webhooks change
// nothing; a missed webhook is caught by the fallback poll; a PR closed unmerged fails and
// escalates; a failing CI check is reworked by name.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok } from './lib/api.mjs';
import { startStack, townOnRepo, until, git, fixture } from './lib/container.mjs';
import { startGithub } from './lib/forge-github.mjs';
import { startGitlab } from './lib/forge-gitlab.mjs';

const SCRIPT = fixture('scripted-agent.sh');
const GH_TOKEN = 'ghp_prTestToken0123456789abcdefABCD';
const GL_TOKEN = 'glpat-prTestToken0123456789abcd';
const SECRET = 'webhook-secret-0123456789abcdef';
let stack;
let api;
let gh;
let gl;
const repos = [];

before(async () => {
  stack = await startStack();
  ({ api } = stack);
  gh = await startGithub({ token: GH_TOKEN, secret: SECRET });
  gl = await startGitlab({ token: GL_TOKEN, secret: SECRET });
});
after(async () => {
  await stack?.stop();
  await gh?.stop();
  await gl?.stop();
  for (const r of repos) r.cleanup();
});

/** A town whose rig delivers through pull requests on the stand-in forge `kind`. */
async function town(name, kind, { pollSecs = 60 } = {}) {
  const { repo, T: t, rig, R } = await townOnRepo(api, name);
  repos.push(repo);
  const path = kind === 'github' ? `acme/${name}` : `group/sub/${name}`;
  const git_auth = kind === 'github'
    ? { github_token: GH_TOKEN, github_url: gh.url, webhook_secret: SECRET }
    : { gitlab_token: GL_TOKEN, gitlab_instance_url: gl.url, webhook_secret: SECRET };
  ok(await api.patch(`/api/towns/${t.id}/config`, {
    agent: { runtime: 'custom', command: `sh ${SCRIPT}` },
    refinery: { gates: ['test ! -e BROKEN'], merge_strategy: 'pr', pr_poll_secs: pollSecs },
    git_auth,
  }));
  const patched = ok(await api.patch(R, { forge: kind, forge_repo: path }));
  assert.equal(patched.forge, kind);
  if (kind === 'github') { gh.addRepo(path, repo.bare); gh.hook(stack.w.url, t.id); } else { gl.addProject(path, repo.bare); gl.hook(stack.w.url, t.id); }
  const bead = async (id) => ok(await api.get(`${R}/beads/${id}`));
  const queue = async () => ok(await api.get(`/api/towns/${t.id}/merge-queue`));
  const mrsOf = async (beadId) => (await queue()).filter((m) => m.source_bead_id === beadId);
  const mail = async () => ok(await api.get(`/api/towns/${t.id}/mail`));
  const sling = async (title) => ok(await api.post(`${R}/sling`, { title }), 201);
  const inReview = async (beadId) => until(async () => (await mrsOf(beadId)).find((m) => m.status === 'in_review'), { timeout: 60_000, what: `${beadId}'s pull request open` });
  return { t, rig, R, repo, path, bead, queue, mrsOf, mail, sling, inReview };
}

describe('merge strategy pr on GitHub', () => {
  test('opened, changes requested, reworked into the same PR, merged by the forge: the bead closes with the merge commit', async () => {
    const T = await town('ghmain', 'github');
    const s = await T.sling('Add the greeting');
    const mr = await T.inReview(s.bead.id);
    const branch = `gt/${s.agent.name.toLowerCase()}/${s.bead.id}`;
    assert.equal(mr.pr.forge, 'github');
    assert.equal(mr.pr.state, 'open');
    const prs = gh.prs.filter((p) => p.repo === T.path);
    assert.equal(prs.length, 1, 'one pull request');
    const n = mr.pr.number;
    const p = gh.prs[n - 1];
    assert.equal(mr.pr.url, gh.pr(n).html_url);
    assert.equal(p.created.head, mr.branch);
    assert.ok(mr.branch.endsWith(`/${s.bead.id}`), `${mr.branch} vs ${branch}`);
    assert.equal(p.created.base, 'main');
    assert.equal(p.created.title, 'Add the greeting');
    assert.match(p.created.body, new RegExp(s.bead.id));
    assert.match(p.created.body, /scripted agent finished/);
    assert.ok(!p.created.body.includes(GH_TOKEN) && !p.created.body.includes(SECRET));
    assert.deepEqual(p.labels, ['gastown']);
    const head = gh.pr(n).head.sha;
    assert.equal(mr.pr.head_sha, head);
    assert.deepEqual(gh.statuses.get(head)?.map((x) => [x.context, x.state]), [['gastown/refinery', 'success']]);
    // Nothing reached main yet: the forge merges.
    assert.ok(!T.repo.log().includes('scripted work'));
    assert.equal((await T.bead(s.bead.id)).status, 'in_review');
    // The token went only to the stand-in, as a bearer token, on every request; no answer of
    // the town's API carries it or the webhook secret.
    assert.ok(gh.log.length > 0 && gh.log.every((r) => r.auth === `Bearer ${GH_TOKEN}`));
    const cfg = ok(await api.get(`/api/towns/${T.t.id}/config`));
    assert.equal(cfg.git_auth.webhook_secret, `****${SECRET.slice(-4)}`);
    for (const text of [JSON.stringify(cfg), JSON.stringify(await T.queue()), JSON.stringify(ok(await api.get(`/api/towns/${T.t.id}/events?limit=1000`)))]) {
      assert.ok(!text.includes(GH_TOKEN) && !text.includes(SECRET));
    }

    // Forged and unsigned webhooks: 401, nothing changes.
    const closing = { action: 'closed', number: n, pull_request: { ...gh.pr(n), merged: true, merge_commit_sha: 'f'.repeat(40) }, repository: { full_name: T.path } };
    assert.equal((await gh.webhook('pull_request', closing, { sign: false })).status, 401);
    assert.equal((await gh.webhook('pull_request', closing, { sign: 'not-the-secret-0123456789' })).status, 401);
    assert.equal((await T.mrsOf(s.bead.id))[0].status, 'in_review');
    assert.equal((await T.bead(s.bead.id)).status, 'in_review');

    // Changes requested → rework mail with the review and its comments on lines (fenced) → the
    // polecat's second gt done.
    const asked = await gh.review(n, 'CHANGES_REQUESTED', 'Please also greet in French.', {
      comments: [{ path: 'hello.txt', line: 1, body: 'Bonjour, not Hello.' }],
    });
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const rework = await until(async () => (await T.mail()).find((m) => m.subject.startsWith('Rework needed') && m.body.includes('Please also greet in French.')), { what: 'the rework mail' });
    assert.match(rework.body, /<untrusted kind="review"/);
    assert.ok(rework.body.includes('On hello.txt:1:\nBonjour, not Hello.'), rework.body);
    assert.match(rework.body, new RegExp(`pull request #${n}`));
    await until(async () => (await T.mrsOf(s.bead.id)).filter((m) => m.status === 'in_review').length === 1
      && (await T.mrsOf(s.bead.id)).length === 2, { timeout: 60_000, what: 'the rework in review again' });
    const again = (await T.mrsOf(s.bead.id)).find((m) => m.status === 'in_review');
    assert.equal(again.pr.number, n, 'the same pull request');
    assert.equal(gh.prs.filter((x) => x.repo === T.path).length, 1, 'no second pull request');
    const head2 = gh.pr(n).head.sha;
    assert.notEqual(head2, head, 'the push updated the pull request');
    assert.equal(again.pr.head_sha, head2);
    assert.equal(gh.statuses.get(head2)?.at(-1)?.state, 'success');

    // Approved and merged on the forge (its webhook): the bead closes with the merge commit.
    await gh.review(n, 'APPROVED', 'LGTM');
    const { sha, hook } = await gh.merge(n);
    assert.equal(hook.status, 200, JSON.stringify(hook.body));
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { what: 'the bead closed' });
    const done = (await T.mrsOf(s.bead.id)).find((m) => m.status === 'merged');
    assert.equal(done.merge_commit, sha);
    assert.equal(done.pr.state, 'merged');
    assert.equal(git(T.repo.bare, 'rev-parse', 'main'), sha);
    assert.match(git(T.repo.bare, 'show', `main:work/${s.bead.id}.txt`), /addressed the review/);
  });

  test('a missed webhook is caught by the fallback poll', async () => {
    const T = await town('ghpoll', 'github', { pollSecs: 2 });
    const s = await T.sling('Poll me');
    const mr = await T.inReview(s.bead.id);
    const { sha } = await gh.merge(mr.pr.number, { send: false });
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 30_000, what: 'the poll to see the merge' });
    assert.equal((await T.mrsOf(s.bead.id))[0].merge_commit, sha);
  });

  test('auto-merge: an approved pull request without failing checks is merged by the refinery', async () => {
    const T = await town('ghauto', 'github', { pollSecs: 2 });
    ok(await api.patch(`/api/towns/${T.t.id}/config`, { refinery: { auto_merge: true } }));
    const s = await T.sling('Merge me yourself');
    const mr = await T.inReview(s.bead.id);
    await gh.review(mr.pr.number, 'APPROVED', 'ship it');
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 30_000, what: 'the auto-merge' });
    assert.ok(gh.log.some((r) => r.method === 'PUT' && r.path === `/api/v3/repos/${T.path}/pulls/${mr.pr.number}/merge`));
    const sha = gh.prs[mr.pr.number - 1].merge_commit_sha;
    assert.equal((await T.mrsOf(s.bead.id))[0].merge_commit, sha);
    assert.equal(git(T.repo.bare, 'rev-parse', 'main'), sha);
  });

  test('closed without merging: the bead fails and is escalated; a failing check is sent back by name', async () => {
    const T = await town('ghclose', 'github');
    const a = await T.sling('Will be closed');
    const mrA = await T.inReview(a.bead.id);
    assert.equal((await gh.close(mrA.pr.number)).status, 200);
    await until(async () => (await T.bead(a.bead.id)).status === 'failed', { what: 'the bead failed' });
    const esc = ok(await api.get(`/api/towns/${T.t.id}/escalations`));
    assert.ok(esc.some((e) => e.message.includes(`#${mrA.pr.number}`) && e.message.includes('closed without being merged')), JSON.stringify(esc));

    const b = await T.sling('Will fail CI');
    const mrB = await T.inReview(b.bead.id);
    const r = await gh.check(mrB.pr.number, 'ci/build', 'failure', { details_url: 'https://ci.example.com/build/42' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const mail = await until(async () => (await T.mail()).find((m) => m.subject.startsWith('Rework needed') && m.body.includes('ci/build')), { what: 'the rework mail naming the check' });
    assert.match(mail.body, /https:\/\/ci\.example\.com\/build\/42/);
    const failed = (await T.mrsOf(b.bead.id)).find((m) => m.status === 'failed');
    assert.match(failed.output, /ci\/build/);
  });
});

describe('merge strategy pr on GitLab', () => {
  test('a merge request is opened, its webhook token checked, and its merge closes the bead', async () => {
    const T = await town('glmain', 'gitlab');
    const s = await T.sling('Add the GitLab thing');
    const mr = await T.inReview(s.bead.id);
    assert.equal(mr.pr.forge, 'gitlab');
    const x = gl.mrs.find((m) => m.project === T.path);
    assert.equal(x.created.source_branch, mr.branch);
    assert.equal(x.created.target_branch, 'main');
    assert.equal(x.created.title, 'Add the GitLab thing');
    assert.match(x.created.description, new RegExp(s.bead.id));
    assert.deepEqual(x.labels, ['gastown']);
    assert.equal(gl.statuses.get(mr.pr.head_sha)?.[0]?.status, 'success');
    assert.ok(gl.log.every((r) => r.token === GL_TOKEN));
    // A wrong token: 401, nothing changes (the stand-in merges, but the town is not told).
    const forged = await gl.webhook('Merge Request Hook', { object_kind: 'merge_request', project: { path_with_namespace: T.path }, object_attributes: { iid: mr.pr.number, action: 'merge', merge_commit_sha: 'a'.repeat(40) } }, { token: 'wrong-token-0123456789abcdef' });
    assert.equal(forged.status, 401);
    assert.equal((await T.bead(s.bead.id)).status, 'in_review');
    const { sha, hook } = await gl.merge(mr.pr.number);
    assert.equal(hook.status, 200, JSON.stringify(hook.body));
    await until(async () => (await T.bead(s.bead.id)).status === 'closed', { what: 'the bead closed' });
    assert.equal((await T.mrsOf(s.bead.id))[0].merge_commit, sha);
    assert.equal(git(T.repo.bare, 'rev-parse', 'main'), sha);
  });
});
