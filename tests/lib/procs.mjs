// The processes a test file starts, and what is below them. Every long-lived child is tracked:
// when the test process ends for any reason (an assertion that skipped an `after`, a per-test
// timeout) the ones still running get SIGTERM, so `npm test` never waits on an orphaned
// `wrangler dev`. Process trees are read from /proc for our own children only, never by
// matching names machine-wide (another `npm run dev` on the machine is not ours).
import { readFileSync, readdirSync } from 'node:fs';

const live = new Set();

/** Tracks `child` until it exits; SIGTERM at process exit if it is still running then. */
export function track(child) {
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

function stopAll() {
  for (const c of live) {
    try { c.kill('SIGTERM'); } catch { /* already gone */ }
  }
}
process.on('exit', stopAll);
// A signal ends the process without 'exit' handlers: stop the children first, then end as the
// signal would have (only when nobody else handles it, e.g. the soak's own teardown).
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    stopAll();
    if (process.listenerCount(sig) === 1) process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[sig]);
  });
}

/** `{pid, comm, state, ppid, start, rssKb}` of a live process, or null. */
export function proc(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    // Fields after the comm start at field 3: state(3) ppid(4) … starttime(22).
    return { pid, comm, state: rest[0], ppid: Number(rest[1]), start: rest[19], rssKb: m ? Number(m[1]) : 0 };
  } catch {
    return null;
  }
}

/** Direct children of `pid` (from every thread's `children` list). */
export function children(pid) {
  const out = new Set();
  let tasks = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return []; }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.add(Number(c));
    } catch { /* the thread ended */ }
  }
  return [...out];
}

/** Every live descendant of `pid` (not `pid` itself), as `proc()` records. */
export function descendants(pid) {
  const out = [];
  const todo = children(pid);
  const seen = new Set();
  while (todo.length) {
    const p = todo.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    const info = proc(p);
    if (!info) continue;
    out.push(info);
    todo.push(...children(p));
  }
  return out;
}

/** Whether the process recorded as `rec` ({pid, start}) is still that process (not a reused pid). */
export function stillAlive(rec) {
  const p = proc(rec.pid);
  return !!p && p.start === rec.start && p.state !== 'Z';
}

/** Whether `pid` still exists (a zombie counts as gone). */
export function alive(pid) {
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}
