import { afterEach, describe, expect, it, vi } from 'vitest';
import { isGuardError } from '@guard/core';
import { Bulkhead } from './bulkhead.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { timedOutCall } from './test-support.js';
import { wrap } from './wrap.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('wrap', () => {
  it('breaker outside, bulkhead inside: an open breaker rejects before taking a slot', async () => {
    await using breaker = new CircuitBreaker({ failureThreshold: 2, metrics: false });
    await using bulkhead = new Bulkhead({ maxConcurrent: 2, metrics: false });
    const policy = wrap(breaker, bulkhead);
    await expect(policy.execute(() => 1)).resolves.toBe(1);
    for (let i = 0; i < 2; i++) await expect(policy.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    const fn = vi.fn(() => 1);
    await expect(policy.execute(fn)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect(fn).not.toHaveBeenCalled();
    expect(bulkhead.running).toBe(0);
  });

  it('bulkhead outside, breaker inside: limits concurrency and counts failures', async () => {
    await using breaker = new CircuitBreaker({ failureThreshold: 3, metrics: false });
    await using bulkhead = new Bulkhead({ maxConcurrent: 5, metrics: false });
    const policy = wrap(bulkhead, breaker);
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 100 }, () =>
        policy.execute(async () => {
          peak = Math.max(peak, ++running);
          await new Promise((resolve) => setImmediate(resolve));
          running--;
        }),
      ),
    );
    expect(peak).toBe(5);
    for (let i = 0; i < 3; i++) await expect(policy.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(breaker.state).toBe('open');
  });

  it('a chain timeout aborts the signal and counts as a failure for the inner breaker', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ failureThreshold: 1, metrics: false });
    await using bulkhead = new Bulkhead({ metrics: false });
    const { error, signal } = await timedOutCall(wrap(wrap(bulkhead), breaker));
    expect(isGuardError(error, 'TIMEOUT')).toBe(true);
    expect(signal?.aborted).toBe(true);
    expect(breaker.state).toBe('open');
  });

  it('concurrent chain calls due in one millisecond share one timer and time out together', async () => {
    vi.useFakeTimers({ now: 1_000 });
    {
      await using bulkhead = new Bulkhead({ maxConcurrent: 10, metrics: false });
      const policy = wrap(bulkhead, new CircuitBreaker({ metrics: false, failureThreshold: 100 }));
      const before = vi.getTimerCount();
      const calls = Array.from({ length: 5 }, () => policy.execute(() => new Promise<never>(() => {}), { timeoutMs: 100 }).catch((e: unknown) => e));
      expect(vi.getTimerCount() - before).toBe(1);
      await vi.advanceTimersByTimeAsync(100);
      for (const error of await Promise.all(calls)) expect(isGuardError(error, 'TIMEOUT')).toBe(true);
      expect(bulkhead.running).toBe(0);
    }
  });

  it('rejects what is not a policy', () => {
    expect(() => wrap()).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => wrap({} as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
