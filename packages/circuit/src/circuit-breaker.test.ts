import { EventEmitter } from 'node:events';
import { GuardBus, isGuardError } from '@guard/core';
import type { BreakerStateChange } from '@guard/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { boom, deferred, failTimes as fail, newRegistry, ok } from './test-support.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('CircuitBreaker (consecutive mode)', () => {
  it('opens after 5 consecutive failures and a 6th call never reaches fn', async () => {
    await using breaker = new CircuitBreaker({ name: 'c1', metrics: false });
    await fail(breaker, 4);
    expect(breaker.state).toBe('closed');
    await fail(breaker, 1);
    expect(breaker.state).toBe('open');
    const fn = vi.fn(ok);
    const error = await breaker.execute(fn).catch((e: unknown) => e);
    expect(fn).not.toHaveBeenCalled();
    expect(isGuardError(error, 'CIRCUIT_OPEN')).toBe(true);
    expect(error).toMatchObject({ name: 'CircuitOpenError', circuit: 'c1', state: 'open', isolated: false });
  });

  it('a refusal carries retryAfterMs and no captured call stack', async () => {
    vi.useFakeTimers({ now: 10_000 });
    await using breaker = new CircuitBreaker({ name: 'c1', metrics: false, failureThreshold: 1, resetTimeoutMs: 5_000 });
    await fail(breaker, 1);
    await vi.advanceTimersByTimeAsync(1_500);
    const error = (await breaker.execute(ok).catch((e: unknown) => e)) as Error & { retryAfterMs: number };
    expect(error).toMatchObject({ code: 'CIRCUIT_OPEN', retryAfterMs: 3_500, details: { circuit: 'c1', retryAfterMs: 3_500 } });
    expect(error.stack).not.toMatch(/\n\s+at /);
    expect(new Error('x').stack).toMatch(/\n\s+at /); // the global limit is restored
  });

  it('a success resets the consecutive count', async () => {
    await using breaker = new CircuitBreaker({ metrics: false });
    await fail(breaker, 4);
    await breaker.execute(ok);
    await fail(breaker, 4);
    expect(breaker.state).toBe('closed');
    expect(breaker.toJSON().consecutiveFailures).toBe(4);
  });

  it('goes half-open after the 60 s reset time and closes after 3 successful probes', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ name: 'reset', metrics: false });
    await fail(breaker, 5);
    await vi.advanceTimersByTimeAsync(59_999);
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    await vi.advanceTimersByTimeAsync(1);
    const states: string[] = [];
    breaker.onStateChange((state) => states.push(state));
    let seen: string | undefined;
    await breaker.execute(async (signal) => {
      seen = breaker.state;
      expect(signal).toBeInstanceOf(AbortSignal);
      return 1;
    });
    expect(seen).toBe('half_open');
    expect(breaker.state).toBe('half_open');
    await breaker.execute(ok);
    expect(breaker.state).toBe('half_open');
    await breaker.execute(ok);
    expect(breaker.state).toBe('closed');
    expect(states).toEqual(['half_open', 'closed']);
  });

  it('a failed probe reopens it for another reset period', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ metrics: false, resetTimeoutMs: 60_000 });
    await fail(breaker, 5);
    await vi.advanceTimersByTimeAsync(60_000);
    await breaker.execute(ok);
    await expect(breaker.execute(boom)).rejects.toThrow('boom');
    expect(breaker.state).toBe('open');
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    await vi.advanceTimersByTimeAsync(60_000);
    await expect(breaker.execute(ok)).resolves.toBe('ok');
    expect(breaker.state).toBe('half_open');
  });

  it('extra concurrent probes fail fast while the slots are taken', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ metrics: false, halfOpenMaxConcurrent: 2 });
    await fail(breaker, 5);
    await vi.advanceTimersByTimeAsync(60_000);
    const gate = deferred<string>();
    const first = breaker.execute(() => gate.promise);
    const second = breaker.execute(() => gate.promise);
    const fn = vi.fn(ok);
    await expect(breaker.execute(fn)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN', state: 'half_open' });
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.probesInFlight).toBe(2);
    gate.resolve('done');
    await expect(Promise.all([first, second])).resolves.toEqual(['done', 'done']);
    expect(breaker.probesInFlight).toBe(0);
    await breaker.execute(ok);
    expect(breaker.state).toBe('closed');
  });

  it('ignores results of calls that started before a transition', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    const slow = deferred<string>();
    const pending = breaker.execute(() => slow.promise);
    await fail(breaker, 1);
    expect(breaker.state).toBe('open');
    slow.reject(new Error('late'));
    await expect(pending).rejects.toThrow('late');
    expect(breaker.toJSON()).toMatchObject({ state: 'open', consecutiveFailures: 0 });
  });

  it('counts only the errors the predicate chooses', async () => {
    class NotFound extends Error {}
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 2, shouldCount: (e) => !(e instanceof NotFound) });
    for (let i = 0; i < 5; i++) await expect(breaker.execute(() => Promise.reject(new NotFound('nf')))).rejects.toThrow('nf');
    expect(breaker.state).toBe('closed');
    await fail(breaker, 2);
    expect(breaker.state).toBe('open');
  });

  it('passes no signal on the fast path, and a synchronous throw counts as a failure', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    let received: unknown = 'unset';
    await breaker.execute((signal) => {
      received = signal;
      return 1;
    });
    expect(received).toBeUndefined();
    await expect(
      breaker.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(breaker.state).toBe('open');
  });
});

describe('CircuitBreaker signals', () => {
  it('a per-call timeout aborts fn\'s signal, rejects with TIMEOUT and counts as a failure', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    let captured: AbortSignal | undefined;
    const pending = breaker
      .execute(
        (signal) =>
          new Promise((_resolve, reject) => {
            captured = signal;
            signal!.addEventListener('abort', () => reject(new Error('aborted by signal')));
          }),
        { timeoutMs: 20 },
      )
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(20);
    const error = await pending;
    expect(captured?.aborted).toBe(true);
    expect(isGuardError(error, 'TIMEOUT')).toBe(true);
    expect(captured?.reason).toBe(error);
    expect(breaker.state).toBe('open');
  });

  it('rejects at the timeout even when fn ignores its signal', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ metrics: false });
    const never = new Promise<never>(() => {});
    const pending = expect(breaker.execute(() => never, { timeoutMs: 10 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(10);
    await pending;
  });

  it('a deadline fires at its time, never early, and one timer serves every call due in the same millisecond', async () => {
    vi.useFakeTimers({ now: 1_000 });
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 100 });
    const never = () => new Promise<never>(() => {});
    const timersBefore = vi.getTimerCount();
    const calls = Array.from({ length: 50 }, () => breaker.execute(never, { timeoutMs: 100 }).catch((e: unknown) => e));
    expect(vi.getTimerCount() - timersBefore).toBe(1);
    let settled = 0;
    for (const call of calls) void call.then(() => settled++);
    await vi.advanceTimersByTimeAsync(99);
    expect(settled).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBe(50);
    for (const error of await Promise.all(calls)) expect(isGuardError(error, 'TIMEOUT')).toBe(true);
    expect(vi.getTimerCount()).toBe(timersBefore);
  });

  it('timers stay O(pending calls): sequential calls over many milliseconds keep at most two buckets', async () => {
    vi.useFakeTimers({ now: 1_000 });
    await using breaker = new CircuitBreaker({ metrics: false });
    let most = 0;
    for (let i = 0; i < 200; i++) {
      await breaker.execute(ok, { timeoutMs: 30_000 });
      most = Math.max(most, vi.getTimerCount());
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(most).toBeLessThanOrEqual(2);
  });

  it('a timed call that settles first leaves no live timer behind and is not failed later', async () => {
    vi.useFakeTimers({ now: 1_000 });
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    await expect(breaker.execute(ok, { timeoutMs: 50 })).resolves.toBe('ok');
    await vi.advanceTimersByTimeAsync(100);
    expect(breaker.state).toBe('closed');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('calls due in the same millisecond share one signal; it aborts with TIMEOUT at their deadline', async () => {
    vi.useFakeTimers({ now: 1_000 });
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 100 });
    const signals: (AbortSignal | undefined)[] = [];
    const pending = [1, 2].map(() => breaker.execute((signal) => (signals.push(signal), new Promise<never>(() => {})), { timeoutMs: 30 }).catch((e: unknown) => e));
    const other = breaker.execute((signal) => (signals.push(signal), new Promise<never>(() => {})), { timeoutMs: 40 }).catch((e: unknown) => e);
    expect(signals[0]).toBe(signals[1]);
    expect(signals[2]).not.toBe(signals[0]);
    await vi.advanceTimersByTimeAsync(30);
    expect(signals[0]!.aborted).toBe(true);
    expect(signals[2]!.aborted).toBe(false);
    const [first, second] = await Promise.all(pending);
    expect(first).toBe(signals[0]!.reason);
    expect(second).toMatchObject({ code: 'TIMEOUT', details: { timeoutMs: 30 } });
    await vi.advanceTimersByTimeAsync(10);
    expect(await other).toMatchObject({ code: 'TIMEOUT', details: { timeoutMs: 40 } });
  });

  it('an operation that declares no parameter gets no signal (none is created); one that does gets it', async () => {
    await using breaker = new CircuitBreaker({ metrics: false });
    const seen: unknown[] = [];
    await breaker.execute(function (this: unknown) {
      // eslint-disable-next-line prefer-rest-params
      seen.push(arguments[0]);
      return 1;
    }, { timeoutMs: 1_000 });
    await breaker.execute((signal) => seen.push(signal), { timeoutMs: 1_000 });
    expect(seen[0]).toBeUndefined();
    expect(seen[1]).toBeInstanceOf(AbortSignal);
  });

  it('a synchronous throw under a timeout rejects and counts', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    await expect(
      breaker.execute(() => {
        throw new Error('sync');
      }, { timeoutMs: 1_000 }),
    ).rejects.toThrow('sync');
    expect(breaker.state).toBe('open');
  });

  it('a caller abort aborts fn\'s signal, rejects with its reason and does not count', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    const controller = new AbortController();
    let captured: AbortSignal | undefined;
    const pending = breaker.execute(
      (signal) => {
        captured = signal;
        return new Promise(() => {});
      },
      { signal: controller.signal },
    );
    const reason = new Error('user left');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(captured).toBe(controller.signal);
    expect(breaker.state).toBe('closed');
    const aborted = AbortSignal.abort(new Error('already'));
    const fn = vi.fn(ok);
    await expect(breaker.execute(fn, { signal: aborted })).rejects.toThrow('already');
    expect(fn).not.toHaveBeenCalled();
  });

  it('with a caller signal and a timeout, the deadline aborts the call\'s own signal with TIMEOUT and counts', async () => {
    vi.useFakeTimers({ now: 1_000 });
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    const caller = new AbortController();
    let seen: AbortSignal | undefined;
    const pending = breaker
      .execute((signal) => ((seen = signal), new Promise<never>(() => {})), { signal: caller.signal, timeoutMs: 50 })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(49);
    expect(seen!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const error = await pending;
    expect(isGuardError(error, 'TIMEOUT')).toBe(true);
    expect(seen!.reason).toBe(error);
    expect(caller.signal.aborted).toBe(false);
    expect(breaker.state).toBe('open');
  });

  it('removes its listener from the caller signal after each call', async () => {
    await using breaker = new CircuitBreaker({ metrics: false });
    const controller = new AbortController();
    for (let i = 0; i < 50; i++) await breaker.execute(ok, { signal: controller.signal, timeoutMs: 1_000 });
    expect(EventEmitter.getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('CircuitBreaker control', () => {
  it('isolate() holds it open until released, then closes', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, resetTimeoutMs: 0 });
    const hold = breaker.isolate();
    const fn = vi.fn(ok);
    await expect(breaker.execute(fn)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN', isolated: true });
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.toJSON().isolated).toBe(true);
    hold();
    hold();
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(fn)).resolves.toBe('ok');
  });

  it('reset() closes an open breaker', async () => {
    await using breaker = new CircuitBreaker({ metrics: false });
    await fail(breaker, 5);
    breaker.reset();
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(ok)).resolves.toBe('ok');
  });

  it('reopen() aborts in-flight probes and opens the circuit', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ name: 'orphan', metrics: false });
    await fail(breaker, 5);
    await vi.advanceTimersByTimeAsync(60_000);
    let probeSignal: AbortSignal | undefined;
    const probe = breaker.execute((signal) => {
      probeSignal = signal;
      return new Promise<never>(() => {});
    });
    expect(breaker.state).toBe('half_open');
    breaker.reopen('probe exceeded 30000 ms');
    expect(breaker.state).toBe('open');
    expect(probeSignal?.aborted).toBe(true);
    expect(probeSignal?.reason).toMatchObject({ code: 'ABORTED', details: { circuit: 'orphan', reason: 'probe exceeded 30000 ms' } });
    await expect(probe).rejects.toMatchObject({ code: 'ABORTED' });
    expect(breaker.probesInFlight).toBe(0);
  });

  it('a half-open probe that outlives probeTimeoutMs fails with TIMEOUT and reopens the circuit', async () => {
    vi.useFakeTimers({ now: 0 });
    await using breaker = new CircuitBreaker({ name: 'stuck', metrics: false, failureThreshold: 1, resetTimeoutMs: 1_000, probeTimeoutMs: 500 });
    const states: string[] = [];
    using _sub = breaker.onStateChange((state) => states.push(state));
    await fail(breaker, 1);
    await vi.advanceTimersByTimeAsync(1_000);
    let probeSignal: AbortSignal | undefined;
    const probe = breaker
      .execute((signal) => {
        probeSignal = signal;
        return new Promise<never>(() => {}); // ignores its signal: only the breaker's timer can end it
      })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(499);
    expect(breaker.state).toBe('half_open');
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe('open');
    expect(await probe).toMatchObject({ code: 'TIMEOUT', details: { circuit: 'stuck', probeTimeoutMs: 500 } });
    expect(probeSignal?.aborted).toBe(true);
    expect(breaker.probesInFlight).toBe(0);
    expect(states).toEqual(['open', 'half_open', 'open']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a probe that settles in time clears its probe timer', async () => {
    vi.useFakeTimers({ now: 0 });
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1, resetTimeoutMs: 0, probeTimeoutMs: 500, halfOpenSuccesses: 2 });
    await fail(breaker, 1);
    await breaker.execute(ok);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(breaker.state).toBe('half_open');
  });

  it('emits every change to subscribers and the GuardBus with probeTimeoutMs', async () => {
    const bus = new GuardBus();
    const events: BreakerStateChange[] = [];
    using _sub = bus.subscribe('breakerStateChange', (change) => events.push(change));
    await using breaker = new CircuitBreaker({ name: 'bus', bus, metrics: false, failureThreshold: 1, resetTimeoutMs: 0, probeTimeoutMs: 5_000 });
    const seen: BreakerStateChange[] = [];
    const sub = breaker.onStateChange((_state, change) => seen.push(change));
    await fail(breaker, 1);
    await breaker.execute(ok);
    sub();
    sub();
    expect(breaker.listenerCount).toBe(0);
    await expect(breaker.execute(boom)).rejects.toThrow('boom');
    expect(seen.map((c) => `${c.from}->${c.to}`)).toEqual(['closed->open', 'open->half_open']);
    expect(events.map((c) => `${c.from}->${c.to}`)).toEqual(['closed->open', 'open->half_open', 'half_open->open']);
    expect(events[0]).toMatchObject({ circuit: 'bus', probeTimeoutMs: 5_000 });
    expect(typeof events[0]!.at).toBe('number');
  });

  it('a throwing listener does not break the breaker', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1 });
    using _sub = breaker.onStateChange(() => {
      throw new Error('listener');
    });
    await fail(breaker, 1);
    expect(breaker.state).toBe('open');
  });

  it('toJSON() round-trips through initialState', async () => {
    vi.useFakeTimers({ now: 100_000 });
    const opened = Date.now() - 1_000;
    await using breaker = new CircuitBreaker({ metrics: false, initialState: { state: 'open', openedAt: opened } });
    expect(breaker.toJSON()).toMatchObject({ state: 'open', openedAt: opened, mode: 'consecutive' });
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    const copy = JSON.parse(JSON.stringify(breaker)) as ReturnType<CircuitBreaker['toJSON']>;
    await using restored = new CircuitBreaker({ metrics: false, initialState: copy });
    expect(restored.state).toBe('open');
    await using halfOpen = new CircuitBreaker({ metrics: false, initialState: { state: 'half_open' } });
    await expect(halfOpen.execute(ok)).resolves.toBe('ok');
    expect(halfOpen.state).toBe('half_open');
  });

  it('rejects calls with CLOSED after close(), and close is idempotent', async () => {
    const breaker = new CircuitBreaker({ metrics: false });
    await breaker.close();
    await breaker.close();
    expect(breaker.closed).toBe(true);
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it.each([
    ['failureThreshold', { failureThreshold: -1 }],
    ['failureThreshold', { failureThreshold: Number.NaN }],
    ['failureThreshold', { failureThreshold: 1.5 }],
    ['resetTimeoutMs', { resetTimeoutMs: -5 }],
    ['halfOpenSuccesses', { halfOpenSuccesses: 0 }],
    ['halfOpenMaxConcurrent', { halfOpenMaxConcurrent: Number.NaN }],
    ['failureRateThreshold', { failureRateThreshold: 1.5 }],
    ['minimumThroughput', { minimumThroughput: 0 }],
    ['probeTimeoutMs', { probeTimeoutMs: -1 }],
    ['mode', { mode: 'sometimes' as never }],
    ['name', { name: '' }],
    ['initialState.state', { initialState: { state: 'broken' as never } }],
  ])('bad option %s throws INVALID_OPTION at construction', (field, options) => {
    let error: unknown;
    try {
      new CircuitBreaker({ metrics: false, ...options });
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe(field);
  });

  it('a bad per-call timeout is rejected with INVALID_OPTION', async () => {
    await using breaker = new CircuitBreaker({ metrics: false });
    await expect(breaker.execute(ok, { timeoutMs: Number.NaN })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });
});

describe('CircuitBreaker metrics', () => {
  it('reports state, calls by outcome and transitions at scrape time', async () => {
    const registry = newRegistry();
    await using breaker = new CircuitBreaker({ name: 'm1', registry, failureThreshold: 2 });
    await breaker.execute(ok);
    await fail(breaker, 2);
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    const text = await registry.metrics();
    expect(text).toContain('guard_circuit_state{circuit="m1"} 2');
    expect(text).toContain('guard_circuit_calls_total{circuit="m1",outcome="success"} 1');
    expect(text).toContain('guard_circuit_calls_total{circuit="m1",outcome="failure"} 2');
    expect(text).toContain('guard_circuit_calls_total{circuit="m1",outcome="rejected"} 1');
    expect(text).toContain('guard_circuit_transitions_total{circuit="m1",state="open"} 1');
    await breaker.execute(ok).catch(() => {});
    const again = await registry.metrics();
    expect(again).toContain('guard_circuit_calls_total{circuit="m1",outcome="rejected"} 2');
    expect(again).toContain('guard_circuit_calls_total{circuit="m1",outcome="success"} 1');
  });

  it('two breakers share the metrics of one registry, and a closed breaker leaves the state gauge', async () => {
    const registry = newRegistry();
    const a = new CircuitBreaker({ name: 'a', registry });
    await using _b = new CircuitBreaker({ name: 'b', registry, metricsPrefix: 'guard_circuit' });
    await a.execute(ok);
    await a.close();
    const text = await registry.metrics();
    expect(text).toContain('guard_circuit_calls_total{circuit="a",outcome="success"} 1');
    expect(text).toContain('guard_circuit_state{circuit="b"} 0');
    expect(text).not.toContain('guard_circuit_state{circuit="a"}');
  });
});

describe('CircuitBreaker metrics after registry.clear()', () => {
  it('registers its metrics again', async () => {
    const registry = newRegistry();
    await using first = new CircuitBreaker({ name: 'before', registry });
    registry.clear();
    await using second = new CircuitBreaker({ name: 'after', registry });
    await second.execute(ok);
    await first.execute(ok);
    const text = await registry.metrics();
    expect(text).toContain('guard_circuit_calls_total{circuit="after",outcome="success"} 1');
    expect(text).toContain('guard_circuit_state{circuit="after"} 0');
  });
});

