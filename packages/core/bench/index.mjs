// Benchmark of @guard/core's hot paths against their bare baselines, in one run.
// Run: pnpm --filter @guard/core bench   (reads ../dist, so build first)
import { EventEmitter } from 'eventemitter3';
import { Registry } from 'prom-client';
import { Bench } from 'tinybench';
import { GuardBus, captureSource, counter, createSourceCapture } from '../dist/index.js';

const BATCH = 1_000;
const detection = { id: 'd', component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: 'r', message: 'm', details: {}, detectedAt: 0 };
let sink = 0;
const listener = () => {
  sink++;
};

const plain = new EventEmitter();
const bus = new GuardBus();
for (let i = 0; i < 3; i++) {
  plain.on('detection', listener);
  bus.on('detection', listener);
}
const registry = new Registry();
const cached = counter(registry, { name: 'bench_calls_total', help: 'h', labelNames: ['outcome'] }).labels('ok');
const off = createSourceCapture(false);

const groups = [
  ['emit to 3 listeners', {
    'eventemitter3 emit (baseline)': () => { for (let i = 0; i < BATCH; i++) plain.emit('detection', detection); },
    'GuardBus emit (isolated listeners)': () => { for (let i = 0; i < BATCH; i++) bus.emit('detection', detection); },
  }],
  ['source capture per call', {
    'no capture (baseline)': () => { for (let i = 0; i < BATCH; i++) sink += off() === undefined ? 1 : 0; },
    'new Error() (plain stack)': () => { for (let i = 0; i < BATCH; i++) { const error = new Error('x'); sink += error === undefined ? 0 : 1; } },
    'captureSource depth 10': () => { for (let i = 0; i < BATCH; i++) sink += captureSource({ depth: 10 }) ? 1 : 0; },
    'captureSource depth 30': () => { for (let i = 0; i < BATCH; i++) sink += captureSource() ? 1 : 0; },
  }],
  ['counter increment', {
    'cached labelled child inc (baseline)': () => { for (let i = 0; i < BATCH; i++) cached.inc(); },
    'counter() lookup + labels + inc': () => { for (let i = 0; i < BATCH; i++) counter(registry, { name: 'bench_calls_total', help: 'h', labelNames: ['outcome'] }).labels('ok').inc(); },
  }],
];

console.log(`@guard/core benchmark, node ${process.version}, ${BATCH} operations per sample\n`);
for (const [title, tasks] of groups) {
  const bench = new Bench({ time: 1_000, warmup: true });
  for (const [name, fn] of Object.entries(tasks)) bench.add(name, fn);
  await bench.run();
  const rows = bench.tasks.map((task) => ({ name: task.name, ns: (task.result.latency.mean * 1e6) / BATCH }));
  const base = rows[0].ns;
  console.log(title);
  for (const row of rows) console.log(`  ${row.name.padEnd(40)} ${row.ns.toFixed(1).padStart(9)} ns/op   x${(row.ns / base).toFixed(2)}`);
  console.log();
}
if (sink < 0) console.log(sink);
