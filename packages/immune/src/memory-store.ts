import { assertNumberOption, assertOpen, closeOnce } from '@guard/core';
import type { ImmuneEvent } from './event.js';
import type { EventCounts, EventQuery, EventStore } from './event-store.js';
import { emptyCounters } from './event-store.js';

/**
 * Options for {@link MemoryEventStore}.
 *
 * @example
 * const options: MemoryEventStoreOptions = { capacity: 5_000 };
 */
export interface MemoryEventStoreOptions {
  /** Most events kept; the oldest is overwritten beyond it. Default 10,000. */
  readonly capacity?: number;
}

/**
 * A bounded in-memory ring of events: O(1) insert, never grows past `capacity`.
 * Not durable across restarts; the default store of {@link ImmuneService} and the one for tests.
 *
 * @example
 * await using store = new MemoryEventStore({ capacity: 1_000 });
 * await using service = new ImmuneService({ store });
 */
export class MemoryEventStore implements EventStore {
  readonly kind = 'memory';
  readonly capacity: number;
  readonly #ring: Array<ImmuneEvent | undefined>;
  #next = 0;
  #size = 0;
  #closed = false;

  constructor(options: MemoryEventStoreOptions = {}) {
    const capacity = options.capacity ?? 10_000;
    assertNumberOption('capacity', capacity, { min: 1, max: 10_000_000, integer: true });
    this.capacity = capacity;
    this.#ring = new Array<ImmuneEvent | undefined>(capacity);
  }

  /** How many events are held (at most `capacity`). */
  get size(): number {
    return this.#size;
  }

  async insert(event: ImmuneEvent): Promise<void> {
    assertOpen(this.#closed, 'MemoryEventStore');
    this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Newest first. */
  *#newest(): Generator<ImmuneEvent> {
    for (let i = 1; i <= this.#size; i++) {
      const event = this.#ring[(this.#next - i + this.capacity) % this.capacity];
      if (event) yield event;
    }
  }

  async query(query: EventQuery): Promise<ImmuneEvent[]> {
    assertOpen(this.#closed, 'MemoryEventStore');
    const out: ImmuneEvent[] = [];
    if (query.limit <= 0) return out;
    for (const event of this.#newest()) {
      if (event.createdAt < query.since) continue;
      if (query.severity !== undefined && event.severity !== query.severity) continue;
      if (query.type !== undefined && event.type !== query.type) continue;
      out.push(event);
      if (out.length >= query.limit) break;
    }
    // Insertion order is time order except across clock steps; sort to honour the contract.
    return out.sort(newestFirst);
  }

  async counts(since: number): Promise<EventCounts> {
    assertOpen(this.#closed, 'MemoryEventStore');
    const { bySeverity, byType } = emptyCounters();
    let total = 0;
    let latestCritical: ImmuneEvent | undefined;
    for (const event of this.#newest()) {
      if (event.createdAt < since) continue;
      total++;
      bySeverity[event.severity]++;
      byType[event.type]++;
      if (event.severity === 'CRITICAL' && (!latestCritical || newestFirst(event, latestCritical) < 0)) latestCritical = event;
    }
    return { total, bySeverity, byType, latestCritical };
  }

  async prune(before: number): Promise<number> {
    assertOpen(this.#closed, 'MemoryEventStore');
    const kept = [...this.#newest()].filter((e) => e.createdAt >= before).reverse();
    const removed = this.#size - kept.length;
    this.#ring.fill(undefined);
    kept.forEach((e, i) => (this.#ring[i] = e));
    this.#size = kept.length;
    this.#next = kept.length % this.capacity;
    return removed;
  }

  readonly #close = closeOnce(() => {
    this.#ring.fill(undefined);
    this.#size = 0;
  });

  close(): Promise<void> {
    this.#closed = true;
    return this.#close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Orders events newest first (by time, then id): the order of every query result.
 *
 * @example
 * events.sort(newestFirst);
 */
export function newestFirst(a: ImmuneEvent, b: ImmuneEvent): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * Creates a {@link MemoryEventStore}.
 *
 * @example
 * const store = createMemoryStore({ capacity: 5_000 });
 */
export function createMemoryStore(options: MemoryEventStoreOptions = {}): MemoryEventStore {
  return new MemoryEventStore(options);
}
