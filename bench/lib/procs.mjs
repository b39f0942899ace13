// Processes for the reliability suite (`bench/soak.mjs`): the Worker under `wrangler dev` and the
// container program, each restartable on the same port and storage (the tests/lib helpers pick a
// fresh port and folder on every start), plus /proc readers for our own process trees.
//
// Rules kept here: wrangler is only ever stopped with SIGTERM (SIGKILL orphans workerd); the
// container program and agents are SIGKILLed only as injected faults (`kill9`), or as the very
// last resort of a teardown that SIGTERM could not finish (reported, never silent). Only pids we
// started or found below our own children are ever signalled.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, freePort } from '../../tests/lib/worker.mjs';
import { CONTAINER_BIN, CONTAINER_SECRET } from '../../tests/lib/container.mjs';
import { client } from '../../tests/lib/api.mjs';
// SIGTERMs whatever is still running when this process exits, whatever the reason.
import { track, proc, descendants, stillAlive } from '../../tests/lib/procs.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- /proc (shared with the tests) ------------------------------------------------------
export { proc, children, descendants, stillAlive } from '../../tests/lib/procs.mjs';

async function waitExit(child, exited, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
}

async function waitHealthy(url, child, ms, what, log) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited early:\n${log().slice(-4000)}`);
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
      await r.arrayBuffer();
      // Any HTTP answer means workerd serves (a town without container answers 503); the
      // container program must say 200.
      if (what !== 'container' || r.ok) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${what} did not become ready within ${ms / 1000} s:\n${log().slice(-4000)}`);
    await sleep(200);
  }
}

// ---- the Worker (wrangler dev → workerd) ----------------------------------------------------

export class WorkerProc {
  /** `dir`: a folder of ours for its state and log; `vars`: extra variables. */
  constructor({ dir, vars = {} }) {
    this.dir = dir;
    this.vars = vars;
    this.persist = join(dir, 'state');
    this.port = null;
    this.child = null;
    this.seen = new Map(); // workerd pids ever seen below our wrangler: pid → record
    this.orphans = [];
    this.stopProblems = [];
    mkdirSync(dir, { recursive: true, mode: 0o700 }); // its env file holds the JWT secret: not for agent uids
    this.logFile = createWriteStream(join(dir, 'wrangler.log'), { flags: 'a' });
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  /** Starts wrangler (on the same port and storage as before, if it ran before). */
  async start({ timeoutMs = 120_000 } = {}) {
    this.port ??= await freePort();
    this.logFile.write(`\n---- wrangler starting at ${new Date().toISOString()} ----\n`);
    // The shared spawner (tests/lib/worker.mjs); this class adds restarts on the same port and
    // storage, the orphan check and a SIGTERM-only stop.
    this.handle = await startWorker({
      dir: this.dir,
      port: this.port,
      persistDir: this.persist,
      vars: this.vars,
      readyTimeoutMs: timeoutMs,
      logLimit: 20_000,
      onOutput: (d) => this.logFile.write(d),
    });
    this.child = this.handle.child;
    this.exited = this.handle.exited;
    this.logFile.write(`---- wrangler started (pid ${this.child.pid}) ----\n`);
    this.workerd();
  }

  get tail() { return this.handle?.log() ?? ''; }

  get running() { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }

  /** The workerd processes below our wrangler (remembered for the orphan check). */
  workerd() {
    if (!this.running) return [];
    const list = descendants(this.child.pid).filter((p) => p.comm === 'workerd');
    for (const p of list) this.seen.set(p.pid, p);
    return list;
  }

  /** RSS of our workerd process(es), kB (null when not running). */
  rssKb() {
    if (!this.running) return null;
    return this.workerd().reduce((s, p) => s + p.rssKb, 0);
  }

  /**
   * SIGTERM only. Waits up to `timeoutMs`, then SIGTERMs once more; a wrangler that is still
   * there is reported (never SIGKILLed). Afterwards any workerd of ours that outlived it is an
   * orphan: reported, and SIGTERMed (it is our own process).
   */
  async stop({ timeoutMs = 60_000 } = {}) {
    if (!this.child) return;
    const child = this.child;
    if (this.running) {
      this.workerd();
      child.kill('SIGTERM');
      if (!(await waitExit(child, this.exited, timeoutMs))) {
        this.stopProblems.push(`wrangler ${child.pid} still running ${timeoutMs / 1000} s after SIGTERM; sent SIGTERM again`);
        child.kill('SIGTERM');
        if (!(await waitExit(child, this.exited, 30_000))) this.stopProblems.push(`wrangler ${child.pid} did not exit after two SIGTERMs (left running)`);
      }
    }
    // workerd exits with its wrangler; give it a moment, then look.
    const deadline = Date.now() + 10_000;
    let left = [];
    for (;;) {
      left = [...this.seen.values()].filter(stillAlive);
      if (!left.length || Date.now() > deadline) break;
      await sleep(200);
    }
    for (const p of left) {
      this.orphans.push(p.pid);
      try { process.kill(p.pid, 'SIGTERM'); } catch { /* gone */ }
    }
    this.seen.clear();
  }

  close() { this.logFile.end(); }
}

// ---- the container program --------------------------------------------------------------------

const ANSI = /\x1b\[[0-9;]*m/g;

export class ContainerProc {
  constructor({ dir, maxAgents }) {
    this.dir = dir;
    this.workspace = join(dir, 'workspace');
    this.maxAgents = maxAgents;
    this.port = null;
    this.child = null;
    this.instances = []; // {pid, startedAt, endedAt, killed}
    this.agents = new Map(); // every process ever seen below a container of ours: pid → record
    this.lines = []; // parsed log lines {t, msg, fields, instance}
    this.stopProblems = [];
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    this.logFile = createWriteStream(join(dir, 'container.log'), { flags: 'a' });
    this.tail = '';
  }

  get url() { return `http://127.0.0.1:${this.port}`; }
  get api() { return client(this.url, { authorization: `Bearer ${CONTAINER_SECRET}` }); }
  get running() { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }
  get pid() { return this.child?.pid; }

  /** Starts the program (on the same port and workspace as before, if it ran before). */
  async start({ timeoutMs = 60_000 } = {}) {
    this.port ??= await freePort();
    const child = track(spawn(CONTAINER_BIN, ['--port', String(this.port), '--workspace', this.workspace, '--max-agents', String(this.maxAgents), '--stop-grace-secs', '2',
      // Its own agent uids (1000 per slot, above the tests' range): never shared with another container program.
      '--agent-uid-base', String(80_000 + (this.port % 20) * 1000 + 1), '--agent-uid-count', '999'], {
      env: { PATH: process.env.PATH, HOME: this.dir, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET, GASTOWN_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    this.child = child;
    const inst = { pid: child.pid, startedAt: Date.now(), endedAt: null, killed: false };
    this.instances.push(inst);
    this.exited = new Promise((r) => child.on('exit', () => { inst.endedAt = Date.now(); r(); }));
    let partial = '';
    const onData = (d) => {
      this.logFile.write(d);
      this.tail = (this.tail + d).slice(-20_000);
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop();
      for (const l of parts) this.#parse(l, this.instances.length - 1);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    this.logFile.write(`\n---- container started (pid ${child.pid}) at ${new Date().toISOString()} ----\n`);
    await waitHealthy(this.url, child, timeoutMs, 'container', () => this.tail);
  }

  /** Keeps the lifecycle lines (agent started/exited) with their time and fields. */
  #parse(line, instance) {
    const l = line.replace(ANSI, '');
    if (!/agent (started|exited)/.test(l)) return;
    const t = Date.parse(l.slice(0, l.indexOf(' ')));
    const fields = {};
    for (const m of l.matchAll(/(\w+)=("[^"]*"|\S+)/g)) fields[m[1]] = m[2].replace(/^"|"$/g, '');
    this.lines.push({ t: Number.isNaN(t) ? Date.now() : t, msg: /agent started/.test(l) ? 'started' : 'exited', fields, instance });
  }

  /** Remembers every process below the program (agents, gates, git) for the teardown. */
  scan() {
    if (!this.running) return [];
    const list = descendants(this.child.pid);
    for (const p of list) if (!this.agents.has(p.pid)) this.agents.set(p.pid, p);
    return list;
  }

  rssKb() { return this.running ? proc(this.child.pid)?.rssKb ?? null : null; }

  /**
   * The injected fault: SIGKILL the program and, as when a real container dies, every process
   * below it (its agents, gates and git) at the same instant.
   */
  async kill9() {
    const below = this.scan();
    this.instances.at(-1).killed = true;
    this.child.kill('SIGKILL');
    for (const p of below) {
      // Each agent leads its own session and process group: the group catches late forks.
      if (p.ppid === this.child.pid) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* not a group leader */ } }
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await waitExit(this.child, this.exited, 10_000);
    // Anything forked between the scan and the kill.
    await this.endLeftovers();
  }

  /** SIGTERM and wait; SIGKILL only as a reported last resort. Then ends leftover processes of ours. */
  async stop({ timeoutMs = 30_000 } = {}) {
    if (this.running) {
      this.scan();
      this.child.kill('SIGTERM');
      if (!(await waitExit(this.child, this.exited, timeoutMs))) {
        this.stopProblems.push(`container ${this.child.pid} ignored SIGTERM for ${timeoutMs / 1000} s; SIGKILLed`);
        this.child.kill('SIGKILL');
        await waitExit(this.child, this.exited, 10_000);
      }
    }
    const left = await this.endLeftovers(3000);
    if (left) this.stopProblems.push(`${left} process(es) outlived the container program's SIGTERM (ended)`);
  }

  /** Agents (and their children) that outlived a container of ours: SIGTERM, then SIGKILL. */
  async endLeftovers(graceMs = 0) {
    const deadline0 = Date.now() + graceMs;
    while ([...this.agents.values()].some(stillAlive) && Date.now() < deadline0) await sleep(100);
    const left = [...this.agents.values()].filter(stillAlive);
    for (const p of left) { try { process.kill(p.pid, 'SIGTERM'); } catch { /* gone */ } }
    const deadline = Date.now() + 5000;
    while (left.some(stillAlive) && Date.now() < deadline) await sleep(100);
    for (const p of left.filter(stillAlive)) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
    this.agents.clear();
    return left.length;
  }

  close() { this.logFile.end(); }
}

export { CONTAINER_SECRET };
