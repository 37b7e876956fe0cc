import { describe, expect, it } from 'vitest';
import { fitLine } from './regression.js';

describe('fitLine', () => {
  it('recovers slope and intercept of an exact line with r2 = 1', () => {
    const xs = [0, 1, 2, 3, 4];
    const fit = fitLine(xs, xs.map((x) => 100 + 5 * x));
    expect(fit.slope).toBeCloseTo(5, 10);
    expect(fit.intercept).toBeCloseTo(100, 10);
    expect(fit.r2).toBeCloseTo(1, 10);
    expect(fit.n).toBe(5);
  });

  it('keeps precision with epoch-sized x values', () => {
    const t0 = Date.UTC(2026, 0, 1);
    const xs = [0, 60_000, 120_000, 180_000].map((d) => t0 + d);
    const fit = fitLine(xs, xs.map((x) => 3 + (x - t0) * 2e-6));
    expect(fit.slope).toBeCloseTo(2e-6, 12);
    expect(fit.intercept + fit.slope * t0).toBeCloseTo(3, 6);
  });

  it('gives a low r2 for a single spike and a step', () => {
    const xs = Array.from({ length: 11 }, (_, i) => i);
    expect(fitLine(xs, xs.map((x) => (x === 10 ? 300 : 200))).r2).toBeLessThan(0.4);
    expect(fitLine(xs, xs.map((x) => (x >= 5 ? 300 : 200))).r2).toBeLessThan(0.8);
  });

  it('handles degenerate input', () => {
    expect(fitLine([], [])).toEqual({ slope: 0, intercept: 0, r2: 0, n: 0 });
    expect(fitLine([1], [7])).toEqual({ slope: 0, intercept: 7, r2: 0, n: 1 });
    expect(fitLine([2, 2, 2], [1, 2, 3]).slope).toBe(0);
    const flat = fitLine([0, 1, 2], [5, 5, 5]);
    expect(flat.slope).toBe(0);
    expect(flat.r2).toBe(1);
  });

  it('fits only the first `length` points of preallocated arrays', () => {
    const xs = new Float64Array([0, 1, 2, 99]);
    const ys = new Float64Array([0, 2, 4, -1000]);
    expect(fitLine(xs, ys, 3).slope).toBeCloseTo(2, 10);
  });
});
