import { Migrator, sql } from 'kysely';
import type { Migration } from 'kysely';
import type { AnyKysely, EventStoreDialect } from './store-dialect.js';
import { toStoreError } from './store-error.js';

/** Width of the `severity` column of the events and rollup tables: every name in `IMMUNE_SEVERITIES` must fit. */
export const SEVERITY_COLUMN_LENGTH = 16;
/** Width of the `type` column of the events and rollup tables: every name in `IMMUNE_EVENT_TYPES` must fit. */
export const TYPE_COLUMN_LENGTH = 32;

/**
 * The store's schema, one kysely migration per step: the events table (primary key `(created_at, id)`), a partial
 * index of CRITICAL rows, and the count rollup `<table>_rollup`.
 *
 * @example
 * new Migrator({ db, provider: { getMigrations: async () => eventStoreMigrations('immune_events', 'sqlite') } });
 */
export function eventStoreMigrations(table: string, dialect: EventStoreDialect): Record<string, Migration> {
  // SQLite: WITHOUT ROWID tables clustered on their primary key. The events table is ordered by (created_at, id),
  // so time-range queries read it directly and inserts (time-ordered) append; no separate time index is needed.
  const clustered = sql`without rowid`;
  return {
    '001_create_events': {
      async up(db) {
        let events = db.schema
          .createTable(table)
          .ifNotExists()
          .addColumn('id', 'varchar(64)', (c) => c.notNull())
          .addColumn('agent_id', 'text')
          .addColumn('module', 'text')
          .addColumn('severity', `varchar(${SEVERITY_COLUMN_LENGTH})`, (c) => c.notNull())
          .addColumn('type', `varchar(${TYPE_COLUMN_LENGTH})`, (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('meta', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_pk`, ['created_at', 'id']);
        if (dialect === 'sqlite') events = events.modifyEnd(clustered);
        await events.execute();
        // Only CRITICAL rows pay for this one (partial index): it serves "latest critical" and severity=CRITICAL queries.
        await db.schema
          .createIndex(`${table}_critical_idx`)
          .ifNotExists()
          .on(table)
          .columns(['created_at'])
          .where(sql.ref('severity'), '=', sql.lit('CRITICAL'))
          .execute();
        let rollup = db.schema
          .createTable(`${table}_rollup`)
          .ifNotExists()
          .addColumn('width', 'bigint', (c) => c.notNull())
          .addColumn('bucket', 'bigint', (c) => c.notNull())
          .addColumn('severity', `varchar(${SEVERITY_COLUMN_LENGTH})`, (c) => c.notNull())
          .addColumn('type', `varchar(${TYPE_COLUMN_LENGTH})`, (c) => c.notNull())
          .addColumn('count', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_rollup_pk`, ['width', 'bucket', 'severity', 'type']);
        if (dialect === 'sqlite') rollup = rollup.modifyEnd(clustered);
        await rollup.execute();
      },
      async down(db) {
        await db.schema.dropTable(`${table}_rollup`).ifExists().execute();
        await db.schema.dropTable(table).ifExists().execute();
      },
    },
  };
}

/**
 * Brings `table` to the latest schema, recording progress in `<table>_migrations` under kysely's migration lock
 * (so several stores starting on one fresh database at once all succeed). Fails with `STORE_UNAVAILABLE` or
 * `STORE_ERROR`.
 *
 * @example
 * await migrateEventStore(db, 'immune_events', 'postgres');
 */
export async function migrateEventStore(db: AnyKysely, table: string, dialect: EventStoreDialect): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => eventStoreMigrations(table, dialect) },
    migrationTableName: `${table}_migrations`,
    migrationLockTableName: `${table}_migrations_lock`,
  });
  let result;
  try {
    result = await migrator.migrateToLatest();
  } catch (error) {
    throw toStoreError(error, `migrating ${table} failed`);
  }
  if (result.error) throw toStoreError(result.error, `migrating ${table} failed`);
}
