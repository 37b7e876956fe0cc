// Benchmark of @guard/sanitizer: run with `pnpm --filter @guard/sanitizer bench` after `pnpm build`.
// 1. schedule+run throughput of N no-op jobs through DeferredSanitizer vs a bare Promise loop of the same N no-ops;
// 2. the cost of schedule() for a duplicate (refused) detection vs a bare Map lookup.
import { Registry } from 'prom-client';
import { Bench } from 'tinybench';
import { DeferredSanitizer } from '../dist/index.js';

const JOBS = 1_000;
const noopReport = { outcome: 'success', actions: [], details: {} };
const noop = { component: 'db', sanitize: async () => noopReport };
let seq = 0;
const detection = (resourceId) => ({
  id: `det_${++seq}`,
  component: 'db',
  pattern: 'connection_orphan',
  severity: 'critical',
  resourceId,
  message: '',
  details: {},
  detectedAt: 0,
});
const fresh = Array.from({ length: JOBS }, (_, i) => `conn-${i}`);

function makeSanitizer(concurrency) {
  return new DeferredSanitizer({ sanitizers: [noop], delaysMs: { db: 0 }, concurrency, registry: new Registry() });
}
const s4 = makeSanitizer(4);
const s64 = makeSanitizer(64);
const dup = new DeferredSanitizer({ sanitizers: [noop], delaysMs: { db: 60_000 }, registry: new Registry() });
dup.schedule(detection('held'));
const dupDetection = detection('held');
const lookup = new Map([['db\u0000held', {}]]);

const throughput = new Bench({ name: `${JOBS} no-op jobs`, time: 2_000, warmup: true });
throughput
  .add('bare Promise loop (baseline)', async () => {
    for (let i = 0; i < JOBS; i++) await noop.sanitize(detection(fresh[i]), {});
  })
  .add('bare Promise.all', async () => {
    await Promise.all(fresh.map((id) => noop.sanitize(detection(id), {})));
  })
  .add('DeferredSanitizer concurrency 4', async () => {
    for (let i = 0; i < JOBS; i++) s4.schedule(detection(fresh[i]));
    await s4.waitForSanitization(10_000);
  })
  .add('DeferredSanitizer concurrency 64', async () => {
    for (let i = 0; i < JOBS; i++) s64.schedule(detection(fresh[i]));
    await s64.waitForSanitization(10_000);
  });

const duplicate = new Bench({ name: 'duplicate schedule()', time: 1_000, warmup: true });
let sink = 0;
duplicate
  .add('Map.has of the key (baseline)', () => {
    sink += lookup.has(`${dupDetection.component}\u0000${dupDetection.resourceId}`) ? 1 : 0;
  })
  .add('schedule() of a duplicate (refused)', () => {
    sink += dup.schedule(dupDetection) ? 1 : 0;
  });

function report(bench) {
  const [baseline, ...rest] = bench.tasks;
  const base = baseline.result.latency.mean;
  const rows = bench.tasks.map((task) => {
    const mean = task.result.latency.mean;
    return {
      task: task.name,
      'mean (µs)': (mean * 1_000).toFixed(bench === duplicate ? 3 : 1),
      'ops/s': Math.round(task.result.throughput.mean).toLocaleString('en-US'),
      ...(bench === throughput ? { 'jobs/s': Math.round((JOBS / mean) * 1_000).toLocaleString('en-US') } : {}),
      'time vs baseline': task === baseline ? '1.00x' : `${(mean / base).toFixed(2)}x`,
      '± %': task.result.latency.rme.toFixed(1),
      samples: task.result.latency.samplesCount,
    };
  });
  void rest;
  console.log(`\n${bench.name} (node ${process.version})`);
  console.table(rows);
}

await throughput.run();
report(throughput);
await duplicate.run();
report(duplicate);
await Promise.all([s4.close(), s64.close(), dup.close()]);
if (sink < 0) console.log(sink);
