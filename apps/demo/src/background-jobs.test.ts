import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateLimiter } from '@guard/playbooks';
import { BackgroundJobs } from './background-jobs.js';

describe('BackgroundJobs', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at its base rate, and `throttle non_critical` (a limiter limit on its key) halves the measured rate', async () => {
    vi.useFakeTimers();
    const limiter = new RateLimiter();
    await using jobs = new BackgroundJobs({ limiter, ratePerSec: 20, rateWindowMs: 3_000 });
    jobs.start();
    await vi.advanceTimersByTimeAsync(3_000);
    expect(jobs.rate()).toBeCloseTo(20, 0);

    limiter.setLimit('non_critical', 10, { durationMs: 60_000 }); // what the CPU playbook's throttle step sets
    await vi.advanceTimersByTimeAsync(6_000);
    expect(jobs.rate()).toBeGreaterThanOrEqual(9);
    expect(jobs.rate()).toBeLessThanOrEqual(11);
    expect(jobs.stats()).toMatchObject({ throttled: true, baseRatePerSec: 20 });
    expect(jobs.stats().deferred).toBeGreaterThan(50);

    limiter.clear('non_critical');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(jobs.rate()).toBeCloseTo(20, 0);
  });

  it('refuses a bad rate and stops on close (idempotent)', async () => {
    expect(() => new BackgroundJobs({ limiter: new RateLimiter(), ratePerSec: 0 })).toThrow(/ratePerSec/);
    vi.useFakeTimers();
    const jobs = new BackgroundJobs({ limiter: new RateLimiter() });
    jobs.start();
    await jobs.close();
    await jobs.close();
    const done = jobs.stats().completed;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(jobs.stats().completed).toBe(done);
  });
});
