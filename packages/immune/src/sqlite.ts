import type Database from 'better-sqlite3';
import { errorMessage, GuardError } from '@guard/core';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyEventStore, openStore } from './kysely-store.js';
import type { KyselyEventStoreOptions } from './kysely-store.js';
import { requireOptionalPeer } from './optional-peer.js';

const BetterSqlite3 = requireOptionalPeer<typeof Database>('better-sqlite3', '@guard/immune/sqlite', '@types/better-sqlite3');

/**
 * Options for {@link createSqliteStore}.
 *
 * @example
 * await createSqliteStore({ path: 'immune.db', synchronous: 'full', retentionMs: 7 * 86_400_000 });
 */
export interface SqliteEventStoreOptions extends Omit<KyselyEventStoreOptions, 'db' | 'dialect' | 'sqliteHandle' | 'destroyOnClose'> {
  /** Database file (created if missing); `:memory:` for a throwaway database. */
  readonly path: string;
  /**
   * `full` (default) fsyncs the WAL on every commit: an acknowledged event survives a process kill and power loss;
   * group commit pays one fsync per batch, not per event. `normal` skips that fsync: acknowledged events still survive
   * a process crash or SIGKILL (WAL), but the last commits may be lost on power loss or an OS crash.
   */
  readonly synchronous?: 'normal' | 'full';
  /** How long a writer waits for a lock held by another process. Default 5,000 ms. */
  readonly busyTimeoutMs?: number;
}

/**
 * The embedded default store: a SQLite file in WAL mode through better-sqlite3 and kysely, with group commit.
 * It owns its database and closes it on `close()`.
 *
 * @example
 * await using store = await createSqliteStore({ path: './data/immune.db' });
 * await using service = new ImmuneService({ store });
 */
export class SqliteEventStore extends KyselyEventStore {
  /** The better-sqlite3 database (for inspection; the store owns it). */
  readonly database: Database.Database;

  constructor(options: SqliteEventStoreOptions) {
    if (typeof options?.path !== 'string' || options.path === '') {
      throw new GuardError('INVALID_OPTION', 'path must be a non-empty string', { details: { field: 'path' } });
    }
    const synchronous = options.synchronous ?? 'full';
    if (synchronous !== 'normal' && synchronous !== 'full') {
      throw new GuardError('INVALID_OPTION', `synchronous must be normal or full, got ${String(synchronous)}`, { details: { field: 'synchronous' } });
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
    if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new GuardError('INVALID_OPTION', `busyTimeoutMs must be an integer >= 0, got ${String(busyTimeoutMs)}`, { details: { field: 'busyTimeoutMs' } });
    }
    let database: Database.Database;
    try {
      database = new BetterSqlite3(options.path, { timeout: busyTimeoutMs });
      database.pragma('journal_mode = WAL');
      database.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    } catch (error) {
      throw new GuardError('STORE_ERROR', `cannot open SQLite database ${options.path}: ${errorMessage(error)}`, { cause: error });
    }
    const { path: _path, synchronous: _sync, busyTimeoutMs: _busy, ...rest } = options;
    super({
      ...rest,
      db: new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database }) }),
      sqliteHandle: database,
      destroyOnClose: true,
    });
    this.database = database;
  }
}

/**
 * Opens (creating if needed) a SQLite event store at `path` and waits for its migrations.
 *
 * @example
 * await using store = await createSqliteStore({ path: 'immune.db', retentionMs: 86_400_000 });
 */
export async function createSqliteStore(options: SqliteEventStoreOptions): Promise<SqliteEventStore> {
  return openStore(new SqliteEventStore(options));
}
