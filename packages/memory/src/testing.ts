import type { Clock, MemorySampler, MemoryUsageSample } from './memory-sampler.js';

const MB = 1024 * 1024;

/** A clock that moves only when told to. */
export interface ManualClock extends Clock {
  /** Moves the clock forward and returns the new time. */
  advance(ms: number): number;
  /** Sets the clock to an epoch-ms time. */
  set(at: number): void;
}

/**
 * A manual clock for feeding synthetic series to a guardrail.
 *
 * @example
 * const clock = createManualClock();
 * clock.advance(60_000);
 */
export function createManualClock(startAt = Date.UTC(2026, 0, 1)): ManualClock {
  let now = startAt;
  const clock = (() => now) as ManualClock;
  clock.advance = (ms) => (now += ms);
  clock.set = (at) => {
    now = at;
  };
  return clock;
}

/** Memory in MB as a function of the time elapsed since the sampler was created. */
export interface SyntheticSeries {
  readonly rssMb: (elapsedMs: number) => number;
  /** Default: 40 % of RSS. */
  readonly heapUsedMb?: (elapsedMs: number) => number;
}

/**
 * A sampler that reads a synthetic series off a clock, so tests and simulations control memory exactly.
 *
 * @example
 * const clock = createManualClock();
 * const sampler = createSyntheticSampler(clock, { rssMb: linearRssMb(200, 5) });
 * const guardrail = new MemoryGuardrail({ sampler, clock, autoStart: false });
 */
export function createSyntheticSampler(clock: Clock, series: SyntheticSeries, startAt = clock()): MemorySampler {
  return (): MemoryUsageSample => {
    const elapsed = clock() - startAt;
    const rss = series.rssMb(elapsed) * MB;
    const heapUsed = (series.heapUsedMb ? series.heapUsedMb(elapsed) : series.rssMb(elapsed) * 0.4) * MB;
    return { rss, heapUsed, heapTotal: heapUsed * 1.25, external: 2 * MB, arrayBuffers: MB };
  };
}

/**
 * A straight RSS line: `startMb + mbPerMin * minutes`.
 *
 * @example
 * createSyntheticSampler(clock, { rssMb: linearRssMb(200, 5) }); // leaks 5 MB/min
 */
export function linearRssMb(startMb: number, mbPerMin: number): (elapsedMs: number) => number {
  return (elapsedMs) => startMb + (mbPerMin * elapsedMs) / 60_000;
}
