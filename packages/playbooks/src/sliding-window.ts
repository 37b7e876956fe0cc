/**
 * Counts events in a sliding time window (timestamps in a growable ring, pruned on read).
 * Not a fixed bucket: an event counts for exactly `windowMs` after it happened.
 *
 * @example
 * const w = new SlidingWindow(1_000);
 * w.add(Date.now());
 * w.count(Date.now()); // 1
 */
export class SlidingWindow {
  readonly windowMs: number;
  readonly #cap: number;
  #buf: Float64Array;
  #head = 0;
  #size = 0;
  #dropped = 0;

  /** @param cap most timestamps kept; beyond it the oldest are counted but folded away. */
  constructor(windowMs: number, cap = 100_000) {
    this.windowMs = windowMs;
    this.#cap = cap;
    this.#buf = new Float64Array(16);
  }

  add(at: number): void {
    if (this.#size === this.#buf.length) {
      if (this.#size >= this.#cap) {
        // Full at the cap: the oldest entry leaves the ring but stays counted until the ring empties.
        this.#head = (this.#head + 1) % this.#buf.length;
        this.#size--;
        this.#dropped++;
      } else {
        const next = new Float64Array(Math.min(this.#buf.length * 2, this.#cap));
        for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length]!;
        this.#buf = next;
        this.#head = 0;
      }
    }
    this.#buf[(this.#head + this.#size) % this.#buf.length] = at;
    this.#size++;
  }

  /** Events within `(now - windowMs, now]`. */
  count(now: number): number {
    const cutoff = now - this.windowMs;
    while (this.#size > 0 && this.#buf[this.#head]! <= cutoff) {
      this.#head = (this.#head + 1) % this.#buf.length;
      this.#size--;
    }
    if (this.#size === 0) this.#dropped = 0;
    return this.#size + this.#dropped;
  }

  clear(): void {
    this.#head = 0;
    this.#size = 0;
    this.#dropped = 0;
  }
}
