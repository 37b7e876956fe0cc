/**
 * Counts events in a sliding time window: an event counts for `windowMs` after it happened (not a fixed
 * bucket). Memory is bounded: events closer together than `resolutionMs` share one slot, so the ring never
 * holds more than `cap` slots however fast events arrive. With the default cap a 1 s window is exact to the
 * millisecond and a 60 s window to 6 ms (an event may leave the window up to that much early).
 *
 * @example
 * const w = new SlidingWindow(1_000);
 * w.add(Date.now());
 * w.count(Date.now()); // 1
 */
export class SlidingWindow {
  readonly windowMs: number;
  /** Events this close to the newest slot share it. */
  readonly resolutionMs: number;
  #at: Float64Array;
  #n: Float64Array;
  #head = 0;
  #size = 0;
  #total = 0;

  /** @param cap most slots kept (memory bound); the resolution is `windowMs / cap`, at least 1 ms. */
  constructor(windowMs: number, cap = 10_000) {
    this.windowMs = windowMs;
    this.resolutionMs = Math.max(1, Math.ceil(windowMs / Math.max(1, cap)));
    this.#at = new Float64Array(16);
    this.#n = new Float64Array(16);
  }

  /** Adds `n` events at `at` (epoch ms). */
  add(at: number, n = 1): void {
    this.count(at); // prune first, so the ring only ever holds the window
    if (this.#size > 0) {
      const last = (this.#head + this.#size - 1) % this.#at.length;
      if (at - this.#at[last]! < this.resolutionMs) {
        this.#n[last]! += n;
        this.#total += n;
        return;
      }
    }
    if (this.#size === this.#at.length) this.#grow();
    const slot = (this.#head + this.#size) % this.#at.length;
    this.#at[slot] = at;
    this.#n[slot] = n;
    this.#size++;
    this.#total += n;
  }

  /** Events within `(now - windowMs, now]`. */
  count(now: number): number {
    const cutoff = now - this.windowMs;
    while (this.#size > 0 && this.#at[this.#head]! <= cutoff) {
      this.#total -= this.#n[this.#head]!;
      this.#head = (this.#head + 1) % this.#at.length;
      this.#size--;
    }
    if (this.#size === 0) this.#total = 0;
    return this.#total;
  }

  /** Time of the newest event still held, or undefined when empty. */
  newest(): number | undefined {
    return this.#size === 0 ? undefined : this.#at[(this.#head + this.#size - 1) % this.#at.length];
  }

  clear(): void {
    this.#head = 0;
    this.#size = 0;
    this.#total = 0;
  }

  #grow(): void {
    const length = this.#at.length * 2;
    const at = new Float64Array(length);
    const n = new Float64Array(length);
    for (let i = 0; i < this.#size; i++) {
      const from = (this.#head + i) % this.#at.length;
      at[i] = this.#at[from]!;
      n[i] = this.#n[from]!;
    }
    this.#at = at;
    this.#n = n;
    this.#head = 0;
  }
}
