import { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { SanitizeResult } from '@guard/core';
import { wsTestServer } from '@guard/detectors/testing';
import { createGuard } from '../src/index.js';
import { type NoTables, PG_URL, testGuardOptions, until } from './support.js';

const pools: pg.Pool[] = [];
afterAll(async () => {
  for (const pool of pools) if (!pool.ended) await pool.end();
});

/** A checkout its owner never gives back: the classic orphan (a forgotten release in a callback). */
function orphanCheckout(db: Kysely<NoTables>): void {
  void db.connection().execute(() => new Promise(() => {})).catch(() => {});
}

describe('one guard, two WebSocket servers and two pg pools, full mode', () => {
  it('detects and heals a leak in each (dead peers closed, orphaned clients destroyed), each by its own sanitizer', async () => {
    await using a = await wsTestServer();
    await using b = await wsTestServer();
    const poolA = new pg.Pool({ connectionString: PG_URL, max: 4 });
    const poolB = new pg.Pool({ connectionString: PG_URL, max: 4 });
    pools.push(poolA, poolB);
    await using guard = await createGuard(testGuardOptions({
      env: {
        PARASITE_GUARD_MODE: 'full',
        PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ping_interval=1',
        PARASITE_GUARD_DB_THRESHOLD: 'leak_threshold=1',
        PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '0',
        PARASITE_GUARD_DB_ASYNC_DELAY: '0',
      },
      wss: { quotes: a.wss, chat: b.wss },
      db: { orders: poolA, audit: poolB },
    }));
    const healed: SanitizeResult[] = [];
    guard.bus.subscribe('sanitization', (result) => healed.push(result));

    // A healthy client on each server stays; a dead peer (answers no pings) on each is the leak.
    const { client: healthyA } = await a.connect();
    const { client: healthyB } = await b.connect();
    const { closed: closedA } = await a.connect({ autoPong: false });
    const { closed: closedB } = await b.connect({ autoPong: false });

    const orders = new Kysely<NoTables>({ dialect: guard.dialects.orders! });
    const audit = new Kysely<NoTables>({ dialect: guard.dialects.audit! });
    orphanCheckout(orders);
    orphanCheckout(audit);
    await until(() => poolA.totalCount === 1 && poolB.totalCount === 1, 'both orphans checked out');

    expect([await closedA, await closedB]).toEqual([1011, 1011]);
    await until(() => guard.dialects.orders!.tracker.activeCount() === 0 && guard.dialects.audit!.tracker.activeCount() === 0, 'both orphans released');
    await until(() => poolA.totalCount === 0 && poolB.totalCount === 0, 'orphaned pg clients destroyed');

    await until(() => healed.filter((r) => r.outcome === 'success').length === 4, 'four successful sanitizations');
    const successes = healed.filter((r) => r.outcome === 'success');
    // Each leak was healed once, by the sanitizer of its own tracker: four distinct resources.
    expect(new Set(successes.map((r) => r.resourceId)).size).toBe(4);
    expect(successes.filter((r) => r.component === 'websocket')).toHaveLength(2);
    expect(successes.filter((r) => r.component === 'db')).toHaveLength(2);
    // The healthy clients were not touched, and both pools still serve queries.
    expect(healthyA.readyState).toBe(healthyA.OPEN);
    expect(healthyB.readyState).toBe(healthyB.OPEN);
    expect((await orders.selectNoFrom((eb) => eb.lit(1).as('one')).execute())[0]).toEqual({ one: 1 });
    expect((await audit.selectNoFrom((eb) => eb.lit(2).as('two')).execute())[0]).toEqual({ two: 2 });
  });
});
