import { describe, expect, it } from 'vitest';
import { runLoadTest } from '../../packages/memory/src/load-test.js';
import { loadTargetForSuite } from '../../packages/memory/src/test-support.js';
import { reportFigure } from './report.js';

// @guard/memory's load test on the real clock: what it achieves on this machine is a figure; the assertions are what a
// user relies on (every request answered, open-loop concurrency, RSS read), with bounds generous for a loaded 2-core box.
describe('guard-loadtest on real time', () => {
  const service = loadTargetForSuite();

  it('holds 50 requests/s for 2 s against a fast route', async () => {
    service.state.rssPerHitMb = 0.1;
    const result = await runLoadTest({ url: `${service.url}/api/items`, ratePerSec: 50, durationMs: 2_000, criteria: { maxP95Ms: 10_000 } });
    reportFigure('memory load test fast route p50', result.latencyMs!.p50, 'ms');
    reportFigure('memory load test fast route p95', result.latencyMs!.p95, 'ms');
    reportFigure('memory load test achieved rate (50/s asked)', result.achievedRatePerSec, 'req/s');
    reportFigure('memory load test elapsed (2 s asked)', result.elapsedMs, 'ms');
    expect(result.requests).toMatchObject({ scheduled: 100, sent: 100, succeeded: 100, failed: 0 });
    expect(result.rss).toMatchObject({ growthMb: 10 });
    expect(result.pass).toBe(true);
  });

  it('is open-loop on a slow route: requests overlap instead of queueing behind each other', async () => {
    const result = await runLoadTest({ url: `${service.url}/api/slow`, ratePerSec: 20, durationMs: 1_000, baselineUrl: false, criteria: { maxP95Ms: 10_000 } });
    reportFigure('memory load test slow route (300 ms) p50', result.latencyMs!.p50, 'ms');
    reportFigure('memory load test slow route max in flight', service.state.maxInFlight, 'requests');
    expect(result.requests).toMatchObject({ sent: 20, succeeded: 20 });
    expect(service.state.maxInFlight).toBeGreaterThan(1);
    expect(result.latencyMs!.p50).toBeGreaterThanOrEqual(295);
  });

  it('samples RSS during the run on a real timer', async () => {
    const result = await runLoadTest({ url: `${service.url}/api/items`, ratePerSec: 20, durationMs: 1_000, warmupMs: 0, rssSampleIntervalMs: 100, criteria: { maxP95Ms: 10_000 } });
    reportFigure('memory load test RSS samples in 1 s at 100 ms', result.rss!.samples.length, 'samples');
    expect(result.rss!.samples.length).toBeGreaterThanOrEqual(2);
    expect(result.rss!.sampleErrors).toBe(0);
  });
});
