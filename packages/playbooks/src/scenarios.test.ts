import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { settledWithin, waitFor } from './scenario-harness.js';
import { scenarioTimeline } from './scenario-timeline.js';
import { formatTimelines } from './scenarios.js';

// The scenarios themselves run real processes and real time: tests/e2e/playbooks-scenarios.test.ts.
describe('scenario timelines', () => {
  it('holds times relative to the injection, to a tenth, and passes only when every target was met', () => {
    const times = { injectedAt: 1_000, detectedAt: 1_012.345, remediatedAt: 1_050, recoveredAt: undefined };
    const missed = scenarioTimeline('S01', 'heartbeat pause', times, [['detected', true], ['recovered', false]], { n: 1 });
    expect(missed).toEqual({
      scenario: 'S01',
      title: 'heartbeat pause',
      injectedMs: 0,
      detectedMs: 12.3,
      remediatedMs: 50,
      recoveredMs: undefined,
      passed: false,
      targets: ['detected', 'recovered'],
      misses: ['recovered'],
      details: { n: 1 },
    });
    const met = scenarioTimeline('S02', 'ACL spam', { ...times, recoveredAt: 3_000 }, [['detected', true]], {});
    expect(met).toMatchObject({ passed: true, misses: [], recoveredMs: 2_000 });
    expect(formatTimelines([missed, met]).split('\n')).toEqual([
      'scenario             injected ms  detected ms  remediated ms  recovered ms  result',
      'S01 heartbeat pause  0            12.3         50             -             MISS: recovered',
      'S02 ACL spam         0            12.3         50             2000          PASS',
    ]);
  });
});

describe('scenario waits, on fake time', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('waitFor reports whether the condition came true in time, never throws', async () => {
    let ready = false;
    setTimeout(() => (ready = true), 50);
    const soon = waitFor(() => ready, 100);
    await vi.advanceTimersByTimeAsync(60);
    expect(await soon).toBe(true);
    const never = waitFor(() => false, 100);
    await vi.advanceTimersByTimeAsync(200);
    expect(await never).toBe(false);
  });

  it('settledWithin gives the fallback when the promise is late, and clears its timer', async () => {
    const late = settledWithin(new Promise<string>(() => undefined), 100, 'fallback');
    await vi.advanceTimersByTimeAsync(100);
    expect(await late).toBe('fallback');
    expect(await settledWithin(Promise.resolve('value'), 100, 'fallback')).toBe('value');
    expect(vi.getTimerCount()).toBe(0);
  });
});
