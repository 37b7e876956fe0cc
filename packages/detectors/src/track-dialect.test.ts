import { GuardBus, isGuardError, waitUntil } from '@guard/core';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { DetectorChain } from './detector-chain.js';
import { trackDialect } from './track-dialect.js';
import { chainFor, pgDatabaseForFile, fileLine, lineHere } from './test-support.js';
import type { AnyTables } from './test-support.js';

const pgUrl = pgDatabaseForFile('detectors_track_dialect');
const dir = mkdtempSync(join(tmpdir(), 'guard-detectors-db-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const one = (db: Kysely<AnyTables>) => db.selectNoFrom(sql<number>`1`.as('one')).executeTakeFirstOrThrow();

afterEach(() => {
  vi.useRealTimers();
});

/** True while the Postgres backend `pid` still has a session. */
async function sessionAlive(db: Kysely<AnyTables>, pid: number): Promise<boolean> {
  const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where pid = ${pid}`.execute(db);
  return Number(rows[0]!.n) > 0;
}

describe('trackDialect (C3) on SQLite (better-sqlite3)', () => {
  it('on the scan loop, a checkout is flagged after leakThresholdMs plus at most one scan interval, not before', async () => {
    const dialect = trackDialect(new SqliteDialect({ database: new Database(':memory:') }), { leakThresholdMs: 10_000 });
    const db = new Kysely<AnyTables>({ dialect });
    await one(db);
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    const chain = new DetectorChain({ scanIntervalMs: 1_000, bus: new GuardBus(), registry: new Registry() });
    chain.add(dialect.tracker);
    const trx = await db.startTransaction().execute();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(chain.active()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_001);
    expect(chain.active()).toEqual([expect.objectContaining({ pattern: 'connection_orphan', severity: 'critical' })]);
    await chain.close();
    await trx.rollback().execute();
    await db.destroy();
  });

  it('does not flag short checkouts and counts connections', async () => {
    const { chain, registry } = chainFor();
    const dialect = trackDialect(new SqliteDialect({ database: new Database(join(dir, 'healthy.db')) }), { leakThresholdMs: 1_000 });
    chain.add(dialect.tracker);
    const db = new Kysely<AnyTables>({ dialect });
    await one(db);
    await db.transaction().execute(async (trx) => one(trx));
    expect(dialect.tracker.activeCount()).toBe(0);
    expect(chain.scan(Date.now() + 60_000)).toEqual([]);
    expect(await registry.metrics()).toContain('parasite_db_connections_active 0');
    await db.destroy();
  });

  it('flags a transaction never finished with its acquiring stack; release rolls it back and the pool serves again', async () => {
    const { chain, scheduler } = chainFor('full');
    const file = join(dir, 'leak.db');
    const dialect = trackDialect(new SqliteDialect({ database: new Database(file) }), { leakThresholdMs: 5_000 });
    chain.add(dialect.tracker);
    const db = new Kysely<AnyTables>({ dialect });
    const table = 't_leak';
    await db.schema.createTable(table).addColumn('n', 'integer').execute();
    const here = lineHere(); const trx = await db.startTransaction().execute();
    await trx.insertInto(table).values({ n: 1 }).execute();
    expect(chain.scan(Date.now() + 1_000)).toEqual([]);
    const [detection] = chain.scan(Date.now() + 5_100);
    expect(detection).toMatchObject({ component: 'db', pattern: 'connection_orphan', severity: 'critical', details: { inTransaction: true } });
    expect(fileLine(detection!.source![0])).toBe(here);
    expect(scheduler.scheduled.map((d) => d.id)).toEqual([detection!.id]);

    // SQLite has one connection: every other query now waits behind the orphan. better-sqlite3 answers within the
    // same turn of the event loop, so a query still pending after one full turn is queued, not slow.
    let served = false;
    const waiting = one(db).then(() => (served = true));
    await new Promise((r) => setImmediate(r));
    expect(served).toBe(false);

    expect(await dialect.tracker.release(detection!.resourceId)).toBe(true);
    expect(await dialect.tracker.release(detection!.resourceId)).toBe(false);
    await waiting;
    expect(served).toBe(true);
    expect(await db.selectFrom(table).selectAll().execute()).toEqual([]); // rolled back
    await expect(trx.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
    expect(dialect.tracker.activeCount()).toBe(0);
    chain.scan(Date.now() + 60_000);
    expect(chain.active()).toEqual([]);
    await db.destroy();
  });

  it('dry_run and detect leave the orphan held', async () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      const { chain, scheduler } = chainFor(mode);
      const dialect = trackDialect(new SqliteDialect({ database: new Database(':memory:') }), { leakThresholdMs: 10 });
      chain.add(dialect.tracker);
      const db = new Kysely<AnyTables>({ dialect });
      await one(db);
      const trx = await db.startTransaction().execute();
      expect(chain.scan(Date.now() + 1_000)).toHaveLength(1);
      expect(scheduler.scheduled).toEqual([]);
      expect(dialect.tracker.activeCount()).toBe(1);
      await one(trx);
      await trx.rollback().execute();
      await db.destroy();
    }
  });

  it('dispose re-creates a SQLite pool built from a factory and it serves again', async () => {
    const file = join(dir, 'dispose.db');
    let created = 0;
    const dialect = trackDialect(() => {
      created++;
      return new SqliteDialect({ database: new Database(file) });
    });
    const db = new Kysely<AnyTables>({ dialect });
    await one(db);
    await db.startTransaction().execute();
    expect(dialect.tracker.activeCount()).toBe(1);
    await dialect.tracker.dispose();
    expect(dialect.tracker.activeCount()).toBe(0);
    expect(created).toBe(2);
    expect(await one(db)).toEqual({ one: 1 });
    await db.destroy();
  });

  it('validates options', () => {
    const dialect = new SqliteDialect({ database: new Database(':memory:') });
    expect(() => trackDialect(dialect, { maxPoolSize: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => trackDialect(dialect, { leakThresholdMs: -5 })).toThrow(/leakThresholdMs/);
  });
});

describe('trackDialect (C3) on the real local Postgres', () => {
  it('detects a transaction never finished with the stack of the line that opened it; release destroys the client', async () => {
    const { chain, scheduler, registry } = chainFor('full');
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 5 });
    const dialect = trackDialect(new PostgresDialect({ pool }), { pgPool: pool, leakThresholdMs: 2_000, name: 'pg' });
    chain.add(dialect.tracker);
    const db = new Kysely<AnyTables>({ dialect });
    await one(db);
    const here = lineHere(); const trx = await db.startTransaction().execute();
    const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid;
    expect(await registry.metrics()).toContain('parasite_db_connections_active 1');
    const [detection] = chain.scan(Date.now() + 2_100);
    expect(detection).toMatchObject({ component: 'db', pattern: 'connection_orphan', severity: 'critical', details: { pool: 'pg', inTransaction: true } });
    expect(fileLine(detection!.source![0])).toBe(here);
    expect(scheduler.scheduled).toHaveLength(1);

    expect(await dialect.tracker.release(detection!.resourceId)).toBe(true);
    expect(dialect.tracker.activeCount()).toBe(0);
    expect(pool.totalCount).toBe(0); // destroyed, not returned to the pool
    expect(await registry.metrics()).toContain('parasite_db_connections_active 0');
    // the server session is gone (its transaction rolled back)
    await waitUntil(async () => !(await sessionAlive(db, pid)), { what: `backend ${pid} to end` });
    expect(await one(db)).toEqual({ one: 1 });
    await expect(trx.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
    await db.destroy();
  });

  it('releasing one orphan among concurrent checkouts destroys exactly its own client, never a sibling\'s', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 8 });
    // every checkout captures its stack here (no sampling): the test finds the orphan by its acquiring line
    const dialect = trackDialect(new PostgresDialect({ pool }), { pgPool: pool, leakThresholdMs: 60_000, name: 'pg-concurrent', sourceSampleEvery: 1 });
    const db = new Kysely<AnyTables>({ dialect });
    const pidOf = async (trx: Kysely<AnyTables>) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid;
    const alive = (pid: number) => sessionAlive(db, pid);
    const open: { rollback(): { execute(): Promise<void> } }[] = [];
    await pool.query('select 1');
    await one(db); // kysely's driver is initialised once; from then on checkouts run straight from the caller's stack
    try {
      for (let round = 0; round < 3; round++) {
        // Idle clients that kysely has never seen (the pool is shared with plain `pool.query` users): their
        // checkouts are handed out within one tick, so every 'acquire' event fires before any checkout resumes.
        await Promise.all(Array.from({ length: 6 }, () => pool.query('select 1')));
        // six concurrent checkouts; the orphan is opened from its own line, so its checkout is found by its acquiring stack
        const orphanIndex = round * 2 + 1;
        let orphanLine = '';
        const openSibling = async () => await db.startTransaction().execute();
        const openOrphan = async () => { orphanLine = lineHere(); return await db.startTransaction().execute(); };
        const trxs = await Promise.all(Array.from({ length: 6 }, (_, i) => (i === orphanIndex ? openOrphan() : openSibling())));
        open.push(...trxs);
        const pids = await Promise.all(trxs.map(pidOf));
        expect(new Set(pids).size).toBe(6);
        const orphanPid = pids[orphanIndex]!;
        const checkouts = dialect.tracker.checkouts();
        expect(checkouts).toHaveLength(6);
        const orphanId = checkouts.find((c) => fileLine(c.source[0]) === orphanLine)?.id;
        expect(orphanId).toBeDefined();
        expect(await dialect.tracker.release(orphanId!)).toBe(true);

        await waitUntil(async () => !(await alive(orphanPid)), { what: `the orphan's backend ${orphanPid} to end` });
        // every sibling keeps its own session and finishes its transaction normally
        for (const [i, trx] of trxs.entries()) {
          if (i === orphanIndex) {
            await expect(trx.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
            continue;
          }
          expect(await alive(pids[i]!)).toBe(true);
          expect(await pidOf(trx)).toBe(pids[i]);
          await trx.commit().execute();
        }
        expect(dialect.tracker.activeCount()).toBe(0);
        open.length = 0;
      }
    } finally {
      // a failed expectation must not leave transactions that keep db.destroy() waiting
      await Promise.allSettled(open.map((t) => t.rollback().execute()));
      await db.destroy();
    }
  });

  it('flags a pool over maxPoolSize with the pg counts; dispose drains it to 0 and it serves again', async () => {
    const { chain } = chainFor('detect');
    let pool!: pg.Pool;
    const dialect = trackDialect(() => new PostgresDialect({ pool: (pool = new pg.Pool({ connectionString: pgUrl(), max: 6 })) }), {
      pgPool: () => pool,
      maxPoolSize: 2,
      name: 'pg-overflow',
    });
    chain.add(dialect.tracker);
    const db = new Kysely<AnyTables>({ dialect });
    const table = `dt_${process.pid}_${Date.now().toString(36)}`;
    await db.schema.createTable(table).addColumn('n', 'integer').execute();
    const trxs = await Promise.all([1, 2, 3].map(() => db.startTransaction().execute()));
    const found = chain.scan().find((d) => d.pattern === 'pool_overflow');
    expect(found).toMatchObject({ component: 'db', severity: 'critical', resourceId: 'pg-overflow', details: { active: 3, maxPoolSize: 2, pg: { total: 3 } } });
    const first = pool;
    await dialect.tracker.dispose();
    expect(first.totalCount).toBe(0);
    expect(dialect.tracker.activeCount()).toBe(0);
    expect(pool).not.toBe(first);
    await db.insertInto(table).values({ n: 7 }).execute();
    expect(await db.selectFrom(table).select('n').execute()).toEqual([{ n: 7 }]);
    chain.scan();
    expect(chain.active()).toEqual([]);
    await Promise.all(trxs.map((t) => expect(t.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'))));
    await db.schema.dropTable(table).execute();
    await db.destroy();
  });
});
