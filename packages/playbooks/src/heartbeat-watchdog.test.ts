import { GuardBus } from '@guard/core';
import type { Logger } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HeartbeatEvent } from './heartbeat-watchdog.js';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('HeartbeatWatchdog', () => {
  it('restarts a component that missed its deadline and reports it healthy only once it heartbeats again', async () => {
    const bus = new GuardBus();
    const notices: HeartbeatEvent[] = [];
    bus.on('heartbeat', (e) => notices.push(e));
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry(), bus });
    const reasons: string[] = [];
    watchdog.register('ingest', { deadlineMs: 1_000, restart: (reason) => void reasons.push(reason) });
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(900);
      watchdog.heartbeat('ingest');
    }
    expect(reasons).toEqual([]);
    expect(watchdog.state('ingest')).toMatchObject({ state: 'healthy', restarts: 0, watched: true, deadlineMs: 1_000 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(reasons).toEqual(['heartbeat_missed']);
    expect(watchdog.state('ingest')).toMatchObject({ state: 'starting', restarts: 1, restartsInWindow: 1, consecutiveRestarts: 1, lastMissedAt: 5_500 });
    expect(watchdog.recoveries()).toEqual([]);
    await vi.advanceTimersByTimeAsync(300);
    watchdog.heartbeat('ingest');
    expect(watchdog.state('ingest')).toMatchObject({ state: 'healthy', consecutiveRestarts: 0, lastRecoveryMs: 300 });
    expect(watchdog.recoveries()).toEqual([{ component: 'ingest', reason: 'heartbeat_after_restart', missedAt: 5_500, recoveredAt: 5_800, recoveryMs: 300, restarts: 1 }]);
    expect(notices.map((n) => n.kind)).toEqual(['missed', 'restarted', 'recovered']);
  });

  it('backs off exponentially up to the cap and enters crash_loop after N restarts in the window', async () => {
    const bus = new GuardBus();
    const notices: HeartbeatEvent[] = [];
    bus.on('heartbeat', (e) => notices.push(e));
    const errors: string[] = [];
    const logger = { error: (_: unknown, msg: string) => errors.push(msg), warn() {}, info() {}, debug() {} } as unknown as Logger;
    const registry = new Registry();
    await using watchdog = new HeartbeatWatchdog({ registry, bus, logger, backoffBaseMs: 1_000, backoffMaxMs: 4_000, crashLoopRestarts: 5, crashLoopWindowMs: 60_000 });
    const restartedAt: number[] = [];
    watchdog.register('dead', { deadlineMs: 1_000, restart: () => void restartedAt.push(Date.now()) });
    await vi.advanceTimersByTimeAsync(16_999);
    // Immediate first restart, then waits of 1 s, 2 s, 4 s and 4 s (capped) after each missed deadline.
    expect(restartedAt).toEqual([1_000, 3_000, 6_000, 11_000, 16_000]);
    expect(watchdog.state('dead')).toMatchObject({ state: 'starting' });
    await vi.advanceTimersByTimeAsync(1);
    expect(watchdog.state('dead')).toMatchObject({ state: 'crash_loop', crashLoopSince: 17_000, restartsInWindow: 5, restarts: 5 });
    expect(notices.filter((n) => n.kind === 'backoff').map((n) => n.delayMs)).toEqual([1_000, 2_000, 4_000, 4_000]);
    expect(notices.at(-1)).toMatchObject({ kind: 'crash_loop', component: 'dead', restartsInWindow: 5, windowMs: 60_000 });
    expect(errors.some((m) => m.includes('crash_loop'))).toBe(true);
    expect(await registry.metrics()).toContain('guard_playbooks_component_crash_loop{component="dead"} 1');
    // Restarts stop: ten minutes later nothing more happened.
    await vi.advanceTimersByTimeAsync(600_000);
    expect(restartedAt).toHaveLength(5);
    expect(watchdog.state('dead')!.state).toBe('crash_loop');
    // A heartbeat ends the crash loop; watching resumes with a fresh history.
    watchdog.heartbeat('dead');
    expect(watchdog.state('dead')).toMatchObject({ state: 'healthy', restartsInWindow: 0 });
    expect(notices.at(-1)).toMatchObject({ kind: 'recovered', reason: 'heartbeat_after_crash_loop' });
    expect(await registry.metrics()).toContain('guard_playbooks_component_crash_loop{component="dead"} 0');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(restartedAt).toHaveLength(6);
  });

  it('resets the backoff when the restarted component heartbeats', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry(), backoffBaseMs: 5_000 });
    const restartedAt: number[] = [];
    watchdog.register('flappy', { deadlineMs: 1_000, restart: () => void restartedAt.push(Date.now()) });
    await vi.advanceTimersByTimeAsync(1_000);
    watchdog.heartbeat('flappy');
    await vi.advanceTimersByTimeAsync(1_000);
    // Healthy in between, so the second outage restarts at once, not after the 5 s backoff.
    expect(restartedAt).toEqual([1_000, 2_000]);
  });

  it('leaves crash_loop on an operator reset and watches afresh', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry(), backoffBaseMs: 100, crashLoopRestarts: 2 });
    let restarts = 0;
    const kinds: string[] = [];
    watchdog.onEvent((e) => kinds.push(e.kind));
    watchdog.register('stuck', { deadlineMs: 1_000, restart: () => void restarts++ });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(restarts).toBe(2);
    expect(watchdog.state('stuck')!.state).toBe('crash_loop');
    expect(watchdog.reset('stuck')).toMatchObject({ state: 'starting', restartsInWindow: 0, consecutiveRestarts: 0 });
    expect(kinds.at(-1)).toBe('reset');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(restarts).toBe(3);
    expect(() => watchdog.reset('nope')).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMPONENT' }));
  });

  it('marks a component failed when its restart hook throws or times out, and retries after the backoff', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry(), restartTimeoutMs: 500, backoffBaseMs: 2_000 });
    let calls = 0;
    watchdog.register('flaky', {
      deadlineMs: 1_000,
      restart: () => {
        calls++;
        if (calls === 1) throw new Error('cannot restart');
        if (calls === 2) return new Promise<void>(() => undefined);
      },
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watchdog.state('flaky')).toMatchObject({ state: 'failed', failedRestarts: 1, lastError: 'cannot restart', nextRestartAt: 3_000 });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(watchdog.state('flaky')).toMatchObject({ state: 'failed', failedRestarts: 2 });
    expect(watchdog.state('flaky')?.lastError).toContain('took longer than 500 ms');
    await vi.advanceTimersByTimeAsync(4_000);
    expect(calls).toBe(3);
    expect(watchdog.state('flaky')).toMatchObject({ state: 'starting', restarts: 1 });
    watchdog.heartbeat('flaky');
    expect(watchdog.state('flaky')).toMatchObject({ state: 'healthy', lastRecoveryMs: 6_500 });
  });

  it('counts a heartbeat sent while the restart hook runs as the recovery', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    watchdog.register('quick', {
      deadlineMs: 1_000,
      restart: () => new Promise<void>((resolve) => setTimeout(() => {
        watchdog.heartbeat('quick');
        resolve();
      }, 40)),
    });
    await vi.advanceTimersByTimeAsync(1_040);
    expect(watchdog.state('quick')).toMatchObject({ state: 'healthy', lastRecoveryMs: 40 });
    expect(watchdog.recoveries()).toHaveLength(1);
  });

  it('restarts on request (shared between concurrent callers) and for unwatched components', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    let restarts = 0;
    watchdog.register('message_bus', { restart: () => new Promise<void>((r) => setTimeout(() => r(void restarts++), 10)) });
    const both = Promise.all([watchdog.restart('message_bus', 'playbook'), watchdog.restart('message_bus')]);
    await vi.advanceTimersByTimeAsync(10);
    const [a, b] = await both;
    expect(restarts).toBe(1);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ state: 'healthy', watched: false, restarts: 1 });
    expect(watchdog.recoveries()).toEqual([expect.objectContaining({ component: 'message_bus', recoveryMs: 10 })]);
    await expect(watchdog.restart('nope')).rejects.toMatchObject({ code: 'UNKNOWN_COMPONENT' });
  });

  it('validates registrations, heartbeats and the restart policy', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    const off = watchdog.register('a', { restart: () => undefined });
    expect(() => watchdog.register('a', { restart: () => undefined })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => watchdog.register('b', { deadlineMs: 0, restart: () => undefined })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => watchdog.register('c', {} as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => watchdog.register('d', { restart: () => undefined, crashLoopRestarts: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => watchdog.heartbeat('zzz')).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMPONENT' }));
    off();
    expect(watchdog.states()).toEqual([]);
    expect(() => new HeartbeatWatchdog({ registry: new Registry(), restartTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new HeartbeatWatchdog({ registry: new Registry(), backoffBaseMs: 10_000, backoffMaxMs: 1_000 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('stops watching on close and rejects new work', async () => {
    const watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    let restarted = false;
    watchdog.register('x', { deadlineMs: 20, restart: () => void (restarted = true) });
    await watchdog.close();
    await watchdog.close();
    await vi.advanceTimersByTimeAsync(60);
    expect(restarted).toBe(false);
    expect(() => watchdog.register('y', { restart: () => undefined })).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await expect(watchdog.restart('x')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('exports restart counts and recovery times', async () => {
    const registry = new Registry();
    await using watchdog = new HeartbeatWatchdog({ registry });
    watchdog.register('w', { restart: () => undefined });
    await watchdog.restart('w');
    const text = await registry.metrics();
    expect(text).toContain('guard_playbooks_component_restarts_total{component="w",outcome="success"} 1');
    expect(text).toContain('guard_playbooks_component_recovery_seconds_count{component="w"} 1');
  });

  it('reads the restart policy from the environment', () => {
    expect(
      HeartbeatWatchdog.optionsFromEnv({
        GUARD_WATCHDOG_RESTART_TIMEOUT: '3s',
        GUARD_WATCHDOG_BACKOFF_BASE: '500ms',
        GUARD_WATCHDOG_BACKOFF_MAX: '30s',
        GUARD_WATCHDOG_CRASH_LOOP_RESTARTS: '3',
        GUARD_WATCHDOG_CRASH_LOOP_WINDOW: '2m',
      }),
    ).toEqual({ restartTimeoutMs: 3_000, backoffBaseMs: 500, backoffMaxMs: 30_000, crashLoopRestarts: 3, crashLoopWindowMs: 120_000 });
    expect(HeartbeatWatchdog.optionsFromEnv({})).toEqual({ restartTimeoutMs: 10_000, backoffBaseMs: 1_000, backoffMaxMs: 60_000, crashLoopRestarts: 5, crashLoopWindowMs: 300_000 });
    expect(() => HeartbeatWatchdog.optionsFromEnv({ GUARD_WATCHDOG_RESTART_TIMEOUT: 'soon' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
    expect(() => HeartbeatWatchdog.optionsFromEnv({ GUARD_WATCHDOG_CRASH_LOOP_RESTARTS: '1.5' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
  });
});
