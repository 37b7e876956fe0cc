// Benchmark of @guard/circuit against a bare call, opossum 9 and cockatiel 3, all in one run.
// Run: pnpm --filter @guard/circuit bench   (builds are read from ../dist)
import v8 from 'node:v8';
import vm from 'node:vm';
import { Bench } from 'tinybench';
import OpossumBreaker from 'opossum';
import * as cockatiel from 'cockatiel';
import { Bulkhead, CircuitBreaker, wrap } from '../dist/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const BATCH = 1_000; // calls per sample, so timer overhead is spread thin
const fn = async () => 1;

// --- instances -------------------------------------------------------------------------------------------------
const guard = new CircuitBreaker({ name: 'bench' }); // metrics on (prom-client's global registry), as by default
const guardPolicy = wrap(new Bulkhead({ name: 'bench', maxConcurrent: 50, maxQueued: 1000 }), new CircuitBreaker({ name: 'bench_wrapped' }));
const cockatielBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
  halfOpenAfter: 60_000,
  breaker: new cockatiel.ConsecutiveBreaker(5),
});
const cockatielPolicy = cockatiel.wrap(
  cockatiel.bulkhead(50, 1000),
  cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
);
const opossum = new OpossumBreaker(fn, { timeout: false, resetTimeout: 60_000, errorThresholdPercentage: 50 });

const tasks = {
  bare: async () => {
    for (let i = 0; i < BATCH; i++) await fn();
  },
  '@guard/circuit breaker': async () => {
    for (let i = 0; i < BATCH; i++) await guard.execute(fn);
  },
  'cockatiel breaker': async () => {
    for (let i = 0; i < BATCH; i++) await cockatielBreaker.execute(fn);
  },
  'opossum breaker': async () => {
    for (let i = 0; i < BATCH; i++) await opossum.fire();
  },
  '@guard/circuit wrap(bulkhead, breaker)': async () => {
    for (let i = 0; i < BATCH; i++) await guardPolicy.execute(fn);
  },
  'cockatiel wrap(bulkhead, breaker)': async () => {
    for (let i = 0; i < BATCH; i++) await cockatielPolicy.execute(fn);
  },
};

const bench = new Bench({ name: 'per-call cost', time: 1_500, warmup: true, warmupTime: 300 });
for (const [name, task] of Object.entries(tasks)) bench.add(name, task);
await bench.run();

const nsPerCall = {};
for (const task of bench.tasks) nsPerCall[task.name] = (task.result.latency.p50 * 1e6) / BATCH;
const bare = nsPerCall.bare;
const overhead = (name) => Math.max(0, nsPerCall[name] - bare);
const rows = [];
for (const name of Object.keys(tasks)) {
  rows.push({
    task: name,
    'ns/call (median)': nsPerCall[name].toFixed(0),
    'overhead ns': name === 'bare' ? '-' : overhead(name).toFixed(0),
  });
}
console.log(`\nPer-call cost of execute(async () => 1), ${BATCH} sequential calls per sample, Node ${process.version}`);
console.table(rows);

// --- bytes per breaker -----------------------------------------------------------------------------------------
const COUNT = 10_000;
const names = Array.from({ length: COUNT }, (_, i) => `breaker_${i}`);

async function bytesPer(create, call, dispose) {
  const held = new Array(COUNT).fill(undefined); // allocated before measuring
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < COUNT; i++) held[i] = create(i);
  // one call each, so lazily created state is counted too
  for (let i = 0; i < COUNT; i++) await call(held[i]);
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  for (let i = 0; i < COUNT; i++) await dispose?.(held[i]);
  return (after - before) / COUNT;
}

const bytes = {
  '@guard/circuit': await bytesPer(
    (i) => new CircuitBreaker({ name: names[i] }),
    (breaker) => breaker.execute(fn),
    (breaker) => breaker.close(),
  ),
  cockatiel: await bytesPer(
    () => cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
    (breaker) => breaker.execute(fn),
  ),
  opossum: await bytesPer(
    () => new OpossumBreaker(fn, { timeout: false, resetTimeout: 60_000 }),
    (breaker) => breaker.fire(),
    (breaker) => breaker.shutdown(),
  ),
};

console.log(`\nHeap bytes per breaker (${COUNT} breakers, each called once, after GC)`);
console.table(Object.entries(bytes).map(([lib, b]) => ({ library: lib, 'bytes/breaker': b.toFixed(0) })));

const ratio = (a, b) => (b === 0 ? 'n/a' : (a / b).toFixed(2));
const summary = [
  {
    measure: 'breaker overhead vs cockatiel',
    ours: overhead('@guard/circuit breaker').toFixed(0),
    theirs: overhead('cockatiel breaker').toFixed(0),
    ratio: ratio(overhead('@guard/circuit breaker'), overhead('cockatiel breaker')),
    target: '<= 0.50',
  },
  {
    measure: 'breaker overhead vs opossum',
    ours: overhead('@guard/circuit breaker').toFixed(0),
    theirs: overhead('opossum breaker').toFixed(0),
    ratio: ratio(overhead('@guard/circuit breaker'), overhead('opossum breaker')),
    target: '-',
  },
  {
    measure: 'wrap(bulkhead, breaker) overhead vs cockatiel',
    ours: overhead('@guard/circuit wrap(bulkhead, breaker)').toFixed(0),
    theirs: overhead('cockatiel wrap(bulkhead, breaker)').toFixed(0),
    ratio: ratio(overhead('@guard/circuit wrap(bulkhead, breaker)'), overhead('cockatiel wrap(bulkhead, breaker)')),
    target: '<= 0.50',
  },
  {
    measure: 'bytes per breaker vs cockatiel',
    ours: bytes['@guard/circuit'].toFixed(0),
    theirs: bytes.cockatiel.toFixed(0),
    ratio: ratio(bytes['@guard/circuit'], bytes.cockatiel),
    target: '<= 0.50',
  },
  {
    measure: 'bytes per breaker vs opossum',
    ours: bytes['@guard/circuit'].toFixed(0),
    theirs: bytes.opossum.toFixed(0),
    ratio: ratio(bytes['@guard/circuit'], bytes.opossum),
    target: '-',
  },
];
console.log('\nSummary (ratio = ours / theirs; lower is better)');
console.table(summary);

opossum.shutdown();
await guard.close();
