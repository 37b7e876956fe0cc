import { GuardError } from '@guard/core';
import { PostgresAdapter, SqliteAdapter } from 'kysely';
import type { DialectAdapter, Kysely } from 'kysely';

/**
 * A kysely instance over a caller's database, whatever its schema: the store names its own tables at run time.
 *
 * @example
 * const db: AnyKysely = new Kysely<MyDatabase>({ dialect });
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a caller's Kysely<DB> of any DB must be accepted; kysely offers no wider type
export type AnyKysely = Kysely<any>;

/**
 * The SQL dialects the store speaks.
 *
 * @example
 * const dialect: EventStoreDialect = dialectOf(db) ?? 'sqlite';
 */
export type EventStoreDialect = 'sqlite' | 'postgres';

const ADAPTERS: ReadonlyArray<readonly [EventStoreDialect, abstract new (...args: never[]) => DialectAdapter, string]> = [
  ['sqlite', SqliteAdapter, 'SqliteAdapter'],
  ['postgres', PostgresAdapter, 'PostgresAdapter'],
];

/**
 * The dialect of `db`, read from its kysely adapter (`SqliteAdapter`, `PostgresAdapter` or a subclass, as community
 * dialects such as PGlite's reuse them); undefined for any other adapter.
 *
 * @example
 * dialectOf(new Kysely({ dialect: new SqliteDialect({ database }) })); // 'sqlite'
 */
export function dialectOf(db: AnyKysely): EventStoreDialect | undefined {
  const adapter: unknown = db.getExecutor().adapter;
  for (const [dialect, type] of ADAPTERS) if (adapter instanceof type) return dialect;
  // A second copy of kysely (the app's ESM build, our CJS build) has its own classes: match them by name too.
  for (let proto: unknown = Object.getPrototypeOf(adapter); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    for (const [dialect, , known] of ADAPTERS) if (name === known) return dialect;
  }
  return undefined;
}

/**
 * The dialect the store writes for `db`: the adapter's. `declared` (the deprecated `dialect` option) must agree with
 * it, and is used only when the adapter is neither kysely's SQLite nor Postgres one. Throws `INVALID_OPTION`.
 *
 * @example
 * const dialect = resolveDialect(options.db, options.dialect);
 */
export function resolveDialect(db: AnyKysely, declared: EventStoreDialect | undefined): EventStoreDialect {
  if (declared !== undefined && declared !== 'sqlite' && declared !== 'postgres') {
    throw new GuardError('INVALID_OPTION', `dialect must be sqlite or postgres, got ${String(declared)}`, { details: { field: 'dialect' } });
  }
  const detected = dialectOf(db);
  if (detected !== undefined && declared !== undefined && detected !== declared) {
    throw new GuardError('INVALID_OPTION', `dialect is ${declared} but db speaks ${detected} (its kysely adapter says so; drop the dialect option)`, {
      details: { field: 'dialect' },
    });
  }
  const dialect = detected ?? declared;
  if (dialect === undefined) {
    throw new GuardError('INVALID_OPTION', 'db uses a kysely adapter that is neither SqliteAdapter nor PostgresAdapter: pass dialect to say which SQL it speaks', {
      details: { field: 'dialect' },
    });
  }
  return dialect;
}
