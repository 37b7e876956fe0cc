import { describe, expect, it } from 'vitest';
import { inPgTransaction, migrateUnderLock } from './pg-transaction.js';

/** Records statements; the real-Postgres behaviour is tested where the helpers are used (immune, memory, playbooks fleet tests). */
function recorder(failOn?: string) {
  const statements: string[] = [];
  return {
    statements,
    query(text: string) {
      statements.push(text);
      if (failOn !== undefined && text.startsWith(failOn)) return Promise.reject(new Error(`failed: ${text}`));
      return Promise.resolve({ rows: [{ text }] });
    },
  };
}

describe('inPgTransaction', () => {
  it('wraps the work in BEGIN/COMMIT and returns its value with the rows of each query', async () => {
    const client = recorder();
    const rows = await inPgTransaction(client, (query) => query<{ text: string }>('select 1'));
    expect(rows).toEqual([{ text: 'select 1' }]);
    expect(client.statements).toEqual(['BEGIN', 'select 1', 'COMMIT']);
  });

  it('rolls back and rethrows the original error, even when the ROLLBACK itself fails', async () => {
    const client = recorder('select 2');
    await expect(inPgTransaction(client, async (query) => query('select 2'))).rejects.toThrow('failed: select 2');
    expect(client.statements).toEqual(['BEGIN', 'select 2', 'ROLLBACK']);
    const dead = recorder('ROLLBACK');
    await expect(inPgTransaction(dead, () => Promise.reject(new Error('work failed')))).rejects.toThrow('work failed');
  });
});

describe('migrateUnderLock', () => {
  it('takes the advisory lock first, then runs each statement, in one transaction', async () => {
    const client = recorder();
    await migrateUnderLock(client, 'guard_fleet_schema:t', ['create table if not exists t (id int)', 'create index if not exists t_idx on t (id)']);
    expect(client.statements).toEqual([
      'BEGIN',
      'select pg_advisory_xact_lock(hashtextextended($1, 0))',
      'create table if not exists t (id int)',
      'create index if not exists t_idx on t (id)',
      'COMMIT',
    ]);
  });
});
