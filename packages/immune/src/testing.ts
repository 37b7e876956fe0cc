import { deepStrictEqual, equal, ok } from 'node:assert/strict';
import { GuardError, isGuardError } from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { createEventId } from './event.js';
import type { EventStore } from './event-store.js';

/**
 * The `describe` and `it` of a test framework (vitest, jest, mocha and node:test all fit), so this entry imports none.
 *
 * @example
 * import { describe, it } from 'vitest';
 * describeEventStoreContract('memory', () => new MemoryEventStore(), { test: { describe, it } });
 */
export interface ContractTestApi {
  describe(name: string, fn: () => void): unknown;
  it(name: string, fn: () => Promise<void>): unknown;
}

/**
 * Options for {@link describeEventStoreContract}.
 *
 * @example
 * describeEventStoreContract('pg', () => createPostgresStore({ connectionString, tableName }), { test: { describe, it }, cleanup: dropTables });
 */
export interface EventStoreContractOptions {
  /** Runs after each case once its stores are closed: drop tables, remove files. */
  readonly cleanup?: () => void | Promise<void>;
  /** The test framework's `describe` and `it`. Default: the global functions of those names (vitest `globals`, jest, mocha). */
  readonly test?: ContractTestApi;
}

/**
 * One case of the event-store contract: `run` gets `fresh()`, which opens a new, empty store (closed by the runner),
 * and throws an `AssertionError` when the store breaks the contract.
 *
 * @example
 * for (const c of eventStoreContract) await runContractCase(c, factory);
 */
export interface EventStoreContractCase {
  readonly name: string;
  run(fresh: () => Promise<EventStore>): Promise<void>;
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

const ids = (list: readonly ImmuneEvent[]) => list.map((e) => e.id);
const minute = 60_000;
const hour = 3_600_000;
/** A whole minute ten minutes ago: the cases' events sit at fixed offsets from it. */
const base = () => Math.floor(Date.now() / minute) * minute - 10 * minute;

/**
 * The cases every {@link EventStore} implementation passes (the model is unstorage's `testDriver`), as plain data:
 * run them with {@link describeEventStoreContract} or {@link runContractCase}.
 *
 * @example
 * expect(eventStoreContract.map((c) => c.name)).toContain('prunes events older than a cutoff and keeps counts consistent');
 */
export const eventStoreContract: readonly EventStoreContractCase[] = [
  {
    name: 'round-trips every field of an event',
    async run(fresh) {
      const store = await fresh();
      const t0 = base();
      const event = makeEvent({
        agentId: 'agent-7',
        module: 'billing',
        severity: 'WARNING',
        type: 'ERROR_SPIKE',
        message: 'errors ✓ über 20 %',
        meta: { rate: 0.21, tags: ['a', 'b'], nested: { deep: { ok: true, none: null } } },
        createdAt: t0 + 1_234,
      });
      await store.insert(event);
      const [got] = await store.query({ since: t0, limit: 10 });
      deepStrictEqual(got, event);
    },
  },
  {
    name: 'omits absent agentId and module',
    async run(fresh) {
      const store = await fresh();
      const event = makeEvent({ createdAt: base() + 5 });
      await store.insert(event);
      const [got] = await store.query({ since: 0, limit: 1 });
      deepStrictEqual(got, event);
      ok(!('agentId' in got!) && !('module' in got!), 'absent fields stay absent');
    },
  },
  {
    name: 'stores SQL-looking text verbatim',
    async run(fresh) {
      const store = await fresh();
      const t0 = base();
      const nasty = `'); DROP TABLE immune_events; -- " OR 1=1; \\x00 %_`;
      const event = makeEvent({ message: nasty, module: `x'; DELETE FROM t; --`, meta: { q: nasty }, createdAt: t0 });
      await store.insert(event);
      await store.insert(makeEvent({ createdAt: t0 + 1 }));
      const got = await store.query({ since: 0, limit: 10 });
      equal(got.length, 2);
      deepStrictEqual(got[1], event);
    },
  },
  {
    name: 'answers queries newest first with since, filters and limit',
    async run(fresh) {
      const store = await fresh();
      const t0 = base();
      const events = [
        makeEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', createdAt: t0 + 1_000 }),
        makeEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', createdAt: t0 + 2_000 }),
        makeEvent({ severity: 'WARNING', type: 'POLICY_VIOLATION', createdAt: t0 + 3_000 }),
        makeEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', createdAt: t0 + 4_000 }),
        makeEvent({ severity: 'INFO', type: 'ERROR_SPIKE', createdAt: t0 + 5_000 }),
      ];
      for (const e of events) await store.insert(e);
      deepStrictEqual(ids(await store.query({ since: 0, limit: 100 })), ids([...events].reverse()));
      deepStrictEqual(ids(await store.query({ since: t0 + 3_000, limit: 100 })), ids([events[4]!, events[3]!, events[2]!]));
      deepStrictEqual(ids(await store.query({ since: 0, limit: 2 })), ids([events[4]!, events[3]!]));
      deepStrictEqual(ids(await store.query({ since: 0, severity: 'CRITICAL', limit: 100 })), ids([events[3]!, events[1]!]));
      deepStrictEqual(ids(await store.query({ since: 0, type: 'ERROR_SPIKE', limit: 100 })), ids([events[4]!, events[1]!]));
      deepStrictEqual(ids(await store.query({ since: 0, severity: 'CRITICAL', type: 'POLICY_VIOLATION', limit: 100 })), ids([events[3]!]));
      deepStrictEqual(await store.query({ since: t0 + 6_000, limit: 100 }), []);
    },
  },
  {
    name: 'counts by severity and type exactly at window edges, with the latest critical event',
    async run(fresh) {
      const store = await fresh();
      const t0 = base();
      const at = (offset: number, severity: ImmuneSeverity, type: ImmuneEventType) => makeEvent({ severity, type, createdAt: t0 + offset });
      const events = [
        at(10_000, 'CRITICAL', 'ERROR_SPIKE'), // before the window
        at(30_500, 'INFO', 'SELF_HEALING_ACTION'), // exactly at the window start
        at(45_000, 'CRITICAL', 'POLICY_VIOLATION'),
        at(90_000, 'WARNING', 'ERROR_SPIKE'),
        at(200_000, 'CRITICAL', 'ERROR_SPIKE'),
        at(200_001, 'INFO', 'ERROR_SPIKE'),
      ];
      await Promise.all(events.map((e) => store.insert(e)));
      const counts = await store.counts(t0 + 30_500);
      equal(counts.total, 5);
      deepStrictEqual(counts.bySeverity, { INFO: 2, WARNING: 1, CRITICAL: 2 });
      deepStrictEqual(counts.byType, { POLICY_VIOLATION: 1, ERROR_SPIKE: 3, SELF_HEALING_ACTION: 1 });
      equal(counts.latestCritical?.id, events[4]!.id);
      const all = await store.counts(0);
      equal(all.total, 6);
      equal(all.bySeverity.CRITICAL, 3);
      const late = await store.counts(t0 + 200_001);
      equal(late.total, 1);
      equal(late.latestCritical, undefined);
    },
  },
  {
    name: 'counts exactly across hours, minutes and a partial minute',
    async run(fresh) {
      const store = await fresh();
      const h0 = Math.floor(Date.now() / hour) * hour - 5 * hour;
      const offsets = [10 * minute, hour + 30 * minute + 15_000, 2 * hour + 5_000, 3 * hour - 1, 3 * hour + 10 * minute, 4 * hour];
      const events = offsets.map((o, i) => makeEvent({ severity: i % 2 === 0 ? 'CRITICAL' : 'WARNING', type: 'ERROR_SPIKE', createdAt: h0 + o }));
      await Promise.all(events.map((e) => store.insert(e)));
      const mid = await store.counts(h0 + hour + 30 * minute + 10_000);
      equal(mid.total, 5);
      deepStrictEqual(mid.bySeverity, { INFO: 0, WARNING: 3, CRITICAL: 2 });
      equal(mid.latestCritical?.id, events[4]!.id);
      equal((await store.counts(h0 + 2 * hour)).total, 4);
      equal((await store.counts(h0 + 2 * hour + 5_001)).total, 3);
      equal((await store.counts(h0 + 3 * hour - 1)).total, 3);
      equal((await store.counts(h0 + 3 * hour)).total, 2);
      equal((await store.counts(h0)).byType.ERROR_SPIKE, 6);
    },
  },
  {
    name: 'counts nothing in an empty store',
    async run(fresh) {
      const store = await fresh();
      const counts = await store.counts(0);
      equal(counts.total, 0);
      deepStrictEqual(counts.bySeverity, { INFO: 0, WARNING: 0, CRITICAL: 0 });
      deepStrictEqual(counts.byType, { POLICY_VIOLATION: 0, ERROR_SPIKE: 0, SELF_HEALING_ACTION: 0 });
      equal(counts.latestCritical, undefined);
    },
  },
  {
    name: 'commits many concurrent inserts, each resolved one readable',
    async run(fresh) {
      const store = await fresh();
      const t0 = base();
      const events = Array.from({ length: 2_500 }, (_, i) => makeEvent({ severity: i % 10 === 0 ? 'CRITICAL' : 'INFO', createdAt: t0 + i, meta: { i } }));
      await Promise.all(events.map((e) => store.insert(e)));
      const counts = await store.counts(0);
      equal(counts.total, 2_500);
      equal(counts.bySeverity.CRITICAL, 250);
      const newest = await store.query({ since: 0, limit: 3 });
      deepStrictEqual(
        newest.map((e) => e.meta.i),
        [2_499, 2_498, 2_497],
      );
    },
  },
  {
    name: 'prunes events older than a cutoff and keeps counts consistent',
    async run(fresh) {
      const store = await fresh();
      ok(typeof store.prune === 'function', 'the store prunes');
      const t0 = base();
      const old = Array.from({ length: 5 }, (_, i) => makeEvent({ severity: 'CRITICAL', createdAt: t0 - 3 * 86_400_000 + i }));
      const recent = Array.from({ length: 3 }, (_, i) => makeEvent({ createdAt: t0 + i }));
      await Promise.all([...old, ...recent].map((e) => store.insert(e)));
      equal(await store.prune(t0 - 86_400_000), 5);
      const counts = await store.counts(0);
      equal(counts.total, 3);
      equal(counts.bySeverity.CRITICAL, 0);
      equal(counts.latestCritical, undefined);
      equal((await store.query({ since: 0, limit: 10 })).length, 3);
    },
  },
  {
    name: 'rejects with CLOSED after close and closes twice safely',
    async run(fresh) {
      const store = await fresh();
      await store.insert(makeEvent());
      await Promise.all([store.close(), store.close()]);
      await store.close();
      const error = await store.insert(makeEvent()).then(
        () => undefined,
        (e: unknown) => e,
      );
      ok(isGuardError(error, 'CLOSED'), `insert after close rejects with CLOSED, got ${String(error)}`);
    },
  },
];

/**
 * Runs one contract case against stores from `factory`, closing every store it opened and then running `cleanup`,
 * whether the case passed or not.
 *
 * @example
 * await runContractCase(eventStoreContract[0]!, () => new MemoryEventStore());
 */
export async function runContractCase(
  contractCase: EventStoreContractCase,
  factory: () => EventStore | Promise<EventStore>,
  cleanup?: () => void | Promise<void>,
): Promise<void> {
  const open: EventStore[] = [];
  try {
    await contractCase.run(async () => {
      const store = await factory();
      open.push(store);
      return store;
    });
  } finally {
    for (const store of open) await store.close();
    await cleanup?.();
  }
}

/**
 * Registers the event-store contract as one test suite: one test per case of {@link eventStoreContract}.
 * `factory` returns a fresh, empty store per test; the suite closes it.
 *
 * @example
 * import { describe, it } from 'vitest';
 * describeEventStoreContract('memory', () => new MemoryEventStore({ capacity: 10_000 }), { test: { describe, it } });
 * describeEventStoreContract('sqlite', () => createSqliteStore({ path: join(dir, `${randomUUID()}.db`) }), { test: { describe, it } });
 */
export function describeEventStoreContract(name: string, factory: () => EventStore | Promise<EventStore>, options: EventStoreContractOptions = {}): void {
  const test = options.test ?? globalTestApi();
  test.describe(`EventStore contract: ${name}`, () => {
    for (const contractCase of eventStoreContract) test.it(contractCase.name, () => runContractCase(contractCase, factory, options.cleanup));
  });
}

function globalTestApi(): ContractTestApi {
  const { describe, it } = globalThis as { describe?: unknown; it?: unknown };
  if (typeof describe !== 'function' || typeof it !== 'function') {
    throw new GuardError('INVALID_OPTION', "no global describe/it: pass the test framework's, as { test: { describe, it } }", { details: { field: 'test' } });
  }
  return { describe: describe as ContractTestApi['describe'], it: it as ContractTestApi['it'] };
}
