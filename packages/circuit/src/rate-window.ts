import { GuardError } from '@guard/core';

/**
 * A rate window as plain data (what `toJSON().window` holds): its totals and its buckets, so a saved window
 * restores exactly. A window restored with another bucket size re-buckets by each bucket's start time.
 */
export interface RateWindowState {
  /** Calls in the window. */
  readonly calls: number;
  /** Failed calls in the window. */
  readonly failures: number;
  /** Length of one bucket in ms. */
  readonly bucketMs: number;
  /** The newest bucket's number: `floor(epochMs / bucketMs)`; -1 before the first call. */
  readonly head: number;
  /** `[successes, failures]` per bucket, oldest first, the last one being `head`. */
  readonly buckets: ReadonlyArray<readonly [number, number]>;
}

/**
 * Rolling call and failure counts per time bucket, O(buckets) memory. A success reads no clock: an unref'd
 * timer marks the current bucket stale when it ends, and only then does the next call read `Date.now()` and roll
 * the window (one timer per bucket while calls flow, none while idle). A success that runs before a late timer
 * fires lands in the bucket that just ended, so it may leave the window up to one event-loop turn early.
 * Failures always read the clock, so the ratio that opens the circuit is computed on the current window.
 *
 * @example
 * const window = new RateWindow(10_000, 10);
 * window.recordFailure(Date.now());
 * window.failures / window.calls; // 1
 */
export class RateWindow {
  readonly #bucketMs: number;
  readonly #ok: Uint32Array;
  readonly #failed: Uint32Array;
  #head = -1;
  #slot = 0;
  /** True while the head bucket is known to be the current one (its end timer has not fired). */
  #fresh = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #markStale = () => {
    this.#fresh = false;
    this.#timer = undefined;
  };
  calls = 0;
  failures = 0;

  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#ok = new Uint32Array(buckets);
    this.#failed = new Uint32Array(buckets);
  }

  recordSuccess(): void {
    if (!this.#fresh) this.#advance(Date.now());
    this.#ok[this.#slot]!++;
    this.calls++;
  }

  recordFailure(now: number): void {
    this.#advance(now);
    this.#failed[this.#slot]!++;
    this.failures++;
    this.calls++;
  }

  /** Drops buckets that fell out of the window and arms the timer that ends the head bucket. */
  #advance(now: number): void {
    const size = this.#ok.length;
    const index = Math.floor(now / this.#bucketMs);
    let moved = !this.#fresh;
    if (index > this.#head) {
      moved = true;
      if (this.#head < 0 || index - this.#head >= size) {
        this.reset();
      } else {
        for (let i = this.#head + 1; i <= index; i++) {
          const slot = i % size;
          this.calls -= this.#ok[slot]! + this.#failed[slot]!;
          this.failures -= this.#failed[slot]!;
          this.#ok[slot] = 0;
          this.#failed[slot] = 0;
        }
      }
      this.#head = index;
      this.#slot = index % size;
    }
    if (moved) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = setTimeout(this.#markStale, Math.max(1, (this.#head + 1) * this.#bucketMs - now));
      this.#timer.unref();
      this.#fresh = true;
    }
  }

  /** The window as of `now` (expired buckets dropped), as plain data. */
  snapshot(now: number): RateWindowState {
    if (this.#head >= 0) this.#advance(now);
    const size = this.#ok.length;
    const buckets: Array<readonly [number, number]> = [];
    for (let i = this.#head - size + 1; i <= this.#head; i++) {
      const slot = ((i % size) + size) % size;
      buckets.push([this.#ok[slot]!, this.#failed[slot]!]);
    }
    return { calls: this.calls, failures: this.failures, bucketMs: this.#bucketMs, head: this.#head, buckets: this.#head < 0 ? [] : buckets };
  }

  /** Replaces the counts with a saved window's; buckets that ended before `now - windowMs` are dropped. */
  restore(saved: RateWindowState, now: number): void {
    const invalid = (why: string) =>
      new GuardError('INVALID_OPTION', `initialState.window ${why}`, { details: { field: 'initialState.window' } });
    if (typeof saved !== 'object' || saved === null) throw invalid('must be an object');
    const { bucketMs, head, buckets } = saved;
    // A window saved before buckets were part of it carries only totals: nothing to place in time.
    if (buckets === undefined) return;
    if (!Array.isArray(buckets) || !(bucketMs > 0) || !Number.isInteger(head)) throw invalid('needs bucketMs, head and buckets');
    this.dispose();
    this.reset();
    const size = this.#ok.length;
    const current = Math.floor(now / this.#bucketMs);
    buckets.forEach((bucket, i) => {
      const [ok, failed] = bucket;
      if (!Number.isInteger(ok) || !Number.isInteger(failed) || ok < 0 || failed < 0) throw invalid('buckets must hold [successes, failures]');
      const index = Math.floor(((head - (buckets.length - 1 - i)) * bucketMs) / this.#bucketMs);
      if (index <= current - size || index > current) return;
      const slot = index % size;
      this.#ok[slot]! += ok;
      this.#failed[slot]! += failed;
      this.calls += ok + failed;
      this.failures += failed;
    });
    this.#head = current;
    this.#slot = current % size;
  }

  /** Stops the bucket timer (the breaker was closed). */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#fresh = false;
  }

  reset(): void {
    this.#ok.fill(0);
    this.#failed.fill(0);
    this.calls = 0;
    this.failures = 0;
  }
}
