import { counter, gauge, metricName, resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import type { Counter, Gauge } from 'prom-client';

/** The guardrail's metrics on one registry; shared by guardrails there (told apart by the `name` label). */
export interface MemoryMetrics {
  readonly rssBytes: Gauge<'name'>;
  readonly heapUsedBytes: Gauge<'name'>;
  readonly heapTotalBytes: Gauge<'name'>;
  readonly externalBytes: Gauge<'name'>;
  readonly arrayBuffersBytes: Gauge<'name'>;
  readonly baselineRssBytes: Gauge<'name'>;
  readonly growthRate: Gauge<'name'>;
  readonly growthFit: Gauge<'name'>;
  readonly leakDetected: Gauge<'name'>;
  readonly status: Gauge<'name'>;
  readonly timeToThreshold: Gauge<'name'>;
  readonly cacheEntries: Gauge<'name' | 'cache'>;
  readonly restarts: Counter<'name' | 'reason'>;
  readonly restartsSkipped: Counter<'name'>;
  readonly heapSnapshots: Counter<'name'>;
}

/** Default metric prefix. */
export const DEFAULT_MEMORY_METRICS_PREFIX = 'guard_memory';

export function createMemoryMetrics(options: MetricsOptions): MemoryMetrics {
  const registry = resolveRegistry(options.registry);
  const prefix = options.prefix ?? DEFAULT_MEMORY_METRICS_PREFIX;
  const g = (name: string, help: string) => gauge(registry, { name: metricName(prefix, name), help, labelNames: ['name'] as const });
  return {
    rssBytes: g('rss_bytes', 'Resident set size at the last check'),
    heapUsedBytes: g('heap_used_bytes', 'V8 heap used at the last check'),
    heapTotalBytes: g('heap_total_bytes', 'V8 heap allocated at the last check'),
    externalBytes: g('external_bytes', 'Memory of C++ objects bound to JS objects at the last check'),
    arrayBuffersBytes: g('array_buffers_bytes', 'Memory of ArrayBuffers and SharedArrayBuffers at the last check'),
    baselineRssBytes: g('baseline_rss_bytes', 'Mean RSS of the baseline samples'),
    growthRate: g('growth_rate_bytes_per_second', 'Least-squares RSS growth rate over the leak window'),
    growthFit: g('growth_fit_ratio', 'Goodness of fit (R squared, 0-1) of the RSS growth line'),
    leakDetected: g('leak_detected', '1 while a leak is detected (growth over the limit with a good fit), else 0'),
    status: g('status', 'Guardrail status: 0 healthy, 1 warning, 2 critical'),
    timeToThreshold: g('time_to_threshold_seconds', 'Predicted time until RSS reaches its threshold (+Inf when not growing)'),
    cacheEntries: gauge(registry, {
      name: metricName(prefix, 'cache_entries'),
      help: 'Entries per probed cache at the last check',
      labelNames: ['name', 'cache'] as const,
    }),
    restarts: counter(registry, {
      name: metricName(prefix, 'restarts_total'),
      help: 'Restarts the guardrail started, by reason',
      labelNames: ['name', 'reason'] as const,
    }),
    restartsSkipped: counter(registry, {
      name: metricName(prefix, 'restarts_skipped_total'),
      help: 'Restarts refused by the restart budget (at most one per cooldown)',
      labelNames: ['name'] as const,
    }),
    heapSnapshots: counter(registry, {
      name: metricName(prefix, 'heap_snapshots_total'),
      help: 'Heap snapshots written on a detected leak',
      labelNames: ['name'] as const,
    }),
  };
}
