import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Registry } from 'prom-client';
import { GuardBus } from '@guard/core';
import { pgTestPools } from '@guard/core/testing';
import type { PgTestPools } from '@guard/core/testing';
import { createLocalRestartGate, PostgresRestartLease } from './fleet-restart-lease.js';
import type { RestartGate } from './fleet-restart-lease.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import { createManualClock, createSyntheticSampler, linearRssMb } from './testing.js';

// A database of this file's own on the local Postgres (or GUARD_TEST_PG_URL); its pools are ended and it is dropped at the end.
let db: PgTestPools<pg.Pool>;
const pool = (connectionString?: string): pg.Pool => db.pool(connectionString);
/** A lease table of the test's own, so tests share no rows. */
function table(): string {
  return `fleet_restarts_${randomBytes(3).toString('hex')}`;
}

describe('PostgresRestartLease (real Postgres)', () => {
  beforeAll(async () => {
    db = await pgTestPools('memory_fleet_lease', { Pool: pg.Pool, max: 2 });
  });
  afterAll(() => db?.close());

  it('three replicas asking at the same moment: one slot is granted, the others wait and are told who holds it', async () => {
    const t = table();
    const leases = ['a', 'b', 'c'].map((holder) => new PostgresRestartLease({ pool: pool(), table: t, holder }));
    const answers = await Promise.all(leases.map((l) => l.acquire({ reason: 'predicted_breach', force: false })));
    const granted = answers.filter((a) => a.granted);
    expect(granted).toHaveLength(1);
    const winner = leases[answers.findIndex((a) => a.granted)]!.holder;
    for (const a of answers.filter((x) => !x.granted)) {
      expect(a).toMatchObject({ granted: false, blockedBy: 'max_unavailable', holders: [winner] });
      if (!a.granted) expect(a.retryAfterMs).toBeGreaterThan(100_000);
    }
    // The winner is back up: its slot frees, and the next replica gets one.
    expect(await leases.find((l) => l.holder === winner)!.releaseOwn()).toBe(1);
    const next = leases.find((l) => l.holder !== winner)!;
    expect(await next.acquire({ reason: 'predicted_breach', force: false })).toMatchObject({ granted: true });
    // Asking again while holding the slot keeps the same slot.
    const again = await next.acquire({ reason: 'predicted_breach', force: false });
    expect(again).toMatchObject({ granted: true });
    expect((await next.holders()).map((h) => h.holder)).toEqual([next.holder]);
    await Promise.all(leases.map((l) => l.close()));
  });

  it('a slot whose holder crashed frees itself at its deadline', async () => {
    const t = table();
    const crashed = new PostgresRestartLease({ pool: pool(), table: t, holder: 'crashed', leaseMs: 200 });
    const waiting = new PostgresRestartLease({ pool: pool(), table: t, holder: 'waiting', leaseMs: 200 });
    expect(await crashed.acquire({ reason: 'rss_threshold', force: false })).toMatchObject({ granted: true });
    const refused = await waiting.acquire({ reason: 'rss_threshold', force: false });
    expect(refused).toMatchObject({ granted: false, blockedBy: 'max_unavailable' });
    // Never released: the deadline alone frees the fleet.
    await expect.poll(async () => (await waiting.acquire({ reason: 'rss_threshold', force: false })).granted, { timeout: 5_000, interval: 50 }).toBe(true);
  });

  it('caps restarts per window fleet-wide, takes a percentage of the fleet, and lets a forced restart through (recorded)', async () => {
    const t = table();
    const gate = (holder: string) => new PostgresRestartLease({ pool: pool(), table: t, holder, maxUnavailable: '50%', fleetSize: () => 4, maxPerWindow: 3, windowMs: 60_000 });
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(gate) as [PostgresRestartLease, PostgresRestartLease, PostgresRestartLease, PostgresRestartLease];
    expect(await a.acquire({ reason: 'predicted_breach', force: false })).toMatchObject({ granted: true });
    expect(await b.acquire({ reason: 'predicted_breach', force: false })).toMatchObject({ granted: true });
    // 50 % of 4 replicas: the third waits.
    expect(await c.acquire({ reason: 'predicted_breach', force: false })).toMatchObject({ granted: false, blockedBy: 'max_unavailable', holders: ['a', 'b'] });
    await a.releaseOwn();
    await b.releaseOwn();
    expect(await c.acquire({ reason: 'predicted_breach', force: false })).toMatchObject({ granted: true });
    await c.releaseOwn();
    // Three restarts in the window already.
    const windowed = await d.acquire({ reason: 'predicted_breach', force: false });
    expect(windowed).toMatchObject({ granted: false, blockedBy: 'window' });
    if (!windowed.granted) expect(windowed.retryAfterMs).toBeGreaterThan(50_000);
    expect(await d.acquire({ reason: 'rss_threshold', force: true })).toMatchObject({ granted: true, forced: true });
    expect((await d.holders())[0]).toMatchObject({ holder: 'd', forced: true });
    expect(() => new PostgresRestartLease({ pool: pool(), table: t, maxUnavailable: '50%' })).toThrow(/fleetSize/);
    expect(() => new PostgresRestartLease({ pool: pool(), table: t, maxUnavailable: '0%', fleetSize: () => 3 })).toThrow(/maxUnavailable/);
  });

  it('grants on this replica’s own budget (degraded) while the database is unreachable, without hanging', async () => {
    const gate = new PostgresRestartLease({ pool: pool('postgres://postgres@127.0.0.1:1/none'), table: table(), holder: 'x', timeouts: { connectTimeoutMs: 300, statementTimeoutMs: 300, queryTimeoutMs: 300 } });
    expect(await gate.acquire({ reason: 'predicted_breach', force: false })).toEqual({ granted: true, degraded: true });
    await gate.close();
    await gate.close();
    await expect(gate.acquire({ reason: 'manual', force: true })).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('MemoryGuardrail with a fleet restart gate', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  async function leakingFleet(gate: (holder: string) => RestartGate, forceRestartRatio?: number, autoRestart = false, bus?: GuardBus) {
    const clock = createManualClock();
    const terminated: string[] = [];
    const guardrails = ['a', 'b', 'c'].map(
      (name) =>
        new MemoryGuardrail({
          name,
          registry: new Registry(),
          now: clock,
          // The same leak on every replica: 20 MB/min towards 700 MB, critical (predicted breach) within minutes.
          sampler: createSyntheticSampler(clock, { rssMb: linearRssMb(500, 20) }),
          autoStart: false,
          autoRestart,
          ...(bus ? { bus } : {}),
          baselineSamples: 1,
          minLeakSamples: 3,
          restartGate: gate(name),
          terminate: () => terminated.push(name),
          ...(forceRestartRatio === undefined ? {} : { forceRestartRatio }),
        }),
    );
    return { clock, guardrails, terminated };
  }

  it('three replicas leaking at once restart one at a time; the others wait, say so in the report, and go when the slot frees', async () => {
    vi.useFakeTimers();
    const shared = createLocalRestartGate({ leaseMs: 120_000 });
    const { clock, guardrails, terminated } = await leakingFleet(() => shared);
    const decisions = [];
    for (let minute = 0; minute < 6; minute++) {
      clock.advance(60_000);
      for (const g of guardrails) g.check();
    }
    for (const g of guardrails) decisions.push(await g.requestRestart('predicted_breach'));
    await vi.advanceTimersByTimeAsync(0);
    expect(decisions.map((d) => d.restarted)).toEqual([true, false, false]);
    expect(decisions[1]).toMatchObject({ skipped: 'fleet_budget', holders: [expect.any(String)] });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(terminated).toEqual(['a']);
    expect(guardrails[1]!.report().restart.fleetWait).toMatchObject({ reason: 'predicted_breach', blockedBy: 'max_unavailable' });
    // a is back: its slot frees, b goes next, c still waits.
    shared.releaseOwn();
    expect(await guardrails[1]!.requestRestart('predicted_breach')).toMatchObject({ restarted: true });
    expect(await guardrails[2]!.requestRestart('predicted_breach')).toMatchObject({ restarted: false, skipped: 'fleet_budget' });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(terminated).toEqual(['a', 'b']);
    expect(guardrails[1]!.report().restart.fleetWait).toBeNull();
    for (const g of guardrails) await g.close();
  });

  it('auto-restart: each check retries a waiting restart, so the replicas restart one after another on their own', async () => {
    vi.useFakeTimers();
    const shared = createLocalRestartGate({ leaseMs: 120_000 });
    const bus = new GuardBus();
    const waits: string[] = [];
    bus.subscribe('memoryRestart', (n) => {
      if (n.skipped === 'fleet_budget') waits.push(n.name);
    });
    const { clock, guardrails, terminated } = await leakingFleet(() => shared, Infinity, true, bus);
    for (let minute = 0; minute < 8; minute++) {
      clock.advance(60_000);
      for (const g of guardrails) g.check();
      await vi.advanceTimersByTimeAsync(1_000);
    }
    expect(terminated).toEqual(['a']);
    expect(guardrails[2]!.report().restart.fleetWait).toMatchObject({ blockedBy: 'max_unavailable', holders: [expect.any(String)] });
    // Said once per wait (immune log, log), not at each of the 8 checks.
    expect(waits.sort()).toEqual(['b', 'c']);
    shared.releaseOwn();
    clock.advance(60_000);
    for (const g of guardrails.slice(1)) g.check();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(terminated).toEqual(['a', 'b']);
    for (const g of guardrails) await g.close();
  });

  it('without the gate all three restart together (the failure this prevents)', async () => {
    vi.useFakeTimers();
    const { clock, guardrails, terminated } = await leakingFleet(() => ({ acquire: async () => ({ granted: true }), release: async () => {} }));
    for (let minute = 0; minute < 6; minute++) {
      clock.advance(60_000);
      for (const g of guardrails) g.check();
    }
    for (const g of guardrails) await g.requestRestart('predicted_breach');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(terminated).toEqual(['a', 'b', 'c']);
    for (const g of guardrails) await g.close();
  });

  it('RSS past the hard margin restarts over the budget; a manual restart never waits', async () => {
    vi.useFakeTimers();
    const shared = createLocalRestartGate();
    const { clock, guardrails, terminated } = await leakingFleet(() => shared, 1.2);
    for (let minute = 0; minute < 15; minute++) {
      clock.advance(60_000);
      for (const g of guardrails) g.check();
    }
    // 500 + 20 x 15 = 800 MB: over 700 but under 840 (1.2 x 700): the gate decides.
    expect(await guardrails[0]!.requestRestart('rss_threshold')).toMatchObject({ restarted: true });
    expect(await guardrails[1]!.requestRestart('rss_threshold')).toMatchObject({ restarted: false, skipped: 'fleet_budget' });
    clock.advance(120_000);
    for (const g of guardrails.slice(1)) g.check();
    // Now 860 MB >= 840 MB: forced.
    expect(await guardrails[1]!.requestRestart('rss_threshold')).toMatchObject({ restarted: true });
    expect(await guardrails[2]!.requestRestart('manual')).toMatchObject({ restarted: true });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(terminated).toEqual(['a', 'b', 'c']);
    for (const g of guardrails) await g.close();
  });
});
