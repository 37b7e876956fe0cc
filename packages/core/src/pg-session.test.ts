import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuardError } from './guard-error.js';
import { guardPgPool, isPgUnavailableError } from './pg-pool-safety.js';
import { withPgClient } from './pg-session.js';
import type { PgSessionPhase } from './pg-session.js';
import { loadPg } from './pg-test-support.js';
import type { TestPgPool, TestPgPoolClient } from './pg-test-support.js';
import { pgTestPools } from './testing.js';
import type { PgTestPools } from './testing.js';

const pg = loadPg();

const backendPid = async (client: Pick<TestPgPoolClient, 'query'>): Promise<number> => Number((await client.query('select pg_backend_pid() as pid')).rows[0]!.pid);

/** A mapper that records the phase and wraps the failure, as the fleet features map to STORE_UNAVAILABLE/STORE_ERROR. */
function recordingMapper() {
  const phases: PgSessionPhase[] = [];
  return {
    phases,
    mapError: (error: unknown, phase: PgSessionPhase) => {
      phases.push(phase);
      return new GuardError(isPgUnavailableError(error) ? 'TIMEOUT' : 'INVALID_INPUT', `${phase} failed`, { cause: error });
    },
  };
}

/** A loopback port that refuses connections (bound, then closed). */
async function refusedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

describe.skipIf(pg === undefined)('withPgClient (real Postgres)', () => {
  let db: PgTestPools<TestPgPool>;
  beforeAll(async () => {
    db = await pgTestPools('core_pg_session', { Pool: pg!.Pool, max: 1 });
  });
  afterAll(() => db?.close());

  it('runs the work on one connection, returns its value, and gives the connection back to the pool', async () => {
    const pool = db.pool();
    const first = await withPgClient(pool, backendPid);
    expect(pool.idleCount).toBe(1);
    expect(await withPgClient(pool, backendPid)).toBe(first);
  });

  it('maps a refused connection as the connect phase and never runs the work', async () => {
    const pool = db.pool(`postgres://postgres@127.0.0.1:${await refusedPort()}/none`);
    const mapper = recordingMapper();
    let ran = false;
    const error = await withPgClient(pool, async () => (ran = true), mapper).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: 'connect failed', cause: expect.objectContaining({ code: 'ECONNREFUSED' }) });
    expect(mapper.phases).toEqual(['connect']);
    expect(ran).toBe(false);
  });

  it('keeps a connection that only saw a SQL error or a statement timeout', async () => {
    const pool = db.pool();
    const before = await withPgClient(pool, backendPid);
    const mapper = recordingMapper();
    const missing = await withPgClient(pool, (client) => client.query('select * from no_such_table'), mapper).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'INVALID_INPUT', cause: expect.objectContaining({ code: '42P01' }) });
    const cancelled = await withPgClient(
      pool,
      async (client) => {
        await client.query('set statement_timeout = 50');
        try {
          return await client.query('select pg_sleep(5)');
        } finally {
          await client.query('reset statement_timeout');
        }
      },
      mapper,
    ).catch((e: unknown) => e);
    expect(cancelled).toMatchObject({ cause: expect.objectContaining({ code: '57014' }) });
    expect(mapper.phases).toEqual(['run', 'run']);
    expect(await withPgClient(pool, backendPid)).toBe(before);
  });

  it('destroys a connection whose work failed at the connection level (here the caller’s own deadline), so the next session gets a fresh one', async () => {
    const pool = db.pool();
    const before = await withPgClient(pool, backendPid);
    const deadline = new GuardError('TIMEOUT', 'the caller gave up');
    await expect(withPgClient(pool, () => Promise.reject(deadline))).rejects.toBe(deadline);
    expect(pool.totalCount).toBe(0);
    expect(await withPgClient(pool, backendPid)).not.toBe(before);
  });

  it('a killed backend: the work fails in the run phase as unavailable, and the next session runs on a new connection', async () => {
    const raw = db.pool();
    const guarded = guardPgPool(raw);
    const admin = db.pool();
    const mapper = recordingMapper();
    let killed = 0;
    const error = await withPgClient(
      guarded,
      async (client) => {
        killed = await backendPid(client);
        // Waits (up to 5 s) until the backend has exited.
        await admin.query('select pg_terminate_backend($1, 5000)', [killed]);
        return client.query('select 1');
      },
      mapper,
    ).catch((e: unknown) => e);
    expect(mapper.phases).toEqual(['run']);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: 'run failed' });
    expect(isPgUnavailableError((error as GuardError).cause)).toBe(true);
    expect(raw.totalCount).toBe(0);
    const next = await withPgClient(guarded, backendPid);
    expect(next).not.toBe(killed);
    guarded.detach();
  });
});
