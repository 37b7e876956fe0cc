import pg from 'pg';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresStore } from './postgres.js';
import { ImmuneService } from './immune-service.js';
import type { ImmuneStreamEnvelope } from './immune-service.js';
import { FleetEventStream } from './fleet-stream.js';
import { createImmuneHandler } from './http-handler.js';
import { freshRegistry, pgUrl, startTcpProxy, uniqueTable } from './test-helpers.js';

const admin = new pg.Pool({ connectionString: pgUrl(), max: 2 });
const pools: pg.Pool[] = [];
const tables: string[] = [];
afterAll(async () => {
  for (const name of tables) for (const t of [name, `${name}_rollup`, `${name}_migrations`, `${name}_migrations_lock`]) await admin.query(`drop table if exists "${t}"`);
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
  await admin.end();
});

function pool(url = pgUrl()): pg.Pool {
  const p = new pg.Pool({ connectionString: url, max: 3 });
  p.on('error', () => {});
  pools.push(p);
  return p;
}

async function replica(tableName: string, channel: string, instanceId: string, listenPool = pool(), timeouts?: { connectTimeoutMs: number; statementTimeoutMs: number; queryTimeoutMs: number }) {
  const service = new ImmuneService({ store: await createPostgresStore({ connectionString: pgUrl(), tableName, registry: freshRegistry() }), registry: freshRegistry() });
  const registry = freshRegistry();
  const stream = new FleetEventStream({ service, pool: listenPool, table: tableName, channel, instanceId, pingIntervalMs: 100, registry, ...(timeouts ? { timeouts } : {}) });
  stream.start();
  const seen: ImmuneStreamEnvelope[] = [];
  service.on('immune.event_published', (e) => seen.push(e));
  return {
    service,
    stream,
    seen,
    async metric(name: string): Promise<number> {
      return (await registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
    },
    async close() {
      await stream.close();
      await service.close();
    },
  };
}

function waitFor<T>(read: () => T | undefined, what: string, limitMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + limitMs;
    const tick = () => {
      const value = read();
      if (value !== undefined) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function connected(stream: FleetEventStream): Promise<void> {
  await waitFor(() => (stream.connected ? true : undefined), 'the LISTEN session');
}

describe('FleetEventStream (two services on one database)', () => {
  it('an event published on one replica reaches the other replica’s stream (and its critical stream), once', async () => {
    const tableName = uniqueTable('stream');
    tables.push(tableName);
    const channel = `${tableName}_ch`;
    const a = await replica(tableName, channel, 'a');
    const b = await replica(tableName, channel, 'b');
    try {
      await Promise.all([connected(a.stream), connected(b.stream)]);
      const critical: ImmuneStreamEnvelope[] = [];
      b.service.on('immune.critical_event', (e) => critical.push(e));
      const started = performance.now();
      const id = await a.service.publishEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', message: 'actor x spams', agentId: 'a', meta: { actor: 'x' } });
      const remote = await waitFor(() => b.seen.find((e) => e.payload.event_id === id), 'the event on b');
      console.log(`fleet stream: event visible on the other replica after ${(performance.now() - started).toFixed(1)} ms`);
      expect(remote.payload).toMatchObject({ event_id: id, severity: 'CRITICAL', message: 'actor x spams', agent_id: 'a', meta: { actor: 'x' } });
      await waitFor(() => critical.find((e) => e.payload.event_id === id), 'the critical event on b');
      // A burst of 400 events (more than one NOTIFY's worth of ids) arrives complete and in order.
      const ids: string[] = [];
      for (let i = 0; i < 400; i++) ids.push(await b.service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: `b${i}` }));
      await waitFor(() => (ids.every((x) => a.seen.some((e) => e.payload.event_id === x)) ? true : undefined), 'the burst on a');
      const order = a.seen.filter((e) => ids.includes(e.payload.event_id)).map((e) => e.payload.event_id);
      expect(order).toEqual(ids);
      // Nobody sees an event twice (its own is not echoed back from the NOTIFY).
      const onA = a.seen.map((e) => e.payload.event_id);
      expect(new Set(onA).size).toBe(onA.length);
      expect(a.seen.filter((e) => e.payload.event_id === id)).toHaveLength(1);
      expect(b.stream.remoteEvents).toBe(1);
      expect(a.stream.remoteEvents).toBe(400);
      expect(await a.metric('guard_immune_fleet_remote_events_total')).toBe(400);
      // Throughput: 2,000 events published concurrently on b, all on a's stream.
      const t0 = performance.now();
      const many = await Promise.all(Array.from({ length: 2_000 }, (_, i) => b.service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `m${i}` })));
      const stored = performance.now() - t0;
      const wanted = new Set(many);
      await waitFor(() => (a.seen.filter((e) => wanted.has(e.payload.event_id)).length === 2_000 ? true : undefined), 'the 2,000 on a', 20_000);
      console.log(`fleet stream: 2,000 concurrent events stored in ${stored.toFixed(0)} ms, all on the other replica's stream after ${(performance.now() - t0).toFixed(0)} ms`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the SSE stream of one replica shows the other’s events live and replays them by Last-Event-ID', async () => {
    const tableName = uniqueTable('sse');
    tables.push(tableName);
    const channel = `${tableName}_ch`;
    const a = await replica(tableName, channel, 'a');
    const b = await replica(tableName, channel, 'b');
    const handler = createImmuneHandler(b.service, { registry: freshRegistry() });
    const server = createServer((req, res) => handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await Promise.all([connected(a.stream), connected(b.stream)]);
      const first = await a.service.publishEvent({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'first' });
      const second = await a.service.publishEvent({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'second' });
      await waitFor(() => b.seen.find((e) => e.payload.event_id === second), 'second on b');
      // A client that reconnects after `first` gets `second` replayed from the shared table.
      const controller = new AbortController();
      const response = await fetch(`${base}/api/immune/stream`, { headers: { 'last-event-id': first }, signal: controller.signal });
      const reader = response.body!.getReader();
      let text = '';
      const readUntil = async (needle: string) => {
        while (!text.includes(needle)) {
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          text += Buffer.from(value).toString('utf8');
        }
      };
      await readUntil(`id: ${second}`);
      expect(text).not.toContain(`id: ${first}`);
      const third = await a.service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'third, live' });
      await readUntil(`id: ${third}`);
      controller.abort();
    } finally {
      await handler.close();
      server.close();
      await a.close();
      await b.close();
    }
  });

  it('while its LISTEN session is cut a replica streams its own events, and catches up on the others’ when it is back', async () => {
    const tableName = uniqueTable('cut');
    tables.push(tableName);
    const channel = `${tableName}_ch`;
    await using proxy = await startTcpProxy(5432);
    const url = new URL(pgUrl());
    url.host = `127.0.0.1:${proxy.port}`;
    const a = await replica(tableName, channel, 'a');
    const b = await replica(tableName, channel, 'b', pool(url.toString()), { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 300 });
    try {
      await Promise.all([connected(a.stream), connected(b.stream)]);
      proxy.partition();
      await waitFor(() => (b.stream.connected ? undefined : true), 'b to notice the partition');
      expect(await b.metric('guard_immune_fleet_stream_listening')).toBe(0);
      const missed = await a.service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'while b was cut off' });
      // b's own store is direct: b still publishes and streams its own events meanwhile.
      const own = await b.service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'b alone' });
      await waitFor(() => b.seen.find((e) => e.payload.event_id === own), 'b’s own event on b');
      expect(b.seen.some((e) => e.payload.event_id === missed)).toBe(false);
      proxy.heal();
      proxy.reset();
      await waitFor(() => b.seen.find((e) => e.payload.event_id === missed), 'the missed event on b after the reconnect');
      expect(b.seen.filter((e) => e.payload.event_id === own)).toHaveLength(1);
      expect(await b.metric('guard_immune_fleet_stream_listening')).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
