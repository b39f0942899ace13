// `node bench/pages.mjs <op> [n]`: which pages of the town's SQLite file each commit of an op
// writes, named by the table or index they belong to, for our Worker and the runtime floor
// (bench/floor-worker) side by side. Every page a commit dirties is one more frame in the
// write-ahead log (two `pwrite`s, a 4 KB copy and a checksum) before the commit's `fsync`, so on
// this runtime a write's cost follows its pages more than its statements: each index a row
// touches is a page. Starts each side's Worker as bench/perf.mjs does, makes the same town
// (101 beads, an agent), sends the op 300 times so the tables have settled, then `n` more
// (default 50), and reads the frames those last commits appended to the Durable Object's
// `-wal` file; `sqlite3` (on PATH) names each page from a copy of the file.
// Ops: create-bead, update-status, send-mail, check-mail (a send then a check: two commits per
// sample), or any other of bench/perf.mjs's. A tool for finding the next fix; it asserts nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workerProcess } from './lib/api-worker.mjs';
import { floor, ours, sideOp } from './lib/sides.mjs';

const OP = process.argv[2] ?? 'create-bead';
const N = Number(process.argv[3] ?? 50);
const WAL_HEADER = 32;
const FRAME_HEADER = 24;
const WINDOW = 10;

if (spawnSync('sqlite3', ['--version']).status !== 0) {
  console.error('bench/pages.mjs needs the sqlite3 shell on PATH (Debian: sqlite3)');
  process.exit(2);
}

/** Every file under `dir` whose path matches `re`. */
function files(dir, re) {
  return readdirSync(dir, { recursive: true }).map((f) => join(dir, f)).filter((f) => re.test(f) && statSync(f).isFile());
}

/** The write-ahead log written last among the Durable Objects' databases (the town's, after its op). */
function newestWal(dir) {
  const wals = files(dir, /\/do\/.*[0-9a-f]{64}\.sqlite-wal$/).map((f) => [f, statSync(f).mtimeMs]);
  if (!wals.length) throw new Error(`no Durable Object database under ${dir}`);
  return wals.sort((a, b) => b[1] - a[1])[0][0];
}

/**
 * The log's current frames as {page, commit} (commit: the frame ends a transaction). After a
 * checkpoint SQLite writes the log again from its start under new salts, so the frames of the
 * current pass are those from the start whose salts match the header's.
 */
function frames(buf) {
  const pageSize = buf.readUInt32BE(8);
  const salts = [buf.readUInt32BE(16), buf.readUInt32BE(20)];
  const out = [];
  for (let off = WAL_HEADER; off + FRAME_HEADER + pageSize <= buf.length; off += FRAME_HEADER + pageSize) {
    if (buf.readUInt32BE(off + 8) !== salts[0] || buf.readUInt32BE(off + 12) !== salts[1]) break;
    out.push({ page: buf.readUInt32BE(off), commit: buf.readUInt32BE(off + 4) !== 0 });
  }
  return { salts: salts.join(), list: out };
}

/** Page number → the table or index it belongs to, from a copy of the database and its log. */
function pageNames(wal, tmp) {
  const copy = join(tmp, 'copy.sqlite');
  copyFileSync(wal.replace(/-wal$/, ''), copy);
  copyFileSync(wal, `${copy}-wal`);
  const out = execFileSync('sqlite3', [copy, 'SELECT pageno, name FROM dbstat'], { encoding: 'utf8' });
  rmSync(copy, { force: true });
  rmSync(`${copy}-wal`, { force: true });
  return new Map(out.trim().split('\n').map((l) => l.split('|')).map(([n, name]) => [Number(n), name]));
}

async function measure(label, side, tmp) {
  const w = await side.start(tmp);
  try {
    const { url } = await workerProcess(w);
    const op = await sideOp(label, side, url, OP);
    for (let i = 0; i < 300; i++) await op();
    const wal = newestWal(join(tmp, label));
    // In windows of a few ops: SQLite checkpoints the log every 1000 pages and then writes it
    // again from its start, and a window that a checkpoint cut into is sent again.
    const commits = [];
    for (let done = 0, retries = 0; done < N;) {
      const n = Math.min(WINDOW, N - done);
      const before = frames(readFileSync(wal));
      for (let i = 0; i < n; i++) await op();
      const after = frames(readFileSync(wal));
      if (after.salts !== before.salts) {
        if (++retries > 10) throw new Error('the log was checkpointed in every window');
        continue;
      }
      const names = pageNames(wal, tmp);
      let pages = [];
      for (const f of after.list.slice(before.list.length)) {
        pages.push(names.get(f.page) ?? `page ${f.page}`);
        if (f.commit) {
          commits.push(pages);
          pages = [];
        }
      }
      done += n;
    }
    return commits;
  } finally {
    await w.stop();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'gastown-pages-'));
try {
  for (const [label, side] of [['ours', ours('ours')], ['floor', floor]]) {
    const commits = await measure(label, side, tmp);
    const sizes = commits.map((c) => c.length).sort((a, b) => a - b);
    console.log(`${label}: ${OP} ×${N}: ${commits.length} commits, pages per commit median ${sizes[Math.floor(sizes.length / 2)] ?? 0}, mean ${(sizes.reduce((a, b) => a + b, 0) / commits.length).toFixed(2)}`);
    // Pages per commit by table or index (a split writes more than one page of it).
    const by = new Map();
    for (const c of commits) for (const name of c) by.set(name, (by.get(name) ?? 0) + 1);
    for (const [name, n] of [...by].sort((a, b) => b[1] - a[1])) console.log(`  ${(n / commits.length).toFixed(2).padStart(6)}  ${name}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
