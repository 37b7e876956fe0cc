// Benchmarks for @guard/detectors: `pnpm --filter @guard/detectors bench` (after `build`).
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Bench } from 'tinybench';
import { DummyDriver, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from 'kysely';
import { GuardBus } from '@guard/core';
import { DetectorChain, EventBusTracker, WebSocketTracker, createParasiteMiddleware, trackDialect } from '../dist/index.js';

const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10);
const fmtMs = (ms) => (ms >= 1 ? `${ms.toFixed(2)} ms` : ms >= 0.001 ? `${(ms * 1000).toFixed(2)} µs` : `${(ms * 1e6).toFixed(0)} ns`);

// ---------- HTTP throughput: bare node:http vs node:http + middleware (servers in child processes) ----------
// Both servers run side by side; autocannon alternates between them in ABBA order over 8 segments, so
// bursts of load from other processes on the shared machine hit both alike. Each server gets
// HTTP_SECONDS of measurement in total.
async function start(mode) {
  const child = fork(fileURLToPath(new URL('./server.mjs', import.meta.url)), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  return { child, url: `http://127.0.0.1:${port}/api/hello` };
}
const servers = { bare: await start('bare'), middleware: await start('middleware') };
for (const server of Object.values(servers)) await autocannon({ url: server.url, connections: 50, duration: 1 }); // warm-up
const runs = { bare: [], middleware: [] };
const order = ['bare', 'middleware', 'middleware', 'bare', 'bare', 'middleware', 'middleware', 'bare'];
for (const mode of order) {
  runs[mode].push(await autocannon({ url: servers[mode].url, connections: 50, pipelining: 1, duration: HTTP_SECONDS / 4 }));
}
for (const { child } of Object.values(servers)) {
  child.send('stop');
  await new Promise((resolve) => child.once('exit', resolve));
}
const total = (list) => list.reduce((sum, r) => sum + r.requests.total, 0);
const p99 = (list) => Math.max(...list.map((r) => r.latency.p99));
const bareRps = total(runs.bare) / HTTP_SECONDS;
const guardedRps = total(runs.middleware) / HTTP_SECONDS;
const ratio = guardedRps / bareRps;
console.log('\nHTTP hello world, autocannon 50 connections, %d s per server in 8 alternating segments (loopback)', HTTP_SECONDS);
console.table([
  { server: 'bare node:http', 'req/s': Math.round(bareRps), 'p99 latency': `${p99(runs.bare)} ms`, ratio: '1.000' },
  { server: 'node:http + parasite middleware', 'req/s': Math.round(guardedRps), 'p99 latency': `${p99(runs.middleware)} ms`, ratio: ratio.toFixed(3) },
]);
console.log(`middleware/bare = ${ratio.toFixed(3)} (target >= 0.97): ${ratio >= 0.97 ? 'PASS' : 'MISS'}`);

// ---------- scans ----------
function fakeSocket() {
  return { readyState: 1, bufferedAmount: 0, on() {}, send() {}, ping() {}, close() {}, terminate() {} };
}

const ws = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: true });
for (let i = 0; i < 10_000; i++) ws.send(fakeSocket(), { type: 'tick', n: i });

const bus = new EventBusTracker({ leakThreshold: 1_000 });
const emitters = [];
for (let e = 0; e < 100; e++) {
  const emitter = new EventEmitter().setMaxListeners(0);
  bus.track(emitter);
  emitters.push(emitter);
  for (let i = 0; i < 1_000; i++) {
    if (i % 2 === 0) emitter.on(`event_${i % 10}`, () => {});
    else bus.on(emitter, `event_${i % 10}`, () => {}, { owner: emitters });
  }
}

const dialect = trackDialect({
  createDriver: () => new DummyDriver(),
  createAdapter: () => new SqliteAdapter(),
  createIntrospector: (db) => new SqliteIntrospector(db),
  createQueryCompiler: () => new SqliteQueryCompiler(),
}, { leakThresholdMs: 30_000 });
const driver = dialect.createDriver();
await driver.init();
for (let i = 0; i < 1_000; i++) await driver.acquireConnection();
const now = Date.now();
dialect.tracker.scan(now + 60_000); // format the 1,000 acquire stacks once, as the first detection would

const scans = new Bench({ time: 1_000, warmupTime: 200 });
scans
  .add('scan 10,000 sockets (healthy)', () => ws.scan(now))
  .add('scan 10,000 sockets (all unacked)', () => ws.scan(now + 10_000))
  .add('scan 100,000 listeners (100 emitters, 50,000 owned)', () => bus.scan(now))
  .add('scan 1,000 checkouts (healthy)', () => dialect.tracker.scan(now))
  .add('scan 1,000 checkouts (all orphaned)', () => dialect.tracker.scan(now + 60_000));
await scans.run();
console.log('\nOne scan (target < 5 ms each)');
console.table(scans.tasks.map((t) => ({ scan: t.name, mean: fmtMs(t.result.latency.mean), p99: fmtMs(t.result.latency.p99), target: t.result.latency.mean < 5 ? 'PASS' : 'MISS' })));

// ---------- per-call overhead ----------
const plain = fakeSocket();
const tracked = new WebSocketTracker(undefined, { pingIntervalMs: 0 });
const trackedNoTrace = new WebSocketTracker(undefined, { pingIntervalMs: 0, traceSources: false });
const s1 = fakeSocket();
const s2 = fakeSocket();
const message = { type: 'price', value: 42 };
let n = 0;
const ackEvery = (tracker, socket) => {
  // keep the pending map small, as acks would
  const id = tracker.connectionId(socket);
  if (tracker.pendingCount(id) > 1_000) {
    tracker.forget(id);
    tracker.track(socket);
  }
};
const plainEmitter = new EventEmitter();
const trackedEmitter = new EventEmitter();
const emitterTracker = new EventBusTracker();
emitterTracker.track(trackedEmitter);
const untracedTracker = new EventBusTracker({ traceSources: false });
const untracedEmitter = new EventEmitter();
untracedTracker.track(untracedEmitter);
const listener = () => {};
const chain = new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus: new GuardBus(), metrics: false, scheduler: { schedule: () => false } });
chain.add({ component: 'db', pattern: 'connection_orphan', scan: () => [{ pattern: 'connection_orphan', severity: 'critical', resourceId: 'conn_1', message: 'held', details: {} }] });
chain.scan();
const guard = createParasiteMiddleware(chain, { routes: [{ prefix: '/orders', component: 'db' }, { prefix: '/live', component: 'websocket' }, { pattern: /^\/events\b/, component: 'eventbus' }] });
const fakeReq = { url: '/api/hello' };
const fakeRes = {};
let served = 0;
const next = () => {
  served++;
};

const calls = new Bench({ time: 1_000, warmupTime: 200 });
calls
  .add('send: untracked ws.send(JSON)', () => plain.send(JSON.stringify({ ...message, id: `m${++n}` })))
  .add('send: tracker.send (stack traced)', () => {
    tracked.send(s1, message);
    ackEvery(tracked, s1);
  })
  .add('send: tracker.send (traceSources: false)', () => {
    trackedNoTrace.send(s2, message);
    ackEvery(trackedNoTrace, s2);
  })
  .add('request: next() alone', () => next())
  .add('request: parasite middleware then next()', () => guard(fakeReq, fakeRes, next))
  .add('listener: untracked on+off', () => {
    plainEmitter.on('x', listener);
    plainEmitter.off('x', listener);
  })
  .add('listener: tracked on+off (stack traced)', () => {
    trackedEmitter.on('x', listener);
    trackedEmitter.off('x', listener);
  })
  .add('listener: tracked on+off (traceSources: false)', () => {
    untracedEmitter.on('x', listener);
    untracedEmitter.off('x', listener);
  });
await calls.run();
const mean = (name) => calls.tasks.find((t) => t.name === name).result.latency.mean;
const sendBase = mean('send: untracked ws.send(JSON)');
const listenBase = mean('listener: untracked on+off');
const requestBase = mean('request: next() alone');
console.log('\nPer-call overhead (ratio against the untracked call in the same run)');
console.table(
  calls.tasks.map((t) => ({
    call: t.name,
    mean: fmtMs(t.result.latency.mean),
    ratio: (t.result.latency.mean / (t.name.startsWith('send') ? sendBase : t.name.startsWith('request') ? requestBase : listenBase)).toFixed(2),
  })),
);
await chain.close();
if (served === 0) throw new Error('middleware never called next');
await ws.close();
await tracked.close();
await trackedNoTrace.close();
await bus.close();
await emitterTracker.close();
await untracedTracker.close();
