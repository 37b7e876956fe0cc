/** The one method these helpers need of a pg client (structural: core never imports pg). */
export interface PgQueryable {
  query(text: string, values?: readonly unknown[]): Promise<unknown> | unknown;
}

/** Runs one statement and returns its rows. */
export type PgRowsQuery = <R = Record<string, unknown>>(text: string, values?: readonly unknown[]) => Promise<R[]>;

/**
 * Runs `fn` inside BEGIN/COMMIT on `client`; on an error it rolls back (a failing ROLLBACK, as on a dead connection,
 * is ignored: the original error is the one that matters) and rethrows.
 *
 * @example
 * const rows = await inPgTransaction(client, (query) => query('select 1 as one'));
 */
export async function inPgTransaction<T>(client: PgQueryable, fn: (query: PgRowsQuery) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const value = await fn(async <R>(text: string, values: readonly unknown[] = []) => ((await client.query(text, values)) as { rows: R[] }).rows);
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await Promise.resolve(client.query('ROLLBACK')).catch(() => {});
    throw error;
  }
}

/**
 * Runs DDL statements in one transaction holding `pg_advisory_xact_lock(lockName)`: concurrent starters wait for the
 * first, then find the objects there (Postgres's `if not exists` alone races on its catalog).
 *
 * @example
 * await migrateUnderLock(client, 'guard_fleet_schema:leases', ['create table if not exists leases (id bigserial primary key)']);
 */
export function migrateUnderLock(client: PgQueryable, lockName: string, statements: readonly string[]): Promise<void> {
  return inPgTransaction(client, async (query) => {
    await query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName]);
    for (const statement of statements) await query(statement);
  });
}
