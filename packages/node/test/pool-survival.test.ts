import { Kysely, sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createGuard } from '../src/index.js';
import { type NoTables, PG_URL, testGuardOptions, until } from './support.js';

describe('a pg pool handed to the guard', () => {
  it('survives pg_terminate_backend on an idle and a checked-out connection (no unhandled error), and queries again', async () => {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 3 });
    await using guard = await createGuard(testGuardOptions({ db: { app: pool } }));
    const db = new Kysely<NoTables>({ dialect: guard.dialects.app! });
    const pidOf = async (conn: Kysely<NoTables>) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(conn)).rows[0]!.pid;
    const idlePid = await pidOf(db);
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      const checkedOut = db.connection().execute(async (conn) => {
        const pid = await pidOf(conn);
        await admin.query('select pg_terminate_backend($1), pg_terminate_backend($2)', [pid, idlePid]);
        // The checked-out client's socket dies under it: the next query fails, nothing crashes.
        await until(() => pool.totalCount === 1 || pool.idleCount === 0, 'the idle client to be dropped');
        return sql`select 1`.execute(conn).then(
          () => 'answered',
          () => 'failed',
        );
      });
      expect(await checkedOut).toBe('failed');
      expect((await sql<{ one: number }>`select 1 as one`.execute(db)).rows[0]).toEqual({ one: 1 });
    } finally {
      await admin.end();
    }
  });
});
