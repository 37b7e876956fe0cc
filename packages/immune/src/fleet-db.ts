import type {} from './errors.js';
import type { GuardedPgClient, GuardedPgPool, ListenPoolLike, Logger, PgPoolLike, PgRowsQuery, PgTimeouts } from '@guard/core';
import { guardPgPool, inPgTransaction, migrateUnderLock, resolvePgTimeouts, withPgClient } from '@guard/core';
import { toStoreError } from './store-error.js';

/**
 * A pg pool as the fleet features need it: bounded queries for their tables and `connect()` for a LISTEN session.
 *
 * @example
 * const pool: FleetPoolLike = new pg.Pool({ connectionString, max: 4 });
 */
export type FleetPoolLike = PgPoolLike & ListenPoolLike;

/**
 * The fleet tables' access to Postgres: queries bounded by the pool-safety timeouts, failures typed
 * `STORE_UNAVAILABLE` (unreachable: fall back to this instance) or `STORE_ERROR`, and migrations serialized by an
 * advisory lock so any number of replicas can create the schema at the same moment.
 *
 * @example
 * const db = new FleetDb(pool, { name: 'fleet membership' });
 * await db.migrate('guard_fleet_schema', ['create table if not exists t (id text primary key)']);
 */
export class FleetDb {
  readonly pool: FleetPoolLike;
  readonly guarded: GuardedPgPool;
  readonly timeouts: PgTimeouts;

  constructor(pool: FleetPoolLike, options: { timeouts?: PgTimeouts; logger?: Logger; name?: string } = {}) {
    this.pool = pool;
    this.timeouts = options.timeouts ?? resolvePgTimeouts();
    this.guarded = guardPgPool(pool, { timeouts: this.timeouts, ...(options.logger ? { logger: options.logger } : {}), name: options.name ?? 'fleet (postgres)' });
  }

  /** One statement on a pooled connection; rejects with `STORE_UNAVAILABLE` or `STORE_ERROR`. */
  async query<R = Record<string, unknown>>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    return this.session(async (client) => ((await client.query(text, values)) as { rows: R[] }).rows);
  }

  /** Runs `fn` inside BEGIN/COMMIT on one connection (ROLLBACK on error). */
  transaction<T>(fn: (query: PgRowsQuery) => Promise<T>): Promise<T> {
    return this.session((client) => inPgTransaction(client, fn));
  }

  /** Runs DDL statements under `pg_advisory_xact_lock(lockName)` in one transaction (see core's `migrateUnderLock`). */
  migrate(lockName: string, statements: readonly string[]): Promise<void> {
    return this.session((client) => migrateUnderLock(client, lockName, statements));
  }

  /** Runs `fn` on one pooled connection (core's `withPgClient`); rejects with `STORE_UNAVAILABLE` or `STORE_ERROR`. */
  session<T>(fn: (client: GuardedPgClient) => Promise<T>): Promise<T> {
    return withPgClient(this.guarded, fn, { mapError: (error, phase) => toStoreError(error, phase === 'connect' ? 'fleet database unreachable' : 'fleet query failed') });
  }

  /** Removes the pool listeners (the pool itself belongs to whoever made it). */
  detach(): void {
    this.guarded.detach();
  }
}

/** Plain SQL identifiers only (table and channel names are interpolated). */
export const SQL_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
