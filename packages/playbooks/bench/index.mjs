// Benchmarks for @guard/playbooks, run with `pnpm --filter @guard/playbooks bench` after a build.
// 1. MessageBus publish with ACL checks against plain eventemitter3 emit (target: >= 0.8 of plain).
// 2. ResourcePressureMonitor CPU overhead at 1 Hz (cost of one sample + evaluation, as % of one core).
import { EventEmitter } from 'eventemitter3';
import { Registry } from 'prom-client';
import { Bench } from 'tinybench';
import { createSystemSampler, MessageBus, ResourcePressureMonitor } from '../dist/index.js';

const time = Number(process.env.BENCH_TIME_MS ?? 1500);
const payload = { id: 1, total: 42 };
let sink = 0;
const handler = (p) => {
  sink += p.id;
};

const BATCH = 1_000;
const topics = ['orders.created', 'orders.paid', 'orders.shipped', 'orders.cancelled'];
const actors = ['orders', 'checkout', 'billing', 'shipping'];

const plain = new EventEmitter();
for (const t of topics) plain.on(t, handler);

const acl = Object.fromEntries(actors.map((a) => [a, ['orders.*']]));
const bus = new MessageBus({ registry: new Registry(), acl });
for (const t of topics) bus.subscribe(t, handler);
const limited = new MessageBus({ registry: new Registry(), name: 'limited', acl });
for (const t of topics) limited.subscribe(t, handler);
limited.blacklist('someone-else', { durationMs: 3_600_000 });
limited.setRateLimit('billing.*', 1_000_000, { durationMs: 3_600_000 });
const denied = new MessageBus({ registry: new Registry(), name: 'denied', acl: { orders: ['orders.*'] } });

// Each task runs BATCH operations per iteration so the harness overhead does not hide the per-message cost.
const bench = new Bench({ time, warmupTime: 300 });
bench
  .add('eventemitter3 emit, one topic (baseline)', () => {
    for (let i = 0; i < BATCH; i++) plain.emit('orders.created', payload);
  })
  .add('MessageBus.publish + ACL, one actor/topic', () => {
    for (let i = 0; i < BATCH; i++) bus.publish('orders', 'orders.created', payload);
  })
  .add('eventemitter3 emit, 4 topics rotating (baseline)', () => {
    for (let i = 0; i < BATCH; i++) plain.emit(topics[i & 3], payload);
  })
  .add('MessageBus.publish + ACL, 16 actor/topic pairs rotating', () => {
    for (let i = 0; i < BATCH; i++) bus.publish(actors[(i >> 2) & 3], topics[i & 3], payload);
  })
  .add('MessageBus.publish + ACL + blacklist + rate limit active', () => {
    for (let i = 0; i < BATCH; i++) limited.publish(actors[(i >> 2) & 3], topics[i & 3], payload);
  })
  .add('MessageBus.publish, ACL denied (violation published)', () => {
    for (let i = 0; i < BATCH; i++) denied.publish('intruder', 'orders.created', payload);
  });
await bench.run();

const rows = bench.tasks.map((t) => {
  const meanMs = t.result.latency?.mean ?? t.result.mean;
  return { name: t.name, nsPerOp: (meanMs * 1e6) / BATCH };
});
const baseOne = rows[0].nsPerOp;
const baseRot = rows[2].nsPerOp;
console.log('\nMessageBus publish vs plain eventemitter3 emit (1 subscriber per topic)\n');
console.log('| case | messages/s | ns/message | ratio vs plain emit |');
console.log('|---|---:|---:|---:|');
rows.forEach((r, i) => {
  const base = i === 1 ? baseOne : i === 0 ? baseOne : baseRot;
  console.log(`| ${r.name} | ${Math.round(1e9 / r.nsPerOp).toLocaleString('en-US')} | ${r.nsPerOp.toFixed(1)} | ${(base / r.nsPerOp).toFixed(2)} |`);
});
const ratioOne = baseOne / rows[1].nsPerOp;
const ratioRot = baseRot / rows[3].nsPerOp;
console.log(`\nACL publish / plain emit: one pair ${ratioOne.toFixed(2)}, rotating ${ratioRot.toFixed(2)} (target >= 0.80: ${Math.min(ratioOne, ratioRot) >= 0.8 ? 'met' : 'MISSED'})`);

// Monitor overhead: the real 1 Hz loop costs one sample + one evaluation per second.
async function sampleCost(cpuSource, n = 40) {
  const sampler = createSystemSampler({ cpuSource, diskPaths: ['/'] });
  const monitor = new ResourcePressureMonitor({ registry: new Registry(), sampler: sampler.sample, autoStart: false });
  await monitor.sampleNow();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await monitor.sampleNow();
  const wallMs = (performance.now() - t0) / n;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000 / n;
  await monitor.close();
  sampler.close();
  return { cpuMs, wallMs };
}
console.log('\nResourcePressureMonitor overhead at 1 Hz (cpu, memory, disk "/", event loop)\n');
console.log('| cpuSource | CPU per sample (ms) | wall per sample (ms) | CPU overhead at 1 Hz (% of one core) |');
console.log('|---|---:|---:|---:|');
for (const source of ['host', 'process', 'demand']) {
  const { cpuMs, wallMs } = await sampleCost(source);
  console.log(`| ${source} | ${cpuMs.toFixed(3)} | ${wallMs.toFixed(3)} | ${(cpuMs / 10).toFixed(3)} % |`);
}
await Promise.all([bus.close(), limited.close(), denied.close()]);
if (sink < 0) console.log(sink);
