/** One reading of the process's memory, in bytes (the shape of `process.memoryUsage()`). */
export interface MemoryUsageSample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/**
 * Reads the process's memory. Injectable so tests and simulations feed synthetic series.
 *
 * @example
 * const sampler: MemorySampler = () => process.memoryUsage();
 */
export type MemorySampler = () => MemoryUsageSample;

/**
 * Returns the number of entries a cache holds right now (e.g. `() => sessions.size`). Must be cheap: it runs on every check.
 *
 * @example
 * const probe: CacheProbe = () => sessions.size;
 */
export type CacheProbe = () => number;

/** A clock in epoch milliseconds; injectable for tests. */
export type Clock = () => number;

/**
 * The real sampler: `process.memoryUsage()`.
 *
 * @example
 * const guardrail = new MemoryGuardrail({ sampler: processMemorySampler });
 */
export const processMemorySampler: MemorySampler = () => process.memoryUsage();
