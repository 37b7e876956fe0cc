import type { Gauge, LabelValues } from 'prom-client';
import { gauge, metricName, resolveMetricsPrefix, resolveRegistry } from './metrics.js';
import type { MetricsOptions } from './metrics.js';

/** What a scrape-time gauge reads: one value (no labels), or a value per label set. */
export type ScrapeRead = () => number | Iterable<readonly [labels: Record<string, string>, value: number]>;

/** The metric of {@link scrapeGauge}. */
export interface ScrapeGaugeConfig {
  /** The name after the prefix, e.g. `pool_connections`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  /** The package's prefix when the options name none. Default `guard`. */
  readonly defaultPrefix?: string;
  /** Stops reading (the reader is dropped) when it aborts: pass the signal your `close()` aborts. */
  readonly signal?: AbortSignal;
}

/** The readers of one gauge, on the gauge itself under a registered symbol: the ESM and CJS copies of core share them. */
const READERS = Symbol.for('@guard/core.scrapeGauge.readers.v1');

type ScrapedGauge = Gauge<string> & { [READERS]?: Set<ScrapeRead> };

/**
 * A gauge whose value is read when Prometheus scrapes (in prom-client's `collect()`), for values that already live
 * in an object: nothing is copied on every change. Every caller on one registry and name adds a reader; a scrape
 * resets the gauge and adds up what the readers return (two pools reporting `{ state: 'idle' }` sum). A reader
 * that throws is skipped for that scrape. Returns undefined with `metrics: false`.
 *
 * @example
 * scrapeGauge(options, { name: 'queue_depth', help: 'Jobs waiting', labelNames: ['queue'], defaultPrefix: 'guard_jobs', signal },
 *   () => [[{ queue: this.name }, this.#queue.length]]);
 */
export function scrapeGauge(options: MetricsOptions, config: ScrapeGaugeConfig, read: ScrapeRead): Gauge<string> | undefined {
  if (options.metrics === false) return undefined;
  const metric = gauge(resolveRegistry(options.registry), {
    name: metricName(resolveMetricsPrefix(options, config.defaultPrefix ?? 'guard'), config.name),
    help: config.help,
    labelNames: [...(config.labelNames ?? [])],
    collect(this: ScrapedGauge) {
      this.reset();
      for (const reader of this[READERS] ?? []) addReading(this, reader);
    },
  }) as ScrapedGauge;
  const readers = (metric[READERS] ??= new Set());
  const { signal } = config;
  if (signal?.aborted) return metric;
  readers.add(read);
  signal?.addEventListener('abort', () => readers.delete(read), { once: true });
  return metric;
}

function addReading(metric: Gauge<string>, read: ScrapeRead): void {
  try {
    const reading = read();
    if (typeof reading === 'number') metric.inc(reading);
    else for (const [labels, value] of reading) metric.inc(labels as LabelValues<string>, value);
  } catch {
    // One broken reader must not fail the whole scrape.
  }
}
