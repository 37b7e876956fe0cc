import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTestPools, serverPort, startTcpProxy, urlThrough } from '@guard/core/testing';
import type { PgTestPools } from '@guard/core/testing';
import { Registry } from 'prom-client';
import { waitUntil } from '@guard/core';
import type { GuardMode } from '@guard/core';
import { MessageBus } from './message-bus.js';
import { FleetDecisions } from './fleet-decisions.js';
import { createActionRegistry } from './builtin-actions.js';

// A database of this file's own on the local server (or GUARD_TEST_PG_URL's); its pools are ended and it is dropped at the end.
let db: PgTestPools<pg.Pool>;
beforeAll(async () => {
  db = await pgTestPools('playbooks_fleet_decisions', { Pool: pg.Pool, max: 3 });
});
afterAll(() => db?.close());
const pool = (connectionString?: string): pg.Pool => db.pool(connectionString);
/** A table of the test's own: replicas of one test share it, tests never do. */
function table(): string {
  return `fleet_decisions_${randomBytes(3).toString('hex')}`;
}

type Timeouts = { connectTimeoutMs: number; statementTimeoutMs: number; queryTimeoutMs: number };

function replica(t: string, instanceId: string, p = pool(), timeouts?: Timeouts) {
  const registry = new Registry();
  const bus = new MessageBus({ name: instanceId, acl: { rogue: ['orders.*'], shop: ['orders.*'] }, registry });
  const modes: Array<GuardMode | undefined> = [];
  const decisions = new FleetDecisions({ pool: p, instanceId, bus, table: t, pingIntervalMs: 100, registry, onMode: (mode) => modes.push(mode), ...(timeouts ? { timeouts } : {}) });
  return {
    bus,
    decisions,
    modes,
    metric: async (name: string) => (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0),
    async [Symbol.asyncDispose]() {
      await decisions.close();
      await bus.close();
    },
  };
}

/** Replicas `a` and `b` on one fresh table, started; `a` may reach the database through `aPool`. */
async function twoReplicas(options: { aPool?: pg.Pool; aTimeouts?: Timeouts } = {}) {
  const t = table();
  const a = replica(t, 'a', options.aPool, options.aTimeouts);
  const b = replica(t, 'b');
  await Promise.all([a.decisions.start(), b.decisions.start()]);
  return {
    a,
    b,
    /** Another replica on the same table (not started). */
    another: (id: string) => replica(t, id),
    async [Symbol.asyncDispose]() {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    },
  };
}

function waitFor(check: () => boolean, what: string): Promise<void> {
  return waitUntil(check, { timeoutMs: 10_000, intervalMs: 5, what });
}

describe('FleetDecisions (two replicas on one database)', () => {
  it('a blacklist set on one replica refuses the actor on the other, and lifting it frees the actor everywhere', async () => {
    await using fleet = await twoReplicas();
    const { a, b } = fleet;
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
  });

  it('a playbook’s blacklist_actor and rate_limit_topic actions reach every replica through the sink', async () => {
    await using fleet = await twoReplicas();
    const { a, b } = fleet;
    const actions = createActionRegistry({ messageBus: a.bus, fleet: a.decisions });
    const ctx = { dryRun: false, signal: new AbortController().signal } as never;
    await actions.get('blacklist_actor')!({ actor: 'rogue', duration: '10m' }, ctx);
    await actions.get('rate_limit_topic')!({ topic: 'orders.*', scope: 'all', rate_per_sec: 0, duration: '5m' }, ctx);
    await waitFor(() => b.bus.isBlacklisted('rogue'), 'the playbook blacklist on b');
    await waitFor(() => b.bus.publish('shop', 'orders.new', {}) === 'rate_limited', 'the topic limit on b');
  });

  it('a decision expires on every replica (database clock)', async () => {
    await using fleet = await twoReplicas();
    const { a, b } = fleet;
    a.decisions.blacklist('rogue', { durationMs: 300 });
    await waitFor(() => b.bus.isBlacklisted('rogue'), 'the blacklist on b');
    await waitFor(() => !b.bus.isBlacklisted('rogue') && !a.bus.isBlacklisted('rogue'), 'expiry on both');
    expect(await b.decisions.active()).toEqual([]);
  });

  it('a fleet-wide mode switch reaches every replica, one aimed at a replica reaches only it, and a new replica starts in the fleet’s mode', async () => {
    await using fleet = await twoReplicas();
    const { a, b } = fleet;
    expect(a.modes).toEqual([]);
    await a.decisions.setMode('detect', { target: 'b' });
    await waitFor(() => b.decisions.mode === 'detect', 'detect on b');
    expect(a.decisions.mode).toBeUndefined();
    await b.decisions.setMode('disabled', { target: 'fleet', reason: 'emergency' });
    await waitFor(() => a.decisions.mode === 'disabled' && b.decisions.mode === 'disabled', 'the emergency disable on both');
    expect(a.modes).toEqual(['disabled']);
    expect(b.modes).toEqual(['detect', 'disabled']);
    await using c = fleet.another('c');
    await c.decisions.start();
    expect(c.modes).toEqual(['disabled']);
    expect(await a.decisions.clearMode({ target: 'fleet' })).toBe(1);
    // b goes back to the mode aimed at it; a and c to their own (undefined: no fleet mode).
    await waitFor(() => b.decisions.mode === 'detect' && a.decisions.mode === undefined && c.decisions.mode === undefined, 'the restore');
    expect(c.modes).toEqual(['disabled', undefined]);
    await expect(a.decisions.setMode('loud' as GuardMode)).rejects.toMatchObject({ code: 'INVALID_INPUT', details: { field: 'mode' } });
  });

  it('while the database is cut off a blacklist applies locally, and reaches the others once it is back', async () => {
    await using proxy = await startTcpProxy(serverPort(db.url));
    await using fleet = await twoReplicas({ aPool: pool(urlThrough(db.url, proxy.port)), aTimeouts: { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 300 } });
    const { a, b } = fleet;
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
  });
});
