import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { createKyselyEventStore, KyselyEventStore } from './kysely-store.js';
import { dialectOf } from './store-dialect.js';
import type { AnyKysely } from './store-dialect.js';
import { createPostgresStore, PostgresEventStore } from './postgres.js';
import { ImmuneService } from './immune-service.js';
import { describeEventStoreContract } from './testing.js';
import { filePgDatabase, uniqueTable } from './test-helpers.js';

const url = await filePgDatabase('immune_postgres');
const table = uniqueTable;

const postgresDb = (): AnyKysely => new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });

describeEventStoreContract('postgres', () => createPostgresStore({ connectionString: url, tableName: table('c') }), { test: { describe, it } });

describeEventStoreContract(
  'postgres (shared kysely instance)',
  () => createKyselyEventStore({ db: postgresDb(), tableName: table('k'), destroyOnClose: true }),
  { test: { describe, it } },
);

describe('PostgresEventStore (fleet mode)', () => {
  it('two services on one database see each other’s events in summaries and queries', async () => {
    const tableName = table('fleet');
    await using a = new ImmuneService({ store: await createPostgresStore({ connectionString: url, tableName }) });
    await using b = new ImmuneService({ store: await createPostgresStore({ connectionString: url, tableName }) });
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => a.publishEvent({ agentId: 'a', severity: 'INFO', type: 'SELF_HEALING_ACTION', message: `a${i}` })),
      ...Array.from({ length: 30 }, (_, i) => b.publishEvent({ agentId: 'b', severity: 'WARNING', type: 'ERROR_SPIKE', message: `b${i}` })),
    ]);
    const critical = await b.publishEvent({ agentId: 'b', severity: 'CRITICAL', type: 'POLICY_VIOLATION', message: 'acl breach' });
    for (const service of [a, b]) {
      const summary = await service.healthSummary({ windowMs: 60_000 });
      expect(summary.total).toBe(81);
      expect(summary.bySeverity).toEqual({ INFO: 50, WARNING: 30, CRITICAL: 1 });
      expect(summary.latestCritical?.id).toBe(critical);
      expect(summary.status).toBe('critical');
    }
    const fromB = await a.getRecentEvents({ windowMs: 60_000, type: 'ERROR_SPIKE', limit: 1_000 });
    expect(fromB).toHaveLength(30);
    expect(fromB.every((e) => e.agentId === 'b')).toBe(true);
  });

  it('starts two stores on a fresh table at once (migrations are locked)', async () => {
    const tableName = table('race');
    const [x, y] = await Promise.all([
      createPostgresStore({ connectionString: url, tableName }),
      createPostgresStore({ connectionString: url, tableName }),
    ]);
    await x.close();
    await y.close();
  });

  it('takes its dialect from the kysely adapter: a contradicting dialect option is INVALID_OPTION', async () => {
    const db = postgresDb();
    expect(dialectOf(db)).toBe('postgres');
    let error: unknown;
    try {
      new KyselyEventStore({ db, dialect: 'sqlite', tableName: table('mismatch') });
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe('dialect');
    await using store = await createKyselyEventStore({ db, tableName: table('adapter'), destroyOnClose: true });
    expect(store.kind).toBe('postgres');
  });

  it('uses a caller-owned pool without ending it', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const store = await createPostgresStore({ pool, tableName: table('pool') });
    await store.close();
    const { rows } = await pool.query('select 1 as one');
    expect(rows[0].one).toBe(1);
    await pool.end();
  });

  it('validates options and reports an unreachable server as STORE_UNAVAILABLE', async () => {
    let error: unknown;
    try {
      new PostgresEventStore({});
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    const failed = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:1/none', tableName: table('down') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isGuardError(failed, 'STORE_UNAVAILABLE')).toBe(true);
  });
});
