import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { formatTimelines, runS01, runS02, runS03 } from './scenarios.js';

describe('stress scenarios', () => {
  it('S01 heartbeat pause: the watchdog restarts the component soon after the missed deadline', async () => {
    const t = await runS01({ registry: new Registry(), deadlineMs: 200 });
    expect(t.misses).toEqual([]);
    expect(t.passed).toBe(true);
    expect(t.detectedMs).toBeGreaterThan(0);
    expect(t.remediatedMs!).toBeGreaterThanOrEqual(t.detectedMs!);
    expect(t.recoveredMs!).toBeGreaterThanOrEqual(t.remediatedMs!);
    expect(t.details.state).toBe('healthy');
  });

  it('S02 ACL spam: detected, blacklisted, playbook verified, legitimate traffic still flows', async () => {
    const t = await runS02({ registry: new Registry() });
    expect(t.misses).toEqual([]);
    expect(t.details.runStatus).toBe('succeeded');
    expect(t.details.publishes).toMatchObject({ denied: expect.any(Number), blacklisted: expect.any(Number) });
    expect((t.details.publishes as Record<string, number>).denied).toBeGreaterThanOrEqual(10);
    expect(t.details.steps).toEqual(['assess:succeeded', 'blacklist:succeeded', 'rate_limit:succeeded', 'restart_bus:skipped', 'notify:succeeded', 'follow_up:succeeded']);
  });

  it('S03 CPU spike (injected sampler): alarm once sustained, load shedding, CPU playbook verified, recovery reported', async () => {
    const t = await runS03({
      registry: new Registry(),
      sampler: (spiking) => ({ cpuPercent: spiking ? 97 : 12, memoryPercent: 40 }),
      spikeMs: 500,
      intervalMs: 20,
      sustainMs: 200,
      clearSustainMs: 60,
      recoveryTargetMs: 10_000,
    });
    expect(t.misses).toEqual([]);
    expect(t.detectedMs!).toBeGreaterThanOrEqual(200);
    expect(t.details).toMatchObject({ runStatus: 'succeeded', apiLimited: true, heavyPaused: true, source: 'injected sampler' });
    expect(t.recoveredMs!).toBeGreaterThan(t.detectedMs!);
  });

  it('reports a miss when the spike never reaches the threshold', async () => {
    const t = await runS03({ registry: new Registry(), sampler: () => ({ cpuPercent: 50 }), spikeMs: 100, intervalMs: 20, sustainMs: 40, recoveryTargetMs: 100 });
    expect(t.passed).toBe(false);
    expect(t.misses).toContain('alarm raised once the spike was sustained');
    const table = formatTimelines([t]);
    expect(table).toContain('S03 CPU spike');
    expect(table).toContain('MISS');
  });
});
