import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { dialectOf, resolveDialect } from './store-dialect.js';
import type { AnyKysely } from './store-dialect.js';

/** A db whose adapter is an instance of `adapter` (only `getExecutor().adapter` is read). */
const dbWith = (adapter: object) => ({ getExecutor: () => ({ adapter }) }) as unknown as AnyKysely;

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    return (error as { details: { field: string } }).details.field;
  }
  return undefined;
}

describe('store dialect', () => {
  it("reads kysely's SQLite adapter", async () => {
    const db = new Kysely({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
    expect(dialectOf(db)).toBe('sqlite');
    expect(resolveDialect(db, undefined)).toBe('sqlite');
    expect(resolveDialect(db, 'sqlite')).toBe('sqlite');
    expect(fieldOf(() => resolveDialect(db, 'postgres'))).toBe('dialect');
    await db.destroy();
  });

  it('recognises the adapter classes of another copy of kysely by name, subclasses included', () => {
    class SqliteAdapter {}
    class PostgresAdapter {}
    class PGliteAdapter extends PostgresAdapter {}
    expect(dialectOf(dbWith(new SqliteAdapter()))).toBe('sqlite');
    expect(dialectOf(dbWith(new PGliteAdapter()))).toBe('postgres');
  });

  it('needs the deprecated dialect option only for an adapter it does not know', () => {
    const db = dbWith(new (class MssqlAdapter {})());
    expect(dialectOf(db)).toBeUndefined();
    expect(resolveDialect(db, 'postgres')).toBe('postgres');
    expect(fieldOf(() => resolveDialect(db, undefined))).toBe('dialect');
    expect(fieldOf(() => resolveDialect(db, 'mysql' as never))).toBe('dialect');
  });
});
