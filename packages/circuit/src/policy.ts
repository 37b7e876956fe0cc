import { GuardError, assertNumberOption, linkSignal, raceAbort } from '@guard/core';
import { MAX_TIMER_MS } from './deadline-timers.js';
import type { DeadlineBucket, DeadlineEntry, DeadlineTimers } from './deadline-timers.js';

/**
 * The work a policy runs. `signal` is defined only when a timeout, a caller's signal or a half-open probe asked for one.
 *
 * @example
 * const load: Operation<Response> = (signal) => fetch(url, { signal });
 */
export type Operation<T> = (signal: AbortSignal | undefined) => T | PromiseLike<T>;

/**
 * Per-call options of {@link Policy.execute}.
 *
 * @example
 * await breaker.execute(load, { timeoutMs: 2_000, signal: req.signal });
 */
export interface ExecuteOptions {
  /** Aborts the call's signal and rejects with `TIMEOUT` after this many ms. */
  readonly timeoutMs?: number;
  /** The caller's signal: aborting it aborts the call's signal and rejects with its reason. */
  readonly signal?: AbortSignal;
}

/** @internal The step that lets policies call each other without a closure per call. */
export const INVOKE: unique symbol = Symbol('@guard/circuit.invoke');

/**
 * Anything that runs an operation under a rule: {@link CircuitBreaker}, {@link Bulkhead}, or a {@link wrap} of them.
 *
 * @example
 * async function guarded(policy: Policy) { return policy.execute((signal) => fetch(url, { signal }), { timeoutMs: 2_000 }); }
 */
export interface Policy {
  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T>;
  /** @internal Runs `fn` through `chain[index..]` after this policy. */
  [INVOKE]<T>(fn: Operation<T>, signal: AbortSignal | undefined, chain: readonly Policy[], index: number): Promise<T>;
}

/** @internal Calls the next policy of `chain`, or `fn` at the end of it. */
export function invokeNext<T>(
  fn: Operation<T>,
  signal: AbortSignal | undefined,
  chain: readonly Policy[] | undefined,
  index: number,
): T | PromiseLike<T> {
  if (chain !== undefined && index < chain.length) return chain[index]![INVOKE](fn, signal, chain, index + 1);
  return fn(signal);
}

/** Holds a deadline bucket (and so its timer's ref) while one call runs; the bucket's own signal does the aborting. */
class HeldDeadline implements DeadlineEntry {
  slot = 0;
  bucket: DeadlineBucket | undefined = undefined;
  expire(): void {}
}

/**
 * @internal Runs `run` with a signal built from `options`: the caller's signal and/or a `timeoutMs` that aborts with
 * `TIMEOUT`. Rejects as soon as that signal aborts. Used only when options ask for it. With `deadlines` and no
 * caller signal, the call gets the signal shared by the calls of its deadline bucket instead of a controller and a
 * timer of its own.
 */
export async function runWithOptions<T>(
  run: (signal: AbortSignal | undefined) => Promise<T>,
  options: ExecuteOptions,
  what: string,
  deadlines?: () => DeadlineTimers,
): Promise<T> {
  const { timeoutMs, signal: callerSignal } = options;
  if (timeoutMs !== undefined) assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: MAX_TIMER_MS });
  callerSignal?.throwIfAborted();
  if (timeoutMs === undefined) return callerSignal === undefined ? run(undefined) : raceAbort(run(callerSignal), callerSignal);
  if (callerSignal === undefined && deadlines !== undefined) {
    const timers = deadlines();
    const held = new HeldDeadline();
    const signal = timers.add(held, timeoutMs).signal;
    try {
      return await raceAbort(run(signal), signal);
    } finally {
      timers.remove(held);
    }
  }
  using linked = linkSignal(callerSignal, {
    timeoutMs,
    timeoutReason: () => new GuardError('TIMEOUT', `${what} call timed out after ${timeoutMs} ms`, { details: { timeoutMs } }),
  });
  return await raceAbort(run(linked.signal), linked.signal);
}
