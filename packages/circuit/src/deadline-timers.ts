import { setMaxListeners } from 'node:events';

/**
 * One pending call with a deadline: expired by {@link DeadlineTimers} unless it is removed first.
 * `slot` is its index in its bucket (swap-remove keeps removal O(1)).
 */
export interface DeadlineEntry {
  slot: number;
  bucket: DeadlineBucket | undefined;
  expire(reason: unknown): void;
}

/** Every entry due at one instant with one timeout: one timer, one lazily made signal and one reason for all. */
export class DeadlineBucket {
  readonly at: number;
  readonly timeoutMs: number;
  readonly key: string;
  readonly entries: DeadlineEntry[] = [];
  timer: NodeJS.Timeout | undefined;
  refed = true;
  #controller: AbortController | undefined;

  constructor(at: number, timeoutMs: number, key: string) {
    this.at = at;
    this.timeoutMs = timeoutMs;
    this.key = key;
  }

  /** The signal every call of this bucket gets; it aborts at the deadline. Made on first use. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      // concurrent calls of one millisecond share it: their listeners are not a leak
      setMaxListeners(0, this.#controller.signal);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    this.#controller?.abort(reason);
  }
}

/**
 * Deadline buckets: calls with the same timeout whose deadlines fall in the same `resolutionMs` slot share one timer
 * and one `AbortSignal`, so a call costs an array push and a swap-remove instead of an `AbortController`, a
 * `setTimeout` and a `clearTimeout`. A deadline fires at or after its time (at most `resolutionMs` late), never early.
 * A bucket's timer is `ref`ed only while it holds entries, so completed calls never keep the process alive. An empty
 * bucket is dropped (timer cleared, signal never aborted) unless it is the one new calls are joining; that one aborts
 * its signal at its time even if every call of it already settled. Live buckets are O(calls pending).
 *
 * @example
 * const timers = new DeadlineTimers((timeoutMs) => new Error(`timed out after ${timeoutMs} ms`));
 * const bucket = timers.add(entry, 1_000); // entry.expire(reason) runs in ~1 s unless timers.remove(entry) first
 */
export class DeadlineTimers {
  readonly #reason: (timeoutMs: number) => unknown;
  readonly #resolutionMs: number;
  readonly #buckets = new Map<string, DeadlineBucket>();
  /** The bucket of the last add: consecutive calls with one timeout usually land in it, skipping the map. */
  #last: DeadlineBucket | undefined;

  constructor(reason: (timeoutMs: number) => unknown, resolutionMs = 1) {
    this.#reason = reason;
    this.#resolutionMs = resolutionMs;
  }

  /** Schedules `entry.expire(reason)` for `timeoutMs` from now (rounded up to the resolution); returns its bucket. */
  add(entry: DeadlineEntry, timeoutMs: number): DeadlineBucket {
    const now = Date.now();
    const resolution = this.#resolutionMs;
    const at = Math.ceil((now + timeoutMs) / resolution) * resolution;
    let bucket = this.#last;
    if (bucket === undefined || bucket.at !== at || bucket.timeoutMs !== timeoutMs) {
      // the bucket we leave is kept only while calls wait in it: live buckets stay O(pending calls)
      if (bucket !== undefined && bucket.entries.length === 0) this.#discard(bucket);
      const key = `${at}/${timeoutMs}`;
      bucket = this.#buckets.get(key);
      if (bucket === undefined) {
        const created = (bucket = new DeadlineBucket(at, timeoutMs, key));
        this.#buckets.set(key, created);
        created.timer = setTimeout(() => this.#fire(created), Math.max(0, at - now));
      }
      this.#last = bucket;
    }
    if (!bucket.refed) {
      bucket.refed = true;
      bucket.timer!.ref();
    }
    entry.slot = bucket.entries.length;
    entry.bucket = bucket;
    bucket.entries.push(entry);
    return bucket;
  }

  /** Cancels `entry`'s deadline; a no-op when it already fired or was removed. */
  remove(entry: DeadlineEntry): void {
    const bucket = entry.bucket;
    if (bucket === undefined) return;
    entry.bucket = undefined;
    const entries = bucket.entries;
    const last = entries.pop()!;
    if (last !== entry) {
      entries[entry.slot] = last;
      last.slot = entry.slot;
    }
    if (entries.length === 0) {
      if (bucket !== this.#last) {
        this.#discard(bucket);
      } else {
        bucket.refed = false;
        bucket.timer!.unref();
      }
    }
  }

  /** Drops an empty bucket before its time: its timer is cleared and its signal (if any) never aborts. */
  #discard(bucket: DeadlineBucket): void {
    clearTimeout(bucket.timer);
    this.#buckets.delete(bucket.key);
  }

  #fire(bucket: DeadlineBucket): void {
    this.#buckets.delete(bucket.key);
    if (this.#last === bucket) this.#last = undefined;
    const entries = bucket.entries.splice(0);
    const reason = this.#reason(bucket.timeoutMs);
    for (const entry of entries) entry.bucket = undefined;
    bucket.abort(reason);
    for (const entry of entries) entry.expire(reason);
  }
}

/** The longest delay `setTimeout` honours (a larger one fires at once). */
export const MAX_TIMER_MS = 2_147_483_647;
