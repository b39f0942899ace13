// bench:api's runtime floor: the least a Worker on this runtime can do for each operation the
// benchmark times, so the tables can say how close to the floor each side is, and whether a
// ratio is reachable at all. Plain JS, no framework, no validation, no authentication, no
// alarm: one JS RPC call to a SQLite Durable Object per request (a town per town, a registry
// per user, as both real Workers have), running only the statements that make the op's change
// and read its answer (rows as JSON built by SQLite). Not a Gastown: never deployed, never
// compared on features, only on the cost of a request.
import { DurableObject } from 'cloudflare:workers';

const now = () => new Date().toISOString();
const id = () => crypto.randomUUID();
const BEAD = "json_object('id', bead_id, 'type', type, 'status', status, 'title', title, 'rig_id', rig_id, 'created_at', created_at, 'updated_at', updated_at)";
const EVENT = "json_object('id', id, 'bead_id', bead_id, 'type', type, 'value', value, 'created_at', created_at)";

export class User extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS towns (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)');
  }
  addTown(name) {
    return this.ctx.storage.sql.exec("INSERT INTO towns VALUES (?, ?, ?) RETURNING json_object('id', id, 'name', name, 'created_at', created_at) AS j", id(), name, now()).one().j;
  }
}

export class Town extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec('CREATE TABLE IF NOT EXISTS rigs (id TEXT PRIMARY KEY, name TEXT NOT NULL)');
    sql.exec('CREATE TABLE IF NOT EXISTS beads (bead_id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL, rig_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)');
    sql.exec('CREATE INDEX IF NOT EXISTS beads_rig ON beads (rig_id, created_at)');
    sql.exec('CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, bead_id TEXT NOT NULL, type TEXT NOT NULL, value TEXT, created_at TEXT NOT NULL)');
    sql.exec('CREATE INDEX IF NOT EXISTS events_bead ON events (bead_id, id)');
    sql.exec('CREATE TABLE IF NOT EXISTS queue (bead_id TEXT PRIMARY KEY, rig_id TEXT NOT NULL)');
    sql.exec('CREATE TABLE IF NOT EXISTS mail (id TEXT PRIMARY KEY, to_agent TEXT NOT NULL, subject TEXT NOT NULL, read_at TEXT)');
    sql.exec('CREATE INDEX IF NOT EXISTS mail_unread ON mail (to_agent, read_at)');
  }
  one(query, ...args) {
    const r = this.ctx.storage.sql.exec(query, ...args).raw().next();
    return r.done ? null : r.value[0];
  }
  addRig(name) {
    return this.one("INSERT INTO rigs VALUES (?, ?) RETURNING json_object('id', id, 'name', name)", id(), name);
  }
  bead(rig, title, type = 'issue') {
    const t = now();
    const b = this.one(`INSERT INTO beads VALUES (?, ?, 'open', ?, ?, ?, ?) RETURNING ${BEAD}`, id(), type, title, rig, t, t);
    this.ctx.storage.sql.exec("INSERT INTO events (bead_id, type, value, created_at) VALUES (json_extract(?, '$.id'), 'created', NULL, ?)", b, t);
    return b;
  }
  createBead(rig, title) { return this.bead(rig, title); }
  sling(rig, title) {
    const b = this.bead(rig, title);
    this.ctx.storage.sql.exec("INSERT INTO queue VALUES (json_extract(?, '$.id'), ?)", b, rig);
    return b;
  }
  getBead(bead) { return this.one(`SELECT ${BEAD} FROM beads WHERE bead_id = ?`, bead); }
  listBeads(rig, limit) {
    return this.one(`SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT ${BEAD} AS j FROM beads WHERE rig_id = ? ORDER BY created_at DESC LIMIT ?)`, rig, limit);
  }
  setStatus(bead, status) {
    const t = now();
    const b = this.one(`UPDATE beads SET status = ?, updated_at = ? WHERE bead_id = ? RETURNING ${BEAD}`, status, t, bead);
    this.ctx.storage.sql.exec("INSERT INTO events (bead_id, type, value, created_at) VALUES (?, 'status', ?, ?)", bead, status, t);
    return b;
  }
  beadEvents(bead, limit) {
    return this.one(`SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT ${EVENT} AS j FROM events WHERE bead_id = ? ORDER BY id LIMIT ?)`, bead, limit);
  }
  events(limit) {
    return this.one(`SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT ${EVENT} AS j FROM events ORDER BY id DESC LIMIT ?)`, limit);
  }
  // The events stamped at or after `since`: the first found by bisection over the ids (stamps
  // rise with them here), no index on the time to keep up on every write.
  eventsSince(since, limit) {
    const first = `(WITH RECURSIVE s(lo, hi) AS (SELECT 1, (SELECT COALESCE(MAX(id), 0) + 1 FROM events)
      UNION ALL SELECT CASE WHEN (SELECT created_at FROM events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) >= ?1 THEN lo ELSE (lo + hi) / 2 + 1 END,
        CASE WHEN (SELECT created_at FROM events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) >= ?1 THEN (lo + hi) / 2 ELSE hi END
      FROM s WHERE lo < hi) SELECT MAX(lo) FROM s)`;
    return this.one(`SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT ${EVENT} AS j FROM events WHERE id >= ${first} ORDER BY id LIMIT ?2)`, since, limit);
  }
  registerAgent(rig) { return this.bead(rig, 'agent', 'agent'); }
  sendMail(to, subject) {
    return this.one("INSERT INTO mail VALUES (?, ?, ?, NULL) RETURNING json_object('id', id)", id(), to, subject);
  }
  checkMail(agent) {
    const page = this.one(`SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT json_object('id', id, 'subject', subject) AS j FROM mail WHERE to_agent = ? AND read_at IS NULL)`, agent);
    this.ctx.storage.sql.exec('UPDATE mail SET read_at = ? WHERE to_agent = ? AND read_at IS NULL', now(), agent);
    return page;
  }
}

const reply = (json, status = 200) => new Response(`{"success":true,"data":${json}}`, { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const p = url.pathname.split('/').filter(Boolean);
    const body = req.method === 'GET' ? {} : await req.json().catch(() => ({}));
    if (p[0] === 'health') return reply('{"status":"ok"}');
    if (p[0] === 'users') return reply(await env.USER.getByName(p[1]).addTown(body.name), 201);
    if (p[0] !== 'towns' || !p[1]) return new Response('not found', { status: 404 });
    const town = env.TOWN.getByName(p[1]);
    // Every other segment after the town is an id: /rigs/R/beads/B/status is "rigs/:/beads/:/status".
    const route = `${req.method} ${p.slice(2).map((s, i) => (i % 2 ? ':' : s)).join('/')}`;
    switch (route) {
      case 'POST rigs': return reply(await town.addRig(body.name), 201);
      case 'POST rigs/:/beads': return reply(await town.createBead(p[3], body.title), 201);
      case 'GET rigs/:/beads': return reply(await town.listBeads(p[3], Number(url.searchParams.get('limit') ?? 100)));
      case 'GET rigs/:/beads/:': return reply(await town.getBead(p[5]));
      case 'PATCH rigs/:/beads/:/status': return reply(await town.setStatus(p[5], body.status));
      case 'POST rigs/:/sling': return reply(await town.sling(p[3], body.title), 201);
      case 'POST rigs/:/agents': return reply(await town.registerAgent(p[3]), 201);
      case 'POST rigs/:/mail': return reply(await town.sendMail(body.to, body.subject), 201);
      // …/mail/check
      case 'POST rigs/:/agents/:/mail/:': return reply(await town.checkMail(p[5]));
      case 'GET rigs/:/events': return reply(await town.beadEvents(url.searchParams.get('bead_id'), Number(url.searchParams.get('limit') ?? 100)));
      case 'GET events': {
        const limit = Number(url.searchParams.get('limit') ?? 100);
        const since = url.searchParams.get('since');
        return reply(await (since ? town.eventsSince(since, limit) : town.events(limit)));
      }
      default: return new Response(`no route ${route}`, { status: 404 });
    }
  },
};
