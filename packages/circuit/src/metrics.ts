import { counter, gauge, metricName, registryScoped, resolveMetricsPrefix, resolveRegistry, scrapeGauge } from '@guard/core';
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

/**
 * The breakers' metrics on one registry. Values are read from live breakers at scrape time (through a `WeakRef`, so
 * a breaker nobody closed is not kept alive), so a call costs only a few integer increments; transitions (rare)
 * increment a counter directly. Bulkheads and pools report through core's `scrapeGauge` (see {@link circuitGauge}).
 */
export class CircuitMetrics {
  readonly #breakers = new Set<WeakRef<BreakerMetricsSource>>();
  readonly #transitions;
  readonly #calls;
  readonly #pruneAt = new Map<Set<WeakRef<object>>, number>();

  constructor(registry: Registry, prefix: string) {
    const breakers = this.#breakers;
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

/**
 * A gauge of this package read at scrape time (core's `scrapeGauge` under the `guard_circuit` prefix); `read` is
 * dropped when `signal` aborts (the owner's `close()`).
 *
 * @example
 * circuitGauge(options, { name: 'bulkhead_queued', help: 'Calls waiting', labelNames: ['bulkhead'] }, signal, () => [[{ bulkhead: name }, queued]]);
 */
export function circuitGauge(
  options: CircuitMetricsOptions,
  config: { readonly name: string; readonly help: string; readonly labelNames: readonly string[] },
  signal: AbortSignal,
  read: () => Iterable<readonly [Record<string, string>, number]>,
): void {
  scrapeGauge(options, { ...config, defaultPrefix: 'guard_circuit', signal }, read);
}
