import { describe, expect, it } from 'vitest';
import { isGuardError } from './guard-error.js';
import { TokenBucket } from './token-bucket.js';

function clocked(options: { ratePerSec: number; burst?: number }) {
  let now = 1_000_000;
  const bucket = new TokenBucket({ ...options, now: () => now });
  return { bucket, advance: (ms: number) => void (now += ms), setNow: (at: number) => void (now = at) };
}

describe('TokenBucket', () => {
  it('starts full at max(1, rate) and refills continuously', () => {
    const { bucket, advance } = clocked({ ratePerSec: 10 });
    expect(bucket.burst).toBe(10);
    for (let i = 0; i < 10; i++) expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    expect(bucket.msUntil()).toBe(100);
    advance(250);
    expect(bucket.tokens).toBeCloseTo(2.5);
    expect(bucket.tryTake(2)).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    advance(10_000);
    expect(bucket.tokens).toBe(10);
  });

  it('lets one call through every 1/rate s for rates below 1/s (the MessageBus bug)', () => {
    const { bucket, advance } = clocked({ ratePerSec: 0.2 });
    expect(bucket.burst).toBe(1);
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    expect(bucket.msUntil()).toBe(5_000);
    advance(4_999);
    expect(bucket.tryTake()).toBe(false);
    advance(1);
    expect(bucket.tryTake()).toBe(true);
  });

  it('counts float sums of fractional tokens as whole ones', () => {
    const { bucket, advance } = clocked({ ratePerSec: 0.1 });
    bucket.tryTake();
    for (let i = 0; i < 10; i++) advance(1_000);
    expect(bucket.msUntil()).toBe(0);
    expect(bucket.tryTake()).toBe(true);
  });

  it('a rate of 0 blocks; more than the burst never comes', () => {
    const { bucket } = clocked({ ratePerSec: 0 });
    expect(bucket.tryTake()).toBe(false);
    expect(bucket.msUntil()).toBe(Infinity);
    const { bucket: small } = clocked({ ratePerSec: 1, burst: 2 });
    expect(small.tryTake(3)).toBe(false);
    expect(small.msUntil(3)).toBe(Infinity);
    expect(small.tokens).toBe(2);
  });

  it('earns nothing twice when the clock steps back', () => {
    const { bucket, setNow } = clocked({ ratePerSec: 1 });
    bucket.tryTake();
    setNow(990_000);
    expect(bucket.tokens).toBe(0);
    setNow(1_000_000);
    expect(bucket.tokens).toBe(0);
    setNow(1_001_000);
    expect(bucket.tokens).toBe(1);
  });

  it('validates its options with INVALID_OPTION naming the field', () => {
    for (const [options, field] of [
      [{ ratePerSec: -1 }, 'ratePerSec'],
      [{ ratePerSec: Number.NaN }, 'ratePerSec'],
      [{ ratePerSec: 1, burst: -1 }, 'burst'],
    ] as const) {
      let caught: unknown;
      try {
        new TokenBucket(options);
      } catch (error) {
        caught = error;
      }
      expect(isGuardError(caught, 'INVALID_OPTION') && caught.details.field).toBe(field);
    }
  });
});
