import { describe, expect, it } from 'vitest';
import { SlidingWindow } from './sliding-window.js';

describe('SlidingWindow', () => {
  it('counts each event for exactly windowMs', () => {
    const w = new SlidingWindow(1_000);
    w.add(0);
    w.add(500);
    expect(w.count(999)).toBe(2);
    expect(w.count(1_000)).toBe(1);
    expect(w.count(1_500)).toBe(0);
    expect(w.newest()).toBeUndefined();
  });

  it('stays exact under a flood and keeps its memory bounded by the cap', () => {
    const w = new SlidingWindow(60_000, 100);
    expect(w.resolutionMs).toBe(600);
    // 1 million events over two minutes: the count is the last minute's, not everything since the start.
    for (let i = 0; i < 1_000_000; i++) w.add(i * 0.12);
    const now = 999_999 * 0.12;
    const expected = 60_000 / 0.12;
    expect(Math.abs(w.count(now) - expected) / expected).toBeLessThan(0.011);
    w.clear();
    expect(w.count(now)).toBe(0);
  });

  it('adds several events at once', () => {
    const w = new SlidingWindow(10_000);
    w.add(1, 250);
    w.add(2);
    expect(w.count(5)).toBe(251);
    expect(w.newest()).toBe(2);
  });
});
