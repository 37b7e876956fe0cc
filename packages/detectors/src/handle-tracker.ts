import { assertNumberOption } from '@guard/core';
import type { Detector, Finding } from './detector.js';

/**
 * Options for {@link HandleTracker}.
 *
 * @example
 * new HandleTracker({ windowMs: 60_000, growthThreshold: 100 });
 */
export interface HandleTrackerOptions {
  /** Growth is measured against the oldest sample within this window. Default 60000. */
  readonly windowMs?: number;
  /** A resource type that grew by at least this many over the window is reported. Default 100. */
  readonly growthThreshold?: number;
  /** Where samples come from. Default `process.getActiveResourcesInfo()`. */
  readonly sample?: () => readonly string[];
}

interface Sample {
  readonly at: number;
  readonly counts: ReadonlyMap<string, number>;
}

/**
 * C7: samples `process.getActiveResourcesInfo()` on every scan and reports `handle_leak` (warning,
 * resource `process`) for the resource types (Timeout, TCPSocketWrap, FSReqCallback, ...) that grew by
 * `growthThreshold` or more over `windowMs`. Report only: there is no safe automatic fix.
 *
 * @example
 * chain.add(new HandleTracker({ windowMs: 60_000, growthThreshold: 100 }));
 */
export class HandleTracker implements Detector {
  readonly component = 'handles';
  readonly pattern = 'handle_leak';
  readonly windowMs: number;
  readonly growthThreshold: number;
  readonly #sample: () => readonly string[];
  #samples: Sample[] = [];

  constructor(options: HandleTrackerOptions = {}) {
    this.windowMs = options.windowMs ?? 60_000;
    this.growthThreshold = options.growthThreshold ?? 100;
    assertNumberOption('windowMs', this.windowMs, { min: 1 });
    assertNumberOption('growthThreshold', this.growthThreshold, { min: 1, integer: true });
    this.#sample = options.sample ?? (() => process.getActiveResourcesInfo());
  }

  /** The counts by type right now. */
  counts(): Record<string, number> {
    return Object.fromEntries(countTypes(this.#sample()));
  }

  scan(now: number): Finding[] {
    const counts = countTypes(this.#sample());
    this.#samples.push({ at: now, counts });
    let start = 0;
    while (start < this.#samples.length - 1 && now - this.#samples[start + 1]!.at >= this.windowMs) start++;
    if (start > 0) this.#samples = this.#samples.slice(start);
    const oldest = this.#samples[0]!;
    const growth: Record<string, number> = {};
    for (const [type, n] of counts) {
      const delta = n - (oldest.counts.get(type) ?? 0);
      if (delta >= this.growthThreshold) growth[type] = delta;
    }
    const types = Object.keys(growth);
    if (types.length === 0) return [];
    return [
      {
        pattern: 'handle_leak',
        severity: 'warning',
        resourceId: 'process',
        message: `active handles grew over ${now - oldest.at} ms: ${types.map((t) => `${t} +${growth[t]}`).join(', ')}`,
        details: { growth, windowMs: this.windowMs, sinceMs: now - oldest.at, counts: Object.fromEntries(counts) },
      },
    ];
  }
}

function countTypes(types: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}
