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
