import { counter, gauge, histogram, metricName, resolveMetricsPrefix, resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';

/**
 * The seed's Parasite Guard detection metrics (names fixed by DESIGN.md; the prefix is configurable).
 *
 * @example
 * attach(context) { context.metrics?.dbConnectionsActive.inc(); }
 */
export interface ParasiteMetrics {
  /** `parasite_detected_total{component,pattern,severity}`. */
  readonly detected: ReturnType<typeof counter<'component' | 'pattern' | 'severity'>>;
  /** `parasite_eventbus_subscriptions{event_type}`. */
  readonly eventbusSubscriptions: ReturnType<typeof gauge<'event_type'>>;
  /** `parasite_db_connections_active`. */
  readonly dbConnectionsActive: ReturnType<typeof gauge<string>>;
  /** `parasite_detection_duration_seconds{component}`. */
  readonly detectionDuration: ReturnType<typeof histogram<'component'>>;
  /** `parasite_websocket_errors_total{code}`: tracked sockets closed by an error (`code` is ws's, e.g. `WS_ERR_INVALID_UTF8`). */
  readonly websocketErrors: ReturnType<typeof counter<'code'>>;
}

/**
 * Gets or creates the detection metrics on a registry (default: prom-client's global one), named
 * `<metricsPrefix>_...` (default `parasite`; the deprecated `prefix` is read when `metricsPrefix` is unset).
 * Two chains on one registry share them.
 *
 * @example
 * const metrics = createParasiteMetrics({ registry, metricsPrefix: 'parasite' });
 * metrics.detected.inc({ component: 'websocket', pattern: 'no_ack', severity: 'critical' });
 */
export function createParasiteMetrics(options: MetricsOptions = {}): ParasiteMetrics {
  const registry = resolveRegistry(options.registry);
  const prefix = resolveMetricsPrefix(options, 'parasite');
  return {
    detected: counter(registry, {
      name: metricName(prefix, 'detected_total'),
      help: 'Parasitic patterns detected, by component, pattern and severity',
      labelNames: ['component', 'pattern', 'severity'],
    }),
    eventbusSubscriptions: gauge(registry, {
      name: metricName(prefix, 'eventbus_subscriptions'),
      help: 'Listeners currently registered on tracked emitters, by event type',
      labelNames: ['event_type'],
    }),
    dbConnectionsActive: gauge(registry, {
      name: metricName(prefix, 'db_connections_active'),
      help: 'Database connections currently checked out of tracked pools',
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
}
