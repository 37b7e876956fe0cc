import type pg from 'pg';
import type { GuardedPgPool, PgPoolLike } from '@guard/core';
import { GuardError, guardPgPool, pgPoolTimeoutConfig, resolvePgTimeouts } from '@guard/core';
import { immuneCounter } from './metrics.js';
import { Kysely, PostgresDialect } from 'kysely';
import { KyselyEventStore, openStore } from './kysely-store.js';
import type { KyselyEventStoreOptions } from './kysely-store.js';
import { requireOptionalPeer } from './optional-peer.js';

const pgDriver = requireOptionalPeer<typeof pg>('pg', '@guard/immune/postgres', '@types/pg');

/**
 * Options for {@link createPostgresStore}.
 *
 * @example
 * await createPostgresStore({ connectionString: process.env.DATABASE_URL, maxConnections: 4, statementTimeoutMs: 2_000 });
 */
export interface PostgresEventStoreOptions extends Omit<KyselyEventStoreOptions, 'db' | 'dialect' | 'sqliteHandle' | 'destroyOnClose'> {
  /** `postgres://user@host:5432/db`. Give this or `pool`. */
  readonly connectionString?: string;
  /** An existing pg pool (not closed by the store; the store adds error listeners and bounds its own queries). */
  readonly pool?: pg.Pool;
  /** Connections of the pool the store creates. Default 4. */
  readonly maxConnections?: number;
  /** Opening a connection, or waiting for a free one. Default `GUARD_PG_CONNECT_TIMEOUT_MS`, else 5 s. */
  readonly connectTimeoutMs?: number;
  /** Server-side `statement_timeout` of the store's own pool. Default `GUARD_PG_STATEMENT_TIMEOUT_MS`, else 5 s. */
  readonly statementTimeoutMs?: number;
  /** Client-side bound of one query (a silent network). Default `GUARD_PG_QUERY_TIMEOUT_MS`, else statement timeout + 1 s. */
  readonly queryTimeoutMs?: number;
}

/**
 * Fleet mode: many services write one Postgres table and see each other's events in summaries.
 * Group commit writes each batch as one multi-row insert plus a rollup upsert in one statement.
 *
 * The pool survives the database: terminated backends (`pg_terminate_backend`), resets and partitions raise no
 * unhandled error, every wait is bounded (connect, statement and query timeouts), calls fail with
 * `STORE_UNAVAILABLE` meanwhile, broken connections are evicted, and the next call after the database is back
 * succeeds (migrations are retried too).
 *
 * @example
 * await using store = await createPostgresStore({ connectionString: process.env.DATABASE_URL });
 * await using service = new ImmuneService({ store });
 */
export class PostgresEventStore extends KyselyEventStore {
  /** The guarded pool facade under kysely (its `errors` counts connection failures). */
  readonly pool: GuardedPgPool;
  readonly #ownsPool: boolean;

  constructor(options: PostgresEventStoreOptions) {
    const { connectionString, pool: given, maxConnections = 4, connectTimeoutMs, statementTimeoutMs, queryTimeoutMs, ...rest } =
      options ?? ({} as PostgresEventStoreOptions);
    if (!given && (typeof connectionString !== 'string' || connectionString === '')) {
      throw new GuardError('INVALID_OPTION', 'connectionString or pool is required', { details: { field: 'connectionString' } });
    }
    if (!Number.isInteger(maxConnections) || maxConnections < 1) {
      throw new GuardError('INVALID_OPTION', `maxConnections must be an integer >= 1, got ${String(maxConnections)}`, { details: { field: 'maxConnections' } });
    }
    const timeouts = resolvePgTimeouts({
      ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
      ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMs }),
      ...(queryTimeoutMs === undefined ? {} : { queryTimeoutMs }),
    });
    const pool = given ?? new pgDriver.Pool({ connectionString, max: maxConnections, ...pgPoolTimeoutConfig(timeouts) });
    const connectionErrors = immuneCounter(rest, {
      name: 'store_connection_errors_total',
      help: 'Postgres connections of the event store that failed (terminated, reset, timed out); each is replaced on demand',
      labelNames: ['store'],
    });
    const safe = guardPgPool(pool as unknown as PgPoolLike, {
      timeouts,
      name: 'immune event store (postgres)',
      ...(rest.logger ? { logger: rest.logger } : {}),
      onError: () => connectionErrors?.inc({ store: 'postgres' }),
    });
    super({
      ...rest,
      db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool: safe }) }),
      destroyOnClose: !given,
    });
    this.pool = safe;
    this.#ownsPool = !given;
  }

  override async close(): Promise<void> {
    await super.close();
    // An owned pool was ended (and detached) by kysely; a caller's pool keeps running without our pool listeners.
    if (!this.#ownsPool) this.pool.detach();
  }
}

/**
 * Connects a Postgres event store and waits for its migrations; rejects with `STORE_UNAVAILABLE` when the database
 * cannot be reached within the connect timeout.
 *
 * @example
 * await using store = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:5432/guard', tableName: 'immune_events' });
 */
export async function createPostgresStore(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
  return openStore(new PostgresEventStore(options));
}
