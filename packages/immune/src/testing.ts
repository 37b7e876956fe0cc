import { afterEach, describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { createEventId } from './event.js';
import type { EventStore } from './event-store.js';

/**
 * Options for {@link describeEventStoreContract}.
 *
 * @example
 * describeEventStoreContract('pg', () => createPostgresStore({ connectionString, tableName }), { cleanup: dropTables });
 */
export interface EventStoreContractOptions {
  /** Runs after each test once its store is closed: drop tables, remove files. */
  readonly cleanup?: () => void | Promise<void>;
}

/**
 * Builds an event for store tests (not validated; the service validates).
 *
 * @example
 * await store.insert(makeEvent({ severity: 'CRITICAL', createdAt: Date.now() - 1_000 }));
 */
export function makeEvent(overrides: Partial<ImmuneEvent> = {}): ImmuneEvent {
  const createdAt = overrides.createdAt ?? Date.now();
  return {
    id: createEventId(createdAt),
    severity: 'INFO' as ImmuneSeverity,
    type: 'SELF_HEALING_ACTION' as ImmuneEventType,
    message: 'test event',
    meta: {},
    ...overrides,
    createdAt,
  };
}

/**
 * The contract every {@link EventStore} implementation runs (the model is unstorage's `testDriver`).
 * `factory` returns a fresh, empty store per test; the suite closes it.
 *
 * @example
 * describeEventStoreContract('memory', () => new MemoryEventStore({ capacity: 10_000 }));
 * describeEventStoreContract('sqlite', () => createSqliteStore({ path: join(dir, `${randomUUID()}.db`) }));
 */
export function describeEventStoreContract(
  name: string,
  factory: () => EventStore | Promise<EventStore>,
  options: EventStoreContractOptions = {},
): void {
  describe(`EventStore contract: ${name}`, () => {
    let open: EventStore[] = [];
    const fresh = async () => {
      const store = await factory();
      open.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of open) await store.close();
      open = [];
      await options.cleanup?.();
    });

    const minute = 60_000;
    const base = Math.floor(Date.now() / minute) * minute - 10 * minute;

    it('round-trips every field of an event', async () => {
      const store = await fresh();
      const event = makeEvent({
        agentId: 'agent-7',
        module: 'billing',
        severity: 'WARNING',
        type: 'ERROR_SPIKE',
        message: 'errors ✓ über 20 %',
        meta: { rate: 0.21, tags: ['a', 'b'], nested: { deep: { ok: true, none: null } } },
        createdAt: base + 1_234,
      });
      await store.insert(event);
      const [got] = await store.query({ since: base, limit: 10 });
      expect(got).toEqual(event);
    });

    it('omits absent agentId and module', async () => {
      const store = await fresh();
      const event = makeEvent({ createdAt: base + 5 });
      await store.insert(event);
      const [got] = await store.query({ since: 0, limit: 1 });
      expect(got).toEqual(event);
      expect(got).not.toHaveProperty('agentId');
      expect(got).not.toHaveProperty('module');
    });

    it('stores SQL-looking text verbatim', async () => {
      const store = await fresh();
      const nasty = `'); DROP TABLE immune_events; -- " OR 1=1; \\x00 %_`;
      const event = makeEvent({ message: nasty, module: `x'; DELETE FROM t; --`, meta: { q: nasty }, createdAt: base });
      await store.insert(event);
      await store.insert(makeEvent({ createdAt: base + 1 }));
      const got = await store.query({ since: 0, limit: 10 });
      expect(got).toHaveLength(2);
      expect(got[1]).toEqual(event);
    });

    it('answers queries newest first with since, filters and limit', async () => {
      const store = await fresh();
      const events = [
        makeEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', createdAt: base + 1_000 }),
        makeEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', createdAt: base + 2_000 }),
        makeEvent({ severity: 'WARNING', type: 'POLICY_VIOLATION', createdAt: base + 3_000 }),
        makeEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', createdAt: base + 4_000 }),
        makeEvent({ severity: 'INFO', type: 'ERROR_SPIKE', createdAt: base + 5_000 }),
      ];
      for (const e of events) await store.insert(e);
      const ids = (list: ImmuneEvent[]) => list.map((e) => e.id);
      expect(ids(await store.query({ since: 0, limit: 100 }))).toEqual(ids([...events].reverse()));
      expect(ids(await store.query({ since: base + 3_000, limit: 100 }))).toEqual(ids([events[4]!, events[3]!, events[2]!]));
      expect(ids(await store.query({ since: 0, limit: 2 }))).toEqual(ids([events[4]!, events[3]!]));
      expect(ids(await store.query({ since: 0, severity: 'CRITICAL', limit: 100 }))).toEqual(ids([events[3]!, events[1]!]));
      expect(ids(await store.query({ since: 0, type: 'ERROR_SPIKE', limit: 100 }))).toEqual(ids([events[4]!, events[1]!]));
      expect(ids(await store.query({ since: 0, severity: 'CRITICAL', type: 'POLICY_VIOLATION', limit: 100 }))).toEqual(ids([events[3]!]));
      expect(await store.query({ since: base + 6_000, limit: 100 })).toEqual([]);
    });

    it('counts by severity and type exactly at window edges, with the latest critical event', async () => {
      const store = await fresh();
      const at = (offset: number, severity: ImmuneSeverity, type: ImmuneEventType) => makeEvent({ severity, type, createdAt: base + offset });
      const events = [
        at(10_000, 'CRITICAL', 'ERROR_SPIKE'), // before the window
        at(30_500, 'INFO', 'SELF_HEALING_ACTION'), // exactly at the window start
        at(45_000, 'CRITICAL', 'POLICY_VIOLATION'),
        at(90_000, 'WARNING', 'ERROR_SPIKE'),
        at(200_000, 'CRITICAL', 'ERROR_SPIKE'),
        at(200_001, 'INFO', 'ERROR_SPIKE'),
      ];
      await Promise.all(events.map((e) => store.insert(e)));
      const counts = await store.counts(base + 30_500);
      expect(counts.total).toBe(5);
      expect(counts.bySeverity).toEqual({ INFO: 2, WARNING: 1, CRITICAL: 2 });
      expect(counts.byType).toEqual({ POLICY_VIOLATION: 1, ERROR_SPIKE: 3, SELF_HEALING_ACTION: 1 });
      expect(counts.latestCritical?.id).toBe(events[4]!.id);
      const all = await store.counts(0);
      expect(all.total).toBe(6);
      expect(all.bySeverity.CRITICAL).toBe(3);
      const late = await store.counts(base + 200_001);
      expect(late.total).toBe(1);
      expect(late.latestCritical).toBeUndefined();
    });

    it('counts exactly across hours, minutes and a partial minute', async () => {
      const store = await fresh();
      const hour = 3_600_000;
      const h0 = Math.floor(Date.now() / hour) * hour - 5 * hour;
      const offsets = [10 * minute, hour + 30 * minute + 15_000, 2 * hour + 5_000, 3 * hour - 1, 3 * hour + 10 * minute, 4 * hour];
      const events = offsets.map((o, i) => makeEvent({ severity: i % 2 === 0 ? 'CRITICAL' : 'WARNING', type: 'ERROR_SPIKE', createdAt: h0 + o }));
      await Promise.all(events.map((e) => store.insert(e)));
      const mid = await store.counts(h0 + hour + 30 * minute + 10_000);
      expect(mid.total).toBe(5);
      expect(mid.bySeverity).toEqual({ INFO: 0, WARNING: 3, CRITICAL: 2 });
      expect(mid.latestCritical?.id).toBe(events[4]!.id);
      expect((await store.counts(h0 + 2 * hour)).total).toBe(4);
      expect((await store.counts(h0 + 2 * hour + 5_001)).total).toBe(3);
      expect((await store.counts(h0 + 3 * hour - 1)).total).toBe(3);
      expect((await store.counts(h0 + 3 * hour)).total).toBe(2);
      expect((await store.counts(h0)).byType.ERROR_SPIKE).toBe(6);
    });

    it('counts nothing in an empty store', async () => {
      const store = await fresh();
      const counts = await store.counts(0);
      expect(counts).toEqual({
        total: 0,
        bySeverity: { INFO: 0, WARNING: 0, CRITICAL: 0 },
        byType: { POLICY_VIOLATION: 0, ERROR_SPIKE: 0, SELF_HEALING_ACTION: 0 },
        latestCritical: undefined,
      });
    });

    it('commits many concurrent inserts, each resolved one readable', async () => {
      const store = await fresh();
      const events = Array.from({ length: 2_500 }, (_, i) =>
        makeEvent({ severity: i % 10 === 0 ? 'CRITICAL' : 'INFO', createdAt: base + i, meta: { i } }),
      );
      await Promise.all(events.map((e) => store.insert(e)));
      const counts = await store.counts(0);
      expect(counts.total).toBe(2_500);
      expect(counts.bySeverity.CRITICAL).toBe(250);
      const newest = await store.query({ since: 0, limit: 3 });
      expect(newest.map((e) => e.meta.i)).toEqual([2_499, 2_498, 2_497]);
    });

    it('prunes events older than a cutoff and keeps counts consistent', async () => {
      const store = await fresh();
      expect(typeof store.prune).toBe('function');
      const old = Array.from({ length: 5 }, (_, i) => makeEvent({ severity: 'CRITICAL', createdAt: base - 3 * 86_400_000 + i }));
      const recent = Array.from({ length: 3 }, (_, i) => makeEvent({ createdAt: base + i }));
      await Promise.all([...old, ...recent].map((e) => store.insert(e)));
      const removed = await store.prune!(base - 86_400_000);
      expect(removed).toBe(5);
      const counts = await store.counts(0);
      expect(counts.total).toBe(3);
      expect(counts.bySeverity.CRITICAL).toBe(0);
      expect(counts.latestCritical).toBeUndefined();
      expect(await store.query({ since: 0, limit: 10 })).toHaveLength(3);
    });

    it('rejects with CLOSED after close and closes twice safely', async () => {
      const store = await fresh();
      await store.insert(makeEvent());
      await Promise.all([store.close(), store.close()]);
      await store.close();
      const error = await store.insert(makeEvent()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    });
  });
}
