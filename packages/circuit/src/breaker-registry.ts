import { GuardError } from '@guard/core';
import type { CircuitTarget } from '@guard/core';
import { CircuitBreaker } from './circuit-breaker.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';

/** Options of {@link BreakerRegistry}. */
export interface BreakerRegistryOptions {
  /** Options for breakers that `getOrCreate()` creates (their `name` is set per breaker). */
  readonly defaults?: Omit<CircuitBreakerOptions, 'name' | 'initialState'>;
}

/**
 * Breakers by name. It is the C4 sanitizer's {@link CircuitTarget}: `reopen(name, reason)` aborts that breaker's
 * half-open probes and opens it again.
 *
 * @example
 * const breakers = new BreakerRegistry({ defaults: { bus, failureThreshold: 5 } });
 * const payments = breakers.getOrCreate('payments');
 * const sanitizer = createCircuitSanitizer(breakers); // C4 acts through reopen()
 */
export class BreakerRegistry implements CircuitTarget, AsyncDisposable {
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #defaults: BreakerRegistryOptions['defaults'];
  #closed = false;

  constructor(options: BreakerRegistryOptions = {}) {
    this.#defaults = options.defaults;
  }

  #assertOpen(): void {
    if (this.#closed) throw new GuardError('CLOSED', 'BreakerRegistry is closed');
  }

  /**
   * Adds a breaker under its name; throws `INVALID_INPUT` when another breaker already has that name.
   *
   * @example
   * breakers.add(new CircuitBreaker({ name: 'search' }));
   */
  add(breaker: CircuitBreaker): CircuitBreaker {
    this.#assertOpen();
    const existing = this.#breakers.get(breaker.name);
    if (existing !== undefined && existing !== breaker) {
      throw new GuardError('INVALID_INPUT', `a breaker named "${breaker.name}" is already registered`, {
        details: { field: 'name', circuit: breaker.name },
      });
    }
    this.#breakers.set(breaker.name, breaker);
    return breaker;
  }

  /** The breaker of that name, or undefined. */
  get(name: string): CircuitBreaker | undefined {
    return this.#breakers.get(name);
  }

  /**
   * The breaker of that name, created from the registry's defaults (plus `options`) the first time.
   *
   * @example
   * const breaker = breakers.getOrCreate('inventory', { resetTimeoutMs: 10_000 });
   */
  getOrCreate(name: string, options?: Omit<CircuitBreakerOptions, 'name'>): CircuitBreaker {
    const existing = this.#breakers.get(name);
    if (existing !== undefined) return existing;
    this.#assertOpen();
    const breaker = new CircuitBreaker({ ...this.#defaults, ...options, name });
    this.#breakers.set(name, breaker);
    return breaker;
  }

  /** Every registered breaker. */
  list(): CircuitBreaker[] {
    return Array.from(this.#breakers.values());
  }

  /** Removes (without closing) the breaker of that name; false when unknown. */
  remove(name: string): boolean {
    return this.#breakers.delete(name);
  }

  /**
   * Aborts the in-flight half-open probes of `circuit` and opens it again; false when no breaker has that name.
   *
   * @example
   * breakers.reopen('payments', 'probe exceeded 30000 ms');
   */
  reopen(circuit: string, reason: string): boolean {
    const breaker = this.#breakers.get(circuit);
    if (breaker === undefined || breaker.closed) return false;
    breaker.reopen(reason);
    return true;
  }

  /** Closes every breaker and forgets them. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const breakers = this.list();
    this.#breakers.clear();
    await Promise.all(breakers.map((breaker) => breaker.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
