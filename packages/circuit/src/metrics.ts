import { counter, gauge, metricName, registryScoped, resolveMetricsPrefix, resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';

/** A prom-client `Registry` (typed through core, so this package needs no direct prom-client dependency). */
export type Registry = NonNullable<MetricsOptions['registry']>;

/**
 * Metric options shared by every class of this package: `registry` (default prom-client's global `register`),
 * `metricsPrefix` (default `guard_circuit`; the older `prefix` is read when it is unset) and `metrics: false`.
 *
 * @example
 * new CircuitBreaker({ name: 'db', registry: myRegistry, metricsPrefix: 'guard_circuit' });
 */
export type CircuitMetricsOptions = MetricsOptions;

/** Calls counted per outcome, in this order. */
export const CALL_OUTCOMES = ['success', 'failure', 'timeout', 'rejected'] as const;

// Registered symbols (`Symbol.for`): the ESM and the CJS copy of this package read each other's breakers at scrape time.
/** @internal Reads a breaker's state code: 0 closed, 1 half_open, 2 open. */
export const STATE_CODE: unique symbol = Symbol.for('@guard/circuit.stateCode.v1');
/** @internal Takes a breaker's call counts since the last take, in {@link CALL_OUTCOMES} order. */
export const CALL_DELTAS: unique symbol = Symbol.for('@guard/circuit.callDeltas.v1');

/** What a breaker exposes to the metrics collector (read at scrape time, never per call). */
export interface BreakerMetricsSource {
  readonly name: string;
  [STATE_CODE](): number;
  [CALL_DELTAS](): readonly number[];
}

/** What a bulkhead exposes to the metrics collector. */
export interface BulkheadMetricsSource {
  readonly name: string;
  readonly running: number;
  readonly queued: number;
}

/** What a connection pool exposes to the metrics collector. */
export interface PoolMetricsSource {
  connectionCounts(): { readonly active: number; readonly idle: number; readonly connecting: number };
}

/**
 * The package's metrics on one registry. Values are read from live objects at scrape time, so a call costs
 * only a few integer increments; transitions (rare) increment a counter directly.
 */
export class CircuitMetrics {
  readonly #breakers = new Set<WeakRef<BreakerMetricsSource>>();
  readonly #bulkheads = new Set<WeakRef<BulkheadMetricsSource>>();
  readonly #pools = new Set<WeakRef<PoolMetricsSource>>();
  readonly #transitions;
  readonly #calls;
  readonly #pruneAt = new Map<Set<WeakRef<object>>, number>();

  constructor(registry: Registry, prefix: string) {
    const breakers = this.#breakers;
    const bulkheads = this.#bulkheads;
    const pools = this.#pools;
    const flush = (source: BreakerMetricsSource) => this.#flush(source);
    gauge(registry, {
      name: metricName(prefix, 'state'),
      help: 'Circuit breaker state: 0 closed, 1 half_open, 2 open',
      labelNames: ['circuit'] as const,
      collect() {
        this.reset();
        for (const ref of breakers) {
          const source = ref.deref();
          if (source === undefined) breakers.delete(ref);
          else this.set({ circuit: source.name }, source[STATE_CODE]());
        }
      },
    });
    this.#calls = counter(registry, {
      name: metricName(prefix, 'calls_total'),
      help: 'Calls through circuit breakers by outcome (success, failure, timeout, rejected)',
      labelNames: ['circuit', 'outcome'] as const,
      collect() {
        for (const ref of breakers) {
          const source = ref.deref();
          if (source !== undefined) flush(source);
        }
      },
    });
    this.#transitions = counter(registry, {
      name: metricName(prefix, 'transitions_total'),
      help: 'Circuit breaker state transitions by the state entered',
      labelNames: ['circuit', 'state'] as const,
    });
    const bulkheadGauge = (name: string, help: string, read: (b: BulkheadMetricsSource) => number) =>
      gauge(registry, {
        name: metricName(prefix, name),
        help,
        labelNames: ['bulkhead'] as const,
        collect() {
          this.reset();
          for (const ref of bulkheads) {
            const source = ref.deref();
            if (source === undefined) bulkheads.delete(ref);
            else this.inc({ bulkhead: source.name }, read(source));
          }
        },
      });
    bulkheadGauge('bulkhead_running', 'Calls running inside a bulkhead', (b) => b.running);
    bulkheadGauge('bulkhead_queued', 'Calls waiting in a bulkhead queue', (b) => b.queued);
    gauge(registry, {
      name: metricName(prefix, 'pool_connections'),
      help: 'WebSocket connections of connection pools by state (active, idle, connecting)',
      labelNames: ['state'] as const,
      collect() {
        let active = 0;
        let idle = 0;
        let connecting = 0;
        for (const ref of pools) {
          const source = ref.deref();
          if (source === undefined) {
            pools.delete(ref);
            continue;
          }
          const counts = source.connectionCounts();
          active += counts.active;
          idle += counts.idle;
          connecting += counts.connecting;
        }
        this.set({ state: 'active' }, active);
        this.set({ state: 'idle' }, idle);
        this.set({ state: 'connecting' }, connecting);
      },
    });
  }

  #flush(source: BreakerMetricsSource): void {
    const deltas = source[CALL_DELTAS]();
    for (let i = 0; i < CALL_OUTCOMES.length; i++) {
      if (deltas[i]! > 0) this.#calls.inc({ circuit: source.name, outcome: CALL_OUTCOMES[i]! }, deltas[i]!);
    }
  }

  #add<T extends object>(set: Set<WeakRef<T>>, source: T): WeakRef<T> {
    const ref = new WeakRef(source);
    set.add(ref);
    // Dead refs are dropped at scrape time; also here, amortized O(1), in case nobody scrapes.
    const pruneAt = this.#pruneAt.get(set) ?? 1024;
    if (set.size >= pruneAt) {
      for (const entry of set) if (entry.deref() === undefined) set.delete(entry);
      this.#pruneAt.set(set, Math.max(1024, set.size * 2));
    }
    return ref;
  }

  addBreaker(source: BreakerMetricsSource): WeakRef<BreakerMetricsSource> {
    return this.#add(this.#breakers, source);
  }

  /** Reports the last counts of a closing breaker and forgets it. */
  removeBreaker(ref: WeakRef<BreakerMetricsSource>): void {
    const source = ref.deref();
    if (source !== undefined) this.#flush(source);
    this.#breakers.delete(ref);
  }

  transition(circuit: string, state: string): void {
    this.#transitions.inc({ circuit, state });
  }

  addBulkhead(source: BulkheadMetricsSource): WeakRef<BulkheadMetricsSource> {
    return this.#add(this.#bulkheads, source);
  }

  removeBulkhead(ref: WeakRef<BulkheadMetricsSource>): void {
    this.#bulkheads.delete(ref);
  }

  addPool(source: PoolMetricsSource): WeakRef<PoolMetricsSource> {
    return this.#add(this.#pools, source);
  }

  removePool(ref: WeakRef<PoolMetricsSource>): void {
    this.#pools.delete(ref);
  }
}

/**
 * The shared metrics for these options, created on first use; undefined when metrics are off. One instance per
 * registry and prefix in the whole process (kept through `registryScoped` on `globalThis`), so breakers created
 * through the ESM build and through the CJS build of this package land in one `guard_circuit_*` scrape.
 */
export function circuitMetrics(options: CircuitMetricsOptions): CircuitMetrics | undefined {
  if (options.metrics === false) return undefined;
  const registry = resolveRegistry(options.registry);
  const prefix = resolveMetricsPrefix(options, 'guard_circuit');
  // Version the key: a copy of another release must not share an object whose shape it does not know.
  return registryScoped(
    registry,
    `@guard/circuit.metrics.v1:${prefix}`,
    () => new CircuitMetrics(registry, prefix),
    // Recreate after `registry.clear()` (common between tests): the cached metrics would no longer be exported.
    () => registry.getSingleMetric(metricName(prefix, 'state')) === undefined,
  );
}
