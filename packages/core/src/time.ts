import { GuardError } from './guard-error.js';

/** Options for {@link sleep}. */
export interface SleepOptions {
  /** Rejects with the signal's reason (and clears the timer) when it aborts. */
  readonly signal?: AbortSignal;
  /** Don't keep the process alive for this timer. */
  readonly unref?: boolean;
}

/**
 * Resolves after `ms`, on the global `setTimeout` (so `vi.useFakeTimers()` drives it).
 *
 * @example
 * await sleep(backoffMs, { signal });
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason as unknown);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason as unknown);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (options.unref) timer.unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Options for {@link waitUntil}. */
export interface WaitUntilOptions {
  /** Give up after this many ms with `GuardError('TIMEOUT')`. Default 5 000. */
  readonly timeoutMs?: number;
  /** Time between two checks. Default 10. */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  /** What is awaited, for the timeout's message. Default `'condition'`. */
  readonly what?: string;
}

/**
 * Polls `predicate` until it returns true: for tests and for conditions that have no event to await. Checks at once,
 * then every `intervalMs` on the global timers (fake timers drive it); a throwing predicate rejects at once.
 *
 * @example
 * await waitUntil(() => pool.idle === 0, { timeoutMs: 2_000, what: 'the pool to drain' });
 */
export async function waitUntil(predicate: () => boolean | Promise<boolean>, options: WaitUntilOptions = {}): Promise<void> {
  const { timeoutMs = 5_000, intervalMs = 10, signal, what = 'condition' } = options;
  signal?.throwIfAborted();
  const started = Date.now();
  let waited = 0;
  for (;;) {
    if (await predicate()) return;
    // The larger of both: fake timers may leave Date alone, real ones may run late.
    const elapsed = Math.max(waited, Date.now() - started);
    if (elapsed >= timeoutMs) {
      throw new GuardError('TIMEOUT', `${what} did not hold within ${timeoutMs} ms`, { details: { what, timeoutMs } });
    }
    const step = Math.min(intervalMs, timeoutMs - elapsed);
    await sleep(step, signal === undefined ? {} : { signal });
    waited += step;
  }
}
