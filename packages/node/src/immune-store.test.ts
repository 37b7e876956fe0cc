import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@guard/core';
import { immuneConfigFromEnv } from '@guard/immune';
import type { PostgresEventStore } from '@guard/immune/postgres';
import { openImmuneStore } from './immune-store.js';
import { PG_URL } from '../test/support.js';

describe('openImmuneStore (postgres)', () => {
  it("bounds the store's queries with the guard's env (GUARD_PG_*), not process.env", { timeout: 20_000 }, async () => {
    const env = { GUARD_PG_CONNECT_TIMEOUT_MS: '1500', GUARD_PG_STATEMENT_TIMEOUT_MS: '1234', GUARD_PG_QUERY_TIMEOUT_MS: '2000' };
    const store = (await openImmuneStore({ store: 'postgres', url: PG_URL }, immuneConfigFromEnv(env), { registry: new Registry(), logger: silentLogger })) as PostgresEventStore;
    try {
      const client = await store.pool.connect();
      try {
        const { rows } = (await client.query('show statement_timeout')) as { rows: { statement_timeout: string }[] };
        expect(rows[0]!.statement_timeout).toBe('1234ms');
      } finally {
        client.release();
      }
    } finally {
      await store.close();
    }
  });
});
