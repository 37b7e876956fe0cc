import type { Logger } from '@guard/core';
import type { CacheProbe, MemorySampler } from './memory-sampler.js';

/**
 * Bytes per MB as this package counts them (MiB, 1024 x 1024, like `ps` and most dashboards).
 *
 * @example
 * const rssMb = guardrail.check().snapshot.rssBytes / BYTES_PER_MB;
 */
export const BYTES_PER_MB = 1024 * 1024;

/** One reading kept in the series. */
export interface MemorySnapshot {
  /** Epoch milliseconds. */
  readonly at: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  /** Entries per cache probe; a probe that threw is left out. */
  readonly caches: Readonly<Record<string, number>>;
}

const EMPTY_CACHES: Readonly<Record<string, number>> = Object.freeze({});

/**
 * Reads memory and every cache probe into one snapshot. A probe that throws or returns a non-number is logged and
 * left out, so one broken probe never hides the others or the RSS reading.
 */
export function takeSnapshot(at: number, sampler: MemorySampler, probes: ReadonlyMap<string, CacheProbe>, logger: Logger): MemorySnapshot {
  const usage = sampler();
  let caches = EMPTY_CACHES;
  if (probes.size > 0) {
    const entries: Record<string, number> = {};
    for (const [name, probe] of probes) {
      try {
        const value = probe();
        if (typeof value === 'number' && Number.isFinite(value)) entries[name] = value;
        else logger.warn({ cache: name, value }, 'cache probe returned a non-number');
      } catch (error) {
        logger.warn({ err: error, cache: name }, 'cache probe threw');
      }
    }
    caches = entries;
  }
  return {
    at,
    rssBytes: usage.rss,
    heapUsedBytes: usage.heapUsed,
    heapTotalBytes: usage.heapTotal,
    externalBytes: usage.external,
    arrayBuffersBytes: usage.arrayBuffers,
    caches,
  };
}
