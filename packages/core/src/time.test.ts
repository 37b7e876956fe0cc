import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GuardError, isGuardError } from './guard-error.js';
import { sleep, waitUntil } from './time.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('sleep', () => {
  it('resolves after ms of (fake) time', async () => {
    let done = false;
    void sleep(500).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(499);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('rejects with the signal\'s reason and clears its timer when the signal aborts, or already had', async () => {
    const controller = new AbortController();
    const pending = sleep(10_000, { signal: controller.signal });
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
    expect(vi.getTimerCount()).toBe(0);
    await expect(sleep(1, { signal: controller.signal })).rejects.toThrow('stop');
  });

  it('removes its abort listener once the time is up', async () => {
    const controller = new AbortController();
    const pending = sleep(10, { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10);
    await pending;
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('waitUntil', () => {
  it('checks at once, then every intervalMs until the predicate holds', async () => {
    let checks = 0;
    let ready = false;
    const waiting = waitUntil(() => (checks++, ready), { intervalMs: 100, timeoutMs: 10_000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(checks).toBe(1);
    await vi.advanceTimersByTimeAsync(300);
    expect(checks).toBe(4);
    ready = true;
    await vi.advanceTimersByTimeAsync(100);
    await expect(waiting).resolves.toBeUndefined();
    expect(checks).toBe(5);
  });

  it('accepts an async predicate', async () => {
    const waiting = waitUntil(async () => Promise.resolve(Date.now() >= 50_000), { timeoutMs: 60_000, intervalMs: 1_000 });
    vi.setSystemTime(50_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(waiting).resolves.toBeUndefined();
  });

  it('rejects with GuardError TIMEOUT naming what it waited for', async () => {
    const waiting = waitUntil(() => false, { timeoutMs: 1_000, intervalMs: 300, what: 'the pool to drain' });
    const settled = expect(waiting).rejects.toSatisfy((error) => isGuardError(error, 'TIMEOUT'));
    await vi.advanceTimersByTimeAsync(1_000);
    await settled;
    const error = (await waiting.catch((e: unknown) => e)) as GuardError;
    expect(error.message).toBe('the pool to drain did not hold within 1000 ms');
    expect(error.details).toEqual({ what: 'the pool to drain', timeoutMs: 1_000 });
  });

  it('stops when the signal aborts, and propagates a throwing predicate', async () => {
    const controller = new AbortController();
    const waiting = waitUntil(() => false, { signal: controller.signal });
    controller.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
    await expect(
      waitUntil(() => {
        throw new Error('bad predicate');
      }),
    ).rejects.toThrow('bad predicate');
  });
});
