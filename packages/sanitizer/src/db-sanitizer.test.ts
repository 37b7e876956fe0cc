import { waitUntil } from '@guard/core';
import type { DbPoolTarget, Detection } from '@guard/core';
import { pgTestDatabase } from '@guard/core/testing';
import type { PgTestDatabase } from '@guard/core/testing';
import pg from 'pg';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDbSanitizer } from './db-sanitizer.js';

/** This file's own database (concurrent suites never collide), and a pool on it for checking from outside. */
let database: PgTestDatabase;
let admin: pg.Pool;
const RUN = `${process.pid}_${Date.now().toString(36)}`;
const TABLE = `sanitizer_orphan_${RUN}`;

/** A minimal real tracker over a pg Pool: checkouts by id; dispose swaps in a fresh pool once the old one drained. */
class TestPgPoolTracker implements DbPoolTarget {
  pool: pg.Pool;
  readonly checkedOut = new Map<string, PoolClient>();
  #next = 0;

  constructor(
    readonly maxPoolSize: number,
    readonly poolMax: number,
    readonly applicationName: string,
  ) {
    this.pool = this.#newPool();
  }
  #newPool(): pg.Pool {
    return new pg.Pool({ connectionString: database.url, max: this.poolMax, application_name: this.applicationName });
  }
  async checkout(): Promise<string> {
    const client = await this.pool.connect();
    const id = `conn-${++this.#next}`;
    this.checkedOut.set(id, client);
    return id;
  }
  client(id: string): PoolClient {
    return this.checkedOut.get(id)!;
  }
  async release(resourceId: string): Promise<boolean> {
    const client = this.checkedOut.get(resourceId);
    if (!client) return false;
    this.checkedOut.delete(resourceId);
    client.release(true); // destroy: an open transaction is rolled back by the server
    return true;
  }
  activeCount(): number {
    return this.pool.totalCount - this.pool.idleCount;
  }
  async dispose(): Promise<void> {
    for (const client of this.checkedOut.values()) client.release(true);
    this.checkedOut.clear();
    const old = this.pool;
    this.pool = this.#newPool();
    await old.end();
  }
  async close(): Promise<void> {
    for (const client of this.checkedOut.values()) client.release(true);
    this.checkedOut.clear();
    await this.pool.end();
  }
}

async function backends(applicationName: string): Promise<number> {
  const { rows } = await admin.query<{ n: string }>('select count(*) as n from pg_stat_activity where application_name = $1', [applicationName]);
  return Number(rows[0]!.n);
}

function detection(resourceId: string): Detection {
  return { id: `det_${resourceId}`, component: 'db', pattern: 'connection_orphan', severity: 'critical', resourceId, message: '', details: {}, detectedAt: 0 };
}

const signal = new AbortController().signal;

beforeAll(async () => {
  database = await pgTestDatabase('sanitizer_db');
  admin = new pg.Pool({ connectionString: database.url, max: 2 });
  await admin.query(`create table ${TABLE} (id serial primary key, note text not null)`);
});
afterAll(async () => {
  await admin.end();
  await database.drop();
});

describe('createDbSanitizer against a real Postgres pool', () => {
  it('releases an orphaned transaction: its insert is rolled back and the exhausted pool serves again', async () => {
    const tracker = new TestPgPoolTracker(2, 2, `san_a_${RUN}`);
    try {
      const orphan = await tracker.checkout();
      await tracker.client(orphan).query('begin');
      await tracker.client(orphan).query(`insert into ${TABLE} (note) values ('never committed')`);
      await tracker.checkout(); // a second holder: the pool (max 2) is now exhausted
      let served = false;
      const waiting = tracker.pool.query<{ ok: number }>('select 1 as ok').then((r) => {
        served = true;
        return r.rows[0]!.ok;
      });
      await waitUntil(() => tracker.pool.waitingCount === 1, { what: 'the query to queue behind the exhausted pool' });
      expect(served).toBe(false);

      const report = await createDbSanitizer(tracker).sanitize(detection(orphan), { signal });

      expect(report).toMatchObject({ outcome: 'success', actions: ['release'], details: { released: true, maxPoolSize: 2, disposed: false } });
      await expect(waiting).resolves.toBe(1);
      const { rows } = await admin.query<{ n: string }>(`select count(*) as n from ${TABLE}`);
      expect(Number(rows[0]!.n)).toBe(0);
      await expect(createDbSanitizer(tracker).sanitize(detection(orphan), { signal })).resolves.toMatchObject({
        outcome: 'skipped',
        details: { released: false },
      });
    } finally {
      await tracker.close();
    }
  });

  it('escalates when the pool stays over maxPoolSize: disposes it, verifies 0 and the pool serves again', async () => {
    const applicationName = `san_b_${RUN}`;
    const tracker = new TestPgPoolTracker(3, 10, applicationName);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await tracker.checkout());
      expect(tracker.activeCount()).toBe(5);
      expect(await backends(applicationName)).toBe(5);

      const report = await createDbSanitizer(tracker).sanitize(detection(ids[0]!), { signal });

      expect(report).toEqual({
        outcome: 'success',
        actions: ['release', 'dispose', 'verify(0)'],
        details: { released: true, activeAfterRelease: 4, active: 0, maxPoolSize: 3, disposed: true },
      });
      await waitUntil(async () => (await backends(applicationName)) === 0, { what: 'the server-side connections to close' });
      const { rows } = await tracker.pool.query<{ ok: number }>('select 1 as ok');
      expect(rows[0]!.ok).toBe(1);
    } finally {
      await tracker.close();
    }
  });

  it('reports failed when the pool does not drain after dispose', async () => {
    const tracker = new TestPgPoolTracker(1, 5, `san_c_${RUN}`);
    try {
      const a = await tracker.checkout();
      await tracker.checkout();
      await tracker.checkout();
      const stubborn: DbPoolTarget = {
        maxPoolSize: 1,
        release: (id) => tracker.release(id),
        activeCount: () => tracker.activeCount(),
        dispose: async () => {}, // a pool that ignores the escalation
      };
      const report = await createDbSanitizer(stubborn).sanitize(detection(a), { signal });
      expect(report).toMatchObject({ outcome: 'failed', actions: ['release', 'dispose'], details: { active: 2, disposed: true } });
      expect(report.error).toMatch(/still holds 2 connections/);
    } finally {
      await tracker.close();
    }
  });

  it('gives up on a release that hangs when the signal aborts', async () => {
    const hanging: DbPoolTarget = { maxPoolSize: 1, release: () => new Promise(() => {}), activeCount: () => 1, dispose: async () => {} };
    const controller = new AbortController();
    const result = createDbSanitizer(hanging).sanitize(detection('x'), { signal: controller.signal });
    controller.abort(new Error('timeout'));
    await expect(result).rejects.toThrow('timeout');
  });
});
