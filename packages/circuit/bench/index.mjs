// Benchmark of @guard/circuit against hand-written floors, cockatiel 3 and opossum 9, interleaved in one process.
// Run: pnpm --filter @guard/circuit build && pnpm --filter @guard/circuit bench
// Every ratio is taken per round (subject and baseline measured back to back) and printed as median (min-max).
import v8 from 'node:v8';
import vm from 'node:vm';
import OpossumBreaker from 'opossum';
import * as cockatiel from 'cockatiel';
import { interleave, loadLine, ratio, report } from '../../../scripts/bench-harness.mjs';
import { Bulkhead, CircuitBreaker, wrap } from '../dist/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

const fn = async () => 1;
const fnWithSignal = async (signal) => (signal === undefined ? 0 : 1); // reads the signal, as `fetch(url, { signal })` does
const failing = async () => {
  throw new Error('down');
};

/** The smallest correct consecutive breaker: the floor of "plain breaker". */
class MinimalBreaker {
  failures = 0;
  open = false;
  async execute(op) {
    if (this.open) throw new Error('open');
    try {
      const value = await op();
      this.failures = 0;
      return value;
    } catch (error) {
      if (++this.failures >= 5) this.open = true;
      throw error;
    }
  }
}

/** The floor of "a call with a timeout": an AbortController and a setTimeout per call. */
async function withTimeoutFloor(op, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('timeout')), timeoutMs);
  try {
    return await op(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

const loop = (call) => async (n) => {
  for (let i = 0; i < n; i++) await call();
};
const rejectLoop = (call) => async (n) => {
  for (let i = 0; i < n; i++) {
    try {
      await call();
    } catch {
      // expected: the circuit is open
    }
  }
};

console.log(`@guard/circuit benchmark, ${await loadLine()}, ${ROUNDS} interleaved rounds`);
let ok = true;

/** Runs `cases` interleaved and reports `ratios(result)` under `title`; a missed target marks the run. */
async function group(title, cases, ratios) {
  const result = await interleave(cases, { rounds: ROUNDS });
  ok = report(title, result, ratios(result)) && ok;
}

/** Ours against one other library's call, both as overhead over a bare `await fn()`: `[name, call]` each. */
function overheadVersus(title, [ours, ourCall], [theirs, theirCall], target = 0.5) {
  const cases = { 'await fn() (bare)': loop(fn), [ours]: loop(ourCall), [theirs]: loop(theirCall) };
  return group(title, cases, (result) => [{ label: `overhead vs ${theirs}`, stat: ratio(result, ours, theirs, 'await fn() (bare)'), target }]);
}

// --- plain breaker ---------------------------------------------------------------------------------------------
{
  const guard = new CircuitBreaker({ name: 'bench' }); // metrics on (prom-client's global registry), as by default
  const minimal = new MinimalBreaker();
  const cockatielBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) });
  const opossum = new OpossumBreaker(fn, { timeout: false, resetTimeout: 60_000 });
  await group(
    'plain breaker, per call (overhead = minus bare)',
    {
      'await fn() (bare)': loop(fn),
      'hand-written minimal breaker (floor)': loop(() => minimal.execute(fn)),
      '@guard/circuit breaker': loop(() => guard.execute(fn)),
      'cockatiel breaker': loop(() => cockatielBreaker.execute(fn)),
      'opossum breaker': loop(() => opossum.fire()),
    },
    (result) => [
      { label: 'overhead vs minimal floor', stat: ratio(result, '@guard/circuit breaker', 'hand-written minimal breaker (floor)', 'await fn() (bare)') },
      { label: 'overhead vs cockatiel', stat: ratio(result, '@guard/circuit breaker', 'cockatiel breaker', 'await fn() (bare)'), target: 0.5 },
      { label: 'overhead vs opossum', stat: ratio(result, '@guard/circuit breaker', 'opossum breaker', 'await fn() (bare)') },
    ],
  );
  opossum.shutdown();
  await guard.close();
}

// --- timeoutMs: 1000 -------------------------------------------------------------------------------------------
{
  const guard = new CircuitBreaker({ name: 'bench_timeout' });
  const cockatielTimed = cockatiel.wrap(
    cockatiel.timeout(1_000, cockatiel.TimeoutStrategy.Cooperative),
    cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
  );
  const opossum = new OpossumBreaker(fn, { timeout: 1_000, resetTimeout: 60_000 });
  await group(
    'breaker with timeoutMs: 1000, per call',
    {
      'await fn(signal) (bare)': loop(() => fnWithSignal(undefined)),
      'AbortController + setTimeout (floor)': loop(() => withTimeoutFloor(fnWithSignal, 1_000)),
      '@guard/circuit timeoutMs, fn(signal)': loop(() => guard.execute(fnWithSignal, { timeoutMs: 1_000 })),
      '@guard/circuit timeoutMs, fn()': loop(() => guard.execute(fn, { timeoutMs: 1_000 })),
      'opossum timeout (no signal)': loop(() => opossum.fire()),
      'cockatiel wrap(timeout, breaker)': loop(() => cockatielTimed.execute(({ signal }) => fnWithSignal(signal))),
    },
    (result) => [
      { label: 'fn(signal) overhead vs floor', stat: ratio(result, '@guard/circuit timeoutMs, fn(signal)', 'AbortController + setTimeout (floor)', 'await fn(signal) (bare)'), target: 1 },
      { label: 'fn() overhead vs floor', stat: ratio(result, '@guard/circuit timeoutMs, fn()', 'AbortController + setTimeout (floor)', 'await fn(signal) (bare)'), target: 1 },
      { label: 'fn(signal) overhead vs opossum', stat: ratio(result, '@guard/circuit timeoutMs, fn(signal)', 'opossum timeout (no signal)', 'await fn(signal) (bare)') },
      { label: 'fn() overhead vs opossum', stat: ratio(result, '@guard/circuit timeoutMs, fn()', 'opossum timeout (no signal)', 'await fn(signal) (bare)') },
      { label: 'fn(signal) overhead vs cockatiel', stat: ratio(result, '@guard/circuit timeoutMs, fn(signal)', 'cockatiel wrap(timeout, breaker)', 'await fn(signal) (bare)') },
    ],
  );
  opossum.shutdown();
  await guard.close();
}

// --- rate mode -------------------------------------------------------------------------------------------------
{
  const guard = new CircuitBreaker({ name: 'bench_rate', mode: 'rate', failureRateThreshold: 0.5, windowMs: 10_000, minimumThroughput: 10 });
  const sampling = cockatiel.circuitBreaker(cockatiel.handleAll, {
    halfOpenAfter: 60_000,
    breaker: new cockatiel.SamplingBreaker({ threshold: 0.5, duration: 10_000, minimumRps: 1 }),
  });
  await overheadVersus('rate mode, per call', ['@guard/circuit rate mode', () => guard.execute(fn)], ['cockatiel SamplingBreaker', () => sampling.execute(fn)]);
  await guard.close();
}

// --- fail-fast while open --------------------------------------------------------------------------------------
{
  const guard = new CircuitBreaker({ name: 'bench_open', failureThreshold: 1, resetTimeoutMs: 3_600_000 });
  await guard.execute(failing).catch(() => {});
  const cockatielOpen = cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 3_600_000, breaker: new cockatiel.ConsecutiveBreaker(1) });
  await cockatielOpen.execute(failing).catch(() => {});
  const prebuilt = new Error('open');
  if (guard.state !== 'open' || cockatielOpen.state !== cockatiel.CircuitState.Open) throw new Error('breakers did not open');
  await group(
    'fail-fast while open, per rejected call',
    {
      'reject a pre-built error': rejectLoop(() => Promise.reject(prebuilt)),
      '@guard/circuit open': rejectLoop(() => guard.execute(fn)),
      'cockatiel open': rejectLoop(() => cockatielOpen.execute(fn)),
    },
    (result) => [
      { label: 'vs cockatiel', stat: ratio(result, '@guard/circuit open', 'cockatiel open'), target: 0.5 },
      { label: 'vs a pre-built error', stat: ratio(result, '@guard/circuit open', 'reject a pre-built error') },
    ],
  );
  await guard.close();
}

// --- wrap(bulkhead, breaker) -----------------------------------------------------------------------------------
{
  const guardPolicy = wrap(new Bulkhead({ name: 'bench', maxConcurrent: 50, maxQueued: 1000 }), new CircuitBreaker({ name: 'bench_wrapped' }));
  const cockatielPolicy = cockatiel.wrap(
    cockatiel.bulkhead(50, 1000),
    cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
  );
  const cockatielTimed = cockatiel.wrap(
    cockatiel.timeout(1_000, cockatiel.TimeoutStrategy.Cooperative),
    cockatiel.bulkhead(50, 1000),
    cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
  );
  await overheadVersus(
    'wrap(bulkhead, breaker), per call',
    ['@guard/circuit wrap(bulkhead, breaker)', () => guardPolicy.execute(fn)],
    ['cockatiel wrap(bulkhead, breaker)', () => cockatielPolicy.execute(fn)],
  );
  await group(
    'wrap(bulkhead, breaker) with timeoutMs: 1000, per call',
    {
      'await fn(signal) (bare)': loop(() => fnWithSignal(undefined)),
      'AbortController + setTimeout (floor)': loop(() => withTimeoutFloor(fnWithSignal, 1_000)),
      '@guard/circuit wrap(...), timeoutMs, fn(signal)': loop(() => guardPolicy.execute(fnWithSignal, { timeoutMs: 1_000 })),
      'cockatiel wrap(timeout, bulkhead, breaker)': loop(() => cockatielTimed.execute(({ signal }) => fnWithSignal(signal))),
    },
    (timed) => [
      { label: 'overhead vs timeout floor', stat: ratio(timed, '@guard/circuit wrap(...), timeoutMs, fn(signal)', 'AbortController + setTimeout (floor)', 'await fn(signal) (bare)') },
      { label: 'overhead vs cockatiel', stat: ratio(timed, '@guard/circuit wrap(...), timeoutMs, fn(signal)', 'cockatiel wrap(timeout, bulkhead, breaker)', 'await fn(signal) (bare)') },
    ],
  );
}

// --- bytes per breaker -----------------------------------------------------------------------------------------
const COUNT = 10_000;
const names = Array.from({ length: COUNT }, (_, i) => `breaker_${i}`);

async function bytesPer(create, call, dispose) {
  const held = new Array(COUNT).fill(undefined); // allocated before measuring
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < COUNT; i++) held[i] = create(i);
  for (let i = 0; i < COUNT; i++) await call(held[i]); // one call each, so lazily created state is counted too
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  for (let i = 0; i < COUNT; i++) await dispose?.(held[i]);
  return (after - before) / COUNT;
}

const bytes = {
  '@guard/circuit': await bytesPer((i) => new CircuitBreaker({ name: names[i] }), (b) => b.execute(fn), (b) => b.close()),
  cockatiel: await bytesPer(
    () => cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
    (b) => b.execute(fn),
  ),
  opossum: await bytesPer(() => new OpossumBreaker(fn, { timeout: false, resetTimeout: 60_000 }), (b) => b.fire(), (b) => b.shutdown()),
};
console.log(`\nheap bytes per breaker (${COUNT} breakers, each called once, after GC)`);
for (const [lib, b] of Object.entries(bytes)) console.log(`  ${lib.padEnd(52)} ${b.toFixed(0).padStart(10)} B`);
console.log(`  ${'ratio vs cockatiel'.padEnd(52)} ${(bytes['@guard/circuit'] / bytes.cockatiel).toFixed(2).padStart(10)}`);

console.log(ok ? '\nall targets met' : '\nsome targets MISSED');
