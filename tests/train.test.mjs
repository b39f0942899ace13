// Merge trains on real parts: workerd + the container program + real git. Polecats of one rig
// that finish together are merged as one train with one gate run; a branch that breaks the gate
// is found by halving the train and alone sent back for rework; a conflict in thousands of files
// is stored bounded and sent back, nothing left running.
// The gates log each run to a file outside the repository (world-writable: they run as the
// refinery's uid), and hold while a file exists, so a train can be made to form behind them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok } from './lib/api.mjs';
import { startStack, townOnRepo, until, git, fixture } from './lib/container.mjs';

const SCRIPT = fixture('scripted-agent.sh');
let stack;
let api;
const dirs = [];

before(async () => {
  stack = await startStack();
  ({ api } = stack);
});
after(async () => {
  await stack?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A town on a fresh repo whose agents wait for `go-<bead>` in a signal folder and whose gate logs
 * `run <files in work/>`, holds while `hold` exists, and fails on a BROKEN file.
 */
async function town(name) {
  const { repo, T: t, R } = await townOnRepo(api, name);
  const dir = mkdtempSync(join(tmpdir(), 'gastown-train-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const log = join(dir, 'gates.log');
  writeFileSync(log, '');
  chmodSync(log, 0o666);
  const gate = `echo "run $(ls work 2>/dev/null | wc -l)" >> ${log}; while [ -e ${dir}/hold ]; do sleep 0.1; done; test ! -e BROKEN`;
  ok(await api.patch(`/api/towns/${t.id}/config`, {
    agent: { runtime: 'custom', command: `sh ${SCRIPT}` },
    refinery: { gates: [gate], max_batch: 8 },
    capacity: { max_polecats_per_rig: 8 },
    env_vars: { SCRIPTED_AGENT_WAIT: dir },
  }));
  const runs = () => readFileSync(log, 'utf8').split('\n').filter(Boolean);
  const bead = async (id) => ok(await api.get(`${R}/beads/${id}`));
  const queue = async () => ok(await api.get(`/api/towns/${t.id}/merge-queue`));
  const go = (id) => writeFileSync(join(dir, `go-${id}`), '');
  const sling = async (title) => ok(await api.post(`${R}/sling`, { title }), 201);
  return { t, R, repo, dir, runs, bead, queue, go, sling,
    hold: () => writeFileSync(join(dir, 'hold'), ''),
    release: () => existsSync(join(dir, 'hold')) && unlinkSync(join(dir, 'hold')) };
}

/** Lands one bead whose gate run holds, and while it holds has `titles` finish and queue up behind it. */
async function trainBehindALeader(T, titles) {
  T.hold();
  const lead = await T.sling('lead');
  T.go(lead.bead.id);
  await until(async () => T.runs().length === 1, { timeout: 30_000, what: "the leader's gate run" });
  const slung = [];
  for (const title of titles) slung.push(await T.sling(title));
  for (const s of slung) T.go(s.bead.id);
  await until(async () => (await T.queue()).filter((m) => m.status === 'pending').length === titles.length,
    { timeout: 30_000, what: 'the train to queue behind the leader' });
  T.release();
  return { lead, slung };
}

describe('merge trains', () => {
  test('polecats finishing together land as one train with one gate run', async () => {
    const T = await town('train');
    const { lead, slung } = await trainBehindALeader(T, ['one', 'two', 'three', 'four']);
    for (const s of [lead, ...slung]) {
      await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 60_000, what: `${s.bead.id} closed` });
    }
    // The leader alone, then all four at once: two gate runs for five merges.
    assert.deepEqual(T.runs(), ['run 1', 'run 5']);
    const q = await T.queue();
    assert.equal(q.length, 5);
    assert.ok(q.every((m) => m.status === 'merged'), JSON.stringify(q.map((m) => m.status)));
    // Each merge commit is where its branch entered the train: distinct, all on main.
    const commits = q.map((m) => m.merge_commit);
    assert.equal(new Set(commits).size, 5);
    for (const c of commits) git(T.repo.bare, 'merge-base', '--is-ancestor', c, 'main');
    for (const s of slung) assert.ok(T.repo.log().includes(`${s.bead.id}: scripted work`));
    T.repo.cleanup();
  });

  test('a branch that breaks the gate is found by halving the train; only it goes back for rework', async () => {
    const T = await town('bisect');
    const { lead, slung } = await trainBehindALeader(T, ['good one', 'BREAK-GATE bad', 'good two', 'good three']);
    const bad = slung[1];
    for (const s of [lead, ...slung]) {
      await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 90_000, what: `${s.bead.id} closed` });
    }
    const q = await T.queue();
    const failed = q.filter((m) => m.status === 'failed');
    assert.equal(failed.length, 1, JSON.stringify(q.map((m) => [m.source_bead_id, m.status])));
    assert.equal(failed[0].source_bead_id, bad.bead.id, 'only the bad branch failed');
    assert.match(failed[0].output, /Quality gate `.*test ! -e BROKEN` failed/);
    for (const s of slung.filter((s) => s !== bad)) {
      assert.deepEqual(q.filter((m) => m.source_bead_id === s.bead.id).map((m) => m.status), ['merged'], `${s.bead.id} merged at once`);
    }
    // The failure was established by halving: more runs than one per train, and the bad tree never reached main.
    assert.ok(T.runs().length >= 4, T.runs().join(', '));
    assert.throws(() => git(T.repo.bare, 'cat-file', '-e', 'main:BROKEN'));
    const mails = ok(await api.get(`/api/towns/${T.t.id}/events?limit=1000`)).filter((e) => e.event_type === 'mail_sent' && e.old_value === 'refinery');
    assert.equal(mails.length, 1, 'one rework mail');
    T.repo.cleanup();
  });

  test('a conflict in thousands of files is stored bounded; the work goes back and nothing stays running', async () => {
    const T = await town('mass');
    const a = await T.sling('MASS-CONFLICT first');
    const b = await T.sling('MASS-CONFLICT second');
    T.go(a.bead.id);
    T.go(b.bead.id);
    await until(async () => (await T.queue()).some((m) => m.status === 'failed'), { timeout: 60_000, what: 'the conflict' });
    const failed = (await T.queue()).find((m) => m.status === 'failed');
    assert.ok(failed.output.length < 70 * 1024, `${failed.output.length} bytes`);
    assert.match(failed.output, /^Merge conflict with main: mass\/a-generated-file/);
    assert.match(failed.output, / … and 2800 more files/);
    const loser = await T.bead(failed.source_bead_id);
    assert.notEqual(loser.status, 'failed');
    // The rework resolves the conflict and lands; no merge request is left running.
    for (const s of [a, b]) await until(async () => (await T.bead(s.bead.id)).status === 'closed', { timeout: 90_000, what: `${s.bead.id} closed` });
    assert.ok((await T.queue()).every((m) => m.status !== 'running' && m.status !== 'pending'));
    T.repo.cleanup();
  });
});
