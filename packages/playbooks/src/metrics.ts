import { counter, gauge, histogram, resolveMetricsPrefix, resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { Registry } from 'prom-client';
import type { Counter, Gauge, Histogram } from 'prom-client';

/**
 * The default metric prefix of this package.
 *
 * @example
 * new MessageBus({ metricsPrefix: DEFAULT_METRICS_PREFIX }); // guard_playbooks_bus_messages_total
 */
export const DEFAULT_METRICS_PREFIX = 'guard_playbooks';

const FLUSHERS = Symbol.for('@guard/playbooks.flushers');

type Flushable = { [FLUSHERS]?: Set<() => void> };

/**
 * The registry the caller gave, or prom-client's global one. With `metrics: false` a private registry nobody
 * scrapes: the package's classes keep one code path and register nothing anywhere a user sees.
 */
export function registryOf(options: MetricsOptions | undefined): Registry {
  if (options?.metrics === false) return new Registry();
  return resolveRegistry(options?.registry);
}

/** `<metricsPrefix>_<suffix>` (default prefix `guard_playbooks`; the deprecated `prefix` is read when unset). */
export function metricNameOf(options: MetricsOptions | undefined, suffix: string): string {
  return `${resolveMetricsPrefix(options, DEFAULT_METRICS_PREFIX)}_${suffix}`;
}

/**
 * A counter whose hot-path increments are kept in plain numbers and pushed into prom-client
 * only when the registry is scraped (no label hashing per message).
 */
export function pulledCounter<L extends string>(
  options: MetricsOptions | undefined,
  suffix: string,
  help: string,
  labelNames: readonly L[],
): { metric: Counter<L>; attach(flush: () => void): () => void } {
  const metric = counter<L>(registryOf(options), {
    name: metricNameOf(options, suffix),
    help,
    labelNames,
    collect(this: Counter<L>) {
      for (const flush of (this as unknown as Flushable)[FLUSHERS] ?? []) flush();
    },
  });
  return {
    metric,
    attach(flush) {
      const holder = metric as unknown as Flushable;
      (holder[FLUSHERS] ??= new Set()).add(flush);
      return () => {
        flush();
        holder[FLUSHERS]?.delete(flush);
      };
    },
  };
}

/** Gets or creates a counter named `<prefix>_<suffix>`. */
export function playbooksCounter<L extends string>(
  options: MetricsOptions | undefined,
  suffix: string,
  help: string,
  labelNames: readonly L[],
): Counter<L> {
  return counter<L>(registryOf(options), { name: metricNameOf(options, suffix), help, labelNames });
}

/** Gets or creates a gauge named `<prefix>_<suffix>`. */
export function playbooksGauge<L extends string>(
  options: MetricsOptions | undefined,
  suffix: string,
  help: string,
  labelNames: readonly L[],
): Gauge<L> {
  return gauge<L>(registryOf(options), { name: metricNameOf(options, suffix), help, labelNames });
}

/** Gets or creates a histogram named `<prefix>_<suffix>` (seconds buckets). */
export function playbooksHistogram<L extends string>(
  options: MetricsOptions | undefined,
  suffix: string,
  help: string,
  labelNames: readonly L[],
): Histogram<L> {
  return histogram<L>(registryOf(options), {
    name: metricNameOf(options, suffix),
    help,
    labelNames,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
}
