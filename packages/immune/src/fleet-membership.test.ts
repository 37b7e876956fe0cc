import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetMembership } from './fleet-membership.js';
import { createFleetHandler } from './fleet-handler.js';
import { eventually, filePgDatabase, serverPort, startTcpProxy, uniqueTable, urlThrough } from './test-helpers.js';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

const pgUrl = await filePgDatabase('immune_fleet_membership');
const pools: pg.Pool[] = [];
function pool(url = pgUrl): pg.Pool {
  const p = new pg.Pool({ connectionString: url, max: 3 });
  p.on('error', () => {});
  pools.push(p);
  return p;
}
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
});
const table = () => uniqueTable('fleet');

describe('FleetMembership (real Postgres)', () => {
  it('registers, lists every replica with its mode and status, and ages out one that stops heartbeating', async () => {
    const t = table();
    const shared = pool();
    let modeA = 'full';
    await using a = new FleetMembership({ pool: shared, table: t, instanceId: 'a', version: '1.2.3', mode: () => modeA, status: () => 'healthy', heartbeatMs: 50, staleAfterMs: 400 });
    const bPool = new pg.Pool({ connectionString: pgUrl, max: 1 });
    bPool.on('error', () => {});
    await using b = new FleetMembership({ pool: bPool, table: t, instanceId: 'b', heartbeatMs: 50, staleAfterMs: 400 });
    await Promise.all([a.start(), b.start()]);
    const both = await a.list();
    expect(both.map((i) => i.id)).toEqual(['a', 'b']);
    expect(both[0]).toMatchObject({ id: 'a', version: '1.2.3', mode: 'full', status: 'healthy', pid: process.pid });
    modeA = 'detect';
    await a.heartbeat();
    expect((await b.list())[1]).toMatchObject({ id: 'a', mode: 'detect' });
    // b's heartbeats stop reaching the table without a goodbye (as after a SIGKILL or a partition): it ages out.
    await bPool.end();
    const aged = await eventually(async () => {
      const list = await a.list();
      return list.length === 1 ? list : undefined;
    }, 'b to age out');
    expect(aged.map((i) => i.id)).toEqual(['a']);
    expect((await a.list({ includeStale: true })).map((i) => i.id)).toEqual(['a', 'b']);
  });

  it('removes its row on close, so a stopped replica leaves the list at once', async () => {
    const t = table();
    const shared = pool();
    await using a = new FleetMembership({ pool: shared, table: t, instanceId: 'a', heartbeatMs: 60_000 });
    const b = new FleetMembership({ pool: shared, table: t, instanceId: 'b', heartbeatMs: 60_000 });
    await a.start();
    await b.start();
    expect((await a.list()).length).toBe(2);
    await b.close();
    await b.close();
    expect((await a.list()).map((i) => i.id)).toEqual(['a']);
    await expect(b.list()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('three replicas creating the table at the same moment all succeed (advisory-locked migration)', async () => {
    const t = table();
    const members = [0, 1, 2].map((i) => new FleetMembership({ pool: pool(), table: t, instanceId: `m${i}`, heartbeatMs: 60_000 }));
    await Promise.all(members.map((m) => m.start()));
    expect(members.map((m) => m.reachable)).toEqual([true, true, true]);
    expect((await members[0]!.list()).length).toBe(3);
    await Promise.all(members.map((m) => m.close()));
  });

  it('keeps running while the database is cut off, answers /api/fleet degraded, and re-registers when it is back', async () => {
    const t = table();
    await using proxy = await startTcpProxy(serverPort(pgUrl));
    const cut = pool(urlThrough(pgUrl, proxy.port));
    const timeouts = { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 400 };
    await using a = new FleetMembership({ pool: cut, table: t, instanceId: 'a', heartbeatMs: 50, staleAfterMs: 5_000, timeouts });
    await a.start();
    expect(a.reachable).toBe(true);
    const server = createServer(createFleetHandler(a));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/api/fleet`)).json()).toMatchObject({ self: 'a', degraded: false, count: 1 });
      proxy.partition();
      await eventually(() => (a.reachable ? undefined : true), 'the heartbeat to notice the cut');
      const degraded = await fetch(`${base}/api/fleet`);
      expect(degraded.status).toBe(200);
      expect(await degraded.json()).toMatchObject({ self: 'a', degraded: true, reason: 'STORE_UNAVAILABLE', count: 1, instances: [{ id: 'a', self: true }] });
      expect((await fetch(`${base}/api/fleet?stale=maybe`)).status).toBe(400);
      proxy.heal();
      proxy.reset();
      await eventually(() => (a.reachable ? true : undefined), 'the heartbeat to get through again');
      expect(await (await fetch(`${base}/api/fleet`)).json()).toMatchObject({ degraded: false, count: 1 });
    } finally {
      server.close();
    }
  });
});

