import { EventEmitter } from 'node:events';
import { isGuardError } from '@guard/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Bulkhead } from './bulkhead.js';
import { deferred, newRegistry, timedOutCall } from './test-support.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('Bulkhead', () => {
  it('never exceeds its limit under 1,000 concurrent calls, and runs them all', async () => {
    await using bulkhead = new Bulkhead({ maxConcurrent: 50, maxQueued: 1000, metrics: false });
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        bulkhead.execute(async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setImmediate(resolve));
          running--;
          return i;
        }),
      ),
    );
    expect(peak).toBe(50);
    expect(results).toHaveLength(1000);
    expect(results[999]).toBe(999);
    expect(bulkhead.running).toBe(0);
    expect(bulkhead.queued).toBe(0);
  });

  it('rejects with BULKHEAD_REJECTED when the queue is full', async () => {
    await using bulkhead = new Bulkhead({ name: 'tiny', maxConcurrent: 1, maxQueued: 1, metrics: false });
    const gate = deferred();
    const first = bulkhead.execute(() => gate.promise);
    const second = bulkhead.execute(() => 'second');
    const error = await bulkhead.execute(() => 'third').catch((e: unknown) => e);
    expect(isGuardError(error, 'BULKHEAD_REJECTED')).toBe(true);
    expect(error).toMatchObject({ name: 'BulkheadRejectedError', bulkhead: 'tiny', reason: 'queue_full' });
    expect(bulkhead.queued).toBe(1);
    gate.resolve();
    await first;
    await expect(second).resolves.toBe('second');
  });

  it('a queued call times out after queueTimeoutMs', async () => {
    vi.useFakeTimers();
    await using bulkhead = new Bulkhead({ maxConcurrent: 1, queueTimeoutMs: 20, metrics: false });
    const gate = deferred();
    const first = bulkhead.execute(() => gate.promise);
    const late = expect(bulkhead.execute(() => 'late')).rejects.toMatchObject({ code: 'BULKHEAD_REJECTED', reason: 'queue_timeout' });
    await vi.advanceTimersByTimeAsync(19);
    expect(bulkhead.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await late;
    expect(bulkhead.queued).toBe(0);
    gate.resolve();
    await first;
    await expect(bulkhead.execute(() => 'next')).resolves.toBe('next');
  });

  it("a caller's abort removes its queued call, and the slot goes to the next waiter", async () => {
    await using bulkhead = new Bulkhead({ maxConcurrent: 1, metrics: false });
    const gate = deferred();
    const first = bulkhead.execute(() => gate.promise);
    const controller = new AbortController();
    let ran = false;
    const aborted = bulkhead.execute(
      () => {
        ran = true;
      },
      { signal: controller.signal },
    );
    const third = bulkhead.execute(() => 'third');
    expect(bulkhead.queued).toBe(2);
    controller.abort(new Error('gone'));
    await expect(aborted).rejects.toThrow('gone');
    expect(bulkhead.queued).toBe(1);
    gate.resolve();
    await first;
    await expect(third).resolves.toBe('third');
    expect(ran).toBe(false);
    expect(EventEmitter.getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('a per-call timeout aborts the signal and rejects with TIMEOUT', async () => {
    vi.useFakeTimers();
    await using bulkhead = new Bulkhead({ maxConcurrent: 1, metrics: false });
    const { error, signal } = await timedOutCall(bulkhead);
    expect(isGuardError(error, 'TIMEOUT')).toBe(true);
    expect(signal?.aborted).toBe(true);
  });

  it('releases the slot when fn throws', async () => {
    await using bulkhead = new Bulkhead({ maxConcurrent: 1, metrics: false });
    await expect(
      bulkhead.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(bulkhead.running).toBe(0);
    await expect(bulkhead.execute(() => 1)).resolves.toBe(1);
  });

  it('close() rejects queued calls with CLOSED and refuses new ones', async () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, metrics: false });
    const gate = deferred();
    const first = bulkhead.execute(() => gate.promise);
    const queued = bulkhead.execute(() => 'queued');
    await bulkhead.close();
    await bulkhead.close();
    await expect(queued).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(bulkhead.execute(() => 1)).rejects.toMatchObject({ code: 'CLOSED' });
    gate.resolve();
    await first;
    expect(bulkhead.running).toBe(0);
  });

  it('reports running and queued gauges', async () => {
    const registry = newRegistry();
    await using bulkhead = new Bulkhead({ name: 'bh', maxConcurrent: 1, registry });
    const gate = deferred();
    const first = bulkhead.execute(() => gate.promise);
    const second = bulkhead.execute(() => 2);
    const text = await registry.metrics();
    expect(text).toContain('guard_circuit_bulkhead_running{bulkhead="bh"} 1');
    expect(text).toContain('guard_circuit_bulkhead_queued{bulkhead="bh"} 1');
    gate.resolve();
    await Promise.all([first, second]);
  });

  it.each([
    ['maxConcurrent', { maxConcurrent: 0 }],
    ['maxConcurrent', { maxConcurrent: Number.NaN }],
    ['maxQueued', { maxQueued: -1 }],
    ['queueTimeoutMs', { queueTimeoutMs: -10 }],
  ])('bad option %s throws INVALID_OPTION', (field, options) => {
    expect(() => new Bulkhead({ metrics: false, ...options })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', details: expect.objectContaining({ field }) }));
  });
});
