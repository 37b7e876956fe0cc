import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import { BYTES_PER_MB } from './memory-snapshot.js';

const SECOND = 1_000;
const MINUTE = 60_000;

/**
 * A process that has just started: RSS climbs from 150 to 500 MB over its first 40 s (code loading, caches filling,
 * the JIT warming up), then stays flat. `leakAfterMs` adds a real leak of 20 MB/min from then on.
 */
function startingProcess(startedAt: number, leakAfterMs = Infinity) {
  return () => {
    const elapsed = Date.now() - startedAt;
    const startup = elapsed < 40 * SECOND ? 150 + (350 * elapsed) / (40 * SECOND) : 500;
    const leak = elapsed > leakAfterMs ? (20 * (elapsed - leakAfterMs)) / MINUTE : 0;
    const rss = (startup + leak) * BYTES_PER_MB;
    return { rss, heapUsed: rss / 2, heapTotal: rss / 2, external: 0, arrayBuffers: 0 };
  };
}

describe('the start-up grace (a freshly started process)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function rig(options: MemoryGuardrailOptions) {
    const terminated: number[] = [];
    const statuses: string[] = [];
    // The demo's production-like settings: a check every 5 s over a one-minute leak window, auto-restart on.
    const guardrail = new MemoryGuardrail({
      checkIntervalMs: 5 * SECOND,
      leakWindowMs: MINUTE,
      rssThresholdMb: 700,
      autoRestart: true,
      registry: new Registry(),
      sampler: startingProcess(Date.now()),
      terminate: () => terminated.push(Date.now()),
      ...options,
    });
    guardrail.onAlarm((alarm) => statuses.push(alarm.status));
    return { guardrail, terminated, statuses };
  }

  it('does not read its start-up growth as a predicted breach: no restart, never critical (default grace)', async () => {
    const { guardrail, terminated, statuses } = rig({});
    const startedAt = Date.now();
    await vi.advanceTimersByTimeAsync(5 * MINUTE);
    expect(terminated).toEqual([]);
    expect(statuses).not.toContain('critical');
    expect(guardrail.report()).toMatchObject({ startupGraceEndsAt: startedAt + MINUTE, status: 'healthy' });
    // The start-up points stay in the series for the chart; the line covers only what came after the grace.
    expect(guardrail.report().series[0]!.at).toBe(startedAt);
    expect(guardrail.latest()!.growth).toMatchObject({ slopeMbPerMin: 0, leakDetected: false });
    await guardrail.close();
  });

  it('without the grace the same start-up restarts the process (the failure the grace prevents)', async () => {
    const { guardrail, terminated, statuses } = rig({ startupGraceMs: 0 });
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(statuses).toContain('critical');
    expect(guardrail.latest()?.restartReason ?? guardrail.report().restart.last?.reason).toBe('predicted_breach');
    expect(terminated).toHaveLength(1);
    await guardrail.close();
  });

  it('still sees a real leak once the grace is over', async () => {
    const { guardrail, terminated } = rig({ sampler: startingProcess(Date.now(), 2 * MINUTE), autoRestart: false });
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(guardrail.latest()!.growth.leakDetected).toBe(false);
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(guardrail.latest()!.growth).toMatchObject({ leakDetected: true });
    expect(guardrail.latest()!.growth.slopeMbPerMin).toBeCloseTo(20, 0);
    expect(terminated).toEqual([]);
    await guardrail.close();
  });

  it('hard thresholds apply from the first check', async () => {
    const { guardrail } = rig({ rssThresholdMb: 100, autoRestart: false });
    expect(guardrail.latest()).toMatchObject({ status: 'critical', restartReason: 'rss_threshold' });
    await guardrail.close();
  });
});
