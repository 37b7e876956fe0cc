import { assertNumberOption, GuardError } from '@guard/core';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { FleetLock, FleetLockResult } from './fleet-lock.js';
import './declarations.js';

/** Options for {@link createPostgresFleetLock}: a Kysely instance on Postgres, or a connection string. */
export interface PostgresFleetLockOptions {
  /** A Kysely instance with the Postgres dialect (not closed by the lock). */
  readonly db?: Kysely<any>;
  /** Used when `db` is not given: the lock creates (and closes) its own pool of `poolSize` (default 2). */
  readonly connectionString?: string;
  readonly poolSize?: number;
  /** A key that ran within this window is not run again by any instance. Default 60 000; 0 turns it off. */
  readonly dedupeWindowMs?: number;
  /** Table remembering the last run of each key. Default `guard_playbooks_fleet_steps`. */
  readonly table?: string;
  /** This instance's id, stored with each run. Default `<hostname>:<pid>`. */
  readonly instanceId?: string;
}

const TABLE = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A fleet lock on Postgres: `pg_try_advisory_lock` on one pooled connection elects the instance that
 * runs a fleet-wide step (the others skip it at once), and a small table makes the step run at most
 * once per `dedupeWindowMs` across the fleet, even when instances arrive one after another.
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
  const owned = !options.db;
  const db: Kysely<any> =
    options.db ??
    new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: options.connectionString, max: options.poolSize ?? 2 }) }) });
  const instanceId = options.instanceId ?? `${process.env.HOSTNAME ?? 'host'}:${process.pid}`;
  let ready: Promise<void> | undefined;
  let closed = false;
  const ensureTable = (): Promise<void> =>
    (ready ??= sql`create table if not exists ${sql.table(table)} (key text primary key, instance text not null, ran_at timestamptz not null)`
      .execute(db)
      .then(() => undefined)
      .catch((error: unknown) => {
        // Two instances creating the table at once: one loses with a duplicate error, and the table exists.
        const code = (error as { code?: string }).code;
        if (code === '23505' || code === '42P07') return;
        ready = undefined;
        throw error;
      }));

  return {
    instanceId,
    async tryRun<T>(key: string, fn: () => Promise<T>): Promise<FleetLockResult<T>> {
      if (closed) throw new GuardError('CLOSED', 'fleet lock is closed');
      if (dedupeWindowMs > 0) await ensureTable();
      return db.connection().execute(async (conn) => {
        const locked = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtextextended(${`guard_playbooks:${key}`}, 0)) as ok`.execute(conn);
        if (!locked.rows[0]?.ok) return { acquired: false, reason: 'held' } as const;
        try {
          if (dedupeWindowMs > 0) {
            const recent = await sql<{ key: string }>`select key from ${sql.table(table)} where key = ${key} and ran_at > now() - make_interval(secs => ${dedupeWindowMs / 1000})`.execute(conn);
            if (recent.rows.length > 0) return { acquired: false, reason: 'done' } as const;
            await sql`insert into ${sql.table(table)} (key, instance, ran_at) values (${key}, ${instanceId}, now()) on conflict (key) do update set instance = excluded.instance, ran_at = excluded.ran_at`.execute(conn);
          }
          return { acquired: true, value: await fn() } as const;
        } finally {
          await sql`select pg_advisory_unlock(hashtextextended(${`guard_playbooks:${key}`}, 0))`.execute(conn);
        }
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (owned) await db.destroy();
    },
  };
}
