import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GuardError, isGuardError } from './guard-error.js';
import { linkSignal, raceAbort } from './signals.js';

describe('raceAbort', () => {
  it('settles like the promise and removes its listener', async () => {
    const controller = new AbortController();
    await expect(raceAbort(Promise.resolve(7), controller.signal)).resolves.toBe(7);
    await expect(raceAbort(Promise.reject(new Error('no')), controller.signal)).rejects.toThrow('no');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects with the reason when the signal aborts first, or already has', async () => {
    const controller = new AbortController();
    const pending = raceAbort(new Promise(() => {}), controller.signal);
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
    await expect(raceAbort(1, controller.signal)).rejects.toThrow('stop');
  });
});

describe('linkSignal', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts with a parent, with the parent\'s reason', () => {
    const parent = new AbortController();
    const other = new AbortController();
    using linked = linkSignal([parent.signal, undefined, other.signal]);
    expect(linked.signal.aborted).toBe(false);
    parent.abort(new Error('parent stopped'));
    expect(linked.signal.aborted).toBe(true);
    expect((linked.signal.reason as Error).message).toBe('parent stopped');
  });

  it('abort() aborts it alone, never a parent', () => {
    const parent = new AbortController();
    const linked = linkSignal(parent.signal);
    linked.abort('mine');
    expect(linked.signal.reason).toBe('mine');
    expect(parent.signal.aborted).toBe(false);
  });

  it('without parents follows only its own controller and deadline', () => {
    const linked = linkSignal(undefined);
    expect(linked.signal.aborted).toBe(false);
    linked.abort();
    expect((linked.signal.reason as Error).name).toBe('AbortError');
  });

  it('aborts with GuardError TIMEOUT after timeoutMs, or the given reason', async () => {
    vi.useFakeTimers();
    const linked = linkSignal(new AbortController().signal, { timeoutMs: 1_000 });
    await vi.advanceTimersByTimeAsync(999);
    expect(linked.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(isGuardError(linked.signal.reason, 'TIMEOUT')).toBe(true);
    expect((linked.signal.reason as GuardError).details).toEqual({ timeoutMs: 1_000 });

    const custom = linkSignal([], { timeoutMs: 10, timeoutReason: () => 'too slow' });
    await vi.advanceTimersByTimeAsync(10);
    expect(custom.signal.reason).toBe('too slow');
  });

  it('dispose clears the deadline: no timer is left and the signal never aborts', async () => {
    vi.useFakeTimers();
    {
      using _linked = linkSignal(undefined, { timeoutMs: 1_000 });
      expect(vi.getTimerCount()).toBe(1);
    }
    expect(vi.getTimerCount()).toBe(0);
    const linked = linkSignal(undefined, { timeoutMs: 1_000 });
    linked.abort('early');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(linked.signal.reason).toBe('early');
  });

  it('starts no timer when a parent has already aborted', () => {
    vi.useFakeTimers();
    const linked = linkSignal(AbortSignal.abort('already'), { timeoutMs: 1_000 });
    expect(linked.signal.reason).toBe('already');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps the process alive for no deadline (the timer is unref\'d)', () => {
    const linked = linkSignal(undefined, { timeoutMs: 60_000 });
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    linked.dispose();
    const refedTimers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(refedTimers).toBe(before);
  });
});
