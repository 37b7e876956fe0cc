// Benchmarks for @guard/playbooks, run with `pnpm --filter @guard/playbooks bench` after a build.
// 1. MessageBus publish with ACL checks against plain eventemitter3 emit, per message, interleaved plain loops.
// 2. ResourcePressureMonitor CPU overhead at 1 Hz (cost of one sample + evaluation, as % of one core).
import { EventEmitter } from 'eventemitter3';
import { Registry } from 'prom-client';
import { interleave, loadLine, ratio, report } from '../../../scripts/bench-harness.mjs';
import { createSystemSampler, MessageBus, ResourcePressureMonitor } from '../dist/index.js';

const payload = { id: 1, total: 42 };
let sink = 0;
const handler = (p) => {
  sink += p.id;
};

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

// Plain loops, interleaved rounds, one ratio per round (scripts/bench-harness.mjs): tinybench's per-task overhead
// would dwarf an 8 ns emit.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
console.log(`@guard/playbooks benchmark, ${await loadLine()}, ${ROUNDS} interleaved rounds`);
const result = await interleave(
  {
    'eventemitter3 emit, one topic': (n) => {
      for (let i = 0; i < n; i++) plain.emit('orders.created', payload);
    },
    'MessageBus.publish + ACL, one actor/topic': (n) => {
      for (let i = 0; i < n; i++) bus.publish('orders', 'orders.created', payload);
    },
    'eventemitter3 emit, 4 topics rotating': (n) => {
      for (let i = 0; i < n; i++) plain.emit(topics[i & 3], payload);
    },
    'MessageBus.publish + ACL, 16 pairs rotating': (n) => {
      for (let i = 0; i < n; i++) bus.publish(actors[(i >> 2) & 3], topics[i & 3], payload);
    },
    'MessageBus.publish + ACL + blacklist + rate limit': (n) => {
      for (let i = 0; i < n; i++) limited.publish(actors[(i >> 2) & 3], topics[i & 3], payload);
    },
    'MessageBus.publish, ACL denied (violation published)': (n) => {
      for (let i = 0; i < n; i++) denied.publish('intruder', 'orders.created', payload);
    },
  },
  { rounds: ROUNDS },
);
report('MessageBus publish vs eventemitter3 emit (1 subscriber per topic), per message; ratio = time / emit time', result, [
  { label: 'publish / emit, one pair', stat: ratio(result, 'MessageBus.publish + ACL, one actor/topic', 'eventemitter3 emit, one topic') },
  { label: 'publish / emit, rotating', stat: ratio(result, 'MessageBus.publish + ACL, 16 pairs rotating', 'eventemitter3 emit, 4 topics rotating') },
  { label: 'publish + blacklist + rate limit / emit, rotating', stat: ratio(result, 'MessageBus.publish + ACL + blacklist + rate limit', 'eventemitter3 emit, 4 topics rotating') },
]);

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
