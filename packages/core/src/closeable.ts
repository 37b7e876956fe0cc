import { GuardError } from './guard-error.js';

/** Anything long-lived in Guard: idempotent `close()` and `await using` support. */
export interface Closeable extends AsyncDisposable {
  close(): Promise<void>;
}

/**
 * Makes a close function idempotent: the first call runs `fn`, later calls return the same promise.
 *
 * @example
 * class Pool implements Closeable {
 *   readonly close = closeOnce(async () => { clearInterval(this.timer); await this.drain(); });
 *   [Symbol.asyncDispose]() { return this.close(); }
 * }
 */
export function closeOnce(fn: () => void | Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= Promise.resolve().then(fn);
    return closing;
  };
}

/**
 * Throws `CLOSED` when `closed` is true; call on entry of public methods.
 *
 * @example
 * assertOpen(this.#closed, 'CircuitBreaker');
 */
export function assertOpen(closed: boolean, what: string): void {
  if (closed) throw new GuardError('CLOSED', `${what} is closed`);
}

/**
 * A timer for background work that never keeps the process alive.
 *
 * @example
 * const timer = unrefInterval(() => guardrail.check(), 60_000);
 */
export function unrefInterval(fn: () => void, ms: number): NodeJS.Timeout {
  const timer = setInterval(fn, ms);
  timer.unref();
  return timer;
}

/** A one-shot {@link unrefInterval}. */
export function unrefTimeout(fn: () => void, ms: number): NodeJS.Timeout {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return timer;
}
