import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { createKyselyEventStore, KyselyEventStore } from './kysely-store.js';
import type { AnyKysely } from './store-dialect.js';
import { createSqliteStore, SqliteEventStore } from './sqlite.js';
import { describeEventStoreContract, makeEvent } from './testing.js';
import { freshRegistry, tempDir } from './test-helpers.js';
import { ImmuneService } from './immune-service.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let n = 0;
const file = () => join(tmp.dir, `events-${++n}.db`);

describeEventStoreContract('sqlite (owned database, fast insert path)', () => createSqliteStore({ path: file() }), { test: { describe, it } });

const sqliteDb = (database = new Database(file())): AnyKysely => new Kysely({ dialect: new SqliteDialect({ database }) });

describeEventStoreContract('sqlite (shared kysely instance)', () => createKyselyEventStore({ db: sqliteDb(), tableName: 'shared_events', destroyOnClose: true }), {
  test: { describe, it },
});

async function errorOf(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('SqliteEventStore', () => {
  it('opens the file in WAL mode and keeps events across reopen', async () => {
    const path = file();
    const event = makeEvent({ severity: 'CRITICAL', message: 'persisted' });
    {
      await using store = await createSqliteStore({ path });
      expect(store.database.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.database.pragma('synchronous', { simple: true })).toBe(2); // FULL
      await store.insert(event);
    }
    await using reopened = await createSqliteStore({ path });
    expect(await reopened.query({ since: 0, limit: 10 })).toEqual([event]);
    expect((await reopened.counts(0)).latestCritical).toEqual(event);
  });

  it('honours synchronous: normal', async () => {
    await using store = await createSqliteStore({ path: file(), synchronous: 'normal' });
    expect(store.database.pragma('synchronous', { simple: true })).toBe(1);
  });

  it('prunes a large backlog in chunks', async () => {
    await using store = await createSqliteStore({ path: file(), retentionMs: Infinity });
    const old = Date.now() - 10 * 86_400_000;
    await Promise.all(Array.from({ length: 12_345 }, (_, i) => store.insert(makeEvent({ createdAt: old + (i % 7_000) }))));
    await Promise.all(Array.from({ length: 10 }, () => store.insert(makeEvent())));
    expect(await store.prune(Date.now() - 86_400_000)).toBe(12_345);
    expect((await store.counts(0)).total).toBe(10);
    expect(await store.query({ since: 0, limit: 100 })).toHaveLength(10);
  });

  it('groups concurrent inserts into few transactions (group commit)', async () => {
    const registry = freshRegistry();
    await using store = await createSqliteStore({ path: file(), maxBatchSize: 500, registry });
    const events = Array.from({ length: 2_000 }, (_, i) => makeEvent({ createdAt: 1_700_000_000_000 + i }));
    await Promise.all(events.map((e) => store.insert(e)));
    const metric = await registry.getSingleMetric('guard_immune_store_commit_batch_size')!.get();
    const commits = metric.values.find((v) => (v as { metricName?: string }).metricName === 'guard_immune_store_commit_batch_size_count')!.value;
    const committed = metric.values.find((v) => (v as { metricName?: string }).metricName === 'guard_immune_store_commit_batch_size_sum')!.value;
    expect(committed).toBe(2_000);
    expect(commits).toBeGreaterThanOrEqual(4); // never more than maxBatchSize per transaction
    expect(commits).toBeLessThanOrEqual(20);
    expect((await store.counts(0)).total).toBe(2_000);
  });

  it('shares one kysely database with other tables (several stores, other tables untouched)', async () => {
    const db = sqliteDb();
    await db.schema.createTable('app_users').addColumn('id', 'integer', (c) => c.primaryKey()).execute();
    await db.insertInto('app_users').values({ id: 1 }).execute();
    const a = await createKyselyEventStore({ db, tableName: 'immune_a' });
    const b = await createKyselyEventStore({ db, dialect: 'sqlite', tableName: 'immune_b' }); // the deprecated option, agreeing
    expect([a.kind, b.kind]).toEqual(['sqlite', 'sqlite']);
    await a.insert(makeEvent({ message: 'in a' }));
    expect((await a.counts(0)).total).toBe(1);
    expect((await b.counts(0)).total).toBe(0);
    await a.close();
    await b.close();
    expect(await db.selectFrom('app_users').selectAll().execute()).toEqual([{ id: 1 }]); // not destroyed
    await db.destroy();
  });

  it('validates options with INVALID_OPTION naming the field', async () => {
    const cases: Array<[() => unknown, string]> = [
      [() => new SqliteEventStore({ path: '' }), 'path'],
      [() => new SqliteEventStore({ path: file(), tableName: 'bad name; drop' }), 'tableName'],
      [() => new SqliteEventStore({ path: file(), synchronous: 'off' as never }), 'synchronous'],
      [() => new SqliteEventStore({ path: file(), retentionMs: 5 }), 'retentionMs'],
      [() => new SqliteEventStore({ path: file(), maxBatchSize: 0 }), 'maxBatchSize'],
      [() => new SqliteEventStore({ path: file(), rollupBucketMs: 10 }), 'rollupBucketMs'],
      [() => new KyselyEventStore({ db: {} as never }), 'db'],
      [() => new KyselyEventStore({ db: sqliteDb(), dialect: 'mysql' as never }), 'dialect'],
      [() => new KyselyEventStore({ db: sqliteDb(), dialect: 'postgres' }), 'dialect'], // the adapter says sqlite
    ];
    for (const [fn, field] of cases) {
      const error = await errorOf(fn);
      expect(isGuardError(error, 'INVALID_OPTION'), field).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe(field);
    }
  });

  it('fails to open an unusable path with STORE_ERROR', async () => {
    const error = await errorOf(() => createSqliteStore({ path: join(tmp.dir, 'missing-dir', 'x', 'events.db') }));
    expect(isGuardError(error, 'STORE_ERROR')).toBe(true);
  });

  it('rejects with QUEUE_FULL beyond maxPending and stays usable', async () => {
    await using store = await createSqliteStore({ path: file(), maxPending: 10, maxBatchSize: 1_000 });
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => store.insert(makeEvent())));
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(5);
    expect(isGuardError((rejected[0] as PromiseRejectedResult).reason, 'QUEUE_FULL')).toBe(true);
    await store.insert(makeEvent());
    expect((await store.counts(0)).total).toBe(11);
  });

  it('prunes by retention on its own timer', async () => {
    const path = file();
    await using store = await createSqliteStore({ path, retentionMs: 60_000, pruneIntervalMs: 20, rollupBucketMs: 1_000 });
    await store.insert(makeEvent({ createdAt: Date.now() - 3_600_000 }));
    await store.insert(makeEvent());
    await expect.poll(async () => (await store.counts(0)).total, { timeout: 5_000 }).toBe(1);
  });

  it('reports a commit failure as STORE_ERROR to every publisher of the batch', async () => {
    await using store = await createSqliteStore({ path: file() });
    store.database.exec(`CREATE TRIGGER boom BEFORE INSERT ON ${store.tableName} WHEN NEW.message = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END`);
    const results = await Promise.allSettled([store.insert(makeEvent({ message: 'fine' })), store.insert(makeEvent({ message: 'boom' }))]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(isGuardError((r as PromiseRejectedResult).reason, 'STORE_ERROR')).toBe(true);
    }
    // All or nothing: the failed batch left no row behind, and later batches work.
    expect((await store.counts(0)).total).toBe(0);
    await store.insert(makeEvent({ message: 'after' }));
    expect((await store.query({ since: 0, limit: 5 })).map((e) => e.message)).toEqual(['after']);
  });

  it('works behind ImmuneService end to end', async () => {
    await using service = new ImmuneService({ store: await createSqliteStore({ path: file() }) });
    const ids = await Promise.all(
      Array.from({ length: 300 }, (_, i) => service.publishEvent({ severity: i % 3 === 0 ? 'CRITICAL' : 'INFO', type: 'ERROR_SPIKE', message: `e${i}` })),
    );
    expect(new Set(ids).size).toBe(300);
    const summary = await service.healthSummary({ windowMs: 60_000 });
    expect(summary.total).toBe(300);
    expect(summary.bySeverity.CRITICAL).toBe(100);
    expect(summary.status).toBe('critical');
  });
});
