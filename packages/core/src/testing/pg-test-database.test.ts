import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_TEST_PG_URL, pgTestDatabase, pgTestServerUrl } from '../testing.js';
import { loadPg } from '../pg-test-support.js';

const pg = loadPg();

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('pgTestServerUrl', () => {
  it('is GUARD_TEST_PG_URL, else the local server at its default address', () => {
    expect(pgTestServerUrl({})).toBe(DEFAULT_TEST_PG_URL);
    expect(pgTestServerUrl({ GUARD_TEST_PG_URL: '' })).toBe(DEFAULT_TEST_PG_URL);
    expect(pgTestServerUrl({ GUARD_TEST_PG_URL: 'postgres://u@db:5433/x' })).toBe('postgres://u@db:5433/x');
  });
});

describe.skipIf(pg === undefined)('pgTestDatabase', () => {
  it('creates a database of its own, usable at its url, and drops it', async () => {
    const db = await pgTestDatabase('core_testing');
    expect(db.name).toMatch(/^core_testing_[0-9a-f]{12}$/);
    expect(new URL(db.url).pathname).toBe(`/${db.name}`);
    const client = new pg!.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query('select current_database() as db');
    await client.end();
    expect(rows[0]?.db).toBe(db.name);
    await db.drop();
    await db.drop();
    const admin = new pg!.Client({ connectionString: pgTestServerUrl() });
    await admin.connect();
    const left = await admin.query('select 1 from pg_database where datname = $1', [db.name]);
    await admin.end();
    expect(left.rowCount).toBe(0);
  });

  it('says what to start when no server answers', async () => {
    // a port that refuses: bound, then closed
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    server.close();
    vi.stubEnv('GUARD_TEST_PG_URL', `postgres://postgres:secret@127.0.0.1:${port}/test`);
    const error = (await pgTestDatabase('core_testing').catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/^Postgres is not reachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/test \(ECONNREFUSED\): .*start.*GUARD_TEST_PG_URL/);
    expect(error.message).not.toContain('secret');
  });

  it('refuses a prefix that is no plain identifier', async () => {
    await expect(pgTestDatabase('Robert"; drop')).rejects.toThrow(/prefix must be a lower-case identifier/);
  });
});
