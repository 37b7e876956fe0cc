import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES } from './event.js';

/**
 * A query over stored events, newest first.
 *
 * @example
 * const q: EventQuery = { since: Date.now() - 3_600_000, severity: 'CRITICAL', limit: 20 };
 */
export interface EventQuery {
  /** Only events created at or after this epoch ms. */
  readonly since: number;
  readonly severity?: ImmuneSeverity;
  readonly type?: ImmuneEventType;
  /** At most this many events (the newest). */
  readonly limit: number;
}

/**
 * Counts of the events created at or after a moment.
 *
 * @example
 * const { total, bySeverity, latestCritical } = await store.counts(Date.now() - 900_000);
 */
export interface EventCounts {
  readonly total: number;
  readonly bySeverity: Readonly<Record<ImmuneSeverity, number>>;
  readonly byType: Readonly<Record<ImmuneEventType, number>>;
  /** The newest CRITICAL event in the window, if any. */
  readonly latestCritical: ImmuneEvent | undefined;
}

/**
 * Where immune events live. `insert` resolves only once the event is durable (for a database: committed);
 * implementations group concurrent inserts into one transaction.
 * Run {@link describeEventStoreContract} (from `@guard/immune/testing`) against every implementation.
 *
 * @example
 * const store: EventStore = new MemoryEventStore({ capacity: 10_000 });
 * await store.insert(event);
 * const recent = await store.query({ since: Date.now() - 60_000, limit: 50 });
 */
export interface EventStore extends AsyncDisposable {
  /** `memory`, `sqlite`, `postgres`, ...: used as a metric label. */
  readonly kind: string;
  /** Stores one event; resolves once it is durable. Rejects with `CLOSED` after close. */
  insert(event: ImmuneEvent): Promise<void>;
  /** Events matching the query, newest first. */
  query(query: EventQuery): Promise<ImmuneEvent[]>;
  /** Counts by severity and type since a moment, and the latest critical event. */
  counts(since: number): Promise<EventCounts>;
  /** Deletes events created before `before` (epoch ms); resolves with how many were removed. */
  prune?(before: number): Promise<number>;
  /** Flushes pending inserts and releases resources; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Zeroed counters keyed by severity and type, for store implementations.
 *
 * @example
 * const { bySeverity, byType } = emptyCounters();
 * bySeverity[event.severity]++;
 */
export function emptyCounters(): { bySeverity: Record<ImmuneSeverity, number>; byType: Record<ImmuneEventType, number> } {
  return {
    bySeverity: Object.fromEntries(IMMUNE_SEVERITIES.map((s) => [s, 0])) as Record<ImmuneSeverity, number>,
    byType: Object.fromEntries(IMMUNE_EVENT_TYPES.map((t) => [t, 0])) as Record<ImmuneEventType, number>,
  };
}
