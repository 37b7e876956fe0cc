import { Counter, Gauge, Histogram, register as globalRegistry, Summary } from 'prom-client';
import type { CounterConfiguration, GaugeConfiguration, HistogramConfiguration, Metric, Registry } from 'prom-client';
import { GuardError } from './guard-error.js';

/** prom-client's registry type, re-exported so packages and apps need no direct prom-client import for types. */
export type { Registry };

/** Options every package takes for its metrics. */
export interface MetricsOptions {
  /** Where metrics register; defaults to prom-client's global `register`, so an app's `/metrics` shows them. */
  readonly registry?: Registry;
  /** Prefix of metric names, joined with `_`: `guard_circuit` gives `guard_circuit_state`. Default: the package's own. */
  readonly metricsPrefix?: string;
  /** @deprecated Use {@link MetricsOptions.metricsPrefix} (read when that is unset). */
  readonly prefix?: string;
  /** `false` registers no metrics. Default `true`. */
  readonly metrics?: boolean;
}

/**
 * The metric prefix for these options: `metricsPrefix`, else the deprecated `prefix`, else the package's default.
 *
 * @example
 * const prefix = resolveMetricsPrefix(options, 'guard_memory');
 */
export function resolveMetricsPrefix(options: MetricsOptions | undefined, defaultPrefix: string): string {
  return options?.metricsPrefix ?? options?.prefix ?? defaultPrefix;
}

/** @returns the caller's registry, or prom-client's global one. */
export function resolveRegistry(registry?: Registry): Registry {
  return registry ?? globalRegistry;
}

/**
 * Joins a prefix and a name with `_` and checks the result is a valid Prometheus name.
 *
 * @example
 * metricName('parasite', 'detected_total'); // 'parasite_detected_total'
 */
export function metricName(prefix: string | undefined, name: string): string {
  const full = prefix ? `${prefix}_${name}` : name;
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(full)) {
    throw new GuardError('INVALID_OPTION', `metric name "${full}" is not a valid Prometheus name`, { details: { field: 'prefix' } });
  }
  return full;
}

type MetricClass<M> = new (config: never) => M;

function getOrCreate<M extends Metric>(kind: MetricClass<M>, registry: Registry, config: { name: string }): M {
  const existing = registry.getSingleMetric(config.name);
  if (existing) {
    if (!(existing instanceof (kind as unknown as new (...args: never[]) => M))) {
      throw new GuardError('INVALID_OPTION', `metric ${config.name} is already registered with another type`, {
        details: { field: 'registry', metric: config.name },
      });
    }
    return existing as M;
  }
  return new kind({ ...config, registers: [registry] } as never);
}

/**
 * Gets the counter of that name on the registry, creating it the first time.
 * Two instances on one registry share the metric instead of crashing.
 *
 * @example
 * const calls = counter(registry, { name: 'guard_circuit_calls_total', help: 'Calls by outcome', labelNames: ['circuit', 'outcome'] });
 */
export function counter<L extends string>(registry: Registry, config: CounterConfiguration<L>): Counter<L> {
  return getOrCreate(Counter as MetricClass<Counter<L>>, registry, config);
}

/** Gets or creates a gauge; see {@link counter}. */
export function gauge<L extends string>(registry: Registry, config: GaugeConfiguration<L>): Gauge<L> {
  return getOrCreate(Gauge as MetricClass<Gauge<L>>, registry, config);
}

/** Gets or creates a histogram; see {@link counter}. */
export function histogram<L extends string>(registry: Registry, config: HistogramConfiguration<L>): Histogram<L> {
  return getOrCreate(Histogram as MetricClass<Histogram<L>>, registry, config);
}

/** Gets or creates a summary; see {@link counter}. */
export function summary<L extends string>(
  registry: Registry,
  config: ConstructorParameters<typeof Summary<L>>[0],
): Summary<L> {
  return getOrCreate(Summary as MetricClass<Summary<L>>, registry, config);
}

/** One map per process, shared by every copy of this module (ESM and CJS builds, two installed versions). */
const REGISTRY_SCOPED = Symbol.for('@guard/core.registryScoped');
type ScopedStore = WeakMap<Registry, Map<string, unknown>>;

function scopedStore(): ScopedStore {
  const holder = globalThis as typeof globalThis & { [REGISTRY_SCOPED]?: ScopedStore };
  return (holder[REGISTRY_SCOPED] ??= new WeakMap());
}

/**
 * The value stored under `key` for `registry`, created by `create` on first use (or when `isStale` says the stored one
 * no longer works, e.g. after `registry.clear()`). The map lives on `globalThis` under a `Symbol.for` key, so the ESM
 * and the CommonJS copy of a package (both loaded in one process) get the same object for one registry: their
 * scrape-time metric sources land in one place and one scrape shows them all. Put a version in `key` when the
 * shape of the stored object may change between releases.
 *
 * @example
 * const sources = registryScoped(registry, '@guard/circuit.metrics.v1:guard_circuit', () => new CircuitMetrics(registry));
 */
export function registryScoped<T>(registry: Registry, key: string, create: () => T, isStale?: (value: T) => boolean): T {
  const store = scopedStore();
  let perKey = store.get(registry);
  if (perKey === undefined) store.set(registry, (perKey = new Map()));
  if (perKey.has(key)) {
    const existing = perKey.get(key) as T;
    if (isStale === undefined || !isStale(existing)) return existing;
  }
  const value = create();
  perKey.set(key, value);
  return value;
}
