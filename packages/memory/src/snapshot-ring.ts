/**
 * A fixed-capacity ring of time-stamped items; the oldest is overwritten when full. Next to the items it keeps their
 * times and one numeric value in typed arrays, so the regression scans plain numbers without touching objects.
 */
export class SnapshotRing<T extends { readonly at: number }> {
  readonly #items: (T | undefined)[];
  /** `at` of each slot. */
  readonly ats: Float64Array;
  /** The value stored with each slot. */
  readonly values: Float64Array;
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
    this.ats = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Slot of the newest item (meaningless while empty). */
  get newestIndex(): number {
    return (this.#next - 1 + this.capacity) % this.capacity;
  }

  /** Slot `back` places older than the newest (0 is the newest). */
  indexBack(back: number): number {
    return (this.#next - 1 - back + 2 * this.capacity) % this.capacity;
  }

  push(item: T, value: number): void {
    this.#items[this.#next] = item;
    this.ats[this.#next] = item.at;
    this.values[this.#next] = value;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Items with `at >= minAt`, oldest first. */
  since(minAt: number): T[] {
    const out: T[] = [];
    let index = this.newestIndex;
    for (let i = 0; i < this.#size; i++) {
      const item = this.#items[index]!;
      if (item.at < minAt) break;
      out.push(item);
      index = index === 0 ? this.capacity - 1 : index - 1;
    }
    return out.reverse();
  }
}
