import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Dialect } from 'kysely';
import { envReader, silentLogger, type Env, type Logger } from '@guard/core';

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

/** Bounds on every wait for Postgres, so a lost database fails requests fast instead of hanging them. */
export interface PostgresTimeouts {
  /** Connecting, and waiting for a free pooled connection (`DATABASE_CONNECT_TIMEOUT`, default 2 s). */
  readonly connectTimeoutMs: number;
  /** Server-side `statement_timeout` (`DATABASE_STATEMENT_TIMEOUT`, default 2 s). */
  readonly statementTimeoutMs: number;
  /**
   * Client-side read timeout (`DATABASE_QUERY_TIMEOUT`, default 3 s): how long to wait for any answer. It outlives the
   * statement timeout, so it only fires when the server cannot answer (a partition); that connection is then dropped.
   */
  readonly queryTimeoutMs: number;
  /** Pool size (`DATABASE_POOL_MAX`, default 10). */
  readonly poolMax: number;
}

/** Which database the demo uses, and how to reach it. */
export type DatabaseConfig = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string; timeouts: PostgresTimeouts };

/** SQLite file under `dataDir` by default; Postgres when `DATABASE_URL` is set. */
export function databaseConfigFromEnv(env: Env, dataDir: string): DatabaseConfig {
  const url = env.DATABASE_URL?.trim();
  if (!url) return { kind: 'sqlite', file: `${dataDir}/demo.db` };
  const read = envReader(env);
  return {
    kind: 'postgres',
    url,
    timeouts: {
      connectTimeoutMs: read.durationMs('DATABASE_CONNECT_TIMEOUT', 2_000, 'ms', { min: 1 }),
      statementTimeoutMs: read.durationMs('DATABASE_STATEMENT_TIMEOUT', 2_000, 'ms', { min: 1 }),
      queryTimeoutMs: read.durationMs('DATABASE_QUERY_TIMEOUT', 3_000, 'ms', { min: 1 }),
      poolMax: read.number('DATABASE_POOL_MAX', 10, { min: 1, max: 1_000, integer: true }),
    },
  };
}

/** Builds the kysely dialect (the native driver is loaded only for the chosen kind). */
export async function createDialect(config: DatabaseConfig, logger: Logger = silentLogger): Promise<Dialect> {
  if (config.kind === 'postgres') return new PostgresDialect({ pool: await createResilientPool(config.url, config.timeouts, logger) });
  const { default: Database } = await import('better-sqlite3');
  mkdirSync(dirname(config.file), { recursive: true });
  const db = new Database(config.file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  return new SqliteDialect({ database: db });
}

/**
 * A pg pool that survives a lost database: every client gets its own 'error' listener for its whole life (pg-pool
 * removes its idle listener at checkout and kysely adds none, so a backend killed mid-query would otherwise raise an
 * unhandled 'error' and end the process), the pool has one too, and a client whose read timed out is dropped
 * rather than reused with a query still stuck on it.
 */
async function createResilientPool(url: string, timeouts: PostgresTimeouts, logger: Logger) {
  const { default: pg } = await import('pg');
  class TimeoutDroppingClient extends pg.Client {
    // pg's overloads make a typed override impractical; this only watches the outcome and returns pg's own result.
    override query(...args: unknown[]): any {
      const result = (super.query as (...a: unknown[]) => unknown)(...args);
      if (result instanceof Promise) {
        result.catch((error: unknown) => {
          if ((error as Error)?.message === 'Query read timeout') this.#drop();
        });
      }
      return result;
    }

    #drop(): void {
      // The stuck query keeps this connection busy; closing its stream makes pg mark the client unusable and the pool discard it.
      (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: timeouts.poolMax,
    Client: TimeoutDroppingClient,
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    statement_timeout: timeouts.statementTimeoutMs,
    query_timeout: timeouts.queryTimeoutMs,
    idle_in_transaction_session_timeout: 60_000,
    keepAlive: true,
    idleTimeoutMillis: 10_000,
  });
  let lastLoggedAt = 0;
  const onError = (error: Error) => {
    // Log at most once a second: a dead database makes every client fail at once.
    const now = Date.now();
    if (now - lastLoggedAt < 1_000) return;
    lastLoggedAt = now;
    logger.warn({ err: error }, 'postgres connection lost; the pool replaces it on next use');
  };
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

/** Creates the demo's tables if they are missing. */
export async function migrate(db: Kysely<DemoTables>): Promise<void> {
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
