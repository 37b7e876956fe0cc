import { GuardBus } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HeartbeatEvent } from './heartbeat-watchdog.js';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('HeartbeatWatchdog', () => {
  it('keeps a beating component healthy and restarts it when a heartbeat is missed', async () => {
    vi.useFakeTimers();
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
    expect(watchdog.state('ingest')).toMatchObject({ state: 'healthy', restarts: 1, lastRecoveryMs: 0 });
    expect(notices.map((n) => n.kind)).toEqual(['missed', 'restarted']);
    // The deadline is re-armed after the restart.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(reasons).toHaveLength(2);
  });

  it('records how long recovery took from the missed deadline', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    watchdog.register('slow', { deadlineMs: 30, restart: () => new Promise((r) => setTimeout(r, 40)) });
    await vi.waitFor(() => expect(watchdog.recoveries()).toHaveLength(1), { timeout: 2_000 });
    const [recovery] = watchdog.recoveries();
    expect(recovery!.component).toBe('slow');
    expect(recovery!.recoveryMs).toBeGreaterThanOrEqual(35);
    expect(recovery!.recoveryMs).toBeLessThan(1_500);
    expect(watchdog.states()[0]).toMatchObject({ name: 'slow', lastRecoveryMs: expect.any(Number) });
    expect(watchdog.states()[0]!.restarts).toBeGreaterThanOrEqual(1);
  });

  it('marks a component failed when its restart hook throws or times out, and retries on the next deadline', async () => {
    vi.useFakeTimers();
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry(), restartTimeoutMs: 500 });
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
    expect(watchdog.state('flaky')).toMatchObject({ state: 'failed', failedRestarts: 1, lastError: 'cannot restart' });
    await vi.advanceTimersByTimeAsync(1_500);
    expect(watchdog.state('flaky')).toMatchObject({ state: 'failed', failedRestarts: 2 });
    expect(watchdog.state('flaky')?.lastError).toContain('took longer than 500 ms');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watchdog.state('flaky')).toMatchObject({ state: 'healthy', restarts: 1 });
  });

  it('restarts on request (shared between concurrent callers) and for unwatched components', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    let restarts = 0;
    watchdog.register('message_bus', { restart: () => new Promise<void>((r) => setTimeout(() => r(void restarts++), 10)) });
    const [a, b] = await Promise.all([watchdog.restart('message_bus', 'playbook'), watchdog.restart('message_bus')]);
    expect(restarts).toBe(1);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ state: 'healthy', watched: false, restarts: 1 });
    await expect(watchdog.restart('nope')).rejects.toMatchObject({ code: 'UNKNOWN_COMPONENT' });
  });

  it('validates registrations and heartbeats', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    const off = watchdog.register('a', { restart: () => undefined });
    expect(() => watchdog.register('a', { restart: () => undefined })).toThrow(expect.objectContaining({ code: 'DUPLICATE' }));
    expect(() => watchdog.register('b', { deadlineMs: 0, restart: () => undefined })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => watchdog.register('c', {} as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => watchdog.heartbeat('zzz')).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMPONENT' }));
    off();
    expect(watchdog.states()).toEqual([]);
    expect(() => new HeartbeatWatchdog({ registry: new Registry(), restartTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('stops watching on close and rejects new work', async () => {
    const watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    let restarted = false;
    watchdog.register('x', { deadlineMs: 20, restart: () => void (restarted = true) });
    await watchdog.close();
    await watchdog.close();
    await new Promise((r) => setTimeout(r, 60));
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

  it('reads the restart timeout from the environment', () => {
    expect(HeartbeatWatchdog.optionsFromEnv({ GUARD_WATCHDOG_RESTART_TIMEOUT: '3s' })).toEqual({ restartTimeoutMs: 3_000 });
    expect(HeartbeatWatchdog.optionsFromEnv({})).toEqual({ restartTimeoutMs: 10_000 });
    expect(() => HeartbeatWatchdog.optionsFromEnv({ GUARD_WATCHDOG_RESTART_TIMEOUT: 'soon' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
  });
});
