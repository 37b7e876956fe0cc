/** A fixed-capacity ring of time-stamped items; the oldest is overwritten when full. */
export class SnapshotRing<T extends { readonly at: number }> {
  readonly #items: (T | undefined)[];
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Visits items newest first until `visit` returns false. */
  forEachNewest(visit: (item: T) => boolean): void {
    for (let i = 1; i <= this.#size; i++) {
      const item = this.#items[(this.#next - i + this.capacity) % this.capacity]!;
      if (!visit(item)) return;
    }
  }

  /** Items with `at >= minAt`, oldest first. */
  since(minAt: number): T[] {
    const out: T[] = [];
    this.forEachNewest((item) => {
      if (item.at < minAt) return false;
      out.push(item);
      return true;
    });
    return out.reverse();
  }
}
