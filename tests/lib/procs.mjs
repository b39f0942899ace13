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

process.on('exit', () => {
  for (const c of live) {
    try { c.kill('SIGTERM'); } catch { /* already gone */ }
  }
});

/** Direct children of `pid` (from every thread's `children` list). */
export function children(pid) {
  const out = new Set();
  let tasks = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return []; }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.add(Number(c));
    } catch { /* thread gone */ }
  }
  return [...out];
}

/** `{pid, comm}` of every live descendant of `pid`. */
export function descendants(pid) {
  const seen = [];
  const todo = children(pid);
  while (todo.length) {
    const p = todo.pop();
    let comm;
    try { comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim(); } catch { continue; }
    seen.push({ pid: p, comm });
    todo.push(...children(p));
  }
  return seen;
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
