import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTestDatabase } from '@guard/core/testing';
import type { PgTestDatabase } from '@guard/core/testing';
import { ActionRegistry } from './action-registry.js';
import { parsePlaybook } from './load-playbooks.js';
import { PlaybookEngine } from './playbook-engine.js';
import type { PlaybookRunResult } from './playbook-engine.js';
import { describeFleetLockContract } from './fleet-lock.contract.js';
import { createPostgresFleetLock } from './postgres.js';

/** The lock runs raw SQL only: no table types. */
type NoTables = Record<string, never>;

// A database of this file's own on the local server (or GUARD_TEST_PG_URL's), dropped at the end.
let db: PgTestDatabase;
let url: string;
let admin: Kysely<NoTables>;
const table = 'guard_pb_fleet_steps';
beforeAll(async () => {
  db = await pgTestDatabase('playbooks_fleet_lock');
  url = db.url;
  admin = new Kysely<NoTables>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
});
afterAll(async () => {
  await admin?.destroy();
  await db?.drop();
});

const BOOK = `name: fleet_cleanup
trigger: { event: disk.full }
steps:
  - { id: local_cache, action: work }
  - { id: purge_shared_bucket, action: work, fleet: true }
`;

/**
 * One instance of the service: an engine with the fleet lock. The fleet step waits for `hold` (default: runs
 * through), so a test can keep the lock held until the other instance has been turned away.
 */
function instance(id: string, ran: string[], fleetOptions: { dedupeWindowMs?: number; key?: string; fail?: boolean; hold?: Promise<void> } = {}) {
  const { fail, hold, ...lockOptions } = fleetOptions;
  const actions = new ActionRegistry().register('work', async (_p, ctx) => {
    ran.push(`${id}:${ctx.step}`);
    if (ctx.step !== 'purge_shared_bucket') return { by: id };
    if (fail) throw new Error('bucket unreachable');
    await hold;
    return { by: id };
  });
  const fleetLock = createPostgresFleetLock({ connectionString: url, table, instanceId: id, ...lockOptions });
  const engine = new PlaybookEngine({ actions, fleetLock, registry: new Registry(), playbooks: [parsePlaybook(BOOK.replace('fleet_cleanup', `fleet_cleanup_${fleetOptions.key ?? 'a'}`))] });
  return {
    engine,
    fleetLock,
    async [Symbol.asyncDispose]() {
      await engine.close();
      await fleetLock.close();
      await fleetLock.close();
    },
  };
}

describe('createPostgresFleetLock', () => {
  const opened: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((l) => l.close()));
  });
  describeFleetLockContract({
    async pair(dedupeWindowMs) {
      const a = createPostgresFleetLock({ connectionString: url, table, dedupeWindowMs, instanceId: 'a' });
      const b = createPostgresFleetLock({ connectionString: url, table, dedupeWindowMs, instanceId: 'b' });
      opened.push(a, b);
      return [a, b];
    },
    uniqueKey: () => randomUUID(),
  });

  it('runs a fleet-wide step on exactly one of two instances, and each local step on both', async () => {
    const ran: string[] = [];
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    await using a = instance('a', ran, { hold });
    await using b = instance('b', ran, { hold });
    const runs: [Promise<PlaybookRunResult[]>, Promise<PlaybookRunResult[]>] = [a.engine.trigger('disk.full'), b.engine.trigger('disk.full')];
    // The instance that lost the lock finishes while the winner still holds it; then the winner may finish.
    await Promise.race(runs);
    release();
    const [[ra], [rb]] = await Promise.all(runs);
    expect(ran.filter((r) => r.endsWith(':local_cache')).sort()).toEqual(['a:local_cache', 'b:local_cache']);
    expect(ran.filter((r) => r.endsWith(':purge_shared_bucket'))).toHaveLength(1);
    const fleetSteps = [ra!.steps[1]!, rb!.steps[1]!];
    expect(fleetSteps.map((s) => s.fleet).sort()).toEqual(['held', 'ran']);
    expect([ra!.status, rb!.status]).toEqual(['succeeded', 'succeeded']);
    const rows = await sql<{ key: string; instance: string }>`select key, instance from ${sql.table(table)} where key = 'fleet_cleanup_a:purge_shared_bucket'`.execute(admin);
    expect(rows.rows).toHaveLength(1);
    expect(ran).toContain(`${rows.rows[0]!.instance}:purge_shared_bucket`);
  });

  it('does not run the step again within the dedupe window, even when instances come one after another', async () => {
    const ran: string[] = [];
    await using a = instance('a', ran, { key: 'seq' });
    await using b = instance('b', ran, { key: 'seq' });
    const first = await a.engine.trigger('disk.full');
    const second = await b.engine.trigger('disk.full');
    expect(first[0]!.steps[1]).toMatchObject({ fleet: 'ran', outcome: 'succeeded' });
    expect(second[0]!.steps[1]).toMatchObject({ fleet: 'done', outcome: 'skipped' });
    expect(ran.filter((r) => r.endsWith(':purge_shared_bucket'))).toEqual(['a:purge_shared_bucket']);
  });

  it('without a dedupe window, sequential instances each run the step', async () => {
    const ran: string[] = [];
    await using a = instance('a', ran, { key: 'nodedupe', dedupeWindowMs: 0 });
    await using b = instance('b', ran, { key: 'nodedupe', dedupeWindowMs: 0 });
    await a.engine.trigger('disk.full');
    await b.engine.trigger('disk.full');
    expect(ran.filter((r) => r.endsWith(':purge_shared_bucket'))).toEqual(['a:purge_shared_bucket', 'b:purge_shared_bucket']);
  });

  it('accepts a Kysely instance it does not own, and validates options', async () => {
    const own = new Kysely<NoTables>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
    const lock = createPostgresFleetLock({ db: own, table, dedupeWindowMs: 0 });
    expect(await lock.tryRun('k', async () => 42)).toEqual({ acquired: true, value: 42 });
    await lock.close();
    await expect(lock.tryRun('k', async () => 1)).rejects.toMatchObject({ code: 'CLOSED' });
    expect((await sql<{ one: number }>`select 1 as one`.execute(own)).rows[0]!.one).toBe(1);
    await own.destroy();
    expect(() => createPostgresFleetLock({})).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => createPostgresFleetLock({ connectionString: url, table: 'x; drop table y' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => createPostgresFleetLock({ connectionString: url, dedupeWindowMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('a failing fleet step releases the lock so the next attempt can run', async () => {
    const lock = createPostgresFleetLock({ connectionString: url, table, dedupeWindowMs: 0 });
    try {
      await expect(lock.tryRun('boom', async () => Promise.reject(new Error('step failed')))).rejects.toThrow('step failed');
      expect(await lock.tryRun('boom', async () => 'ok')).toEqual({ acquired: true, value: 'ok' });
    } finally {
      await lock.close();
    }
  });

  it('a fleet step that failed on one instance is not recorded done: the next instance runs it', async () => {
    const ran: string[] = [];
    await using a = instance('a', ran, { key: 'retry', fail: true });
    await using b = instance('b', ran, { key: 'retry' });
    const first = await a.engine.trigger('disk.full');
    expect(first[0]!.steps[1]).toMatchObject({ fleet: 'ran', outcome: 'failed' });
    const rows = await sql`select key from ${sql.table(table)} where key = 'fleet_cleanup_retry:purge_shared_bucket'`.execute(admin);
    expect(rows.rows).toHaveLength(0);
    const second = await b.engine.trigger('disk.full');
    expect(second[0]!.steps[1]).toMatchObject({ fleet: 'ran', outcome: 'succeeded' });
    expect(ran.filter((r) => r.endsWith(':purge_shared_bucket'))).toEqual(['a:purge_shared_bucket', 'b:purge_shared_bucket']);
  });

  it('survives pg_terminate_backend of its connection while the step runs, and keeps working', async () => {
    const app = `guard_pb_kill_${randomUUID().slice(0, 8)}`;
    const lock = createPostgresFleetLock({ connectionString: `${url}${url.includes('?') ? '&' : '?'}application_name=${app}`, table, instanceId: 'k' });
    const peer = createPostgresFleetLock({ connectionString: url, table, instanceId: 'p' });
    try {
      const key = randomUUID();
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const result = lock.tryRun(key, async () => {
        started();
        await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${app}`.execute(admin);
        // Wait until the backend is gone: its connection, checked out by the lock, raises 'error' (handled, no crash).
        while ((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where application_name = ${app}`.execute(admin)).rows[0]!.n !== '0');
        return 'ran';
      });
      await running;
      // The step succeeded, so it is recorded (on another connection) and the peer sees it done.
      expect(await result).toEqual({ acquired: true, value: 'ran' });
      expect(await peer.tryRun(key, async () => 'again')).toEqual({ acquired: false, reason: 'done' });
      expect(await lock.tryRun(randomUUID(), async () => 'next')).toEqual({ acquired: true, value: 'next' });
    } finally {
      await lock.close();
      await peer.close();
    }
  });

  it('rejects with STORE_UNAVAILABLE when the database cannot be reached, within the connect timeout', async () => {
    const lock = createPostgresFleetLock({ connectionString: 'postgres://postgres@127.0.0.1:1/none', table, connectTimeoutMs: 500 });
    try {
      let ran = false;
      await expect(
        lock.tryRun('k', async () => {
          ran = true;
        }),
      ).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(ran).toBe(false);
    } finally {
      await lock.close();
    }
  });
});
