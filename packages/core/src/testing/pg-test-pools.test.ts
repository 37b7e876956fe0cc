import { afterEach, describe, expect, it } from 'vitest';
import { loadPg } from '../pg-test-support.js';
import type { TestPgClient } from '../pg-test-support.js';
import { pgTestPools, pgTestServerUrl } from '../testing.js';

const pg = loadPg();
const clients: TestPgClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end()));
});

async function onServer(sql: string, values: unknown[]): Promise<number> {
  const admin = new pg!.Client({ connectionString: pgTestServerUrl() });
  clients.push(admin);
  await admin.connect();
  return (await admin.query(sql, values)).rowCount ?? 0;
}

describe.skipIf(pg === undefined)('pgTestPools', () => {
  it('opens pools of the given size on a database of its own; close() ends them all and drops the database', async () => {
    const db = await pgTestPools('core_test_pools', { Pool: pg!.Pool, max: 3 });
    const a = db.pool();
    const b = db.pool(db.url);
    const { rows } = await a.query('select current_database() as name');
    expect(rows[0]!.name).toBe(db.database.name);
    await Promise.all([1, 2, 3].map(() => b.query('select pg_sleep(0.05)')));
    expect(b.totalCount).toBe(3);
    await db.close();
    await db.close();
    await expect(a.query('select 1')).rejects.toThrow(/after calling end|ended/i);
    expect(await onServer('select 1 from pg_database where datname = $1', [db.database.name])).toBe(0);
  });
});
