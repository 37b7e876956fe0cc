import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { isGuardError, sleep } from '@guard/core';
import type { Logger } from '@guard/core';
import { createImmuneHandler } from './http-handler.js';
import { ImmuneService } from './immune-service.js';
import { createPostgresStore, PostgresEventStore } from './postgres.js';
import type { PostgresEventStoreOptions } from './postgres.js';
import { eventually, filePgDatabase, freshRegistry, serverPort, startTcpProxy, uniqueTable, urlThrough } from './test-helpers.js';

// The store against a real Postgres that loses its connections: terminated backends, TCP resets and a partition.
// Nothing may crash the process (vitest fails the run on an unhandled 'error'), callers get typed errors or succeed,
// the store recovers by itself, and every acknowledged id is in the table. Every step awaits a condition (so many
// acknowledged events, a backend killed), never an amount of time; how fast it fails over is an e2e figure
// (tests/e2e/immune-postgres-partition.test.ts).

const pgUrl = await filePgDatabase('immune_resilience');
const admin = new pg.Pool({ connectionString: pgUrl, max: 2 });
admin.on('error', () => {});
afterAll(() => admin.end());

/** The test database's URL (through a proxy on `port`, if given) with an application_name to find its backends by. */
function urlFor(port: number | undefined, applicationName: string): string {
  const url = new URL(port === undefined ? pgUrl : urlThrough(pgUrl, port));
  url.searchParams.set('application_name', applicationName);
  return url.toString();
}

async function storeFor(label: string, port?: number, extra: Partial<PostgresEventStoreOptions> = {}) {
  const tableName = uniqueTable(label);
  const app = `guard_${tableName}`.slice(0, 60);
  const registry = freshRegistry();
  const store = await createPostgresStore({
    connectionString: urlFor(port, app),
    tableName,
    registry,
    // Short enough that a partition answers within seconds, long enough for a loaded 2-core machine to connect and
    // query once the network is back (the first call after healing must succeed).
    connectTimeoutMs: 2_000,
    statementTimeoutMs: 2_000,
    queryTimeoutMs: 3_000,
    ...extra,
  });
  return { store, tableName, app, registry };
}

async function storedIds(tableName: string): Promise<Set<string>> {
  const { rows } = await admin.query<{ id: string }>(`SELECT id FROM "${tableName}"`);
  return new Set(rows.map((r) => r.id));
}

async function terminate(app: string): Promise<number> {
  const { rows } = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [app]);
  return rows.filter((r) => r.ok).length;
}

/** Publishers that keep publishing until stopped; every outcome is recorded. */
function load(service: ImmuneService, publishers: number) {
  const acknowledged: string[] = [];
  const failures: unknown[] = [];
  /** Waiters of `progress`, each woken by the acknowledgement that reaches its target. */
  const waiters: Array<{ target: number; wake(): void }> = [];
  let running = true;
  let n = 0;
  const done = Promise.all(
    Array.from({ length: publishers }, async () => {
      while (running) {
        try {
          acknowledged.push(await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `load ${n++}`, module: 'resilience' }));
          for (let i = waiters.length - 1; i >= 0; i--) if (acknowledged.length >= waiters[i]!.target) waiters.splice(i, 1)[0]!.wake();
        } catch (error) {
          failures.push(error);
          await sleep(5); // pacing, not synchronisation: a failing store answers at once, do not spin the CPU
        }
      }
    }),
  );
  return {
    acknowledged,
    failures,
    /** Resolves once `count` more events were acknowledged than when called. */
    progress(count: number): Promise<void> {
      const target = acknowledged.length + count;
      return new Promise((wake) => waiters.push({ target, wake }));
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

function expectTyped(failures: unknown[]) {
  const codes = new Set(failures.map((e) => (isGuardError(e) ? e.code : `untyped: ${String(e)}`)));
  for (const code of codes) expect(['STORE_UNAVAILABLE'], `failure code ${code}`).toContain(code);
}

async function serveHttp(service: ImmuneService, logger?: Logger) {
  const handler = createImmuneHandler(service, { registry: freshRegistry(), retryAfterSeconds: 2, ...(logger ? { logger } : {}) });
  const server = createServer((req, res) => handler(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/immune`;
  return {
    base,
    async [Symbol.asyncDispose]() {
      await handler.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

const event = JSON.stringify({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'through http' });
const post = (base: string) => fetch(`${base}/event`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: event, signal: AbortSignal.timeout(15_000) });

describe('PostgresEventStore under connection loss', () => {
  it('survives pg_terminate_backend mid-load and on idle connections; recovers; loses no acknowledged event', async () => {
    const { store, tableName, app, registry } = await storeFor('kill');
    await using service = new ImmuneService({ store, registry });
    const run = load(service, 40);
    let killed = 0;
    for (let round = 0; round < 5; round++) {
      await run.progress(200);
      killed += await terminate(app);
    }
    await run.progress(200);
    await run.stop();
    const idle = await terminate(app); // idle connections in the pool now
    expect(idle).toBeGreaterThan(0);
    killed += idle;
    // The pool hears of its killed idle connections when their sockets report it: await that before the next call
    // (which would otherwise take a dying connection and see the kill as its query's error, retried, not counted).
    await eventually(() => (store.pool.errors > 0 ? true : undefined), 'the pool to report its killed idle connections');
    expectTyped(run.failures);
    // Recovered by itself: the next publish and summary succeed.
    const next = await service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'after the kills' });
    expect((await service.healthSummary()).latestCritical?.id).toBe(next);
    const stored = await storedIds(tableName);
    const lost = [...run.acknowledged, next].filter((id) => !stored.has(id));
    expect(lost).toEqual([]);
    console.log(`pg_terminate_backend: ${killed} backends killed, ${run.acknowledged.length} acknowledged, ${run.failures.length} typed failures, 0 lost`);
    expect(await registry.getSingleMetricAsString('guard_immune_store_connection_errors_total')).toMatch(/store="postgres"} [1-9]/);
  }, 60_000);

  it('survives TCP resets of every connection mid-load (through a proxy) and recovers', async () => {
    await using proxy = await startTcpProxy(serverPort(pgUrl), new URL(pgUrl).hostname);
    const { store, tableName, registry } = await storeFor('reset', proxy.port);
    await using service = new ImmuneService({ store, registry });
    const run = load(service, 40);
    for (let round = 0; round < 5; round++) {
      await run.progress(200);
      proxy.reset();
    }
    await run.progress(200);
    await run.stop();
    expectTyped(run.failures);
    const next = await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'after the resets' });
    const stored = await storedIds(tableName);
    expect([...run.acknowledged, next].filter((id) => !stored.has(id))).toEqual([]);
    console.log(`TCP reset x5: ${run.acknowledged.length} acknowledged, ${run.failures.length} typed failures, 0 lost`);
  }, 60_000);

  it('fails fast with 503 + Retry-After during a partition, then recovers by itself when the network is back', async () => {
    await using proxy = await startTcpProxy(serverPort(pgUrl), new URL(pgUrl).hostname);
    const { store, tableName, registry } = await storeFor('partition', proxy.port);
    await using service = new ImmuneService({ store, registry });
    await using http = await serveHttp(service);
    const before = await post(http.base);
    expect(before.status).toBe(201);
    const acknowledged = [((await before.json()) as { id: string }).id];

    proxy.partition();
    for (const [what, call] of [
      ['POST /event', () => post(http.base)],
      ['GET /health', () => fetch(`${http.base}/health`, { signal: AbortSignal.timeout(15_000) })],
      ['GET /events', () => fetch(`${http.base}/events`, { signal: AbortSignal.timeout(15_000) })],
      ['POST /event again', () => post(http.base)],
    ] as const) {
      const res = await call();
      expect(res.status, what).toBe(503);
      expect(res.headers.get('retry-after'), what).toBe('2');
      expect(res.headers.get('content-type'), what).toMatch(/problem\+json/);
      expect(((await res.json()) as { code: string }).code, what).toBe('STORE_UNAVAILABLE');
    }
    const direct = await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'partitioned' }).catch((e: unknown) => e);
    expect(isGuardError(direct, 'STORE_UNAVAILABLE')).toBe(true);
    expect(await registry.getSingleMetricAsString('guard_immune_publish_rejected_total')).toMatch(/reason="store_unavailable"} [1-9]/);

    proxy.heal();
    const after = await post(http.base);
    expect(after.status).toBe(201); // the first request after the network is back
    acknowledged.push(((await after.json()) as { id: string }).id);
    expect((await fetch(`${http.base}/health`)).status).toBe(200);
    const stored = await storedIds(tableName);
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
  }, 60_000);

  it('starts while the database is unreachable: 503s logged with their cause, then serves once it is back (migrations retried)', async () => {
    await using proxy = await startTcpProxy(serverPort(pgUrl), new URL(pgUrl).hostname);
    proxy.partition();
    const tableName = uniqueTable('late');
    const logged: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
    const capture = (level: string) => (obj: object, msg?: string) => logged.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? '' });
    const logger: Logger = { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') };
    const registry = freshRegistry();
    const store = new PostgresEventStore({ connectionString: urlFor(proxy.port, 'guard_late'), tableName, registry, connectTimeoutMs: 2_000, statementTimeoutMs: 2_000 });
    await using service = new ImmuneService({ store, registry });
    await using http = await serveHttp(service, logger);
    const down = await post(http.base);
    expect(down.status).toBe(503);
    expect(((await down.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
    expect((await fetch(`${http.base}/health`)).status).toBe(503);
    const fiveHundreds = logged.filter((l) => l.obj.status === 503);
    expect(fiveHundreds.map((l) => l.obj.path)).toEqual(['/api/immune/event', '/api/immune/health']);
    for (const l of fiveHundreds) {
      expect(l.level).toBe('warn');
      expect(isGuardError(l.obj.err, 'STORE_UNAVAILABLE')).toBe(true);
      expect((l.obj.err as Error).cause).toBeDefined(); // the driver's error, not just a status
    }
    proxy.heal();
    const up = await post(http.base);
    expect(up.status).toBe(201);
    expect((await storedIds(tableName)).has(((await up.json()) as { id: string }).id)).toBe(true);
  }, 30_000);

  it('guards a caller-owned pool too, and takes its listeners off again on close', async () => {
    const tableName = uniqueTable('given');
    const app = 'guard_given_pool';
    const pool = new pg.Pool({ connectionString: urlFor(undefined, app), max: 2 }); // no 'error' listener of its own
    const listeners = () => [pool.listenerCount('error'), pool.listenerCount('connect')];
    const before = listeners();
    const store = await createPostgresStore({ pool, tableName, registry: freshRegistry() });
    expect(listeners()).toEqual([before[0]! + 1, before[1]! + 1]);
    await using service = new ImmuneService({ store, registry: freshRegistry(), closeStore: false });
    await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'before' });
    expect(await terminate(app)).toBeGreaterThan(0); // the idle connection dies: handled, no crash
    const id = await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'after' });
    expect((await storedIds(tableName)).has(id)).toBe(true);
    await store.close();
    expect(listeners()).toEqual(before);
    expect((await pool.query('select 1 as one')).rows[0].one).toBe(1); // not ended
    await pool.end();
  });
});
