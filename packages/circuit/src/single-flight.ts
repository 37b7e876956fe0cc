import { raceAbort } from '@guard/core';

/**
 * Request coalescing: concurrent calls with one key share one execution and its result or error.
 * A call after it settled runs again (nothing is cached).
 *
 * @example
 * const flights = new SingleFlight<string, User>();
 * const user = await flights.deduplicate(`user:${id}`, () => db.loadUser(id));
 */
export class SingleFlight<K = string, V = unknown> {
  readonly #inflight = new Map<K, Promise<V>>();

  /** Executions running now. */
  get size(): number {
    return this.#inflight.size;
  }

  /** True while an execution for `key` runs. */
  has(key: K): boolean {
    return this.#inflight.has(key);
  }

  /**
   * Runs `fn` for `key` unless it already runs; then returns the running execution's promise. A caller's `signal`
   * only stops that caller waiting: the shared execution keeps running for the others.
   *
   * @example
   * const [a, b] = await Promise.all([flights.deduplicate('k', load), flights.deduplicate('k', load)]); // load ran once
   */
  deduplicate<T extends V>(key: K, fn: () => T | PromiseLike<T>, options?: { readonly signal?: AbortSignal }): Promise<T> {
    let shared = this.#inflight.get(key) as Promise<T> | undefined;
    if (shared === undefined) {
      let started: Promise<T>;
      try {
        started = Promise.resolve(fn());
      } catch (error) {
        started = Promise.reject(error);
      }
      const map = this.#inflight;
      const current = started.finally(() => {
        if (map.get(key) === current) map.delete(key);
      });
      shared = current;
      map.set(key, current);
    }
    const signal = options?.signal;
    return signal === undefined ? shared : raceAbort(shared, signal);
  }
}
