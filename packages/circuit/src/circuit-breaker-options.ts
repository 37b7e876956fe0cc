import { GuardError, assertNumberOption } from '@guard/core';
import type { GuardBus, Logger } from '@guard/core';
import type { CircuitBreakerMode } from './breaker.js';
import type { CircuitBreakerSnapshot } from './breaker-snapshot.js';
import { ConsecutiveBreaker } from './consecutive-breaker.js';
import type { CircuitMetricsOptions } from './metrics.js';
import { RateBreaker } from './rate-breaker.js';

/**
 * Options of {@link CircuitBreaker}.
 *
 * @example
 * const options: CircuitBreakerOptions = { name: 'search', mode: 'rate', failureRateThreshold: 0.5, minimumThroughput: 20 };
 */
export interface CircuitBreakerOptions extends CircuitMetricsOptions {
  /** Names the breaker in events, errors and metric labels (keep the set small and fixed); default `'default'`. */
  readonly name?: string;
  /** `consecutive` (default): open after `failureThreshold` failures in a row. `rate`: open on a failure ratio over a window. */
  readonly mode?: CircuitBreakerMode;
  /** Consecutive mode: failures in a row that open the circuit; default 5. */
  readonly failureThreshold?: number;
  /** Rate mode: failure ratio (0-1] over the window that opens the circuit; default 0.5. */
  readonly failureRateThreshold?: number;
  /** Rate mode: length of the rolling window; default 10 000 ms. */
  readonly windowMs?: number;
  /** Rate mode: buckets the window is split into (memory is O(buckets)); default 10. */
  readonly windowBuckets?: number;
  /** Rate mode: calls the window needs before the ratio may open the circuit; default 10. */
  readonly minimumThroughput?: number;
  /** How long the circuit stays open before it lets probes through; default 60 000 ms. */
  readonly resetTimeoutMs?: number;
  /** Probes allowed at once while half-open; others fail fast; default 1. */
  readonly halfOpenMaxConcurrent?: number;
  /** Successful probes that close the circuit; default 3. */
  readonly halfOpenSuccesses?: number;
  /**
   * How long a half-open probe may run; default 30 000 ms. A probe that has not settled by then is aborted with
   * `TIMEOUT`, counts as a failure and reopens the circuit. Also sent with every `breakerStateChange` event.
   */
  readonly probeTimeoutMs?: number;
  /** Which errors count as failures; others pass through without touching the state. Default: every error. */
  readonly shouldCount?: (error: unknown) => boolean;
  /** Hydrates the state, e.g. from a saved `toJSON()` (a rate window included). A `half_open` snapshot resumes as open with its reset time elapsed. */
  readonly initialState?: Partial<Omit<CircuitBreakerSnapshot, 'name' | 'mode'>>;
  /** Receives `breakerStateChange` events. */
  readonly bus?: GuardBus;
  /** Where errors thrown by state listeners are reported. */
  readonly logger?: Logger;
}

/** The validated numbers and predicate of a breaker, with its strategy. */
export interface BreakerSettings {
  readonly name: string;
  readonly resetTimeoutMs: number;
  readonly halfOpenMaxConcurrent: number;
  readonly halfOpenSuccesses: number;
  readonly probeTimeoutMs: number;
  readonly shouldCount: ((error: unknown) => boolean) | undefined;
  /** Builds the strategy `mode` selects. */
  readonly createBreaker: () => ConsecutiveBreaker | RateBreaker;
}

/**
 * Validates breaker options (each bad one fails with `INVALID_OPTION` naming the field) and fills in defaults.
 * The connection pool calls it to check its `breaker` options at construction.
 *
 * @example
 * const settings = breakerSettings({ failureThreshold: 3 });
 */
export function breakerSettings(options: CircuitBreakerOptions): BreakerSettings {
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || name === '') {
    throw new GuardError('INVALID_OPTION', 'name must be a non-empty string', { details: { field: 'name' } });
  }
  const mode = options.mode ?? 'consecutive';
  if (mode !== 'consecutive' && mode !== 'rate') {
    throw new GuardError('INVALID_OPTION', `mode must be 'consecutive' or 'rate', got ${String(mode)}`, { details: { field: 'mode' } });
  }
  const {
    failureThreshold = 5,
    failureRateThreshold = 0.5,
    windowMs = 10_000,
    windowBuckets = 10,
    minimumThroughput = 10,
    resetTimeoutMs = 60_000,
    halfOpenMaxConcurrent = 1,
    halfOpenSuccesses = 3,
    probeTimeoutMs = 30_000,
    shouldCount,
  } = options;
  assertNumberOption('failureThreshold', failureThreshold, { min: 1, integer: true });
  assertNumberOption('failureRateThreshold', failureRateThreshold, { min: Number.MIN_VALUE, max: 1 });
  assertNumberOption('windowMs', windowMs, { min: 1, max: Number.MAX_SAFE_INTEGER });
  assertNumberOption('windowBuckets', windowBuckets, { min: 1, max: 10_000, integer: true });
  assertNumberOption('minimumThroughput', minimumThroughput, { min: 1, integer: true });
  assertNumberOption('resetTimeoutMs', resetTimeoutMs, { min: 0, max: Number.MAX_SAFE_INTEGER });
  assertNumberOption('halfOpenMaxConcurrent', halfOpenMaxConcurrent, { min: 1, integer: true });
  assertNumberOption('halfOpenSuccesses', halfOpenSuccesses, { min: 1, integer: true });
  assertNumberOption('probeTimeoutMs', probeTimeoutMs, { min: 1, max: 2_147_483_647 });
  if (shouldCount !== undefined && typeof shouldCount !== 'function') {
    throw new GuardError('INVALID_OPTION', 'shouldCount must be a function', { details: { field: 'shouldCount' } });
  }
  const createBreaker =
    mode === 'rate'
      ? () => new RateBreaker({ failureRateThreshold, minimumThroughput, windowMs, windowBuckets })
      : () => new ConsecutiveBreaker(failureThreshold);
  return { name, resetTimeoutMs, halfOpenMaxConcurrent, halfOpenSuccesses, probeTimeoutMs, shouldCount, createBreaker };
}
