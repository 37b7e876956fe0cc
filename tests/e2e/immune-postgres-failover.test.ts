import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { pgTestDatabase } from '../../packages/core/src/testing.js';
import type { FleetPoolLike } from '../../packages/immune/src/fleet-db.js';
import { FleetEventStream } from '../../packages/immune/src/fleet-stream.js';
import { createImmuneHandler } from '../../packages/immune/src/http-handler.js';
import { ImmuneService } from '../../packages/immune/src/immune-service.js';
import { createPostgresStore } from '../../packages/immune/src/postgres.js';
import { eventually, serverPort, startTcpProxy, urlThrough } from '../../packages/immune/src/test-helpers.js';
import { reportFigure } from './report.js';

// pg is immune's (dev) dependency, not this project's: load it from there.
const pg = createRequire(new URL('../../packages/immune/package.json', import.meta.url))('pg') as {
  Pool: new (config: { connectionString: string; max: number }) => FleetPoolLike;
};

// How fast the immune Postgres store fails over and how fast the fleet stream carries events, on real time. The unit
// tests (packages/immune/src/postgres-resilience.test.ts, fleet-stream.test.ts) assert the behaviour; this file
// reports the figures and asserts only generous bounds a user relies on (a partition answers in seconds, not minutes).

describe('immune on a real Postgres', () => {
  it('answers 503 within its timeouts during a partition; reports how long each answer took', async () => {
    await using database = await pgTestDatabase('immune_e2e_partition');
    await using proxy = await startTcpProxy(serverPort(database.url), new URL(database.url).hostname);
    const store = await createPostgresStore({
      connectionString: urlThrough(database.url, proxy.port),
      connectTimeoutMs: 1_000,
      statementTimeoutMs: 1_000,
      queryTimeoutMs: 1_500,
      metrics: false,
    });
    await using service = new ImmuneService({ store, metrics: false });
    const handler = createImmuneHandler(service, { metrics: false });
    const server = createServer((req, res) => handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/immune`;
    const post = () =>
      fetch(`${base}/event`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'e2e' }) });
    try {
      expect((await post()).status).toBe(201);
      proxy.partition();
      for (const [what, call] of [
        ['POST /event', post],
        ['GET /health', () => fetch(`${base}/health`)],
        ['GET /events', () => fetch(`${base}/events`)],
      ] as const) {
        const started = performance.now();
        const res = await call();
        const ms = performance.now() - started;
        reportFigure(`immune ${what} during a Postgres partition (connect 1 s, query 1.5 s)`, ms, 'ms');
        expect(res.status, what).toBe(503);
        expect(ms, what).toBeLessThan(30_000); // failing fast, not hanging on a silent network
      }
      proxy.heal();
      const started = performance.now();
      await eventually(async () => ((await post()).status === 201 ? true : undefined), 'a publish after the partition', 30_000);
      reportFigure('immune first successful publish after the partition healed', performance.now() - started, 'ms');
    } finally {
      await handler.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it('carries an event to the other replica’s stream; reports the latency and a 2,000-event burst', async () => {
    await using database = await pgTestDatabase('immune_e2e_stream');
    const pools = [0, 1].map(() => new pg.Pool({ connectionString: database.url, max: 3 }));
    const replicas = await Promise.all(
      ['a', 'b'].map(async (instanceId, i) => {
        const service = new ImmuneService({ store: await createPostgresStore({ connectionString: database.url, metrics: false }), metrics: false });
        const stream = new FleetEventStream({ service, pool: pools[i]!, table: 'immune_events', instanceId, metrics: false });
        stream.start();
        const seen = new Set<string>();
        service.onEventPublished((e) => void seen.add(e.payload.event_id));
        return { service, stream, seen };
      }),
    );
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    try {
      await eventually(() => (a.stream.connected && b.stream.connected ? true : undefined), 'both LISTEN sessions');
      const started = performance.now();
      const id = await a.service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'to the fleet' });
      await eventually(() => (b.seen.has(id) ? true : undefined), 'the event on b');
      reportFigure('immune fleet stream: one event on the other replica after', performance.now() - started, 'ms');
      const burst = performance.now();
      const ids = await Promise.all(Array.from({ length: 2_000 }, (_, i) => b.service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `m${i}` })));
      reportFigure('immune fleet stream: 2,000 concurrent events stored in', performance.now() - burst, 'ms');
      await eventually(() => (ids.every((x) => a.seen.has(x)) ? true : undefined), 'the burst on a', 60_000);
      reportFigure('immune fleet stream: 2,000 concurrent events all on the other replica after', performance.now() - burst, 'ms');
    } finally {
      for (const { stream, service } of replicas) {
        await stream.close();
        await service.close();
      }
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});
