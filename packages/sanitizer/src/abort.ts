import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits up to `ms` for `done()` to become true, checking every `stepMs`; rejects when `signal` aborts.
 * @returns true when `done()` became true within the time.
 */
export async function waitUntil(done: () => boolean, ms: number, stepMs: number, signal: AbortSignal): Promise<boolean> {
  let left = ms;
  while (!done()) {
    if (left <= 0) return false;
    const step = Math.min(stepMs, left);
    try {
      await sleep(step, undefined, { signal, ref: false });
    } catch (error) {
      // timers/promises rejects with a generic AbortError; keep the caller's reason (e.g. a TIMEOUT GuardError).
      throw signal.aborted ? signal.reason : error;
    }
    left -= step;
  }
  return true;
}
