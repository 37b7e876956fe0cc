import { isGuardError } from '@guard/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { summarizeLatencies } from './latency-summary.js';
import { formatLoadTestReport, runLoadTest } from './load-test.js';
import type { LoadTestOptions } from './load-test.js';
import { loadTargetForSuite, settleWithFakeTime, useFakeTimersWithRealIo } from './test-support.js';

const MB = 1024 * 1024;

// The schedule, the per-request timeouts, RSS sampling and the slow route all run on fake time, so the counts and
// latencies below are the load test's logic, not this machine's speed (real-time figures: tests/e2e/memory-load-test).
describe('runLoadTest against a real local server, on fake time', () => {
  const service = loadTargetForSuite();
  beforeEach(() => {
    useFakeTimersWithRealIo();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const load = (options: Partial<LoadTestOptions> & { url: string }) => settleWithFakeTime(runLoadTest({ ratePerSec: 10, durationMs: 1000, ...options }));

  it('holds the rate, measures latency and RSS growth, and passes', async () => {
    service.state.rssPerHitMb = 0.1;
    const result = await load({ url: `${service.url}/api/items`, ratePerSec: 50, durationMs: 1000 });
    expect(result.requests).toEqual({ scheduled: 50, sent: 50, succeeded: 50, failed: 0, timedOut: 0, dropped: 0 });
    // The default warm-up (10 % of the duration) sent 5 more, not judged, before the baseline was read.
    expect(result.warmup).toEqual({ durationMs: 100, sent: 5, succeeded: 5, failed: 0 });
    expect(service.state.hits).toBe(55);
    expect(result.rss).toMatchObject({ initialBytes: 200 * MB, baselineBytes: 200.5 * MB, finalBytes: 205.5 * MB, growthMb: 5 });
    expect(result.rss).toMatchObject({ baselineUrl: `${service.url}/self-check/baseline` });
    expect(result).toMatchObject({ successRatio: 1, statusCodes: { 200: 50 }, pass: true, aborted: false });
    const l = result.latencyMs!;
    expect([l.min, l.p50, l.p95, l.p99, l.max]).toEqual([...[l.min, l.p50, l.p95, l.p99, l.max]].sort((a, b) => a - b));
    expect(result.checks.map((c) => [c.name, c.pass])).toEqual([
      ['rss_growth_mb', true],
      ['p95_ms', true],
      ['success_ratio', true],
    ]);
    expect(formatLoadTestReport(result)).toMatch(/PASS$/);
  });

  it('samples RSS during the run: a spike in the middle shows in the Memory Range and peak, though RSS is back down at the end', async () => {
    // Requests 40-69 of the run (0.4 s to 0.7 s in) hold 300 MB more.
    service.state.spike = { fromHit: 40, toHit: 70, mb: 300 };
    const result = await load({
      url: `${service.url}/api/items`,
      ratePerSec: 100,
      warmupMs: 0,
      rssSampleIntervalMs: 50,
      criteria: { maxRssPeakGrowthMb: 100 },
    });
    const rss = result.rss!;
    expect(rss).toMatchObject({ initialBytes: 200 * MB, baselineBytes: 200 * MB, finalBytes: 200 * MB, growthMb: 0, sampleErrors: 0 });
    expect(rss.samples.length).toBeGreaterThanOrEqual(15);
    expect(rss).toMatchObject({ minBytes: 200 * MB, maxBytes: 500 * MB, rangeMb: 300, peakGrowthMb: 300 });
    expect(rss.peakAtMs).toBeGreaterThanOrEqual(400);
    expect(rss.peakAtMs).toBeLessThan(750);
    // Before/after alone would call this run flat; the peak check catches the spike.
    expect(result.checks.map((c) => [c.name, c.pass])).toEqual([
      ['rss_growth_mb', true],
      ['rss_peak_growth_mb', false],
      ['p95_ms', true],
      ['success_ratio', true],
    ]);
    expect(formatLoadTestReport(result)).toMatch(/Memory Range\s+200\.0 MB - 500\.0 MB \(300 MB; peak at/);
  });

  it('reads Initial RSS before the warm-up and Baseline RSS after it, through an injected sampler', async () => {
    service.state.rssPerHitMb = 1;
    const reads: number[] = [];
    const result = await load({
      url: `${service.url}/api/items`,
      ratePerSec: 50,
      warmupMs: 200,
      rssSampleIntervalMs: 100,
      rssSampler: () => {
        reads.push(service.state.hits);
        return (200 + service.state.hits) * MB;
      },
    });
    expect(reads[0]).toBe(0);
    expect(result.warmup).toMatchObject({ durationMs: 200, sent: 10, succeeded: 10 });
    expect(result.rss).toMatchObject({ baselineUrl: 'rssSampler', initialBytes: 200 * MB, baselineBytes: 210 * MB, finalBytes: 260 * MB, growthMb: 50 });
    expect(result.rss!.samples.length).toBeGreaterThanOrEqual(9);
    // Growth is judged from the baseline (after warm-up): 50 MB is not below the 50 MB limit.
    expect(result.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: 50 });
  });

  it('is open-loop: a slow server gets every request on schedule, concurrently, and fails p95 < 200 ms', async () => {
    const result = await load({ url: `${service.url}/api/slow`, ratePerSec: 20, baselineUrl: false });
    // A back-to-back client would have sent about 3 requests of 300 ms in one second.
    expect(result.requests).toMatchObject({ sent: 20, succeeded: 20 });
    expect(service.state.maxInFlight).toBeGreaterThanOrEqual(6);
    expect(result.latencyMs!.p50).toBeGreaterThanOrEqual(300);
    expect(result.rss).toBeNull();
    expect(result.checks.find((c) => c.name === 'p95_ms')).toMatchObject({ pass: false, limit: 200 });
    expect(result.checks.map((c) => c.name)).toEqual(['p95_ms', 'success_ratio']);
    expect(formatLoadTestReport(result)).toMatch(/FAIL\s+p95_ms[\s\S]*FAIL$/);
  });

  it('fails when RSS grows 50 MB or more', async () => {
    service.state.rssPerHitMb = 3;
    const leaky = await load({ url: `${service.url}/api/items`, ratePerSec: 40, durationMs: 500 });
    expect(leaky.rss!.growthMb).toBe(60);
    expect(leaky.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: 60, limit: 50 });
    expect(leaky.pass).toBe(false);
  });

  it('counts error statuses, timeouts, refused connections and drops as failures', async () => {
    const errors = await load({ url: `${service.url}/api/error`, ratePerSec: 20, durationMs: 500, baselineUrl: false });
    expect(errors.requests).toMatchObject({ sent: 10, succeeded: 0, failed: 10 });
    expect(errors.statusCodes).toEqual({ 500: 10 });
    expect(errors.checks.find((c) => c.name === 'success_ratio')).toMatchObject({ pass: false, actual: 0 });

    const hang = await load({ url: `${service.url}/api/hang`, ratePerSec: 10, durationMs: 300, timeoutMs: 200, baselineUrl: false });
    expect(hang.requests).toMatchObject({ sent: 3, timedOut: 3, failed: 3 });
    expect(hang.errors).toEqual({ TIMEOUT: 3 });
    expect(hang.latencyMs).toBeNull();

    // One in flight at most, each taking 300 ms, due every 50 ms: five of every six are dropped.
    const drops = await load({ url: `${service.url}/api/slow`, ratePerSec: 20, durationMs: 500, maxInFlight: 1, baselineUrl: false });
    expect(drops.requests).toMatchObject({ sent: 2, dropped: 8 });
    expect(drops.errors.DROPPED).toBe(8);

    const refused = await load({ url: 'http://127.0.0.1:1/', ratePerSec: 10, durationMs: 200 });
    expect(refused.errors.ECONNREFUSED).toBe(2);
    expect(refused.rss).toMatchObject({ growthMb: null });
    expect(refused.rss!.error).toMatch(/initial: .*ECONNREFUSED/);
    expect(refused.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: null });
  });

  it('fails the growth check when the baseline endpoint is missing', async () => {
    const result = await load({ url: `${service.url}/api/items`, durationMs: 200, baselineUrl: `${service.url}/api/nope` });
    expect(result.rss!.error).toMatch(/answered 404/);
    expect(result.pass).toBe(false);
  });

  it('stops early on abort and reports a failed, partial run', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await load({ url: `${service.url}/api/items`, ratePerSec: 20, durationMs: 60_000, signal: controller.signal });
    expect(result.aborted).toBe(true);
    // Due at 0 (the warm-up is 6 s long), 50, ... 250 ms: six before the abort at 300 ms.
    expect(result.warmup.sent).toBe(6);
    expect(result.requests.scheduled).toBe(0);
    expect(result.checks.at(-1)).toMatchObject({ name: 'completed', pass: false });
    expect(result.pass).toBe(false);
    await expect(runLoadTest({ url: service.url, ratePerSec: 1, durationMs: 1, signal: controller.signal })).rejects.toThrow();
  });

  it.each([
    [{ url: 'not a url' }, 'url'],
    [{ url: 'ftp://127.0.0.1/' }, 'url'],
    [{ ratePerSec: 0 }, 'ratePerSec'],
    [{ durationMs: -5 }, 'durationMs'],
    [{ maxInFlight: 0.5 }, 'maxInFlight'],
    [{ baselineUrl: 'nope' }, 'baselineUrl'],
    [{ criteria: { minSuccessRatio: 2 } }, 'criteria.minSuccessRatio'],
    [{ warmupMs: -1 }, 'warmupMs'],
    [{ rssSampleIntervalMs: 1 }, 'rssSampleIntervalMs'],
    [{ rssSampler: 'nope' as unknown as () => number }, 'rssSampler'],
  ])('rejects %j with INVALID_OPTION naming %s', async (bad, field) => {
    const error = await runLoadTest({ url: service.url, ratePerSec: 1, durationMs: 1, ...bad }).catch((e: unknown) => e);
    expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe(field);
  });
});

describe('summarizeLatencies', () => {
  it('gives nearest-rank percentiles of the answered requests only, and null for none', () => {
    const latencies = new Float64Array(200);
    for (let i = 0; i < 100; i++) latencies[i] = 100 - i; // 100..1, unsorted; the rest were never answered
    expect(summarizeLatencies(latencies, 100)).toEqual({ min: 1, mean: 50.5, p50: 50, p90: 90, p95: 95, p99: 99, max: 100 });
    expect(summarizeLatencies(Float64Array.of(2.345), 1)).toMatchObject({ min: 2.35, p99: 2.35 });
    expect(summarizeLatencies(new Float64Array(4), 0)).toBeNull();
  });
});
