import type { MetricsOptions } from '@guard/core';
import { counter, histogram, metricName, resolveMetricsPrefix, resolveRegistry } from '@guard/core';
import type { Counter, Histogram } from 'prom-client';

/** The prefix of immune's metrics unless the options name another. */
export const IMMUNE_METRICS_PREFIX = 'guard_immune';

interface MetricConfig<L extends string> {
  /** The name after the prefix, e.g. `events_total`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

/**
 * One of immune's counters on the options' registry under their prefix (default `guard_immune`); undefined with
 * `metrics: false`, so callers count with `counter?.inc()`.
 *
 * @example
 * this.#rejected = immuneCounter(options, { name: 'publish_rejected_total', help: 'Events not stored', labelNames: ['reason'] });
 */
export function immuneCounter<L extends string = never>(options: MetricsOptions, config: MetricConfig<L>): Counter<L> | undefined {
  if (options.metrics === false) return undefined;
  return counter<L>(resolveRegistry(options.registry), { ...config, name: metricName(resolveMetricsPrefix(options, IMMUNE_METRICS_PREFIX), config.name), labelNames: [...(config.labelNames ?? [])] });
}

/**
 * One of immune's histograms; see {@link immuneCounter}.
 *
 * @example
 * const seconds = immuneHistogram(options, { name: 'store_commit_duration_seconds', help: 'Commit duration', labelNames: ['store'], buckets: [0.001, 0.01, 0.1] });
 */
export function immuneHistogram<L extends string = never>(options: MetricsOptions, config: MetricConfig<L> & { readonly buckets: readonly number[] }): Histogram<L> | undefined {
  if (options.metrics === false) return undefined;
  return histogram<L>(resolveRegistry(options.registry), {
    ...config,
    name: metricName(resolveMetricsPrefix(options, IMMUNE_METRICS_PREFIX), config.name),
    labelNames: [...(config.labelNames ?? [])],
    buckets: [...config.buckets],
  });
}
