import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Dialect } from 'kysely';
import { envReader, guardPgPool, pgPoolTimeoutConfig, resolvePgTimeouts, silentLogger, type Env, type Logger, type PgTimeouts } from '@guard/core';

/** The demo's own tables. */
export interface DemoTables {
  analyses: {
    id: string;
    text: string;
    status: string;
    score: number | null;
    created_at: number;
    finished_at: number | null;
  };
}

/** Which database the demo uses, and how to reach it. */
export type DatabaseConfig = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string; timeouts: PgTimeouts; poolMax: number };

/** SQLite file under `dataDir` by default; Postgres when `DATABASE_URL` is set. */
export function databaseConfigFromEnv(env: Env, dataDir: string): DatabaseConfig {
  const url = env.DATABASE_URL?.trim();
  if (!url) return { kind: 'sqlite', file: `${dataDir}/demo.db` };
  // Timeouts: GUARD_PG_CONNECT_TIMEOUT_MS, GUARD_PG_STATEMENT_TIMEOUT_MS, GUARD_PG_QUERY_TIMEOUT_MS (see @guard/core).
  return { kind: 'postgres', url, timeouts: resolvePgTimeouts({}, env), poolMax: envReader(env).number('DATABASE_POOL_MAX', 10, { min: 1, max: 1_000, integer: true }) };
}

/** Builds the kysely dialect (the native driver is loaded only for the chosen kind). */
export async function createDialect(config: DatabaseConfig, logger: Logger = silentLogger): Promise<Dialect> {
  if (config.kind === 'postgres') {
    // guardPgPool: an 'error' listener on the pool and on every client for its whole life (pg-pool drops its idle
    // listener at checkout and kysely adds none, so a backend killed mid-query would end the process), bounded
    // connects and queries, and a connection whose query timed out or broke is evicted instead of reused.
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: config.url, max: config.poolMax, idleTimeoutMillis: 10_000, ...pgPoolTimeoutConfig(config.timeouts) });
    return new PostgresDialect({ pool: guardPgPool(pool, { timeouts: config.timeouts, logger, name: 'demo-db' }) });
  }
  const { default: Database } = await import('better-sqlite3');
  mkdirSync(dirname(config.file), { recursive: true });
  const db = new Database(config.file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  return new SqliteDialect({ database: db });
}

/**
 * Creates the demo's tables if they are missing, under the dialect's migration lock (Postgres: an advisory lock), so
 * replicas starting together on a fresh database do not race on the catalog: `create table if not exists` alone
 * fails with `duplicate key value violates unique constraint "pg_type_typname_nsp_index"` for all but one of them.
 */
export async function migrate(db: Kysely<DemoTables>): Promise<void> {
  const lock = { lockTable: 'demo_migrations_lock', lockRowId: 'schema' };
  await db.connection().execute(async (conn) => {
    const adapter = conn.getExecutor().adapter;
    await adapter.acquireMigrationLock(conn, lock);
    try {
      await createTables(conn);
    } finally {
      await adapter.releaseMigrationLock(conn, lock);
    }
  });
}

async function createTables(db: Kysely<DemoTables>): Promise<void> {
  await db.schema
    .createTable('analyses')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('score', 'integer')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await sql`create index if not exists analyses_created_at on analyses (created_at)`.execute(db);
}
