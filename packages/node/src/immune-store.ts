import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GuardError } from '@guard/core';
import type { Logger, Registry } from '@guard/core';
import { createMemoryStore, type EventStore, type ImmuneEnvConfig } from '@guard/immune';

/**
 * Where the immune event log is kept.
 *
 * @example
 * createGuard({ immune: { store: 'postgres', url: process.env.DATABASE_URL } });
 */
export interface ImmuneStoreOptions {
  /**
   * `sqlite` (default: a file, `path`), `postgres` (`url`), `memory` (a bounded ring, lost on restart) or your
   * own `EventStore`. Default: `postgres` when `url` or `GUARD_IMMUNE_DATABASE_URL`/`DATABASE_URL` is set, else `sqlite`.
   */
  readonly store?: 'sqlite' | 'postgres' | 'memory' | EventStore;
  /** SQLite file. Default `GUARD_IMMUNE_SQLITE_PATH`, else `.guard/immune.db` under the working directory. */
  readonly path?: string;
  /** Postgres URL. Default `GUARD_IMMUNE_DATABASE_URL` (alias `DATABASE_URL`). */
  readonly url?: string;
}

const isStore = (value: unknown): value is EventStore => typeof value === 'object' && value !== null && typeof (value as EventStore).insert === 'function';

function isModuleMissing(error: unknown, name: string): boolean {
  const code = (error as { code?: string })?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(name);
}

/** Opens the store the options (then env) name; the native driver is loaded only for the chosen kind. */
export async function openImmuneStore(options: ImmuneStoreOptions, config: ImmuneEnvConfig, metrics: { registry: Registry; logger: Logger }): Promise<EventStore> {
  if (isStore(options.store)) return options.store;
  const url = options.url ?? config.databaseUrl;
  const kind = options.store ?? (url ? 'postgres' : 'sqlite');
  const storeOptions = { ...config.store, registry: metrics.registry, logger: metrics.logger };
  if (kind === 'memory') return createMemoryStore({ capacity: config.memory.capacity });
  if (kind === 'postgres') {
    if (!url) throw new GuardError('INVALID_OPTION', 'immune.store postgres needs immune.url or GUARD_IMMUNE_DATABASE_URL', { details: { field: 'immune.url' } });
    const { createPostgresStore } = await importPeer(() => import('@guard/immune/postgres'), 'pg', 'the Postgres immune store');
    // The timeouts come from the guard's env (read once), not from process.env, which the store would read itself.
    return createPostgresStore({ ...storeOptions, ...config.postgres, connectionString: url });
  }
  if (kind !== 'sqlite') throw new GuardError('INVALID_OPTION', `immune.store must be sqlite, postgres, memory or an EventStore, got ${String(kind)}`, { details: { field: 'immune.store' } });
  const path = options.path ?? config.sqlitePath ?? join(process.cwd(), '.guard', 'immune.db');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const { createSqliteStore } = await importPeer(() => import('@guard/immune/sqlite'), 'better-sqlite3', 'the default (SQLite) immune store');
  return createSqliteStore({ ...storeOptions, path });
}

async function importPeer<T>(load: () => Promise<T>, peer: string, what: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isModuleMissing(error, peer)) {
      throw new GuardError('MISSING_PEER', `${what} needs ${peer}: npm i ${peer} (or pass immune: { store: 'memory' })`, { cause: error, details: { peer } });
    }
    throw error;
  }
}
