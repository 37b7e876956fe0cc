import { counter, histogram, metricName, resolveMetricsPrefix, resolveRegistry, scrapeGauge } from '@guard/core';
import type { MetricsOptions, ScrapeGaugeConfig, ScrapeRead } from '@guard/core';
import type { Gauge } from 'prom-client';

/**
 * The seed's Parasite Guard detection metrics (names fixed by DESIGN.md; the prefix is configurable).
 *
 * @example
 * attach(context) { context.metrics?.detected.inc({ component: 'websocket', pattern: 'no_ack', severity: 'critical' }); }
 */
export interface ParasiteMetrics {
  /** `parasite_detected_total{component,pattern,severity}`. */
  readonly detected: ReturnType<typeof counter<'component' | 'pattern' | 'severity'>>;
  /** `parasite_eventbus_subscriptions{event_type}`: read from the tracked emitters when Prometheus scrapes. */
  readonly eventbusSubscriptions: Gauge<'event_type'>;
  /** `parasite_db_connections_active`: read from the tracked pools when Prometheus scrapes. */
  readonly dbConnectionsActive: Gauge<string>;
  /** `parasite_detection_duration_seconds{component}`. */
  readonly detectionDuration: ReturnType<typeof histogram<'component'>>;
  /** `parasite_websocket_errors_total{code}`: tracked sockets closed by an error (`code` is ws's, e.g. `WS_ERR_INVALID_UTF8`). */
  readonly websocketErrors: ReturnType<typeof counter<'code'>>;
}

/** The gauges whose values live in the trackers, read at scrape time (every tracker on a registry adds its share). */
const SCRAPED = {
  eventbusSubscriptions: { name: 'eventbus_subscriptions', help: 'Listeners currently registered on tracked emitters, by event type', labelNames: ['event_type'] },
  dbConnectionsActive: { name: 'db_connections_active', help: 'Database connections currently checked out of tracked pools' },
} as const satisfies Record<string, ScrapeGaugeConfig>;

/** A gauge of {@link ParasiteMetrics} whose value a tracker supplies at scrape time. */
export type ScrapedMetric = keyof typeof SCRAPED;

/** Where each metrics object registers: what a tracker's scrape-time reader needs. */
const resolvedOptions = new WeakMap<ParasiteMetrics, MetricsOptions>();

/** Adds nothing: keeps a scrape gauge registered before any tracker reads into it (one function, so added once). */
const NO_READING: ScrapeRead = () => [];

/**
 * Gets or creates the detection metrics on a registry (default: prom-client's global one), named
 * `<metricsPrefix>_...` (default `parasite`; the deprecated `prefix` is read when `metricsPrefix` is unset).
 * Two chains on one registry share them; the two gauges of tracked resources add up every tracker's share.
 *
 * @example
 * const metrics = createParasiteMetrics({ registry, metricsPrefix: 'parasite' });
 * metrics.detected.inc({ component: 'websocket', pattern: 'no_ack', severity: 'critical' });
 */
export function createParasiteMetrics(options: MetricsOptions = {}): ParasiteMetrics {
  const registry = resolveRegistry(options.registry);
  const prefix = resolveMetricsPrefix(options, 'parasite');
  const resolved: MetricsOptions = { registry, metricsPrefix: prefix };
  const metrics: ParasiteMetrics = {
    eventbusSubscriptions: scrapeGauge(resolved, SCRAPED.eventbusSubscriptions, NO_READING) as Gauge<'event_type'>,
    dbConnectionsActive: scrapeGauge(resolved, SCRAPED.dbConnectionsActive, NO_READING)!,
    detected: counter(registry, {
      name: metricName(prefix, 'detected_total'),
      help: 'Parasitic patterns detected, by component, pattern and severity',
      labelNames: ['component', 'pattern', 'severity'],
    }),
    detectionDuration: histogram(registry, {
      name: metricName(prefix, 'detection_duration_seconds'),
      help: 'Time one detector scan took, by component',
      labelNames: ['component'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    }),
    websocketErrors: counter(registry, {
      name: metricName(prefix, 'websocket_errors_total'),
      help: 'Tracked WebSocket sockets that failed (hostile frame, protocol error) and were closed, by error code',
      labelNames: ['code'],
    }),
  };
  resolvedOptions.set(metrics, resolved);
  return metrics;
}

/**
 * Reads `owner`'s share of a scraped gauge at every scrape, until `signal` aborts or `owner` is garbage-collected
 * (held by `WeakRef`: a tracker dropped without `close()` is not kept alive by the registry). `read` gets the owner
 * as its argument, so it need not capture it. Does nothing for a metrics object not made by {@link createParasiteMetrics}.
 */
export function readAtScrape<O extends object>(
  metrics: ParasiteMetrics,
  metric: ScrapedMetric,
  owner: O,
  read: (owner: O) => ReturnType<ScrapeRead>,
  signal: AbortSignal,
): void {
  const options = resolvedOptions.get(metrics);
  if (options === undefined) return;
  const ref = new WeakRef(owner);
  const collected = new AbortController();
  scrapeGauge(options, { ...SCRAPED[metric], signal: AbortSignal.any([signal, collected.signal]) }, () => {
    const current = ref.deref();
    if (current !== undefined) return read(current);
    collected.abort();
    return [];
  });
}
