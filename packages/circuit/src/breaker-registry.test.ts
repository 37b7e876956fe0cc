import { GuardBus } from '@guard/core';
import type { CircuitTarget } from '@guard/core';
import { describe, expect, it, vi } from 'vitest';
import { BreakerRegistry } from './breaker-registry.js';
import { CircuitBreaker } from './circuit-breaker.js';

describe('BreakerRegistry', () => {
  it('adds, gets, lists and creates breakers with shared defaults', async () => {
    const bus = new GuardBus();
    await using breakers = new BreakerRegistry({ defaults: { bus, metrics: false, failureThreshold: 1 } });
    const search = breakers.add(new CircuitBreaker({ name: 'search', metrics: false }));
    expect(breakers.get('search')).toBe(search);
    const payments = breakers.getOrCreate('payments');
    expect(breakers.getOrCreate('payments')).toBe(payments);
    expect(breakers.list().map((b) => b.name)).toEqual(['search', 'payments']);
    const seen = vi.fn();
    using _sub = bus.subscribe('breakerStateChange', seen);
    await expect(payments.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(seen).toHaveBeenCalledWith(expect.objectContaining({ circuit: 'payments', to: 'open' }));
    expect(() => breakers.add(new CircuitBreaker({ name: 'search', metrics: false }))).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(breakers.remove('search')).toBe(true);
    expect(breakers.get('search')).toBeUndefined();
  });

  it('is a CircuitTarget: reopen(circuit, reason) aborts probes and opens the breaker', async () => {
    vi.useFakeTimers();
    try {
      await using breakers = new BreakerRegistry({ defaults: { metrics: false, failureThreshold: 1 } });
      const target: CircuitTarget = breakers;
      const breaker = breakers.getOrCreate('c4');
      await expect(breaker.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
      await vi.advanceTimersByTimeAsync(60_000);
      let signal: AbortSignal | undefined;
      const probe = breaker.execute((s) => {
        signal = s;
        return new Promise(() => {});
      });
      expect(breaker.state).toBe('half_open');
      expect(target.reopen('c4', 'half-open orphan')).toBe(true);
      expect(signal?.aborted).toBe(true);
      await expect(probe).rejects.toMatchObject({ code: 'ABORTED' });
      expect(breaker.state).toBe('open');
      expect(target.reopen('unknown', 'x')).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('close() closes every breaker and rejects new ones', async () => {
    const breakers = new BreakerRegistry({ defaults: { metrics: false } });
    const a = breakers.getOrCreate('a');
    await breakers.close();
    await breakers.close();
    expect(a.closed).toBe(true);
    expect(breakers.list()).toEqual([]);
    expect(() => breakers.getOrCreate('b')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('supports a C4-style watchdog: half_open longer than probeTimeoutMs gets reopened through the bus contract', async () => {
    vi.useFakeTimers();
    try {
      const bus = new GuardBus();
      await using breakers = new BreakerRegistry({ defaults: { bus, metrics: false, failureThreshold: 1, probeTimeoutMs: 30_000 } });
      const target: CircuitTarget = breakers;
      const timers = new Map<string, ReturnType<typeof setTimeout>>();
      using _watch = bus.subscribe('breakerStateChange', (change) => {
        clearTimeout(timers.get(change.circuit));
        if (change.to === 'half_open') {
          timers.set(change.circuit, setTimeout(() => target.reopen(change.circuit, 'half_open_orphan'), change.probeTimeoutMs));
        }
      });
      const breaker = breakers.getOrCreate('stuck');
      await expect(breaker.execute(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
      await vi.advanceTimersByTimeAsync(60_000);
      const orphan = breaker.execute(() => new Promise(() => {})); // a probe that never settles
      const outcome = orphan.catch((e: unknown) => e);
      expect(breaker.state).toBe('half_open');
      await vi.advanceTimersByTimeAsync(29_999);
      expect(breaker.state).toBe('half_open');
      await vi.advanceTimersByTimeAsync(1);
      expect(breaker.state).toBe('open');
      expect(await outcome).toMatchObject({ code: 'ABORTED', details: { circuit: 'stuck', reason: 'half_open_orphan' } });
      expect(breaker.probesInFlight).toBe(0);
      await vi.advanceTimersByTimeAsync(60_000);
      await expect(breaker.execute(async () => 'recovered')).resolves.toBe('recovered');
      for (const timer of timers.values()) clearTimeout(timer);
    } finally {
      vi.useRealTimers();
    }
  });
});
