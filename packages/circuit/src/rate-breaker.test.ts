import { afterEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { RateBreaker } from './rate-breaker.js';
import { failTimes, ok } from './test-support.js';

const fail = failTimes;

afterEach(() => {
  vi.useRealTimers();
});

describe('CircuitBreaker rate mode', () => {
  it('respects the minimum throughput, then opens on the failure ratio', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({
      metrics: false,
      mode: 'rate',
      failureRateThreshold: 0.5,
      minimumThroughput: 10,
      windowMs: 10_000,
      windowBuckets: 10,
    });
    await fail(breaker, 9);
    expect(breaker.state).toBe('closed');
    expect(breaker.toJSON().window).toMatchObject({ calls: 9, failures: 9 });
    await fail(breaker, 1);
    expect(breaker.state).toBe('open');
  });

  it('stays closed under the ratio and forgets calls that leave the window', async () => {
    vi.useFakeTimers();
    await using breaker = new CircuitBreaker({ metrics: false, mode: 'rate', failureRateThreshold: 0.5, minimumThroughput: 4 });
    await fail(breaker, 3);
    for (let i = 0; i < 4; i++) await breaker.execute(ok);
    expect(breaker.state).toBe('closed');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(breaker.toJSON().window).toMatchObject({ calls: 0, failures: 0 });
    await breaker.execute(ok);
    await fail(breaker, 2);
    expect(breaker.state).toBe('closed');
    await fail(breaker, 1);
    expect(breaker.state).toBe('open');
  });
});

describe('CircuitBreaker rate mode clock', () => {
  it('successes land in the bucket of their time: they leave the window when it slides past them', async () => {
    vi.useFakeTimers({ now: 0 });
    await using breaker = new CircuitBreaker({ metrics: false, mode: 'rate', failureRateThreshold: 0.5, minimumThroughput: 4, windowMs: 10_000, windowBuckets: 10 });
    await breaker.execute(ok); // bucket 0
    await vi.advanceTimersByTimeAsync(5_000);
    for (let i = 0; i < 3; i++) await breaker.execute(ok); // bucket 5, with no clock read of their own
    await vi.advanceTimersByTimeAsync(5_500); // bucket 10: bucket 0 left the window, bucket 5 did not
    expect(breaker.toJSON().window).toMatchObject({ calls: 3, failures: 0 });
    await vi.advanceTimersByTimeAsync(5_000); // bucket 15: bucket 5 left too
    expect(breaker.toJSON().window).toMatchObject({ calls: 0, failures: 0 });
  });

  it('close() leaves no timer behind', async () => {
    vi.useFakeTimers({ now: 0 });
    const breaker = new CircuitBreaker({ metrics: false, mode: 'rate' });
    await breaker.execute(ok);
    expect(vi.getTimerCount()).toBe(1);
    await breaker.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('rate window round-trip', () => {
  const options = { metrics: false, mode: 'rate', failureRateThreshold: 0.5, minimumThroughput: 10, windowMs: 10_000, windowBuckets: 10 } as const;

  it('toJSON() round-trips through initialState, window and buckets included', async () => {
    vi.useFakeTimers({ now: 50_000 });
    await using breaker = new CircuitBreaker(options);
    await fail(breaker, 4);
    await vi.advanceTimersByTimeAsync(3_000);
    await fail(breaker, 5);
    const saved = JSON.parse(JSON.stringify(breaker)) as ReturnType<CircuitBreaker['toJSON']>;
    expect(saved.window).toMatchObject({ calls: 9, failures: 9, bucketMs: 1_000, head: 53 });
    await using restored = new CircuitBreaker({ ...options, initialState: saved });
    expect(restored.toJSON()).toEqual(breaker.toJSON());
    await fail(restored, 1); // the tenth call of the restored window: the ratio opens it
    expect(restored.state).toBe('open');
  });

  it('restored buckets still leave the window at their own time', async () => {
    vi.useFakeTimers({ now: 50_000 });
    await using breaker = new CircuitBreaker(options);
    await fail(breaker, 4); // bucket 50
    await vi.advanceTimersByTimeAsync(3_000);
    await fail(breaker, 5); // bucket 53
    const saved = breaker.toJSON();
    await vi.advanceTimersByTimeAsync(7_500); // now bucket 60: bucket 50 left the window
    await using restored = new CircuitBreaker({ ...options, initialState: saved });
    expect(restored.toJSON().window).toMatchObject({ calls: 5, failures: 5 });
  });

  it('a window saved with another bucket size is re-bucketed by time', () => {
    vi.useFakeTimers({ now: 100_000 });
    const coarse = new RateBreaker({ failureRateThreshold: 0.5, minimumThroughput: 1, windowMs: 10_000, windowBuckets: 2 });
    coarse.state = { calls: 3, failures: 1, bucketMs: 1_000, head: 99, buckets: [[1, 0], [1, 1]] };
    expect(coarse.state).toMatchObject({ calls: 3, failures: 1, bucketMs: 5_000, head: 20, buckets: [[2, 1], [0, 0]] });
  });

  it('a bad saved window throws INVALID_OPTION naming initialState.window', () => {
    const bad = { calls: 1, failures: 0, bucketMs: 1_000, head: 1, buckets: [[-1, 0]] } as never;
    expect(() => new CircuitBreaker({ ...options, initialState: { window: bad } })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', details: { field: 'initialState.window' } }),
    );
  });

  it('a window of totals only (saved by an older version) starts empty', async () => {
    await using restored = new CircuitBreaker({ ...options, initialState: { window: { calls: 9, failures: 9 } as never } });
    expect(restored.toJSON().window).toMatchObject({ calls: 0, failures: 0 });
  });
});
