// A stand-in for GitLab on loopback: the subset of the REST API v4 the refinery uses (as a
// self-hosted instance `http://127.0.0.1:<port>`), with GitLab's documented shapes (projects
// addressed by their URL-encoded path, merge requests by `iid`), real merges on local bare
// repositories, and webhooks with `X-Gitlab-Event` and `X-Gitlab-Token` sent to the Worker.
import { createServer } from 'node:http';
import { branchSha, mergeOnBare } from './forge-github.mjs';

async function readBody(req) {
  let data = '';
  for await (const c of req) data += c;
  return data ? JSON.parse(data) : undefined;
}

export async function startGitlab({ token, secret }) {
  const projects = new Map(); // 'group/project' → bare path
  const mrs = [];
  const statuses = new Map();
  const log = [];
  let noteId = 5000;
  let webhookUrl = null;
  const server = createServer(async (req, res) => {
    // The raw path: the project id is the URL-encoded path (`group%2Fproject`).
    const [pathname, search = ''] = req.url.split('?');
    log.push({ method: req.method, path: req.url, token: req.headers['private-token'] ?? null });
    const send = (status, body) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
    if (req.headers['private-token'] !== token) return send(401, { message: '401 Unauthorized' });
    let body;
    try { body = await readBody(req); } catch { return send(400, { error: 'invalid JSON' }); }
    const m = pathname.match(/^\/api\/v4\/projects\/([^/]+)(\/.*)$/);
    if (!m) return send(404, { message: '404 Not Found' });
    const path = decodeURIComponent(m[1]);
    const bare = projects.get(path);
    if (!bare) return send(404, { message: '404 Project Not Found' });
    const rest = m[2];
    const q = new URLSearchParams(search);
    const mr = (iid) => mrs.find((x) => x.project === path && x.iid === Number(iid));
    let r;
    if (req.method === 'POST' && rest === '/merge_requests') {
      if (!body?.source_branch || !body?.target_branch || !body?.title) return send(400, { message: 'source_branch, target_branch, title are missing' });
      if (!branchSha(bare, body.source_branch)) return send(422, { message: ['Source branch does not exist'] });
      if (mrs.some((x) => x.project === path && x.source_branch === body.source_branch && x.state === 'opened')) {
        return send(409, { message: ['Another open merge request already exists for this source branch'] });
      }
      const x = { project: path, iid: mrs.filter((y) => y.project === path).length + 1, title: body.title, description: body.description ?? null, source_branch: body.source_branch, target_branch: body.target_branch, labels: String(body.labels ?? '').split(',').filter(Boolean), state: 'opened', merge_commit_sha: null, notes: [], approved: false, created: body };
      mrs.push(x);
      return send(201, json(x));
    }
    if (req.method === 'GET' && rest === '/merge_requests') {
      return send(200, mrs.filter((x) => x.project === path && x.state === (q.get('state') ?? 'opened') && (!q.get('source_branch') || x.source_branch === q.get('source_branch'))).map(json));
    }
    if ((r = rest.match(/^\/merge_requests\/(\d+)$/)) && req.method === 'GET') return mr(r[1]) ? send(200, json(mr(r[1]))) : send(404, { message: '404 Not found' });
    if ((r = rest.match(/^\/merge_requests\/(\d+)\/notes$/)) && req.method === 'GET') return send(200, mr(r[1])?.notes ?? []);
    if ((r = rest.match(/^\/merge_requests\/(\d+)\/approvals$/)) && req.method === 'GET') return send(200, { approved: !!mr(r[1])?.approved, approvals_required: 0, approved_by: [] });
    if ((r = rest.match(/^\/merge_requests\/(\d+)\/pipelines$/)) && req.method === 'GET') return send(200, []);
    if ((r = rest.match(/^\/merge_requests\/(\d+)\/merge$/)) && req.method === 'PUT') {
      const x = mr(r[1]);
      if (!x || x.state !== 'opened') return send(405, { message: '405 Method Not Allowed' });
      doMerge(x);
      return send(200, json(x));
    }
    if ((r = rest.match(/^\/statuses\/([0-9a-f]{40})$/)) && req.method === 'POST') {
      if (!['pending', 'running', 'success', 'failed', 'canceled'].includes(body?.state)) return send(400, { message: 'state is invalid' });
      const s = { id: statuses.size + 1, sha: r[1], status: body.state, name: body.name ?? 'default', description: body.description ?? null };
      statuses.set(r[1], [...(statuses.get(r[1]) ?? []), s]);
      return send(201, s);
    }
    return send(404, { message: '404 Not Found' });
  });

  function json(x) {
    const bare = projects.get(x.project);
    return {
      id: 100 + x.iid, iid: x.iid, project_id: 1, title: x.title, description: x.description, state: x.state,
      source_branch: x.source_branch, target_branch: x.target_branch, labels: x.labels,
      sha: x.state === 'opened' ? branchSha(bare, x.source_branch) : x.headAtClose,
      merge_commit_sha: x.merge_commit_sha, squash_commit_sha: null, has_conflicts: false, detailed_merge_status: 'mergeable',
      web_url: `${base()}/${x.project}/-/merge_requests/${x.iid}`, head_pipeline: null,
    };
  }

  function doMerge(x) {
    const bare = projects.get(x.project);
    x.headAtClose = branchSha(bare, x.source_branch);
    x.merge_commit_sha = mergeOnBare(bare, x.source_branch, x.target_branch, `Merge branch '${x.source_branch}' into '${x.target_branch}'`);
    x.state = 'merged';
    return x.merge_commit_sha;
  }

  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = () => `http://127.0.0.1:${server.address().port}`;

  async function webhook(event, payload, { token: hookToken = secret } = {}) {
    const headers = { 'content-type': 'application/json', 'x-gitlab-event': event, 'user-agent': 'GitLab/standin' };
    if (hookToken) headers['x-gitlab-token'] = hookToken;
    const r = await fetch(webhookUrl, { method: 'POST', headers, body: JSON.stringify(payload) });
    return { status: r.status, body: await r.json().catch(() => null) };
  }
  const project = (x) => ({ id: 1, path_with_namespace: x.project, web_url: `${base()}/${x.project}` });
  const attrs = (x, action) => ({ ...json(x), action, url: json(x).web_url, last_commit: { id: json(x).sha } });

  return {
    url: base(),
    log,
    mrs,
    statuses,
    addProject(path, bare) { projects.set(path, bare); },
    hook(workerUrl, townId) { webhookUrl = `${workerUrl}/api/webhooks/gitlab/${townId}`; },
    webhook,
    mr: (iid) => json(mrs[iid - 1]),
    async note(iid, text, { send = true } = {}) {
      const x = mrs[iid - 1];
      const note = { id: ++noteId, body: text, author: { username: 'reviewer' }, system: false, noteable_type: 'MergeRequest', created_at: new Date().toISOString() };
      x.notes.push(note);
      if (!send) return null;
      return webhook('Note Hook', { object_kind: 'note', user: { username: 'reviewer' }, project: project(x),
        object_attributes: { id: note.id, note: text, noteable_type: 'MergeRequest', system: false, url: `${json(x).web_url}#note_${note.id}` }, merge_request: json(x) });
    },
    async merge(iid, { send = true, token: hookToken } = {}) {
      const x = mrs[iid - 1];
      const sha = doMerge(x);
      const hook = send ? await webhook('Merge Request Hook', { object_kind: 'merge_request', project: project(x), object_attributes: attrs(x, 'merge') }, hookToken === undefined ? {} : { token: hookToken }) : null;
      return { sha, hook };
    },
    stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
