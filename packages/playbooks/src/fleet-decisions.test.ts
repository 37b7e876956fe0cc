import pg from 'pg';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { GuardMode } from '@guard/core';
import { MessageBus } from './message-bus.js';
import { FleetDecisions } from './fleet-decisions.js';
import { createActionRegistry } from './builtin-actions.js';

const url = process.env.GUARD_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';
const pools: pg.Pool[] = [];
const tables: string[] = [];
afterAll(async () => {
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  for (const t of tables) await admin.query(`drop table if exists "${t}"`);
  await admin.end();
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
});

function pool(connectionString = url): pg.Pool {
  const p = new pg.Pool({ connectionString, max: 3 });
  p.on('error', () => {});
  pools.push(p);
  return p;
}
function table(): string {
  const t = `fleet_decisions_${process.pid}_${randomBytes(3).toString('hex')}`;
  tables.push(t);
  return t;
}

function replica(t: string, instanceId: string, p = pool(), timeouts?: { connectTimeoutMs: number; statementTimeoutMs: number; queryTimeoutMs: number }) {
  const registry = new Registry();
  const bus = new MessageBus({ name: instanceId, acl: { rogue: ['orders.*'], shop: ['orders.*'] }, registry });
  const modes: Array<GuardMode | undefined> = [];
  const decisions = new FleetDecisions({ pool: p, instanceId, bus, table: t, pingIntervalMs: 100, registry, onMode: (mode) => modes.push(mode), ...(timeouts ? { timeouts } : {}) });
  return {
    bus,
    decisions,
    modes,
    metric: async (name: string) => (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0),
    async close() {
      await decisions.close();
      await bus.close();
    },
  };
}

function waitFor(check: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + limitMs;
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

describe('FleetDecisions (two replicas on one database)', () => {
  it('a blacklist set on one replica refuses the actor on the other, and lifting it frees the actor everywhere', async () => {
    const t = table();
    const a = replica(t, 'a');
    const b = replica(t, 'b');
    try {
      await Promise.all([a.decisions.start(), b.decisions.start()]);
      await waitFor(() => a.decisions.listening && b.decisions.listening, 'both listeners');
      expect(b.bus.publish('rogue', 'orders.new', {})).toBe('no_subscribers');
      const started = performance.now();
      a.decisions.blacklist('rogue', { durationMs: 600_000, reason: 'acl spam' });
      // Applied locally at once, before any database round trip.
      expect(a.bus.publish('rogue', 'orders.new', {})).toBe('blacklisted');
      await waitFor(() => b.bus.isBlacklisted('rogue'), 'the blacklist on b');
      console.log(`fleet decisions: blacklist reached the other replica after ${(performance.now() - started).toFixed(1)} ms`);
      expect(b.bus.publish('rogue', 'orders.new', {})).toBe('blacklisted');
      expect(b.bus.publish('shop', 'orders.new', {})).toBe('no_subscribers');
      const [stored] = await b.decisions.active();
      expect(stored).toMatchObject({ kind: 'blacklist', subject: 'rogue', target: '*', createdBy: 'a', reason: 'acl spam' });
      expect(stored!.expiresAt! - Date.now()).toBeGreaterThan(590_000);
      b.decisions.unblacklist('rogue');
      expect(b.bus.isBlacklisted('rogue')).toBe(false);
      await waitFor(() => !a.bus.isBlacklisted('rogue'), 'the lift on a');
      expect(await a.decisions.active()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a playbook’s blacklist_actor and rate_limit_topic actions reach every replica through the sink', async () => {
    const t = table();
    const a = replica(t, 'a');
    const b = replica(t, 'b');
    try {
      await Promise.all([a.decisions.start(), b.decisions.start()]);
      const actions = createActionRegistry({ messageBus: a.bus, fleet: a.decisions });
      const ctx = { dryRun: false, signal: new AbortController().signal } as never;
      await actions.get('blacklist_actor')!({ actor: 'rogue', duration: '10m' }, ctx);
      await actions.get('rate_limit_topic')!({ topic: 'orders.*', scope: 'all', rate_per_sec: 0, duration: '5m' }, ctx);
      await waitFor(() => b.bus.isBlacklisted('rogue'), 'the playbook blacklist on b');
      await waitFor(() => b.bus.publish('shop', 'orders.new', {}) === 'rate_limited', 'the topic limit on b');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a decision expires on every replica (database clock)', async () => {
    const t = table();
    const a = replica(t, 'a');
    const b = replica(t, 'b');
    try {
      await Promise.all([a.decisions.start(), b.decisions.start()]);
      a.decisions.blacklist('rogue', { durationMs: 300 });
      await waitFor(() => b.bus.isBlacklisted('rogue'), 'the blacklist on b');
      await waitFor(() => !b.bus.isBlacklisted('rogue') && !a.bus.isBlacklisted('rogue'), 'expiry on both');
      expect(await b.decisions.active()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a fleet-wide mode switch reaches every replica, one aimed at a replica reaches only it, and a new replica starts in the fleet’s mode', async () => {
    const t = table();
    const a = replica(t, 'a');
    const b = replica(t, 'b');
    try {
      await Promise.all([a.decisions.start(), b.decisions.start()]);
      expect(a.modes).toEqual([]);
      await a.decisions.setMode('detect', { target: 'b' });
      await waitFor(() => b.decisions.mode === 'detect', 'detect on b');
      expect(a.decisions.mode).toBeUndefined();
      await b.decisions.setMode('disabled', { target: 'fleet', reason: 'emergency' });
      await waitFor(() => a.decisions.mode === 'disabled' && b.decisions.mode === 'disabled', 'the emergency disable on both');
      expect(a.modes).toEqual(['disabled']);
      expect(b.modes).toEqual(['detect', 'disabled']);
      const c = replica(t, 'c');
      try {
        await c.decisions.start();
        expect(c.modes).toEqual(['disabled']);
        expect(await a.decisions.clearMode({ target: 'fleet' })).toBe(1);
        // b goes back to the mode aimed at it; a and c to their own (undefined: no fleet mode).
        await waitFor(() => b.decisions.mode === 'detect' && a.decisions.mode === undefined && c.decisions.mode === undefined, 'the restore');
        expect(c.modes).toEqual(['disabled', undefined]);
      } finally {
        await c.close();
      }
      await expect(a.decisions.setMode('loud' as GuardMode)).rejects.toMatchObject({ code: 'INVALID_INPUT', details: { field: 'mode' } });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('while the database is cut off a blacklist applies locally, and reaches the others once it is back', async () => {
    const t = table();
    await using proxy = await tcpProxy(new URL(url).port ? Number(new URL(url).port) : 5432);
    const cutUrl = new URL(url);
    cutUrl.host = `127.0.0.1:${proxy.port}`;
    const a = replica(t, 'a', pool(cutUrl.toString()), { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 300 });
    const b = replica(t, 'b');
    try {
      await Promise.all([a.decisions.start(), b.decisions.start()]);
      await waitFor(() => a.decisions.listening, 'a listening');
      proxy.partition();
      await waitFor(() => !a.decisions.listening, 'a to notice the cut');
      a.decisions.blacklist('rogue', { durationMs: 600_000 });
      expect(a.bus.isBlacklisted('rogue')).toBe(true);
      await waitFor(() => a.decisions.reachable === false, 'a to fall back');
      expect(a.decisions.pendingCount).toBe(1);
      expect(await a.metric('guard_playbooks_fleet_decisions_pending')).toBe(1);
      await expect(a.decisions.setMode('detect')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      // Meanwhile b decides something a cannot hear yet.
      b.decisions.limitActor('shop', 0, { topic: 'orders.*', durationMs: 600_000 });
      proxy.heal();
      proxy.reset();
      await waitFor(() => b.bus.isBlacklisted('rogue'), 'the pending blacklist on b');
      await waitFor(() => a.bus.publish('shop', 'orders.new', {}) === 'rate_limited', 'b’s actor limit on a');
      expect(a.decisions.pendingCount).toBe(0);
      expect(await a.metric('guard_playbooks_fleet_decisions_pending')).toBe(0);
      expect(await b.metric('guard_playbooks_fleet_decisions_applied_total')).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

/** A loopback TCP proxy whose `partition()` silences every connection (and holds new ones) until `heal()`. */
async function tcpProxy(targetPort: number) {
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  let partitioned = false;
  const start = (pair: { client: Socket; upstream?: Socket }) => {
    const upstream = connect(targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => pair.client.destroy());
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    upstream.on('close', () => pair.client.destroy());
    pair.client.on('close', () => upstream.destroy());
  };
  const server = createServer((client) => {
    client.on('error', () => {});
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
    if (partitioned) client.pause();
    else start(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    partition() {
      partitioned = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream?.pause();
      }
    },
    heal() {
      partitioned = false;
    },
    reset() {
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
      }
      pairs.clear();
    },
    async [Symbol.asyncDispose]() {
      this.reset();
      server.close();
      await once(server, 'close');
    },
  };
}
