import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloseStack, GuardBus, isGuardError, waitUntil } from '@guard/core';
import { pgTestDatabase } from '@guard/core/testing';
import type { SanitizeResult } from '@guard/core';
import { BatchWriter, DetectorChain, EventBusTracker, WebSocketTracker, trackDialect } from '@guard/detectors';
import { wsTestServer } from '@guard/detectors/testing';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createBatchSanitizer } from './batch-sanitizer.js';
import { createDbSanitizer } from './db-sanitizer.js';
import { DeferredSanitizer } from './deferred-sanitizer.js';
import { createEventBusSanitizer } from './eventbus-sanitizer.js';
import { createWebSocketSanitizer } from './websocket-sanitizer.js';

// The real trackers of @guard/detectors healed by the real DeferredSanitizer, end to end.

const dir = mkdtempSync(join(tmpdir(), 'guard-sanitizer-tracked-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
});

function collect(bus: GuardBus): SanitizeResult[] {
  const results: SanitizeResult[] = [];
  bus.subscribe('sanitization', (r) => results.push(r));
  return results;
}

describe('several trackers of one component in one process', () => {
  it('two WebSocket servers and two pools, a leak in each: all four detected and each healed by its own tracker', async () => {
    await using serverA = await wsTestServer();
    await using serverB = await wsTestServer();
    await using socketsA = new WebSocketTracker(serverA.wss, { pingIntervalMs: 0, ackTimeoutMs: 1_000 });
    await using socketsB = new WebSocketTracker(serverB.wss, { pingIntervalMs: 0, ackTimeoutMs: 1_000 });
    // two unnamed pools: one SQLite file, one the real local Postgres (a database of this test's own)
    await using database = await pgTestDatabase('sanitizer_tracked');
    const sqlite = trackDialect(new SqliteDialect({ database: new Database(join(dir, 'a.db')) }), { leakThresholdMs: 1_000 });
    const pool = new pg.Pool({ connectionString: database.url, max: 4 });
    const postgres = trackDialect(new PostgresDialect({ pool }), { pgPool: pool, leakThresholdMs: 1_000 });
    expect(sqlite.tracker.name).not.toBe(postgres.tracker.name);
    const dbA = new Kysely<Record<string, never>>({ dialect: sqlite });
    const dbB = new Kysely<Record<string, never>>({ dialect: postgres });
    const bus = new GuardBus();
    const results = collect(bus);
    await using sanitizer = new DeferredSanitizer({
      bus,
      metrics: false,
      delaysMs: { websocket: 0, db: 0 },
      sanitizers: [
        createWebSocketSanitizer(socketsA, { graceMs: 2_000 }),
        createWebSocketSanitizer(socketsB, { graceMs: 2_000 }),
        createDbSanitizer(sqlite.tracker),
        createDbSanitizer(postgres.tracker),
      ],
    });
    await using chain = new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus, metrics: false, scheduler: sanitizer, detectors: [socketsA, socketsB, sqlite.tracker, postgres.tracker] });
    try {
      const a = await serverA.connect();
      const b = await serverB.connect();
      socketsA.send(a.server, { type: 'price' });
      socketsB.send(b.server, { type: 'price' });
      const trxA = await dbA.startTransaction().execute();
      const trxB = await dbB.startTransaction().execute();
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trxB)).rows[0]!.pid;

      const detections = chain.scan(Date.now() + 5_000);
      const ids = [socketsA.connectionId(a.server), socketsB.connectionId(b.server), ...sqlite.tracker.checkouts().map((c) => c.id), ...postgres.tracker.checkouts().map((c) => c.id)];
      expect(new Set(ids).size).toBe(4);
      expect(detections.map((d) => d.resourceId).sort()).toEqual([...ids].sort());
      expect(await sanitizer.waitForSanitization(10_000)).toBe(true);

      expect(results.map((r) => [r.resourceId, r.outcome]).sort()).toEqual(ids.map((id) => [id, 'success']).sort());
      // each healed where it lives: both peers got a policy close, both orphans lost their connection
      expect(await a.closed).toBe(1008);
      expect(await b.closed).toBe(1008);
      expect([socketsA.size, socketsB.size, sqlite.tracker.activeCount(), postgres.tracker.activeCount()]).toEqual([0, 0, 0, 0]);
      await expect(trxA.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
      await expect(trxB.commit().execute()).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
      const gone = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where pid = ${pid}`.execute(dbB);
      expect(Number(gone.rows[0]!.n)).toBe(0);
      // both pools serve again
      expect((await sql<{ one: number }>`select 1 as one`.execute(dbA)).rows).toEqual([{ one: 1 }]);
      expect((await sql<{ one: number }>`select 1 as one`.execute(dbB)).rows).toEqual([{ one: 1 }]);
    } finally {
      await dbA.destroy();
      await dbB.destroy();
    }
  });
});

/** `global.gc` from `--expose-gc` (vitest.config.ts). */
function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  collect();
}

/** A full-mode chain over `emitters` whose detections the eventbus sanitizer heals at once; `results` collects its reports. */
function healingEventBus(emitters: EventBusTracker) {
  const bus = new GuardBus();
  const results = collect(bus);
  const closing = new CloseStack();
  const sanitizer = closing.use(new DeferredSanitizer({ bus, metrics: false, delaysMs: { eventbus: 0 }, sanitizers: [createEventBusSanitizer(emitters)] }));
  const chain = closing.use(new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus, metrics: false, scheduler: sanitizer, detectors: [emitters] }));
  return { results, sanitizer, chain, [Symbol.asyncDispose]: () => closing.close() };
}

describe('C2 in full mode heals only what is stale', () => {
  it('2,000 live per-connection listeners over the threshold: reported, zero removed even when offered to the sanitizer', async () => {
    await using server = await wsTestServer();
    await using sockets = new WebSocketTracker(server.wss, { pingIntervalMs: 0 });
    await using emitters = new EventBusTracker({ leakThreshold: 1_000 });
    const appBus = new EventEmitter().setMaxListeners(0);
    emitters.track(appBus, { name: 'app-bus' });
    await using healing = healingEventBus(emitters);
    const { results, sanitizer, chain } = healing;
    // a few real connections, then the rest of the 2,000 per-connection subscriptions as the demo makes them
    const live: { received: number }[] = [];
    server.wss.on('connection', () => {
      const connection = { received: 0 };
      live.push(connection);
      appBus.on('analysis.finished', () => connection.received++);
    });
    for (let i = 0; i < 20; i++) await server.connect();
    for (let i = 20; i < 2_000; i++) {
      const connection = { received: 0 };
      live.push(connection);
      if (i % 2 === 0) emitters.on(appBus, 'analysis.finished', () => connection.received++, { owner: connection });
      else appBus.on('analysis.finished', () => connection.received++);
    }
    expect(sockets.size).toBe(20);
    const [detection] = chain.scan();
    expect(detection).toMatchObject({ component: 'eventbus', resourceId: 'app-bus', severity: 'warning', details: { total: 2_000 } });
    expect((detection!.details.topSites as unknown[]).length).toBeGreaterThan(0);
    // not critical, so not offered; offered anyway (as an operator might), the sanitizer removes nothing
    expect(sanitizer.stats()).toEqual({ delayed: 0, queued: 0, running: 0 });
    gc();
    expect(sanitizer.schedule(detection!)).toBe(true);
    expect(await sanitizer.waitForSanitization(5_000)).toBe(true);
    expect(results).toEqual([expect.objectContaining({ resourceId: 'app-bus', outcome: 'skipped', details: { removed: 0, listenersBefore: 2_000, listeners: 2_000 } })]);
    appBus.emit('analysis.finished');
    expect(live.filter((c) => c.received === 1)).toHaveLength(2_000);
  });

  it('listeners whose owner was collected are found and removed by the sanitizer; live owners keep theirs', async () => {
    await using emitters = new EventBusTracker({ leakThreshold: 1_000 });
    const appBus = new EventEmitter().setMaxListeners(0);
    emitters.track(appBus, { name: 'views' });
    await using healing = healingEventBus(emitters);
    const { results, sanitizer, chain } = healing;
    // the common pattern: a view subscribes in its own constructor, tied to itself
    class View {
      constructor(emitter: EventEmitter) {
        emitters.on(emitter, 'tick', () => {}, { owner: this });
      }
    }
    const kept = Array.from({ length: 30 }, () => new View(appBus));
    (() => {
      for (let i = 0; i < 70; i++) new View(appBus);
    })();
    await waitUntil(() => {
      gc();
      chain.scan();
      return results.length > 0;
    });
    expect(await sanitizer.waitForSanitization(5_000)).toBe(true);
    expect(results).toEqual([expect.objectContaining({ resourceId: 'views#stale', outcome: 'success', details: { removed: 70, listenersBefore: 100, listeners: 30 } })]);
    expect(appBus.listenerCount('tick')).toBe(30);
    expect(kept).toHaveLength(30);
  });
});

describe('C5 forced flush against a sink that never settles', () => {
  it('ends within the write timeout: the stuck batch is dead-lettered, the rest stays buffered, no slot is held', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const db = new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database: new Database(join(dir, 'batch.db')) }) });
    const writer = new BatchWriter<{ n: number }>({
      db,
      name: 'results',
      write: () => new Promise(() => {}),
      maxBatchSize: 1_000,
      retries: 1,
      retryDelayMs: 100,
      writeTimeoutMs: 2_000,
      deadLetterTable: `dl_${process.pid}`,
    });
    await writer.ensureSchema();
    for (let n = 0; n < 1_500; n++) writer.add({ n });
    // the 1,000th item started a background flush that is stuck on the sink
    const bus = new GuardBus();
    const results = collect(bus);
    const sanitizer = new DeferredSanitizer({ bus, metrics: false, delaysMs: { batch: 0 }, timeoutMs: 30_000, sanitizers: [createBatchSanitizer(writer)] });
    const detection = { id: 'det_1', component: 'batch', pattern: 'flush_loss', severity: 'critical' as const, resourceId: 'results', message: '', details: {}, detectedAt: Date.now() };
    expect(sanitizer.schedule(detection)).toBe(true);
    // background flush: 2 attempts of 2 s + 100 ms, its dead-letter insert (real I/O), then the forced flush the same
    await vi.advanceTimersByTimeAsync(4_100);
    while (writer.stats().deadLettered < 1_000) await new Promise((resolve) => setImmediate(resolve));
    await vi.advanceTimersByTimeAsync(4_100);
    while (results.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(results).toEqual([
      expect.objectContaining({ resourceId: 'results', outcome: 'success', details: { flushed: 0, deadLettered: 500, lost: 0, remaining: 0 } }),
    ]);
    expect(sanitizer.stats()).toEqual({ delayed: 0, queued: 0, running: 0 });
    vi.useRealTimers();
    expect(await writer.deadLetterCount()).toBe(1_500);
    expect(writer.buffered).toBe(0);
    await sanitizer.close();
    await writer.close();
    await db.destroy();
  });
});
