import { counter, gauge, metricName, resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import type { Counter, Gauge } from 'prom-client';

/** The gauges, by what they show; their values are read from the guardrails at scrape time. */
export type MemoryGaugeKey =
  | 'rssBytes'
  | 'heapUsedBytes'
  | 'heapTotalBytes'
  | 'externalBytes'
  | 'arrayBuffersBytes'
  | 'baselineRssBytes'
  | 'growthRate'
  | 'growthFit'
  | 'leakDetected'
  | 'status'
  | 'timeToThreshold'
  | 'cacheEntries';

/** Writes one guardrail's current value(s) into a gauge; called when the registry is scraped. */
export type GaugeSource = (metric: Gauge<string>, key: MemoryGaugeKey) => void;

/** The guardrail's metrics on one registry; shared by guardrails there (told apart by the `name` label). */
export interface MemoryMetrics {
  readonly gauges: Readonly<Record<MemoryGaugeKey, Gauge<string>>>;
  readonly restarts: Counter<'name' | 'reason'>;
  readonly restartsSkipped: Counter<'name'>;
  readonly restartsFailed: Counter<'name' | 'reason'>;
  readonly heapSnapshots: Counter<'name'>;
  /** Registers a guardrail's gauge source; returns a function that removes it and its label values. */
  attach(name: string, source: GaugeSource): () => void;
}

/** Default metric prefix. */
export const DEFAULT_MEMORY_METRICS_PREFIX = 'guard_memory';

// The sources live on the metric objects (per registry), not in this module: no module state.
const SOURCES = Symbol.for('@guard/memory.gaugeSources');
type WithSources = Gauge<string> & { [SOURCES]?: Set<GaugeSource> };

const GAUGES: Record<MemoryGaugeKey, [name: string, help: string]> = {
  rssBytes: ['rss_bytes', 'Resident set size at the last check'],
  heapUsedBytes: ['heap_used_bytes', 'V8 heap used at the last check'],
  heapTotalBytes: ['heap_total_bytes', 'V8 heap allocated at the last check'],
  externalBytes: ['external_bytes', 'Memory of C++ objects bound to JS objects at the last check'],
  arrayBuffersBytes: ['array_buffers_bytes', 'Memory of ArrayBuffers and SharedArrayBuffers at the last check'],
  baselineRssBytes: ['baseline_rss_bytes', 'Mean RSS of the baseline samples'],
  growthRate: ['growth_rate_bytes_per_second', 'Least-squares RSS growth rate over the leak window'],
  growthFit: ['growth_fit_ratio', 'Goodness of fit (R squared, 0-1) of the RSS growth line'],
  leakDetected: ['leak_detected', '1 while a leak is detected (growth over the limit with a good fit), else 0'],
  status: ['status', 'Guardrail status: 0 healthy, 1 warning, 2 critical'],
  timeToThreshold: ['time_to_threshold_seconds', 'Predicted time until RSS reaches its threshold (+Inf when not growing)'],
  cacheEntries: ['cache_entries', 'Entries per probed cache at the last check'],
};

/**
 * Gets or creates the metrics on the registry. Gauges are filled at scrape time from the attached guardrails
 * (`collect`), so a check costs no metric work; counters count as events happen.
 */
export function createMemoryMetrics(options: MetricsOptions): MemoryMetrics {
  const registry = resolveRegistry(options.registry);
  const prefix = options.prefix ?? DEFAULT_MEMORY_METRICS_PREFIX;
  const gauges = {} as Record<MemoryGaugeKey, Gauge<string>>;
  for (const key of Object.keys(GAUGES) as MemoryGaugeKey[]) {
    const [name, help] = GAUGES[key];
    const metric = gauge(registry, {
      name: metricName(prefix, name),
      help,
      labelNames: key === 'cacheEntries' ? ['name', 'cache'] : ['name'],
      collect(this: WithSources) {
        const sources = this[SOURCES];
        if (sources) for (const source of sources) source(this, key);
      },
    }) as WithSources;
    metric[SOURCES] ??= new Set();
    gauges[key] = metric;
  }
  return {
    gauges,
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
    restartsFailed: counter(registry, {
      name: metricName(prefix, 'restarts_failed_total'),
      help: 'Restarts the process survived (still alive restartGraceMs after terminate), by reason',
      labelNames: ['name', 'reason'] as const,
    }),
    heapSnapshots: counter(registry, {
      name: metricName(prefix, 'heap_snapshots_total'),
      help: 'Heap snapshots written on a detected leak',
      labelNames: ['name'] as const,
    }),
    attach(name, source) {
      for (const metric of Object.values(gauges)) (metric as WithSources)[SOURCES]!.add(source);
      return () => {
        for (const [key, metric] of Object.entries(gauges)) {
          (metric as WithSources)[SOURCES]!.delete(source);
          if (key !== 'cacheEntries') metric.remove({ name });
        }
      };
    },
  };
}
