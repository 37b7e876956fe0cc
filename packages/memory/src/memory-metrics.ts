import { setMaxListeners } from 'node:events';
import { counter, metricName, resolveMetricsPrefix, resolveRegistry, scrapeGauge } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import type { Counter } from 'prom-client';
import { STATUS_LEVEL } from './memory-assessment.js';
import type { MemoryAssessment } from './memory-assessment.js';
import { BYTES_PER_MB } from './memory-snapshot.js';

/** Default metric prefix. */
export const DEFAULT_MEMORY_METRICS_PREFIX = 'guard_memory';

/** The counters a restart moves. */
export interface RestartCounters {
  readonly restarts: Pick<Counter<'name' | 'reason'>, 'inc'>;
  readonly restartsSkipped: Pick<Counter<'name'>, 'inc'>;
  readonly restartsFailed: Pick<Counter<'name' | 'reason'>, 'inc'>;
}

/** One guardrail's metrics: counters that count as events happen, gauges read from the last check at scrape time. */
export interface MemoryMetrics extends RestartCounters {
  readonly heapSnapshots: Pick<Counter<'name'>, 'inc'>;
  /** Stops reporting a removed cache probe (its gauge series goes at the next scrape). */
  forgetCache(cache: string): void;
  /** Stops every gauge reading of this guardrail. */
  close(): void;
}

/** Each gauge: name after the prefix, help, and its value in the last check (undefined: no sample). */
const GAUGES: readonly (readonly [name: string, help: string, read: (a: MemoryAssessment) => number | undefined])[] = [
  ['rss_bytes', 'Resident set size at the last check', (a) => a.snapshot.rssBytes],
  ['heap_used_bytes', 'V8 heap used at the last check', (a) => a.snapshot.heapUsedBytes],
  ['heap_total_bytes', 'V8 heap allocated at the last check', (a) => a.snapshot.heapTotalBytes],
  ['external_bytes', 'Memory of C++ objects bound to JS objects at the last check', (a) => a.snapshot.externalBytes],
  ['array_buffers_bytes', 'Memory of ArrayBuffers and SharedArrayBuffers at the last check', (a) => a.snapshot.arrayBuffersBytes],
  ['baseline_rss_bytes', 'Mean RSS of the baseline samples', (a) => a.baseline?.rssBytes],
  ['growth_rate_bytes_per_second', 'Least-squares RSS growth rate over the leak window', (a) => (a.growth.slopeMbPerMin * BYTES_PER_MB) / 60],
  ['growth_fit_ratio', 'Goodness of fit (R squared, 0-1) of the RSS growth line', (a) => a.growth.r2],
  ['leak_detected', '1 while a leak is detected (growth over the limit with a good fit), else 0', (a) => (a.growth.leakDetected ? 1 : 0)],
  ['status', 'Guardrail status: 0 healthy, 1 warning, 2 critical', (a) => STATUS_LEVEL[a.status]],
  ['time_to_threshold_seconds', 'Predicted time until RSS reaches its threshold (+Inf when not growing)', (a) => (a.timeToThresholdMs === null ? Infinity : a.timeToThresholdMs / 1000)],
];

const COUNTERS = {
  restarts: ['restarts_total', 'Restarts the guardrail started, by reason', ['name', 'reason']],
  restartsSkipped: ['restarts_skipped_total', 'Restarts refused by the restart budget (at most one per cooldown)', ['name']],
  restartsFailed: ['restarts_failed_total', 'Restarts the process survived (still alive restartGraceMs after terminate), by reason', ['name', 'reason']],
  heapSnapshots: ['heap_snapshots_total', 'Heap snapshots written on a detected leak', ['name']],
} as const satisfies Record<string, readonly [string, string, readonly string[]]>;

const NO_COUNT = { inc: () => {} };

/**
 * Registers (or joins, on a shared registry) the guardrail's metrics. Gauges are read from `latest()` when the
 * registry is scraped, so a check costs no metric work; guardrails on one registry are told apart by the `name`
 * label. With `metrics: false` nothing is registered.
 */
export function createMemoryMetrics(options: MetricsOptions, name: string, latest: () => MemoryAssessment | null): MemoryMetrics {
  const stop = new AbortController();
  // One listener per gauge on this guardrail's own signal: not a leak.
  setMaxListeners(GAUGES.length + 1, stop.signal);
  const forgotten = new Set<string>();
  const labels = { name };
  const config = { defaultPrefix: DEFAULT_MEMORY_METRICS_PREFIX, signal: stop.signal, labelNames: ['name'] };
  for (const [metric, help, read] of GAUGES) {
    scrapeGauge(options, { ...config, name: metric, help }, () => {
      const a = latest();
      const value = a === null ? undefined : read(a);
      return value === undefined ? [] : [[labels, value]];
    });
  }
  scrapeGauge(options, { ...config, name: 'cache_entries', help: 'Entries per probed cache at the last check', labelNames: ['name', 'cache'] }, () =>
    (latest()?.caches ?? []).filter((c) => !forgotten.has(c.name)).map((c) => [{ name, cache: c.name }, c.entries] as const),
  );
  const count = <L extends string>([metric, help, labelNames]: readonly [string, string, readonly L[]]): Pick<Counter<L>, 'inc'> => {
    if (options.metrics === false) return NO_COUNT;
    const prefix = resolveMetricsPrefix(options, DEFAULT_MEMORY_METRICS_PREFIX);
    return counter(resolveRegistry(options.registry), { name: metricName(prefix, metric), help, labelNames });
  };
  return {
    restarts: count(COUNTERS.restarts),
    restartsSkipped: count(COUNTERS.restartsSkipped),
    restartsFailed: count(COUNTERS.restartsFailed),
    heapSnapshots: count(COUNTERS.heapSnapshots),
    forgetCache: (cache) => forgotten.add(cache),
    close: () => stop.abort(),
  };
}
