import { GuardError } from '@guard/core';
import { DeadlineTimers } from './deadline-timers.js';
import { INVOKE, invokeNext, runWithOptions } from './policy.js';
import type { ExecuteOptions, Operation, Policy } from './policy.js';

/** A fixed chain of policies, outermost first. */
class PolicyChain implements Policy {
  readonly policies: readonly Policy[];
  #deadlines: DeadlineTimers | undefined;
  readonly #timers = (): DeadlineTimers =>
    (this.#deadlines ??= new DeadlineTimers(
      (timeoutMs) => new GuardError('TIMEOUT', `policy chain call timed out after ${timeoutMs} ms`, { details: { timeoutMs } }),
    ));

  constructor(policies: readonly Policy[]) {
    this.policies = policies;
  }

  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    const chain = this.policies;
    if (options === undefined) return chain[0]![INVOKE](fn, undefined, chain, 1);
    return runWithOptions((signal) => chain[0]![INVOKE](fn, signal, chain, 1), options, 'policy chain', this.#timers);
  }

  [INVOKE]<T>(fn: Operation<T>, signal: AbortSignal | undefined, outer: readonly Policy[], index: number): Promise<T> {
    const chain = this.policies;
    return chain[0]![INVOKE]((inner) => invokeNext(fn, inner, outer, index), signal, chain, 1);
  }
}

/**
 * Composes policies, outermost first: `wrap(breaker, bulkhead)` checks the breaker, then waits for a bulkhead slot.
 * Works in either order; a call allocates no closure per layer. A `timeoutMs` or `signal` given to `execute` covers
 * the whole chain (queue wait included), and a timeout counts as a failure for the breakers inside. Calls with only a
 * `timeoutMs` share one timer and one signal per deadline millisecond (like a breaker's).
 *
 * @example
 * const policy = wrap(new Bulkhead({ maxConcurrent: 10 }), new CircuitBreaker({ name: 'search' }));
 * const hits = await policy.execute((signal) => search(query, { signal }), { timeoutMs: 2_000 });
 */
export function wrap(...policies: Policy[]): Policy {
  const flat: Policy[] = [];
  for (const policy of policies) {
    if (policy instanceof PolicyChain) flat.push(...policy.policies);
    else if (policy !== null && typeof policy === 'object' && typeof policy[INVOKE] === 'function') flat.push(policy);
    else throw new GuardError('INVALID_OPTION', 'wrap() takes policies from @guard/circuit', { details: { field: 'policies' } });
  }
  if (flat.length === 0) throw new GuardError('INVALID_OPTION', 'wrap() needs at least one policy', { details: { field: 'policies' } });
  return new PolicyChain(flat);
}
