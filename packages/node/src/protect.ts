import { isGuardError, linkSignal } from '@guard/core';
import type { CircuitBreaker, ExecuteOptions, Operation } from '@guard/circuit';
import type { DetectorChain } from '@guard/detectors';

/**
 * Calls `op` through `breaker` the way the guard's mode for `circuit` says. In `full` the breaker acts: an open
 * circuit refuses the call with `CIRCUIT_OPEN` (fail fast). Outside `full` it only observes: it still counts the
 * outcome and opens (the detection, its metrics and events), but a call it would refuse runs anyway, under the same
 * timeout and signal, so `detect` and `dry_run` never change what callers see.
 *
 * @example
 * const score = await protect(guard.chain, breaker, (signal) => fetch(url, { signal }), { timeoutMs: 1_000 });
 */
export function protect<T>(chain: DetectorChain, breaker: CircuitBreaker, op: Operation<T>, options?: ExecuteOptions): Promise<T> {
  const guarded = breaker.execute(op, options);
  if (chain.modeOf('circuit') === 'full') return guarded;
  return guarded.catch((error: unknown) => {
    if (!isGuardError(error, 'CIRCUIT_OPEN')) throw error;
    return passThrough(op, options);
  });
}

/** Runs `op` outside the breaker with the caller's timeout and signal (what the breaker would have given it). */
async function passThrough<T>(op: Operation<T>, options: ExecuteOptions | undefined): Promise<T> {
  const linked = linkSignal(options?.signal, options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
  try {
    return await op(linked.signal);
  } finally {
    linked.dispose();
  }
}
