/** The outcome of {@link FleetLock.tryRun}. */
export type FleetLockResult<T> = { readonly acquired: true; readonly value: T } | { readonly acquired: false; readonly reason: 'held' | 'done' };

/**
 * Runs a fleet-wide step on exactly one instance. `tryRun` calls `fn` only when this instance wins the
 * lock for `key` (and, for implementations with a dedupe window, nobody ran `key` within it).
 */
export interface FleetLock {
  tryRun<T>(key: string, fn: () => Promise<T>): Promise<FleetLockResult<T>>;
  close?(): Promise<void>;
}

/**
 * An in-process {@link FleetLock} (one instance, or tests): a key runs once at a time, and with
 * `dedupeWindowMs` at most once per window.
 *
 * @example
 * const engine = new PlaybookEngine({ actions, fleetLock: createLocalFleetLock() });
 */
export function createLocalFleetLock(options: { dedupeWindowMs?: number; now?: () => number } = {}): FleetLock {
  const held = new Set<string>();
  const lastRun = new Map<string, number>();
  const now = options.now ?? Date.now;
  const windowMs = options.dedupeWindowMs ?? 0;
  return {
    async tryRun(key, fn) {
      if (held.has(key)) return { acquired: false, reason: 'held' };
      const last = lastRun.get(key);
      if (windowMs > 0 && last !== undefined && now() - last < windowMs) return { acquired: false, reason: 'done' };
      held.add(key);
      try {
        lastRun.set(key, now());
        return { acquired: true, value: await fn() };
      } finally {
        held.delete(key);
      }
    },
  };
}
