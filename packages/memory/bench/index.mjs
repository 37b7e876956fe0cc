// Benchmark of @guard/memory: cost of one snapshot + check, and CPU overhead of the guardrail at 1 Hz on a busy process.
// Run: pnpm --filter @guard/memory bench   (reads the build in ../dist)
import { interleave, loadLine, median, ratio, report } from '../../../scripts/bench-harness.mjs';
import { Registry } from 'prom-client';
import { MemoryGuardrail } from '../dist/index.js';
import { createManualClock } from '../dist/testing.js';


/** A guardrail on the real sampler whose clock advances one interval per check, so its leak window holds as many points as in production. */
function guardrailAt(checkIntervalMs, extra = {}) {
  const clock = createManualClock(Date.now());
  const registry = new Registry();
  const guardrail = new MemoryGuardrail({ checkIntervalMs, now: clock, autoStart: false, registry, ...extra });
  // Fill the window first.
  for (let i = 0; i < 4_000; i++) {
    clock.advance(checkIntervalMs);
    guardrail.check();
  }
  return { guardrail, clock, registry, step: checkIntervalMs };
}

const fixed = { rss: 300 * 1048576, heapUsed: 120 * 1048576, heapTotal: 150 * 1048576, external: 2 * 1048576, arrayBuffers: 1048576 };
const at60s = guardrailAt(60_000);
const logicOnly = guardrailAt(1_000, { sampler: () => fixed });
const at1Hz = guardrailAt(1_000);
const sessions = new Map(Array.from({ length: 500 }, (_, i) => [i, i]));
const withProbes = guardrailAt(60_000, { cacheProbes: { sessions: () => sessions.size, tokens: () => 42, users: () => 7 } });

// Plain loops interleaved over rounds (scripts/bench-harness.mjs): one ratio per round against memoryUsage().
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
console.log(`@guard/memory benchmark, ${await loadLine()}, ${ROUNDS} interleaved rounds`);
const checkLoop = (g) => (n) => {
  for (let i = 0; i < n; i++) {
    g.clock.advance(g.step);
    g.guardrail.check();
  }
};
const result = await interleave(
  {
    'process.memoryUsage()': (n) => {
      for (let i = 0; i < n; i++) process.memoryUsage();
    },
    'check() at 60 s (11-point window)': checkLoop(at60s),
    'check() at 1 Hz (600-point window)': checkLoop(at1Hz),
    'check() at 1 Hz, fixed sampler (logic only)': checkLoop(logicOnly),
    'check() at 60 s + 3 cache probes': checkLoop(withProbes),
    'assess() at 1 Hz (live, not stored)': (n) => {
      for (let i = 0; i < n; i++) at1Hz.guardrail.assess();
    },
    'report() at 1 Hz (3601 snapshots)': (n) => {
      for (let i = 0; i < n; i++) at1Hz.guardrail.report();
    },
    'scrape of the guard_memory_* metrics': async (n) => {
      for (let i = 0; i < n; i++) await at1Hz.registry.metrics();
    },
  },
  { rounds: ROUNDS },
);
report('per call (check() calls memoryUsage() itself, so it cannot be cheaper than it)', result, [
  { label: 'check() at 60 s / memoryUsage()', stat: ratio(result, 'check() at 60 s (11-point window)', 'process.memoryUsage()') },
  { label: 'check() at 1 Hz / memoryUsage()', stat: ratio(result, 'check() at 1 Hz (600-point window)', 'process.memoryUsage()') },
]);
const usPer = Object.fromEntries(result.names.map((name) => [name, median(result.ns[name]) / 1_000]));

// --- the self-check handler in front of every request: its pass-through against the parasite middleware's ----------
// Both sit in front of every request of an app; a request for neither should cost next() and little else. The
// middleware is read from the sibling package's build (a bench-only import; @guard/memory does not depend on it).
const detectors = await import('../../detectors/dist/index.js').catch(() => undefined);
if (detectors === undefined) console.log('\n(self-check pass-through row skipped: build @guard/detectors first, e.g. pnpm build)');
else {
  const { GuardBus } = await import('../../core/dist/index.js');
  const { DetectorChain, createParasiteMiddleware } = detectors;
  const { createSelfCheckHandler } = await import('../dist/index.js');
  const chain = new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus: new GuardBus(), metrics: false, scheduler: { schedule: () => false } });
  const middleware = createParasiteMiddleware(chain, {
    routes: [{ prefix: '/orders', component: 'db' }, { prefix: '/live', component: 'websocket' }, { pattern: /^\/events\b/, component: 'eventbus' }],
  });
  const selfCheck = createSelfCheckHandler(at60s.guardrail);
  const req = { url: '/api/hello/world?x=1', method: 'GET' };
  const res = {};
  let served = 0;
  const next = () => {
    served++;
  };
  const passes = await interleave(
    {
      'next() alone': (n) => {
        for (let i = 0; i < n; i++) next();
      },
      'parasite middleware (3 routes), then next()': (n) => {
        for (let i = 0; i < n; i++) middleware(req, res, next);
      },
      'self-check handler pass-through, then next()': (n) => {
        for (let i = 0; i < n; i++) selfCheck(req, res, next);
      },
    },
    { rounds: ROUNDS * 2 },
  );
  report('in front of every request, a URL neither serves (per request)', passes, [
    { label: 'self-check pass-through / middleware', stat: ratio(passes, 'self-check handler pass-through, then next()', 'parasite middleware (3 routes), then next()'), target: 1 },
  ]);
  if (served === 0) throw new Error('next() was never called');
  await chain.close();
}

// --- CPU overhead at 1 Hz on a busy process ------------------------------------------------------------------------
// A busy event loop (JSON work over a ~150 MB live heap) runs for DURATION_MS twice: alone, then with a guardrail
// checking at 1 Hz on the real clock and sampler. The time spent inside check() over the wall time is the overhead;
// the throughput difference between the runs is printed too, but on a shared machine it is mostly noise.
const DURATION_MS = Number(process.env.BENCH_BUSY_MS ?? 10_000);
const live = Array.from({ length: 600_000 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'], n: i * 1.5 }));
const doc = JSON.stringify(live.slice(0, 200));

function busyRun(withGuardrail) {
  return new Promise((resolve) => {
    let ops = 0;
    let inCheckMs = 0;
    let checks = 0;
    const durations = [];
    let timer;
    let guardrail;
    if (withGuardrail) {
      guardrail = new MemoryGuardrail({ checkIntervalMs: 1_000, autoStart: false, registry: new Registry() });
      timer = setInterval(() => {
        const t0 = performance.now();
        guardrail.check();
        const d = performance.now() - t0;
        durations.push(d);
        inCheckMs += d;
        checks++;
      }, 1_000);
    }
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const chunk = () => {
      for (let i = 0; i < 50; i++) {
        JSON.parse(doc);
        ops++;
      }
      if (performance.now() - start < DURATION_MS) setImmediate(chunk);
      else {
        const wallMs = performance.now() - start;
        const cpu = process.cpuUsage(cpu0);
        if (timer) clearInterval(timer);
        void guardrail?.close();
        durations.sort((a, b) => a - b);
        resolve({ ops, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, inCheckMs, checks, medianMs: durations[Math.floor(durations.length / 2)] ?? 0 });
      }
    };
    chunk();
  });
}

const alone = await busyRun(false);
const guarded = await busyRun(true);
const overheadPct = (guarded.inCheckMs / guarded.wallMs) * 100;
console.log(`\nBusy process (${live.length} live objects, heapUsed ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MB), ${DURATION_MS / 1000} s per run:`);
console.table([
  { run: 'alone', 'ops/s': Math.round((alone.ops * 1000) / alone.wallMs), 'cpu ms': alone.cpuMs.toFixed(0), checks: 0, 'us/check (mean)': '-', 'us/check (median)': '-', 'overhead %': '-' },
  {
    run: 'with guardrail at 1 Hz',
    'ops/s': Math.round((guarded.ops * 1000) / guarded.wallMs),
    'cpu ms': guarded.cpuMs.toFixed(0),
    checks: guarded.checks,
    'us/check (mean)': ((guarded.inCheckMs * 1000) / guarded.checks).toFixed(1),
    'us/check (median)': (guarded.medianMs * 1000).toFixed(1),
    'overhead %': overheadPct.toFixed(5),
  },
]);
console.log(`throughput difference (noise on a shared machine): ${(((alone.ops / alone.wallMs - guarded.ops / guarded.wallMs) / (alone.ops / alone.wallMs)) * 100).toFixed(2)} %`);
console.log(`targets: check < 10 us -> ${usPer['check() at 60 s (11-point window)'] < 10 ? 'met' : 'MISSED'} (60 s), ${usPer['check() at 1 Hz (600-point window)'] < 10 ? 'met' : 'MISSED'} (1 Hz); overhead at 1 Hz < 0.1 % -> ${overheadPct < 0.1 ? 'met' : 'MISSED'}`);
live.length = 0;
