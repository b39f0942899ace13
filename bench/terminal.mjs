// Terminal relay benchmark (part of `npm run bench`): one keystroke's round trip to a raw-mode
// `cat` under a PTY, through the Worker (browser ↔ Worker ↔ TownContainerDO ↔ container) versus
// straight to the container program, and sustained output throughput to 1 and to 10 viewers.
// Medians from one run; the ratio compares the relay with the direct path measured alongside it.
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

function connect(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

async function start(agent, script) {
  await box.post(`/agents/${agent.id}/stop`, {});
  const r = await box.post('/agents/start', { agent_id: agent.id, town_id: town.id, rig_id: 'town', role: 'mayor', name: 'mayor', command: ['sh', '-c', script] });
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

/**
 * Connects `n` viewers, triggers the dump, and returns the slowest viewer's delivered MB/s and the
 * bytes skipped for lagging viewers (a slow viewer skips ahead; it never stalls the agent).
 */
async function throughput(urlFor, n, headers = {}) {
  await start(mayor, `stty raw -echo; read go; head -c ${BYTES} /dev/zero | tr '\\0' x; sleep 1`);
  const viewers = await Promise.all(Array.from({ length: n }, () => connect(urlFor(), headers)));
  const results = await Promise.all(viewers.map((ws, i) => new Promise((resolve) => {
    let got = 0;
    let missed = 0;
    let t0 = null;
    const done = () => resolve({ mbps: got / MB / ((performance.now() - t0) / 1000), missed });
    ws.on('message', (d, bin) => {
      if (t0 === null) t0 = performance.now();
      if (bin) got += d.length;
      else {
        const m = JSON.parse(d.toString());
        if (m.type === 'lagged') missed += m.missed_bytes;
      }
      if (got + missed >= BYTES) done();
    });
    ws.on('close', done);
    if (i === 0) setTimeout(() => ws.send(Buffer.from('go\n')), 200);
  })));
  viewers.forEach((v) => v.close());
  return { mbps: Math.min(...results.map((r) => r.mbps)), missed: results.reduce((a, r) => a + r.missed, 0) };
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

  const direct1 = await throughput(directUrl, 1, directAuth);
  const relay1 = await throughput(relayUrl, 1);
  const relay10 = await throughput(relayUrl, 10);
  console.log(`Gastown terminal benchmark (${ROUND_TRIPS} keystrokes, ${BYTES / MB} MB of output)`);
  console.log(`keystroke → echo, through the Worker  median ${relayRtt.toFixed(2).padStart(6)} ms   direct to the container ${directRtt.toFixed(2).padStart(6)} ms   ratio ${(relayRtt / directRtt).toFixed(2)}x`);
  const skipped = (r) => (r.missed ? ` (${(r.missed / MB).toFixed(1)} MB skipped for lagging viewers)` : '');
  console.log(`output to 1 viewer through the Worker     ${relay1.mbps.toFixed(1).padStart(6)} MB/s   direct to the container ${direct1.mbps.toFixed(1).padStart(6)} MB/s${skipped(relay1)}`);
  console.log(`output to 10 viewers through the Worker   ${relay10.mbps.toFixed(1).padStart(6)} MB/s each (slowest viewer)${skipped(relay10)}`);
} finally {
  await w.stop();
  await c.stop();
}
