import { GuardError } from './guard-error.js';

/** A signal of its own that follows its parents (and a deadline); `dispose()` clears the deadline's timer. */
export interface LinkedSignal extends Disposable {
  /** Aborts when a parent aborts (with its reason), on `abort()`, or when the deadline passes. */
  readonly signal: AbortSignal;
  /** Aborts this signal only (the parents are untouched) and clears the deadline. */
  abort(reason?: unknown): void;
  /** Clears the deadline's timer; call it when the work ends, or `using` does. */
  dispose(): void;
}

/** Options for {@link linkSignal}. */
export interface LinkSignalOptions {
  /** Abort after this many ms (an unref'd timer: it never keeps the process alive). */
  readonly timeoutMs?: number;
  /** The reason given when the deadline passes. Default `GuardError('TIMEOUT')` naming `timeoutMs`. */
  readonly timeoutReason?: () => unknown;
}

/**
 * A signal that aborts when any parent does, when you call `abort()`, or after `timeoutMs`: `AbortSignal.any` over
 * the parents and a controller of its own. `undefined` parents are skipped.
 *
 * @example
 * using linked = linkSignal(options.signal, { timeoutMs: 2_000 });
 * const response = await fetch(url, { signal: linked.signal });
 */
export function linkSignal(
  parents: AbortSignal | undefined | readonly (AbortSignal | undefined)[],
  options: LinkSignalOptions = {},
): LinkedSignal {
  const controller = new AbortController();
  const linked: AbortSignal[] = [];
  for (const parent of isSignalList(parents) ? parents : [parents]) if (parent !== undefined) linked.push(parent);
  const signal = linked.length === 0 ? controller.signal : AbortSignal.any([...linked, controller.signal]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !signal.aborted) {
    timer = setTimeout(() => {
      timer = undefined;
      controller.abort(options.timeoutReason ? options.timeoutReason() : new GuardError('TIMEOUT', `timed out after ${timeoutMs} ms`, { details: { timeoutMs } }));
    }, timeoutMs);
    timer.unref?.();
  }
  const dispose = (): void => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal,
    abort(reason?: unknown) {
      dispose();
      controller.abort(reason);
    },
    dispose,
    [Symbol.dispose]: dispose,
  };
}

function isSignalList(parents: AbortSignal | undefined | readonly (AbortSignal | undefined)[]): parents is readonly (AbortSignal | undefined)[] {
  return Array.isArray(parents);
}

/**
 * Settles like `promise`, or rejects with `signal.reason` as soon as `signal` aborts; the abort listener is
 * removed either way, so long-lived signals collect no listeners.
 *
 * @example
 * const result = await raceAbort(target.flush(), AbortSignal.timeout(5_000));
 */
export function raceAbort<T>(promise: T | PromiseLike<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, ONCE);
    Promise.resolve(promise).then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** One options object for every listener (not one per call). */
const ONCE = { once: true } as const;
