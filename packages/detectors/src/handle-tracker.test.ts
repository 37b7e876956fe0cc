import { GuardBus } from '@guard/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DetectorChain } from './detector-chain.js';
import { HandleTracker } from './handle-tracker.js';
import { recordingScheduler } from './test-support.js';

describe('HandleTracker (C7) over process.getActiveResourcesInfo()', () => {
  it('does not flag a stable process', () => {
    const chain = new DetectorChain({ scanIntervalMs: 0, bus: new GuardBus(), registry: new Registry() });
    chain.add(new HandleTracker({ windowMs: 60_000, growthThreshold: 50 }));
    const now = Date.now();
    expect(chain.scan(now)).toEqual([]);
    expect(chain.scan(now + 1_000)).toEqual([]);
  });

  it('reports growth by type over the window, report only, even in full mode', () => {
    const scheduler = recordingScheduler();
    const chain = new DetectorChain({ mode: 'full', scanIntervalMs: 0, bus: new GuardBus(), registry: new Registry(), scheduler });
    const tracker = chain.add(new HandleTracker({ windowMs: 60_000, growthThreshold: 50 }));
    const now = Date.now();
    chain.scan(now);
    const timers: NodeJS.Timeout[] = [];
    try {
      for (let i = 0; i < 80; i++) timers.push(setInterval(() => {}, 60_000));
      expect(tracker.counts().Timeout).toBeGreaterThanOrEqual(80);
      const [detection] = chain.scan(now + 1_000);
      expect(detection).toMatchObject({ component: 'handles', pattern: 'handle_leak', severity: 'warning', resourceId: 'process' });
      expect((detection!.details.growth as Record<string, number>).Timeout).toBeGreaterThanOrEqual(80);
      expect(scheduler.scheduled).toEqual([]);
    } finally {
      for (const t of timers) clearInterval(t);
    }
    // outside the window the baseline moves on: growth that stopped is no longer reported
    expect(chain.scan(now + 70_000)).toEqual([]);
    expect(chain.scan(now + 140_000)).toEqual([]);
    expect(chain.active()).toEqual([]);
  });

  it('validates options', () => {
    expect(() => new HandleTracker({ windowMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new HandleTracker({ growthThreshold: 1.5 })).toThrow(/growthThreshold/);
  });
});
