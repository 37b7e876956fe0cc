import type { Logger, PgPoolLike } from '@guard/core';
import { assertNumberOption, GuardError, guardPgPool, pgPoolTimeoutConfig, resolvePgTimeouts, silentLogger } from '@guard/core';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { FleetLock, FleetLockResult, FleetLockRunOptions } from './fleet-lock.js';
import { fleetStepSucceeded } from './fleet-lock.js';
import { storeError } from './store-error.js';
import type {} from './declarations.js';

/** Options for {@link createPostgresFleetLock}: a Kysely instance on Postgres, or a connection string. */
export interface PostgresFleetLockOptions {
  /** A Kysely instance with the Postgres dialect (not closed by the lock; its pool's safety is the caller's). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: the lock runs raw SQL on its own table only
  readonly db?: Kysely<any>;
  /** Used when `db` is not given: the lock creates (and closes) its own guarded pool of `poolSize` (default 2). */
  readonly connectionString?: string;
  readonly poolSize?: number;
  /** A key that succeeded within this window is not run again by any instance. Default 60 000; 0 turns it off. */
  readonly dedupeWindowMs?: number;
  /** Table remembering the last success of each key. Default `guard_playbooks_fleet_steps`. */
  readonly table?: string;
  /** This instance's id, stored with each run. Default `<hostname>:<pid>`. */
  readonly instanceId?: string;
  /** Own pool: opening a connection. Default `GUARD_PG_CONNECT_TIMEOUT_MS`, else 5 s. */
  readonly connectTimeoutMs?: number;
  /** Own pool: server-side `statement_timeout`. Default `GUARD_PG_STATEMENT_TIMEOUT_MS`, else 5 s. */
  readonly statementTimeoutMs?: number;
  /** Own pool: client-side bound of one query. Default `GUARD_PG_QUERY_TIMEOUT_MS`, else statement timeout + 1 s. */
  readonly queryTimeoutMs?: number;
  /** Connection losses and unrecorded successes are logged here (warn). Default silent. */
  readonly logger?: Logger;
}

const TABLE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The lock's queries are raw SQL: no table types. */
type NoTables = Record<string, never>;

/** An error of the step itself, carried through the lock's connection scope untouched. */
class StepFailure {
  constructor(readonly error: unknown) {}
}

/**
 * A fleet lock on Postgres: `pg_try_advisory_lock` on one pooled connection elects the instance that runs a
 * fleet-wide step (the others skip it at once), and a small table records each key once its step succeeded, so a
 * step runs successfully at most once per `dedupeWindowMs` across the fleet, and a failed step is tried again by
 * the next instance. Database failures reject with `STORE_UNAVAILABLE` (transient) or `STORE_ERROR`; the pool it
 * creates survives terminated backends, resets and partitions (timeouts, error listeners, eviction).
 *
 * @example
 * import { createPostgresFleetLock } from '@guard/playbooks/postgres';
 * const fleetLock = createPostgresFleetLock({ connectionString: process.env.DATABASE_URL });
 * const engine = new PlaybookEngine({ actions, fleetLock });
 */
export function createPostgresFleetLock(options: PostgresFleetLockOptions): FleetLock & { close(): Promise<void>; readonly instanceId: string } {
  const table = options.table ?? 'guard_playbooks_fleet_steps';
  if (!TABLE.test(table)) throw new GuardError('INVALID_OPTION', `table must be a plain SQL identifier, got ${JSON.stringify(table)}`, { details: { field: 'table' } });
  const dedupeWindowMs = options.dedupeWindowMs ?? 60_000;
  assertNumberOption('dedupeWindowMs', dedupeWindowMs, { min: 0 });
  if (!options.db && !options.connectionString) {
    throw new GuardError('INVALID_OPTION', 'give db (a Kysely instance on Postgres) or connectionString', { details: { field: 'db' } });
  }
  const logger = options.logger ?? silentLogger;
  const owned = !options.db;
  let db: Kysely<NoTables>;
  if (options.db) {
    db = options.db as Kysely<NoTables>;
  } else {
    const timeouts = resolvePgTimeouts({
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
      ...(options.queryTimeoutMs === undefined ? {} : { queryTimeoutMs: options.queryTimeoutMs }),
    });
    const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize ?? 2, ...pgPoolTimeoutConfig(timeouts) });
    db = new Kysely<NoTables>({ dialect: new PostgresDialect({ pool: guardPgPool(pool as unknown as PgPoolLike, { timeouts, logger, name: 'playbooks fleet lock (postgres)' }) }) });
  }
  const instanceId = options.instanceId ?? `${process.env.HOSTNAME ?? 'host'}:${process.pid}`;
  let ready: Promise<void> | undefined;
  let closed = false;
  const ensureTable = (): Promise<void> =>
    (ready ??= db
      .transaction()
      .execute(async (trx) => {
        // Serialized by an advisory lock: concurrent `create table if not exists` races on Postgres's catalog.
        await sql`select pg_advisory_xact_lock(hashtextextended(${`guard_fleet_schema:${table}`}, 0))`.execute(trx);
        await sql`create table if not exists ${sql.table(table)} (key text primary key, instance text not null, ran_at timestamptz not null)`.execute(trx);
      })
      .catch((error: unknown) => {
        ready = undefined;
        throw error;
      }));
  const lockId = (key: string) => sql`hashtextextended(${`guard_playbooks:${key}`}, 0)`;
  const record = (executor: Kysely<NoTables>, key: string) =>
    sql`insert into ${sql.table(table)} (key, instance, ran_at) values (${key}, ${instanceId}, now()) on conflict (key) do update set instance = excluded.instance, ran_at = excluded.ran_at`.execute(
      executor,
    );

  return {
    instanceId,
    async tryRun<T>(key: string, fn: () => Promise<T>, runOptions: FleetLockRunOptions<T> = {}): Promise<FleetLockResult<T>> {
      if (closed) throw new GuardError('CLOSED', 'fleet lock is closed');
      const succeeded = runOptions.succeeded ?? fleetStepSucceeded;
      let outcome: FleetLockResult<T>;
      try {
        if (dedupeWindowMs > 0) await ensureTable();
        outcome = await db.connection().execute(async (conn) => {
          const locked = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${lockId(key)}) as ok`.execute(conn);
          if (!locked.rows[0]?.ok) return { acquired: false, reason: 'held' } as const;
          try {
            if (dedupeWindowMs > 0) {
              const recent = await sql<{ key: string }>`select key from ${sql.table(table)} where key = ${key} and ran_at > now() - make_interval(secs => ${dedupeWindowMs / 1000})`.execute(conn);
              if (recent.rows.length > 0) return { acquired: false, reason: 'done' } as const;
            }
            let value: T;
            try {
              value = await fn();
            } catch (error) {
              throw new StepFailure(error); // not recorded: the next instance tries the step again
            }
            if (dedupeWindowMs > 0 && succeeded(value)) {
              // Recorded while the advisory lock is still held, so nobody can slip in between success and record.
              // If this connection died during the step, record on another one.
              await record(conn, key).catch(() => record(db, key)).catch((error: unknown) => {
                logger.warn({ err: error, key }, 'fleet step succeeded but could not be recorded; another instance may run it again');
              });
            }
            return { acquired: true, value } as const;
          } finally {
            // A session that died took its advisory locks with it: nothing left to unlock then.
            await sql`select pg_advisory_unlock(${lockId(key)})`.execute(conn).catch((error: unknown) => {
              logger.warn({ err: error, key }, 'fleet lock: unlock failed (the connection is gone, and its lock with it)');
            });
          }
        });
      } catch (error) {
        if (error instanceof StepFailure) throw error.error;
        throw storeError(error, `fleet lock for ${key} failed`);
      }
      return outcome;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (owned) await db.destroy();
    },
  };
}
