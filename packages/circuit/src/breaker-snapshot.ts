import { GuardError, assertNumberOption } from '@guard/core';
import type { CircuitState } from '@guard/core';
import type { CircuitBreakerMode } from './breaker.js';
import type { RateWindowState } from './rate-window.js';

/**
 * A breaker's state as plain data: what `toJSON()` returns and `initialState` accepts.
 *
 * @example
 * const snapshot: CircuitBreakerSnapshot = breaker.toJSON();
 */
export interface CircuitBreakerSnapshot {
  readonly name: string;
  readonly mode: CircuitBreakerMode;
  readonly state: CircuitState;
  /** Epoch ms when the breaker last opened; null when it never did or is closed. */
  readonly openedAt: number | null;
  /** Consecutive mode: failures in a row (0 in rate mode). */
  readonly consecutiveFailures: number;
  /** Successful probes since the breaker went half-open. */
  readonly halfOpenSuccesses: number;
  readonly isolated: boolean;
  /** Rate mode only: the rolling window, its buckets included. */
  readonly window?: RateWindowState;
}

/** Where a hydrated breaker starts. */
export interface HydratedState {
  readonly state: 'closed' | 'open';
  /** When it opened (a `half_open` snapshot: `resetTimeoutMs` ago, so the next call probes). */
  readonly openedAt: number;
  readonly isolated: boolean;
}

/**
 * Reads the lifecycle part of a saved snapshot (the strategy's counts are restored by the strategy itself).
 *
 * @example
 * const start = hydratedState({ state: 'open', openedAt: saved.openedAt }, 60_000, Date.now());
 */
export function hydratedState(initial: Partial<CircuitBreakerSnapshot>, resetTimeoutMs: number, now: number): HydratedState {
  const state = initial.state ?? 'closed';
  if (state !== 'closed' && state !== 'open' && state !== 'half_open') {
    throw new GuardError('INVALID_OPTION', `initialState.state must be closed, open or half_open, got ${String(state)}`, {
      details: { field: 'initialState.state' },
    });
  }
  if (initial.openedAt !== undefined && initial.openedAt !== null) {
    assertNumberOption('initialState.openedAt', initial.openedAt, { min: 0 });
  }
  const isolated = initial.isolated === true;
  let openedAt = 0;
  if (state === 'open') openedAt = initial.openedAt ?? now;
  if (state === 'half_open') openedAt = now - resetTimeoutMs;
  if (isolated) openedAt ||= now;
  return { state: state === 'closed' && !isolated ? 'closed' : 'open', openedAt, isolated };
}
