import { waitUntil } from '@guard/core';
import type { MetricsOptions } from '@guard/core';

/** Waits until `predicate` holds or `timeoutMs` passed. @returns whether it held (a scenario reports a miss, never throws). */
export function waitFor(predicate: () => boolean, timeoutMs: number, intervalMs = 5): Promise<boolean> {
  return waitUntil(predicate, { timeoutMs: Math.max(1, timeoutMs), intervalMs }).then(
    () => true,
    () => predicate(),
  );
}

/** `promise`, or `fallback` when it has not settled within `ms` (the timer is cleared either way). */
export async function settledWithin<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Only the metric options of a scenario's options bag, for the guard parts the scenario builds. */
export function metricOptionsOf({ registry, metricsPrefix, prefix, metrics }: MetricsOptions): MetricsOptions {
  return { ...(registry ? { registry } : {}), ...(metricsPrefix ? { metricsPrefix } : {}), ...(prefix ? { prefix } : {}), ...(metrics === undefined ? {} : { metrics }) };
}
