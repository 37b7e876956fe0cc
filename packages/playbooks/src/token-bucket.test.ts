import { describe, expect, it } from 'vitest';
import { burstOf, fullBucket, msUntilToken, takeToken } from './token-bucket.js';

describe('token bucket', () => {
  it('holds at least one token, so rates below 1/s pass one call per 1/rate s; 0 blocks', () => {
    expect([burstOf(0), burstOf(0.2), burstOf(1), burstOf(10)]).toEqual([0, 1, 1, 10]);
    const slow = fullBucket(0.5, 0);
    expect([takeToken(slow, 0), takeToken(slow, 1_000)]).toEqual([true, false]);
    expect(msUntilToken(slow)).toBe(1_000);
    expect(takeToken(slow, 2_000)).toBe(true);
    const blocked = fullBucket(0, 0);
    expect(takeToken(blocked, 60_000)).toBe(false);
    expect(msUntilToken(blocked)).toBe(Infinity);
  });

  it('refills at the rate up to the burst', () => {
    const b = fullBucket(10, 0);
    for (let i = 0; i < 10; i++) expect(takeToken(b, 0)).toBe(true);
    expect(takeToken(b, 0)).toBe(false);
    expect(takeToken(b, 100)).toBe(true);
    expect(takeToken(b, 100_000)).toBe(true);
    expect(b.tokens).toBe(9);
  });
});
