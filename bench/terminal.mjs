// Terminal relay benchmark (part of `npm run bench`): one keystroke's round trip to a raw-mode
// `cat` under a PTY, through the Worker (browser ↔ Worker ↔ TownContainerDO ↔ container) versus
// straight to the container program, and output throughput to 1 and to 10 viewers on both paths.
// Throughput is reported as bytes delivered and bytes skipped per viewer (the container never
// waits for a viewer: one that falls more than its 256 KB scrollback behind skips ahead and is
// told how much it missed), so a path that drops output cannot look fast. Two variants:
//   * unpaced — the program dumps BENCH_BYTES_MB as fast as it can write; viewers may skip;
//   * paced — the program writes 64 KB per line the bench types, and the bench types the next
//     line only while the slowest viewer is less than two chunks (128 KB) behind: no viewer can
//     lag, so every byte is delivered and the rate is what the path sustains without skipping.
// Rates are MB delivered per second from the moment the bench starts the output until the
// viewer has it all (slowest viewer). Medians from one run (RTT); the ratios compare the relay
// with the direct path measured alongside it.
import WebSocket from 'ws';
import { startWorker } from '../tests/lib/worker.mjs';
import { client, ok } from '../tests/lib/api.mjs';
import { startContainer, CONTAINER_SECRET } from '../tests/lib/container.mjs';

const ROUND_TRIPS = Number(process.env.BENCH_RTT_N ?? 200);
const MB = 1024 * 1024;
const BYTES = Number(process.env.BENCH_BYTES_MB ?? 64) * MB;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const c = await startContainer();
const w = await startWorker({ vars: { GASTOWN_CONTAINER_URL: c.url, GASTOWN_CONTAINER_SECRET: CONTAINER_SECRET } });
const api = client(w.url);
const box = client(c.url, { authorization: `Bearer ${CONTAINER_SECRET}` });

/** Opens a WebSocket; `onMessage` is attached before it opens (the first frame can arrive with the upgrade). */
function connect(url, headers = {}, onMessage = null) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    if (onMessage) ws.on('message', onMessage);
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

/**
 * Runs `script` as the mayor's program, straight through the container. The town keeps its
 * mayor alive and starts it again when it exits; this run's epoch is far above any the town
 * uses, so the container replaces the town's run with it and never the other way round.
 */
async function start(agent, script) {
  await box.post(`/agents/${agent.id}/stop`, {});
  const r = await box.post('/agents/start', { agent_id: agent.id, town_id: town.id, rig_id: 'town', role: 'mayor', name: 'mayor', epoch: 1_000_000_000, command: ['sh', '-c', script] });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
}

async function roundTrips(ws) {
  const times = [];
  let waiting = null;
  ws.on('message', (d, bin) => { if (bin && waiting && d.includes(waiting.byte)) { const f = waiting.done; waiting = null; f(); } });
  for (let i = 0; i < ROUND_TRIPS + 10; i++) {
    const byte = 'abcdefghij'[i % 10];
    const t0 = performance.now();
    await new Promise((done) => { waiting = { byte, done }; ws.send(Buffer.from(byte)); });
    if (i >= 10) times.push(performance.now() - t0); // the first ten warm up
  }
  return median(times);
}

const CHUNK = 64 * 1024;
const WINDOW = 2;

/**
 * Connects `n` viewers to a program that prints one byte ("R") and then waits; resolves once
 * every viewer has that byte (its relay is attached end to end). Each viewer counts the bytes
 * delivered after it and the bytes reported skipped (`lagged` frames).
 */
async function attach(urlFor, n, headers, onProgress) {
  return Promise.all(Array.from({ length: n }, async () => {
    const v = { ws: null, got: -1, missed: 0, end: null };
    v.ws = await connect(urlFor(), headers, (d, bin) => {
      if (bin) v.got += d.length;
      else {
        const m = JSON.parse(d.toString());
        if (m.type === 'lagged') v.missed += m.missed_bytes;
      }
      onProgress();
    });
    return v;
  }));
}

/**
 * Output of BYTES to `n` viewers. Unpaced: one dump. Paced: CHUNK per line typed, at most
 * WINDOW chunks ahead of the slowest viewer. Returns per-viewer delivered and skipped bytes and
 * the slowest viewer's delivered MB/s.
 */
async function throughput(urlFor, n, headers = {}, { paced = false } = {}) {
  const chunks = BYTES / CHUNK;
  const producer = paced
    ? `stty raw -echo; printf R; exec node -e 'const b = Buffer.alloc(${CHUNK}, 120); process.stdin.on("data", (d) => { for (const c of d) if (c === 10) process.stdout.write(b); });'`
    : `stty raw -echo; printf R; read go; head -c ${BYTES} /dev/zero | tr '\\0' x; read done`;
  await start(mayor, producer);
  let t0 = null;
  let typed = 0;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  const progress = () => {
    if (t0 === null) return;
    const now = performance.now();
    for (const v of viewers) if (v.end === null && v.got + v.missed >= BYTES) v.end = now;
    if (viewers.every((v) => v.end !== null)) return finish();
    if (paced) {
      // The next line only while the slowest viewer is less than WINDOW chunks behind.
      const slowest = Math.min(...viewers.map((v) => v.got + v.missed));
      let more = 0;
      while (typed + more < chunks && (typed + more + 1 - WINDOW) * CHUNK <= slowest) more++;
      if (more) { typed += more; viewers[0].ws.send(Buffer.from('\n'.repeat(more))); }
    }
  };
  const viewers = [];
  viewers.push(...(await attach(urlFor, n, headers, progress)));
  await until(() => viewers.every((v) => v.got >= 0), 'every viewer attached');
  t0 = performance.now();
  if (paced) progress();
  else viewers[0].ws.send(Buffer.from('go\n'));
  await finished;
  viewers.forEach((v) => v.ws.close());
  const rates = viewers.map((v) => v.got / MB / ((v.end - t0) / 1000));
  return {
    n,
    delivered: viewers.reduce((a, v) => a + v.got, 0) / n,
    missed: viewers.reduce((a, v) => a + v.missed, 0) / n,
    mbps: Math.min(...rates),
  };
}

async function until(fn, what, timeout = 30_000) {
  const end = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let town;
let mayor;
try {
  town = ok(await api.post('/api/users/bench/towns', { name: 'terminal-bench' }), 201);
  mayor = ok(await api.post(`/api/towns/${town.id}/mayor/message`, { message: 'bench' }), 201).mayor;
  const relayUrl = () => `${w.url.replace('http', 'ws')}/api/towns/${town.id}/agents/${mayor.id}/terminal`;
  const directUrl = () => `${c.url.replace('http', 'ws')}/agents/${mayor.id}/pty?write=1`;
  const directAuth = { authorization: `Bearer ${CONTAINER_SECRET}` };

  await start(mayor, 'stty raw -echo; exec cat');
  const direct = await connect(directUrl(), directAuth);
  const directRtt = await roundTrips(direct);
  direct.close();
  const relay = await connect(relayUrl());
  const relayRtt = await roundTrips(relay);
  relay.close();

  const runs = [];
  for (const paced of [false, true]) {
    for (const n of [1, 10]) {
      runs.push({ paced, path: 'direct', ...(await throughput(directUrl, n, directAuth, { paced })) });
      runs.push({ paced, path: 'relay', ...(await throughput(relayUrl, n, {}, { paced })) });
    }
  }
  console.log(`Gastown terminal benchmark (${ROUND_TRIPS} keystrokes, ${BYTES / MB} MB of output)`);
  console.log(`keystroke → echo, through the Worker  median ${relayRtt.toFixed(2).padStart(6)} ms   direct to the container ${directRtt.toFixed(2).padStart(6)} ms   ratio ${(relayRtt / directRtt).toFixed(2)}x`);
  const mb = (b) => (b / MB).toFixed(1).padStart(5);
  for (const paced of [false, true]) {
    console.log(paced
      ? `output paced so that no viewer lags (${CHUNK / 1024} KB per line typed, at most ${WINDOW} chunks ahead of the slowest viewer):`
      : 'output as fast as the program writes it (a viewer more than the 256 KB scrollback behind skips ahead):');
    for (const n of [1, 10]) {
      const d = runs.find((r) => r.paced === paced && r.n === n && r.path === 'direct');
      const r = runs.find((x) => x.paced === paced && x.n === n && x.path === 'relay');
      for (const [name, x] of [['direct to the container', d], ['through the Worker', r]]) {
        console.log(`  ${String(n).padStart(2)} viewer${n > 1 ? 's' : ' '} ${name.padEnd(24)} per viewer delivered ${mb(x.delivered)} MB, skipped ${mb(x.missed)} MB (${(100 * x.missed / BYTES).toFixed(0).padStart(2)}%)   slowest ${x.mbps.toFixed(1).padStart(6)} MB/s delivered`);
      }
      console.log(`     delivered-rate ratio, Worker / direct: ${(r.mbps / d.mbps).toFixed(2)}x`);
    }
  }
} finally {
  await w.stop();
  await c.stop();
}
