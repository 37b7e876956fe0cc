import { counter, histogram, metricName, resolveMetricsPrefix, resolveRegistry, scrapeGauge } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import type { Counter, Histogram } from 'prom-client';

/** What a {@link DeferredSanitizer} records as it runs jobs. */
export interface SanitizerMetrics {
  /** `parasite_sanitized_total{component,outcome}`. */
  readonly sanitized: Counter<'component' | 'outcome'>;
  /** `parasite_sanitization_duration_seconds{component}`. */
  readonly duration: Histogram<'component'>;
}

/** How many jobs run now, per component (a component with none reads 0). */
export type RunningJobs = () => Iterable<readonly [component: string, running: number]>;

/**
 * The sanitizer's metrics on `options.registry` (prefix `parasite` unless `metricsPrefix` says otherwise), or undefined
 * with `metrics: false`. `parasite_active_sanitizations{component}` is read from `running` when Prometheus scrapes,
 * until `signal` aborts; sanitizers sharing a registry add up.
 */
export function createSanitizerMetrics(options: MetricsOptions, running: RunningJobs, signal: AbortSignal): SanitizerMetrics | undefined {
  if (options.metrics === false) return undefined;
  const registry = resolveRegistry(options.registry);
  const prefix = resolveMetricsPrefix(options, 'parasite');
  const activeHelp = 'Sanitizations running now, by component';
  scrapeGauge({ registry, metricsPrefix: prefix }, { name: 'active_sanitizations', help: activeHelp, labelNames: ['component'], signal }, () =>
    Array.from(running(), ([component, n]) => [{ component }, n] as const),
  );
  const sanitized = counter(registry, { name: metricName(prefix, 'sanitized_total'), help: 'Sanitizations finished, by component and outcome', labelNames: ['component', 'outcome'] });
  const buckets = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const duration = histogram(registry, { name: metricName(prefix, 'sanitization_duration_seconds'), help: 'How long one sanitization took, by component', labelNames: ['component'], buckets });
  return { sanitized, duration };
}
