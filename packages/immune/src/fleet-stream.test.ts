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
import { eventually, filePgDatabase, freshRegistry, serverPort, startTcpProxy, uniqueTable, urlThrough } from './test-helpers.js';

const pgUrl = await filePgDatabase('immune_fleet_stream');
const pools: pg.Pool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
});

function pool(url = pgUrl): pg.Pool {
  const p = new pg.Pool({ connectionString: url, max: 3 });
  p.on('error', () => {});
  pools.push(p);
  return p;
}

type Timeouts = { connectTimeoutMs: number; statementTimeoutMs: number; queryTimeoutMs: number };

async function replica(tableName: string, channel: string, instanceId: string, listenPool = pool(), timeouts?: Timeouts) {
  const service = new ImmuneService({ store: await createPostgresStore({ connectionString: pgUrl, tableName, registry: freshRegistry() }), registry: freshRegistry() });
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

const waitFor = eventually;

/** Two replicas (a, b) streaming one fresh table, both LISTENing; `b` may listen through its own pool. */
async function replicas(label: string, bPool?: pg.Pool, bTimeouts?: Timeouts) {
  const tableName = uniqueTable(label);
  const channel = `${tableName}_ch`;
  const a = await replica(tableName, channel, 'a');
  const b = await replica(tableName, channel, 'b', bPool, bTimeouts);
  await Promise.all([a.stream, b.stream].map((stream) => waitFor(() => (stream.connected ? true : undefined), 'the LISTEN session')));
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
    },
  };
}

describe('FleetEventStream (two services on one database)', () => {
  it('an event published on one replica reaches the other replica’s stream (and its critical stream), once', async () => {
    await using pair = await replicas('stream');
    const { a, b } = pair;
    const critical: ImmuneStreamEnvelope[] = [];
    b.service.on('immune.critical_event', (e) => critical.push(e));
    const id = await a.service.publishEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', message: 'actor x spams', agentId: 'a', meta: { actor: 'x' } });
    const remote = await waitFor(() => b.seen.find((e) => e.payload.event_id === id), 'the event on b');
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
    // 2,000 events published concurrently on b all reach a's stream (tests/e2e/immune-fleet-stream.test.ts times it).
    const many = new Set(await Promise.all(Array.from({ length: 2_000 }, (_, i) => b.service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `m${i}` }))));
    await waitFor(() => (a.seen.filter((e) => many.has(e.payload.event_id)).length === 2_000 ? true : undefined), 'the 2,000 on a', 20_000);
  });

  it('the SSE stream of one replica shows the other’s events live and replays them by Last-Event-ID', async () => {
    await using pair = await replicas('sse');
    const { a, b } = pair;
    const handler = createImmuneHandler(b.service, { registry: freshRegistry() });
    const server = createServer((req, res) => handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
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
    }
  });

  it('while its LISTEN session is cut a replica streams its own events, and catches up on the others’ when it is back', async () => {
    await using proxy = await startTcpProxy(serverPort(pgUrl));
    await using pair = await replicas('cut', pool(urlThrough(pgUrl, proxy.port)), { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 300 });
    const { a, b } = pair;
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
  });
});
