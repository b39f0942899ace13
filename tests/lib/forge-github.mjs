// A stand-in for GitHub on loopback: the subset of the REST API v3 the refinery uses (as a
// GitHub Enterprise base `http://127.0.0.1:<port>/api/v3`), with GitHub's documented request and
// response shapes, pull request state kept in memory, real merges on local bare repositories,
// and signed webhooks (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`) sent to the
// Worker. Every request is logged with whether it carried the token, so a test can check where
// the token went.
import { createServer } from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 'forge', GIT_AUTHOR_EMAIL: 'forge@example.com', GIT_COMMITTER_NAME: 'forge', GIT_COMMITTER_EMAIL: 'forge@example.com' };
const git = (cwd, ...args) => execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv }).trim();

/** The sha of `branch` in a bare repository, or null. */
export function branchSha(bare, branch) {
  try { return git(bare, 'rev-parse', '--verify', `refs/heads/${branch}^{commit}`); } catch { return null; }
}

/** Merges `head` into `base` of a bare repository with `--no-ff` (as a forge's merge button); returns the merge commit. */
export function mergeOnBare(bare, head, base, message) {
  const dir = mkdtempSync(join(tmpdir(), 'forge-merge-'));
  try {
    git(dir, 'clone', '-q', '-b', base, bare, 'w');
    const w = join(dir, 'w');
    git(w, 'fetch', '-q', 'origin', `refs/heads/${head}:refs/remotes/origin/${head}`);
    git(w, 'merge', '--no-ff', '-q', '-m', message, `origin/${head}`);
    git(w, 'push', '-q', 'origin', base);
    return git(w, 'rev-parse', 'HEAD');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function signGithub(secret, body) {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function readBody(req) {
  let data = '';
  for await (const c of req) data += c;
  return data ? JSON.parse(data) : undefined;
}

/**
 * @param {{token: string, secret: string}} opts the token the API accepts; the webhook secret.
 * `hook(townId)` must be called (with the Worker's URL set by `worker`) before webhooks are sent.
 */
export async function startGithub({ token, secret }) {
  const repos = new Map(); // 'owner/name' → bare path
  const prs = []; // every pull request, number = index + 1 (per stand-in, like one repository)
  const statuses = new Map(); // sha → [{state, context, description, target_url}]
  const checkRuns = new Map(); // sha → [{name, status, conclusion, details_url, html_url}]
  const log = [];
  let reviewId = 1000;
  let webhookUrl = null;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const auth = req.headers.authorization ?? null;
    log.push({ method: req.method, path: url.pathname + url.search, auth, agent: req.headers['user-agent'] });
    const send = (status, body) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
    if (auth !== `Bearer ${token}`) return send(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
    let body;
    try { body = await readBody(req); } catch { return send(400, { message: 'Problems parsing JSON' }); }
    const m = url.pathname.match(/^\/api\/v3\/repos\/([^/]+)\/([^/]+)(\/.*)$/);
    if (!m) return send(404, { message: 'Not Found' });
    const full = `${m[1]}/${m[2]}`;
    const bare = repos.get(full);
    if (!bare) return send(404, { message: 'Not Found' });
    const rest = m[3];
    const pr = (n) => prs[Number(n) - 1];
    let r;
    if (req.method === 'POST' && rest === '/pulls') {
      if (!body?.title || !body?.head || !body?.base) return send(422, { message: 'Validation Failed', errors: [{ resource: 'PullRequest', code: 'missing_field' }] });
      if (!branchSha(bare, body.head) || !branchSha(bare, body.base)) return send(422, { message: 'Validation Failed', errors: [{ resource: 'PullRequest', field: 'head', code: 'invalid' }] });
      if (prs.some((p) => p.repo === full && p.head === body.head && p.state === 'open')) {
        return send(422, { message: 'Validation Failed', errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${m[1]}:${body.head}.` }] });
      }
      const p = { repo: full, number: prs.length + 1, title: body.title, body: body.body ?? null, head: body.head, base: body.base, state: 'open', merged: false, merge_commit_sha: null, labels: [], reviews: [], created: body };
      prs.push(p);
      return send(201, json(p));
    }
    if (req.method === 'GET' && rest === '/pulls') {
      const head = url.searchParams.get('head');
      return send(200, prs.filter((p) => p.repo === full && p.state === (url.searchParams.get('state') ?? 'open') && (!head || `${m[1]}:${p.head}` === head)).map(json));
    }
    if ((r = rest.match(/^\/pulls\/(\d+)$/)) && req.method === 'GET') return pr(r[1]) ? send(200, json(pr(r[1]))) : send(404, { message: 'Not Found' });
    if ((r = rest.match(/^\/pulls\/(\d+)\/reviews$/)) && req.method === 'GET') return send(200, pr(r[1])?.reviews ?? []);
    // Review comments on lines (GitHub: "List review comments on a pull request").
    if ((r = rest.match(/^\/pulls\/(\d+)\/comments$/)) && req.method === 'GET') return send(200, pr(r[1])?.comments ?? []);
    if ((r = rest.match(/^\/pulls\/(\d+)\/merge$/)) && req.method === 'PUT') {
      const p = pr(r[1]);
      if (!p || p.state !== 'open') return send(405, { message: 'Pull Request is not mergeable' });
      const sha = doMerge(p);
      return send(200, { sha, merged: true, message: 'Pull Request successfully merged' });
    }
    if ((r = rest.match(/^\/issues\/(\d+)\/labels$/)) && req.method === 'POST') {
      const p = pr(r[1]);
      if (!p) return send(404, { message: 'Not Found' });
      p.labels.push(...(body?.labels ?? []));
      return send(200, p.labels.map((name, i) => ({ id: i + 1, name })));
    }
    if ((r = rest.match(/^\/statuses\/([0-9a-f]{40})$/)) && req.method === 'POST') {
      if (!['error', 'failure', 'pending', 'success'].includes(body?.state)) return send(422, { message: 'Validation Failed' });
      const list = statuses.get(r[1]) ?? [];
      list.push({ state: body.state, context: body.context ?? 'default', description: body.description ?? null, target_url: body.target_url ?? null });
      statuses.set(r[1], list);
      return send(201, list[list.length - 1]);
    }
    if ((r = rest.match(/^\/commits\/([0-9a-f]{40})\/status$/)) && req.method === 'GET') {
      const list = statuses.get(r[1]) ?? [];
      const state = list.some((s) => s.state === 'failure' || s.state === 'error') ? 'failure' : list.length && list.every((s) => s.state === 'success') ? 'success' : 'pending';
      return send(200, { state, sha: r[1], total_count: list.length, statuses: list });
    }
    if ((r = rest.match(/^\/commits\/([0-9a-f]{40})\/check-runs$/)) && req.method === 'GET') {
      const list = checkRuns.get(r[1]) ?? [];
      return send(200, { total_count: list.length, check_runs: list });
    }
    return send(404, { message: 'Not Found' });
  });

  function json(p) {
    const bare = repos.get(p.repo);
    return {
      number: p.number, state: p.state, title: p.title, body: p.body,
      html_url: `${base()}/${p.repo}/pull/${p.number}`, url: `${base()}/api/v3/repos/${p.repo}/pulls/${p.number}`,
      head: { ref: p.head, sha: p.state === 'open' ? branchSha(bare, p.head) : p.headAtClose, repo: { full_name: p.repo } },
      base: { ref: p.base, sha: branchSha(bare, p.base), repo: { full_name: p.repo } },
      merged: p.merged, merged_at: p.merged ? new Date().toISOString() : null, merge_commit_sha: p.merge_commit_sha,
      mergeable: p.conflict ? false : true, mergeable_state: p.conflict ? 'dirty' : 'clean',
      labels: p.labels.map((name) => ({ name })),
    };
  }

  function doMerge(p) {
    const bare = repos.get(p.repo);
    p.headAtClose = branchSha(bare, p.head);
    const sha = mergeOnBare(bare, p.head, p.base, `Merge pull request #${p.number} from ${p.repo.split('/')[0]}/${p.head}`);
    Object.assign(p, { state: 'closed', merged: true, merge_commit_sha: sha });
    return sha;
  }

  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = () => `http://127.0.0.1:${server.address().port}`;

  /** Sends a webhook for the town; `sign`: false (unsigned) or a secret of one's own (forged). */
  async function webhook(event, payload, { sign = secret } = {}) {
    const raw = JSON.stringify(payload);
    const headers = { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': randomUUID(), 'user-agent': 'GitHub-Hookshot/standin' };
    if (sign) headers['x-hub-signature-256'] = signGithub(sign, raw);
    const r = await fetch(webhookUrl, { method: 'POST', headers, body: raw });
    return { status: r.status, body: await r.json().catch(() => null) };
  }
  const repository = (p) => ({ full_name: p.repo, name: p.repo.split('/')[1], owner: { login: p.repo.split('/')[0] } });

  return {
    url: base(),
    log,
    prs,
    statuses,
    addRepo(full, bare) { repos.set(full, bare); },
    hook(workerUrl, townId) { webhookUrl = `${workerUrl}/api/webhooks/github/${townId}`; },
    webhook,
    pr: (n) => json(prs[n - 1]),
    /**
     * A review (`APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`) on the head, with its webhook.
     * `comments`: `[{path, line, body}]` on lines of the diff, part of the review (as GitHub
     * delivers them: listed under the pull request's comments, not in the review's webhook).
     */
    async review(n, state, text, { send = true, login = 'reviewer', comments = [] } = {}) {
      const p = prs[n - 1];
      const review = { id: ++reviewId, user: { login }, body: text, state, commit_id: json(p).head.sha, html_url: `${base()}/${p.repo}/pull/${n}#pullrequestreview-${reviewId}`, submitted_at: new Date().toISOString() };
      p.reviews.push(review);
      p.comments ??= [];
      for (const c of comments) {
        p.comments.push({ id: 1000 + p.comments.length, pull_request_review_id: review.id, path: c.path, line: c.line, body: c.body,
          user: { login }, commit_id: review.commit_id, html_url: `${review.html_url}-c${p.comments.length}` });
      }
      if (!send) return { status: 0 };
      return webhook('pull_request_review', { action: 'submitted', review: { ...review, state: state.toLowerCase() }, pull_request: json(p), repository: repository(p) });
    },
    /** Merges on the bare repository (as the merge button does); `send: false` drops the webhook. */
    async merge(n, { send = true } = {}) {
      const p = prs[n - 1];
      const sha = doMerge(p);
      const hook = send ? await webhook('pull_request', { action: 'closed', number: n, pull_request: json(p), repository: repository(p) }) : null;
      return { sha, hook };
    },
    async close(n, { send = true } = {}) {
      const p = prs[n - 1];
      p.headAtClose = branchSha(repos.get(p.repo), p.head);
      p.state = 'closed';
      return send ? webhook('pull_request', { action: 'closed', number: n, pull_request: json(p), repository: repository(p) }) : null;
    },
    /** A completed check run on the head with `conclusion`, and its webhook. */
    async check(n, name, conclusion, { send = true, details_url = null } = {}) {
      const p = prs[n - 1];
      const sha = json(p).head.sha;
      const run = { id: Math.floor(Math.random() * 1e9), name, head_sha: sha, status: 'completed', conclusion, details_url, html_url: `${base()}/${p.repo}/runs/1`, pull_requests: [{ number: n }] };
      checkRuns.set(sha, [...(checkRuns.get(sha) ?? []), run]);
      return send ? webhook('check_run', { action: 'completed', check_run: run, repository: repository(p) }) : null;
    },
    stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
