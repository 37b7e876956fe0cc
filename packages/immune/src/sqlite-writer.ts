import { sql } from 'kysely';
import type { ImmuneEvent } from './event.js';
import { toRow } from './event-row.js';
import type { EventWriter, EventWriterOptions } from './event-writer.js';
import type { RollupDelta } from './rollups.js';

/**
 * The few calls of a better-sqlite3 `Database` the SQLite fast path uses (a structural type, so the main entry
 * never imports better-sqlite3).
 *
 * @example
 * const database = new Database('app.db'); // better-sqlite3
 * const store = new KyselyEventStore({ db, sqliteHandle: database });
 */
export interface SqliteHandle {
  prepare(source: string): { run(...params: unknown[]): unknown };
  transaction(fn: (events: readonly ImmuneEvent[], deltas: readonly RollupDelta[]) => void): (events: readonly ImmuneEvent[], deltas: readonly RollupDelta[]) => unknown;
  readonly inTransaction: boolean;
}

/**
 * Options of {@link createSqliteWriter}.
 *
 * @example
 * createSqliteWriter({ db, table, rollupTable, deltas, handle: database });
 */
export interface SqliteWriterOptions extends EventWriterOptions {
  /** The better-sqlite3 database under `db`: enables the fast path. */
  readonly handle?: SqliteHandle;
}

/** Rows per multi-row statement of the kysely path (SQLite binds at most 32,766 parameters; 8 per row). */
const ROWS_PER_STATEMENT = 500;
/** Rows per prepared statement of the fast path: far fewer native calls per batch than a row-at-a-time loop. */
const FAST_CHUNK = 50;
const COLUMNS = 8;

/**
 * The SQLite writer. With a better-sqlite3 `handle` (and no transaction of someone else's open on it) a batch is
 * one synchronous transaction of prepared statements, bypassing kysely's per-query overhead; otherwise it is a kysely
 * transaction of multi-row inserts and rollup upserts. Build it after migrations: the fast path prepares at once.
 *
 * @example
 * const writer = createSqliteWriter({ db, table: 'immune_events', rollupTable: 'immune_events_rollup', deltas, handle });
 */
export function createSqliteWriter(options: SqliteWriterOptions): EventWriter {
  const { db, table, rollupTable, deltas, handle } = options;
  const viaKysely = async (events: readonly ImmuneEvent[]): Promise<void> => {
    const rows = events.map(toRow);
    const changes = deltas(events);
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) await trx.insertInto(table).values(rows.slice(i, i + ROWS_PER_STATEMENT)).execute();
      for (let i = 0; i < changes.length; i += ROWS_PER_STATEMENT) {
        await trx
          .insertInto(rollupTable)
          .values(changes.slice(i, i + ROWS_PER_STATEMENT))
          .onConflict((oc) => oc.columns(['width', 'bucket', 'severity', 'type']).doUpdateSet({ count: sql`${sql.ref(`${rollupTable}.count`)} + excluded.count` }))
          .execute();
      }
    });
  };
  if (!handle) return { write: viaKysely };
  const fast = fastPath(handle, table, rollupTable);
  return {
    write(events) {
      // Inside a transaction someone else opened on this connection, ours would nest: take the kysely path.
      if (handle.inTransaction) return viaKysely(events);
      fast(events, deltas(events));
    },
  };
}

function fastPath(handle: SqliteHandle, table: string, rollupTable: string) {
  const columns = `INSERT INTO "${table}" (id, agent_id, module, severity, type, message, meta, created_at) VALUES `;
  const one = `(${Array.from({ length: COLUMNS }, () => '?').join(', ')})`;
  const insertOne = handle.prepare(columns + one);
  const insertChunk = handle.prepare(columns + Array.from({ length: FAST_CHUNK }, () => one).join(', '));
  const upsert = handle.prepare(
    `INSERT INTO "${rollupTable}" (width, bucket, severity, type, count) VALUES (?, ?, ?, ?, ?) ON CONFLICT (width, bucket, severity, type) DO UPDATE SET count = count + excluded.count`,
  );
  const params = new Array<unknown>(FAST_CHUNK * COLUMNS);
  return handle.transaction((events: readonly ImmuneEvent[], deltas: readonly RollupDelta[]) => {
    let i = 0;
    for (; i + FAST_CHUNK <= events.length; i += FAST_CHUNK) {
      for (let j = 0; j < FAST_CHUNK; j++) {
        const e = events[i + j]!;
        const k = j * COLUMNS;
        params[k] = e.id;
        params[k + 1] = e.agentId ?? null;
        params[k + 2] = e.module ?? null;
        params[k + 3] = e.severity;
        params[k + 4] = e.type;
        params[k + 5] = e.message;
        params[k + 6] = JSON.stringify(e.meta);
        params[k + 7] = e.createdAt;
      }
      insertChunk.run(params);
    }
    for (; i < events.length; i++) {
      const e = events[i]!;
      insertOne.run(e.id, e.agentId ?? null, e.module ?? null, e.severity, e.type, e.message, JSON.stringify(e.meta), e.createdAt);
    }
    for (const d of deltas) upsert.run(d.width, d.bucket, d.severity, d.type, d.count);
  });
}
