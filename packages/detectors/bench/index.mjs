// Benchmarks for @guard/detectors, interleaved rounds with median ratios (scripts/bench-harness.mjs).
// Run: pnpm --filter @guard/detectors build && pnpm --filter @guard/detectors bench
// BENCH_HTTP_SECONDS=0 skips the autocannon section; BENCH_ROUNDS sets the rounds (default 9).
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { WebSocket, WebSocketServer } from 'ws';
import { GuardBus } from '@guard/core';
import { interleave, loadLine, median, ratio, report } from '../../../scripts/bench-harness.mjs';
import { DetectorChain, EventBusTracker, WebSocketTracker, createParasiteMiddleware, trackDialect } from '../dist/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10);
console.log(`@guard/detectors benchmark, ${await loadLine()}, ${ROUNDS} interleaved rounds`);
let ok = true;
const check = (...args) => {
  ok = report(...args) && ok;
};

/**
 * Interleaves a bare operation with the same work through a tracker capturing call sites and one that does not, and
 * reports both against the bare one (the traced ratio against `target`). Work is `(count) => ...`.
 */
async function tracingOverhead(title, target, [bareLabel, bare], [trackedLabel, traced, untraced]) {
  const [tracedLabel, untracedLabel] = [`${trackedLabel} (traceSources: true)`, `${trackedLabel} (traceSources: false)`];
  const result = await interleave({ [bareLabel]: bare, [tracedLabel]: traced, [untracedLabel]: untraced }, { rounds: ROUNDS });
  check(title, result, [
    { label: 'traced / bare', stat: ratio(result, tracedLabel, bareLabel), target },
    { label: 'untraced / bare', stat: ratio(result, untracedLabel, bareLabel) },
  ]);
}

// ---------- per-call: listeners ----------
{
  const listener = () => {};
  const plain = new EventEmitter();
  const traced = new EventEmitter();
  const untraced = new EventEmitter();
  const tracedTracker = new EventBusTracker();
  tracedTracker.track(traced);
  const untracedTracker = new EventBusTracker({ traceSources: false });
  untracedTracker.track(untraced);
  const pair = (emitter) => (n) => {
    for (let i = 0; i < n; i++) {
      emitter.on('x', listener);
      emitter.off('x', listener);
    }
  };
  const title = 'listener on + off, per pair (C2 EventBusTracker, node:events)';
  await tracingOverhead(title, 5, ['emitter.on + off (plain)', pair(plain)], ['tracked on + off', pair(traced), pair(untraced)]);
  await tracedTracker.close();
  await untracedTracker.close();
}

// ---------- per-call: sends on a real socket ----------
{
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const sockets = [];
  wss.on('connection', (ws) => sockets.push(ws));
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const client = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
    // acks every message, as a healthy client does
    client.on('message', (data) => {
      const text = String(data);
      const at = text.lastIndexOf('"id":"');
      if (at >= 0) client.send(`{"type":"ack","id":"${text.slice(at + 6, text.indexOf('"', at + 6))}"}`);
    });
    await new Promise((resolve) => client.once('open', resolve));
    clients.push(client);
  }
  while (sockets.length < 3) await new Promise((resolve) => setImmediate(resolve));
  const traced = new WebSocketTracker(undefined, { pingIntervalMs: 0 });
  const untraced = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: false });
  const message = { type: 'price', value: 42 };
  let n = 0;
  const yieldEvery = async (i) => {
    if (i % 64 === 63) await new Promise((resolve) => setImmediate(resolve)); // let acks and writes flow
  };
  const result = await interleave(
    {
      'ws.send(JSON) untracked': async (count) => {
        for (let i = 0; i < count; i++) {
          sockets[0].send(JSON.stringify({ ...message, id: `m${++n}` }));
          await yieldEvery(i);
        }
      },
      'tracker.send (traceSources: true)': async (count) => {
        for (let i = 0; i < count; i++) {
          traced.send(sockets[1], message);
          await yieldEvery(i);
        }
      },
      'tracker.send (traceSources: false)': async (count) => {
        for (let i = 0; i < count; i++) {
          untraced.send(sockets[2], message);
          await yieldEvery(i);
        }
      },
    },
    // socket I/O is the noisiest row: more and longer rounds
    { rounds: ROUNDS * 2, roundMs: 200 },
  );
  check('send on a real loopback socket, per message (C1 WebSocketTracker; the client acks)', result, [
    { label: 'traced / untraced tracker.send', stat: ratio(result, 'tracker.send (traceSources: true)', 'tracker.send (traceSources: false)'), target: 1.2 },
    { label: 'traced / untracked ws.send', stat: ratio(result, 'tracker.send (traceSources: true)', 'ws.send(JSON) untracked') },
    { label: 'untraced / untracked ws.send', stat: ratio(result, 'tracker.send (traceSources: false)', 'ws.send(JSON) untracked') },
  ]);
  await traced.close();
  await untraced.close();
  for (const client of clients) client.close();
  await new Promise((resolve) => wss.close(resolve));
}

// ---------- per-call: queries ----------
{
  const sqlite = () => new SqliteDialect({ database: new Database(':memory:') });
  const bare = new Kysely({ dialect: sqlite() });
  const traced = new Kysely({ dialect: trackDialect(sqlite(), { name: 'bench_traced' }) });
  const untraced = new Kysely({ dialect: trackDialect(sqlite(), { name: 'bench_untraced', traceSources: false }) });
  const query = (db) => async (count) => {
    for (let i = 0; i < count; i++) await sql`select 1`.execute(db);
  };
  const title = 'kysely query on in-memory better-sqlite3, per query (C3 trackDialect)';
  await tracingOverhead(title, 1.3, ['kysely select 1, bare SqliteDialect', query(bare)], ['through trackDialect', query(traced), query(untraced)]);
  await bare.destroy();
  await traced.destroy();
  await untraced.destroy();
}

// ---------- per-request: parasite middleware at 3, 30 and 300 routes ----------
{
  const chain = new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus: new GuardBus(), metrics: false, scheduler: { schedule: () => false } });
  chain.add({ component: 'db', pattern: 'connection_orphan', scan: () => [{ pattern: 'connection_orphan', severity: 'critical', resourceId: 'conn_1', message: 'held', details: {} }] });
  chain.scan();
  const routes = (count) => [
    ...Array.from({ length: count - 1 }, (_, i) => ({ prefix: `/svc${i}/v1`, component: i % 2 ? 'db' : 'websocket' })),
    { pattern: /^\/events\b/, component: 'eventbus' },
  ];
  const guards = { 3: createParasiteMiddleware(chain, { routes: routes(3) }), 30: createParasiteMiddleware(chain, { routes: routes(30) }), 300: createParasiteMiddleware(chain, { routes: routes(300) }) };
  const req = { url: '/api/hello/world?x=1' }; // matches no route: the old linear scan's worst case
  const res = {};
  let served = 0;
  const next = () => {
    served++;
  };
  const through = (guard) => (count) => {
    for (let i = 0; i < count; i++) guard(req, res, next);
  };
  const result = await interleave(
    {
      'next() alone': (count) => {
        for (let i = 0; i < count; i++) next();
      },
      'middleware, 3 routes': through(guards[3]),
      'middleware, 30 routes': through(guards[30]),
      'middleware, 300 routes': through(guards[300]),
    },
    { rounds: ROUNDS * 2 },
  );
  check('parasite middleware then next(), per request (no route matches)', result, [
    { label: '300 routes / 3 routes', stat: ratio(result, 'middleware, 300 routes', 'middleware, 3 routes'), target: 2 },
    { label: '30 routes / 3 routes', stat: ratio(result, 'middleware, 30 routes', 'middleware, 3 routes') },
  ]);
  if (served === 0) throw new Error('middleware never called next');
  await chain.close();
}

// ---------- scans ----------
function fakeSocket() {
  return { readyState: 1, bufferedAmount: 0, on() {}, off() {}, send() {}, ping() {}, close() {}, terminate() {} };
}
async function timeScan(label, scan, target) {
  for (let i = 0; i < 3; i++) scan(); // warm-up (and the first formatting of sources)
  const samples = [];
  for (let round = 0; round < ROUNDS * 3; round++) {
    const start = performance.now();
    scan();
    samples.push(performance.now() - start);
  }
  const m = median(samples);
  const pass = m < target;
  if (!pass) ok = false;
  console.log(`  ${label.padEnd(60)} ${m.toFixed(2).padStart(8)} ms  (${Math.min(...samples).toFixed(2)}-${Math.max(...samples).toFixed(2)})  target < ${target} ms: ${pass ? 'ok' : 'MISSED'}`);
}
console.log('\none scan, median of', ROUNDS * 3, 'scans (min-max)');
{
  const healthy = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: true });
  for (let i = 0; i < 100_000; i++) healthy.track(fakeSocket());
  const now = Date.now();
  await timeScan('C1: 100,000 sockets, healthy', () => healthy.scan(now), 5);
  const unacked = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: true });
  for (let i = 0; i < 100_000; i++) unacked.send(fakeSocket(), { type: 'tick', n: i });
  await timeScan('C1: 100,000 sockets, every one with an unacked message', () => unacked.scan(now + 10_000), 5);
  const stuck = [];
  const busy = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: true });
  for (let i = 0; i < 100_000; i++) {
    const socket = fakeSocket();
    stuck.push(socket);
    busy.send(socket, { type: 'tick', n: i });
  }
  let k = 0;
  await timeScan('C1: the same, with 100 more sends between scans', () => {
    for (let i = 0; i < 100; i++) busy.send(stuck[k++ % stuck.length], { type: 'tick' });
    return busy.scan(now + 10_000);
  }, 5);
  await busy.close();
  await healthy.close();
  await unacked.close();
}
{
  const bus = new EventBusTracker({ leakThreshold: 1_000 });
  const owners = [];
  for (let e = 0; e < 100; e++) {
    const emitter = new EventEmitter().setMaxListeners(0);
    bus.track(emitter);
    owners.push(emitter);
    for (let i = 0; i < 1_001; i++) {
      if (i % 2 === 0) emitter.on(`event_${i % 10}`, () => {});
      else bus.on(emitter, `event_${i % 10}`, () => {}, { owner: owners });
    }
  }
  await timeScan('C2: 100 emitters x 1,001 listeners, all leaking (half owned)', () => bus.scan(Date.now()), 5);
  await bus.close();
}

// ---------- HTTP throughput: bare node:http vs node:http + middleware (servers in child processes) ----------
// autocannon alternates between the two servers in ABBA order over 8 pairs of segments, so bursts of load from
// other processes hit both alike; the ratio is the median of the pairs'.
if (HTTP_SECONDS > 0) {
  async function start(mode) {
    const child = fork(fileURLToPath(new URL('./server.mjs', import.meta.url)), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const { port } = await new Promise((resolve) => child.once('message', resolve));
    return { child, url: `http://127.0.0.1:${port}/api/hello` };
  }
  const servers = { bare: await start('bare'), middleware: await start('middleware') };
  for (const server of Object.values(servers)) await autocannon({ url: server.url, connections: 50, duration: 1 }); // warm-up
  const runs = { bare: [], middleware: [] };
  const PAIRS = 8;
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const mode of pair % 2 === 0 ? ['bare', 'middleware'] : ['middleware', 'bare']) {
      runs[mode].push(await autocannon({ url: servers[mode].url, connections: 50, pipelining: 1, duration: HTTP_SECONDS / PAIRS }));
    }
  }
  for (const { child } of Object.values(servers)) {
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  // pair the segments (ABBA): one ratio per pair
  const pairs = [];
  for (let i = 0; i < PAIRS; i++) pairs.push(runs.middleware[i].requests.total / runs.bare[i].requests.total);
  const total = (list) => list.reduce((sum, r) => sum + r.requests.total, 0);
  const stat = { median: median(pairs), min: Math.min(...pairs), max: Math.max(...pairs) };
  console.log(`\nHTTP hello world, autocannon 50 connections, ${HTTP_SECONDS} s per server in ${PAIRS} alternating pairs (ABBA)`);
  console.log(`  bare node:http                      ${Math.round(total(runs.bare) / HTTP_SECONDS)} req/s`);
  console.log(`  node:http + parasite middleware     ${Math.round(total(runs.middleware) / HTTP_SECONDS)} req/s`);
  const pass = stat.median >= 0.97;
  if (!pass) ok = false;
  console.log(`  ratio middleware / bare             ${stat.median.toFixed(3)} (${stat.min.toFixed(3)}-${stat.max.toFixed(3)})  target >= 0.97: ${pass ? 'ok' : 'MISSED'}`);
}

console.log(ok ? '\nall targets met' : '\nsome targets MISSED');
