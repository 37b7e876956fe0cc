/**
 * The outcome of {@link FleetLock.tryRun}: `held` while another instance runs the key, `done` when the key
 * succeeded within the dedupe window.
 *
 * @example
 * const result: FleetLockResult<number> = await lock.tryRun('purge', async () => 1);
 * if (!result.acquired) console.log('skipped:', result.reason);
 */
export type FleetLockResult<T> = { readonly acquired: true; readonly value: T } | { readonly acquired: false; readonly reason: 'held' | 'done' };

/**
 * Options of one {@link FleetLock.tryRun}.
 *
 * @example
 * await lock.tryRun('purge', purge, { succeeded: (r) => r.ok });
 */
export interface FleetLockRunOptions<T> {
  /**
   * Whether the value means the step succeeded, so the key is recorded done. A rejection is never done.
   * Default {@link fleetStepSucceeded}: a step result (anything with an `outcome`) only when `'succeeded'`.
   */
  readonly succeeded?: (value: T) => boolean;
}

/**
 * Runs a fleet-wide step on exactly one instance. `tryRun` calls `fn` only when this instance wins the lock for
 * `key` and (for implementations with a dedupe window) nobody succeeded with `key` within it. A key is recorded
 * done only after `fn` succeeded: a failed step is retried by the next instance that tries it.
 *
 * @example
 * const result = await fleetLock.tryRun('cleanup:purge_shared_bucket', () => purge());
 */
export interface FleetLock {
  tryRun<T>(key: string, fn: () => Promise<T>, options?: FleetLockRunOptions<T>): Promise<FleetLockResult<T>>;
  close?(): Promise<void>;
}

/**
 * The default success test of a fleet step: a value with an `outcome` (the engine's step result, which reports a
 * failure as a value rather than a rejection) succeeded only when the outcome is `'succeeded'`; any other value did.
 *
 * @example
 * fleetStepSucceeded({ outcome: 'failed' }); // false
 * fleetStepSucceeded(42); // true
 */
export function fleetStepSucceeded(value: unknown): boolean {
  if (value !== null && typeof value === 'object' && 'outcome' in value) return (value as { outcome: unknown }).outcome === 'succeeded';
  return true;
}

/**
 * An in-process {@link FleetLock} (one instance, or tests): a key runs once at a time, and with `dedupeWindowMs`
 * at most one success per window (a failure leaves the key free).
 *
 * @example
 * const engine = new PlaybookEngine({ actions, fleetLock: createLocalFleetLock() });
 */
export function createLocalFleetLock(options: { dedupeWindowMs?: number; now?: () => number } = {}): FleetLock {
  const held = new Set<string>();
  const lastSuccess = new Map<string, number>();
  const now = options.now ?? Date.now;
  const windowMs = options.dedupeWindowMs ?? 0;
  return {
    async tryRun<T>(key: string, fn: () => Promise<T>, runOptions: FleetLockRunOptions<T> = {}): Promise<FleetLockResult<T>> {
      if (held.has(key)) return { acquired: false, reason: 'held' };
      const last = lastSuccess.get(key);
      if (windowMs > 0 && last !== undefined && now() - last < windowMs) return { acquired: false, reason: 'done' };
      held.add(key);
      try {
        const value = await fn();
        if ((runOptions.succeeded ?? fleetStepSucceeded)(value)) lastSuccess.set(key, now());
        return { acquired: true, value };
      } finally {
        held.delete(key);
      }
    },
  };
}
