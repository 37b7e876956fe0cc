import pg from 'pg';
import { GuardError } from '@guard/core';
import { Kysely, PostgresDialect } from 'kysely';
import { KyselyEventStore } from './kysely-store.js';
import type { KyselyEventStoreOptions } from './kysely-store.js';

/**
 * Options for {@link createPostgresStore}.
 *
 * @example
 * await createPostgresStore({ connectionString: process.env.DATABASE_URL, maxConnections: 4 });
 */
export interface PostgresEventStoreOptions extends Omit<KyselyEventStoreOptions, 'db' | 'dialect' | 'sqliteHandle' | 'destroyOnClose'> {
  /** `postgres://user@host:5432/db`. Give this or `pool`. */
  readonly connectionString?: string;
  /** An existing pg pool (not closed by the store). */
  readonly pool?: pg.Pool;
  /** Connections of the pool the store creates. Default 4. */
  readonly maxConnections?: number;
}

/**
 * Fleet mode: many services write one Postgres table and see each other's events in summaries.
 * Group commit writes each batch as one multi-row insert plus a rollup upsert in one transaction.
 *
 * @example
 * await using store = await createPostgresStore({ connectionString: process.env.DATABASE_URL });
 * await using service = new ImmuneService({ store });
 */
export class PostgresEventStore extends KyselyEventStore {
  constructor(options: PostgresEventStoreOptions) {
    const { connectionString, pool: given, maxConnections = 4, ...rest } = options ?? ({} as PostgresEventStoreOptions);
    if (!given && (typeof connectionString !== 'string' || connectionString === '')) {
      throw new GuardError('INVALID_OPTION', 'connectionString or pool is required', { details: { field: 'connectionString' } });
    }
    if (!Number.isInteger(maxConnections) || maxConnections < 1) {
      throw new GuardError('INVALID_OPTION', `maxConnections must be an integer >= 1, got ${String(maxConnections)}`, { details: { field: 'maxConnections' } });
    }
    const pool = given ?? new pg.Pool({ connectionString, max: maxConnections });
    if (!given) pool.on('error', () => {}); // idle-client errors are surfaced by the next query
    super({
      ...rest,
      db: new Kysely<any>({ dialect: new PostgresDialect({ pool }) }),
      dialect: 'postgres',
      destroyOnClose: !given,
    });
  }
}

/**
 * Connects a Postgres event store and waits for its migrations.
 *
 * @example
 * await using store = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:5432/guard', tableName: 'immune_events' });
 */
export async function createPostgresStore(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
  const store = new PostgresEventStore(options);
  try {
    return await store.ready;
  } catch (error) {
    await store.close();
    throw error;
  }
}
