import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuardBus, isGuardError } from '@guard/core';
import type { Logger, MemoryAlarm } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BYTES_PER_MB } from './memory-snapshot.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryAssessment } from './memory-assessment.js';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { fitLine } from './regression.js';
import { createManualClock, createSyntheticSampler, linearRssMb } from './testing.js';
import { restartSuite } from './test-support.js';

const MINUTE = 60_000;

function rig(rssMb: (elapsedMs: number) => number, options: MemoryGuardrailOptions = {}) {
  const clock = createManualClock();
  const registry = new Registry();
  const guardrail = new MemoryGuardrail({
    sampler: createSyntheticSampler(clock, { rssMb }),
    now: clock,
    registry,
    autoStart: false,
    // These tests are about the regression itself: every check is fitted (the start-up grace has its own tests).
    startupGraceMs: 0,
    ...options,
  });
  /** One check now, then one per minute: `count` checks in all. */
  const run = (count: number): MemoryAssessment[] => {
    const out: MemoryAssessment[] = [];
    for (let i = 0; i < count; i++) {
      if (i > 0) clock.advance(MINUTE);
      out.push(guardrail.check());
    }
    return out;
  };
  return { clock, registry, guardrail, run };
}

function recordingLogger() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, ...(msg === undefined ? {} : { msg }) });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal') };
  return { logger, lines };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = { name: 'default' }) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = (metric?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value;
}

describe('MemoryGuardrail leak-rate regression (synthetic series)', () => {
  it('measures a steady 5.0 MB/min climb as 5.0 +/- 0.1 and flags it', async () => {
    const { guardrail, run } = rig(linearRssMb(200, 5));
    const last = run(11).at(-1)!;
    expect(last.growth.slopeMbPerMin).toBeGreaterThanOrEqual(4.9);
    expect(last.growth.slopeMbPerMin).toBeLessThanOrEqual(5.1);
    expect(last.growth.r2).toBeGreaterThan(0.99);
    expect(last.growth.samples).toBe(11);
    expect(last.growth.spanMs).toBe(10 * MINUTE);
    expect(last.growth.leakDetected).toBe(true);
    expect(last.status).toBe('warning');
    expect(last.reasons.join(' ')).toMatch(/growing 5 MB\/min/);
    await guardrail.close();
  });

  it('measures a noisy climb within 0.1 MB/min and flags one clearly over the limit', async () => {
    // Deterministic jitter of up to +/-0.4 MB on top of the line. Exactly at the limit, noise decides the flag,
    // so the noisy leak runs at 5.5 MB/min.
    const jitter = (t: number) => 0.4 * Math.sin(t / 7_919);
    const atLimit = rig((t) => linearRssMb(300, 5)(t) + jitter(t));
    expect(Math.abs(atLimit.run(11).at(-1)!.growth.slopeMbPerMin - 5)).toBeLessThanOrEqual(0.1);
    const over = rig((t) => linearRssMb(300, 5.5)(t) + jitter(t));
    const last = over.run(11).at(-1)!;
    expect(Math.abs(last.growth.slopeMbPerMin - 5.5)).toBeLessThanOrEqual(0.1);
    expect(last.growth.r2).toBeGreaterThan(0.99);
    expect(last.growth.leakDetected).toBe(true);
    await atLimit.guardrail.close();
    await over.guardrail.close();
  });

  it('does not flag 4.0 MB/min', async () => {
    const { guardrail, run } = rig(linearRssMb(200, 4));
    const results = run(20);
    expect(results.at(-1)!.growth.slopeMbPerMin).toBeCloseTo(4, 6);
    expect(results.every((r) => !r.growth.leakDetected)).toBe(true);
    expect(results.at(-1)!.status).toBe('healthy');
    await guardrail.close();
  });

  it('does not call a single 100 MB spike followed by a flat line a leak', async () => {
    // One reading 100 MB up at minute 12, then flat again.
    const spike = rig((t) => (t === 12 * MINUTE ? 300 : 200));
    const spikeResults = spike.run(30);
    expect(spikeResults.some((r) => r.growth.leakDetected)).toBe(false);
    // A 100 MB jump that stays (a step), then a flat line.
    const step = rig((t) => (t >= 12 * MINUTE ? 300 : 200));
    const stepResults = step.run(30);
    expect(Math.max(...stepResults.map((r) => r.growth.slopeMbPerMin))).toBeGreaterThan(5); // the raw slope alone would flag it
    expect(stepResults.some((r) => r.growth.leakDetected)).toBe(false);
    expect(stepResults.at(-1)!.growth.slopeMbPerMin).toBeCloseTo(0, 6);
    await spike.guardrail.close();
    await step.guardrail.close();
  });

  it('needs minLeakSamples points before it flags a leak', async () => {
    const { guardrail, run } = rig(linearRssMb(200, 10));
    const results = run(5);
    expect(results.slice(0, 4).map((r) => r.growth.leakDetected)).toEqual([false, false, false, false]);
    expect(results[4]!.growth.leakDetected).toBe(true);
    await guardrail.close();
  });

  it('only fits the leak window', async () => {
    // Leaks 20 MB/min for 10 minutes, then stays flat: after a full flat window the rate is 0.
    const { guardrail, run } = rig((t) => 200 + 20 * Math.min(t, 10 * MINUTE) / MINUTE, { leakWindowMs: 10 * MINUTE });
    const results = run(22);
    expect(results[10]!.growth.leakDetected).toBe(true);
    expect(results.at(-1)!.growth.slopeMbPerMin).toBeCloseTo(0, 6);
    expect(results.at(-1)!.growth.leakDetected).toBe(false);
    await guardrail.close();
  });

  it('predicts the time to the RSS threshold within 5 %', async () => {
    const { guardrail, run, clock } = rig(linearRssMb(500, 5), { rssThresholdMb: 700 });
    const last = run(11).at(-1)!; // 550 MB after 10 min, 150 MB to go at 5 MB/min = 30 min
    expect(last.timeToThresholdMs).not.toBeNull();
    const expected = 30 * MINUTE;
    expect(Math.abs(last.timeToThresholdMs! - expected) / expected).toBeLessThan(0.05);
    // The prediction comes true: 30 minutes later the synthetic RSS is at the threshold.
    clock.advance(expected);
    expect(guardrail.check().snapshot.rssBytes / BYTES_PER_MB).toBeCloseTo(700, 6);
    await guardrail.close();
  });

  it('is critical with restart advice when a leak is predicted to breach within 5 minutes', async () => {
    const { guardrail, run } = rig(linearRssMb(630, 5), { rssThresholdMb: 700 });
    const last = run(11).at(-1)!; // 680 MB, 4 min to go
    expect(last.timeToThresholdMs).toBeCloseTo(4 * MINUTE, -3);
    expect(last.status).toBe('critical');
    expect(last.restartReason).toBe('predicted_breach');
    expect(last.reasons[0]).toMatch(/predicted to reach 700 MB/);
    await guardrail.close();
  });

  it('keeps its running window sums equal to a fresh fit, through ring wrap-around, rebuilds and irregular checks', async () => {
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
    let rss = 300;
    const { guardrail, clock } = rig(() => rss, { checkIntervalMs: 60_000, retentionMs: 10 * MINUTE, leakWindowMs: 5 * MINUTE, minLeakSamples: 2 });
    for (let i = 0; i < 400; i++) {
      clock.advance(Math.floor(5_000 + random() * 85_000));
      rss += (random() - 0.3) * 8;
      const { growth, snapshot } = guardrail.check();
      const points = guardrail.snapshots().filter((p) => p.at >= snapshot.at - 5 * MINUTE);
      const reference = fitLine(
        points.map((p) => (p.at - snapshot.at) / MINUTE),
        points.map((p) => p.rssBytes / BYTES_PER_MB),
      );
      expect(growth.samples).toBe(points.length);
      expect(growth.spanMs).toBe(snapshot.at - points[0]!.at);
      expect(growth.slopeMbPerMin).toBeCloseTo(reference.slope, 6);
      expect(growth.r2).toBeCloseTo(reference.r2, 6);
      if (points.length >= 2) expect(growth.interceptMb).toBeCloseTo(reference.intercept, 6);
    }
    await guardrail.close();
  });

  it('restarts the window when the clock moves backwards', async () => {
    const { guardrail, run, clock } = rig(linearRssMb(200, 10));
    expect(run(8).at(-1)!.growth.samples).toBe(8);
    clock.advance(-30 * MINUTE);
    const after = guardrail.check();
    expect(after.growth.samples).toBe(1);
    expect(after.growth.leakDetected).toBe(false);
    await guardrail.close();
  });

  it('reports no time to threshold for a flat or shrinking series', async () => {
    const flat = rig(() => 300);
    expect(flat.run(11).at(-1)!.timeToThresholdMs).toBeNull();
    const shrinking = rig(linearRssMb(600, -3));
    expect(shrinking.run(11).at(-1)!.timeToThresholdMs).toBeNull();
    await flat.guardrail.close();
    await shrinking.guardrail.close();
  });
});

describe('MemoryGuardrail thresholds and status', () => {
  it.each([
    [500, 'healthy', null],
    [559, 'healthy', null],
    [560, 'warning', null],
    [699, 'warning', null],
    [700, 'critical', 'rss_threshold'],
    [950, 'critical', 'rss_threshold'],
  ] as const)('rss %d MB of 700 is %s', async (rss, status, restartReason) => {
    const { guardrail } = rig(() => rss);
    const result = guardrail.check();
    expect(result.status).toBe(status);
    expect(result.restartReason).toBe(restartReason);
    expect(result.reasons.length > 0).toBe(status !== 'healthy');
    await guardrail.close();
  });

  it('checks every cache probe against the cache threshold', async () => {
    let sessions = 100;
    const { guardrail } = rig(() => 200, { cacheProbes: { sessions: () => sessions, tokens: () => 5 } });
    expect(guardrail.check().status).toBe('healthy');
    sessions = 1800; // >= 80 % of 2200
    const warning = guardrail.check();
    expect(warning.status).toBe('warning');
    expect(warning.caches).toEqual([
      { name: 'sessions', entries: 1800, threshold: 2200, status: 'warning' },
      { name: 'tokens', entries: 5, threshold: 2200, status: 'healthy' },
    ]);
    sessions = 2200;
    const critical = guardrail.check();
    expect(critical.status).toBe('critical');
    expect(critical.restartReason).toBe('cache_threshold');
    expect(critical.reasons[0]).toMatch(/cache sessions holds 2200 entries/);
    await guardrail.close();
  });

  it('leaves out a cache probe that throws and logs it', async () => {
    const { logger, lines } = recordingLogger();
    const { guardrail } = rig(() => 200, { logger });
    guardrail.addCacheProbe('broken', () => {
      throw new Error('boom');
    });
    const remove = guardrail.addCacheProbe('ok', () => 3);
    expect(guardrail.check().snapshot.caches).toEqual({ ok: 3 });
    expect(lines.some((l) => l.msg === 'cache probe threw')).toBe(true);
    remove();
    expect(guardrail.check().snapshot.caches).toEqual({});
    await guardrail.close();
  });

  it('sorts critical reasons first', async () => {
    const { guardrail } = rig(() => 600, { cacheProbes: { big: () => 5000 } });
    const result = guardrail.check();
    expect(result.reasons).toHaveLength(2);
    expect(result.reasons[0]).toMatch(/cache big/);
    expect(result.reasons[1]).toMatch(/rss 600 MB is above 80%/);
    await guardrail.close();
  });

  it('averages the first baselineSamples checks into the baseline', async () => {
    const { guardrail, run } = rig(linearRssMb(100, 1), { baselineSamples: 3 });
    expect(guardrail.baseline()).toBeNull();
    run(5);
    const baseline = guardrail.baseline()!;
    expect(baseline.complete).toBe(true);
    expect(baseline.samples).toBe(3);
    expect(baseline.rssBytes / BYTES_PER_MB).toBeCloseTo(101, 6); // mean of 100, 101, 102
    await guardrail.close();
  });

  it('assess() evaluates a live sample without storing it or emitting', async () => {
    const bus = new GuardBus();
    const alarms: MemoryAlarm[] = [];
    bus.subscribe('memoryAlarm', (a) => alarms.push(a));
    let rss = 200;
    const { guardrail, run } = rig(() => rss, { bus });
    run(3);
    rss = 800;
    const live = guardrail.assess();
    expect(live.status).toBe('critical');
    expect(guardrail.snapshots()).toHaveLength(3);
    expect(guardrail.status).toBe('healthy');
    expect(alarms).toHaveLength(0);
    await guardrail.close();
  });

  it('keeps snapshots for retentionMs in a bounded ring', async () => {
    const { guardrail, run } = rig(() => 200, { retentionMs: 30 * MINUTE, leakWindowMs: 10 * MINUTE });
    run(100);
    const series = guardrail.snapshots();
    expect(series.length).toBeLessThanOrEqual(31);
    expect(series.length).toBeGreaterThanOrEqual(30);
    expect(series.at(-1)!.at - series[0]!.at).toBeLessThanOrEqual(30 * MINUTE);
    await guardrail.close();
  });
});

describe('MemoryGuardrail events, metrics and report', () => {
  it('emits memoryAlarm on every status change', async () => {
    const bus = new GuardBus();
    const alarms: MemoryAlarm[] = [];
    bus.subscribe('memoryAlarm', (a) => alarms.push(a));
    const levels = [200, 200, 600, 650, 750, 750, 200];
    let i = 0;
    const { guardrail, clock } = rig(() => levels[i]!, { bus, minLeakSamples: 50 });
    for (i = 0; i < levels.length; i++) {
      guardrail.check();
      clock.advance(MINUTE);
    }
    expect(alarms.map((a) => a.status)).toEqual(['warning', 'critical', 'healthy']);
    expect(alarms[1]!.rssBytes).toBe(750 * BYTES_PER_MB);
    expect(alarms[1]!.reasons[0]).toMatch(/700 MB threshold/);
    expect(typeof alarms[1]!.growthMbPerMin).toBe('number');
    expect(alarms[0]!.at).toBeLessThan(alarms[1]!.at);
    await guardrail.close();
  });

  it('publishes guard_memory_* metrics on the given registry', async () => {
    const { guardrail, run, registry } = rig(linearRssMb(200, 5), { cacheProbes: { sessions: () => 42 } });
    run(11);
    expect(await metricValue(registry, 'guard_memory_rss_bytes')).toBe(250 * BYTES_PER_MB);
    expect(await metricValue(registry, 'guard_memory_heap_used_bytes')).toBeCloseTo(100 * BYTES_PER_MB, 0);
    expect(await metricValue(registry, 'guard_memory_growth_rate_bytes_per_second')).toBeCloseTo((5 * BYTES_PER_MB) / 60, 0);
    expect(await metricValue(registry, 'guard_memory_leak_detected')).toBe(1);
    expect(await metricValue(registry, 'guard_memory_status')).toBe(1);
    expect(await metricValue(registry, 'guard_memory_cache_entries', { name: 'default', cache: 'sessions' })).toBe(42);
    expect(await metricValue(registry, 'guard_memory_time_to_threshold_seconds')).toBeCloseTo(90 * 60, 0);
    expect(await metricValue(registry, 'guard_memory_baseline_rss_bytes')).toBeCloseTo(222.5 * BYTES_PER_MB, 0);
    await guardrail.close();
  });

  it('takes metricsPrefix, registers nothing with metrics: false, and drops its series on close and with a removed probe', async () => {
    const { guardrail, run, registry } = rig(() => 300, { metricsPrefix: 'app_memory', cacheProbes: { sessions: () => 7 } });
    const removeTokens = guardrail.addCacheProbe('tokens', () => 3);
    run(1);
    expect(await metricValue(registry, 'app_memory_rss_bytes')).toBe(300 * BYTES_PER_MB);
    expect(await metricValue(registry, 'app_memory_cache_entries', { name: 'default', cache: 'tokens' })).toBe(3);
    removeTokens();
    expect(await metricValue(registry, 'app_memory_cache_entries', { name: 'default', cache: 'tokens' })).toBeUndefined();
    expect(await metricValue(registry, 'app_memory_cache_entries', { name: 'default', cache: 'sessions' })).toBe(7);
    await guardrail.close();
    expect(await metricValue(registry, 'app_memory_rss_bytes')).toBeUndefined();

    const silent = rig(() => 300, { metrics: false, terminate: () => {} });
    silent.run(1);
    expect(await silent.registry.getMetricsAsJSON()).toEqual([]);
    await silent.guardrail.requestRestart('manual');
    await silent.guardrail.close();
  });

  it('shares metrics between two guardrails on one registry, told apart by name', async () => {
    const registry = new Registry();
    const clock = createManualClock();
    const a = new MemoryGuardrail({ name: 'a', registry, now: clock, autoStart: false, sampler: createSyntheticSampler(clock, { rssMb: () => 100 }) });
    // b still names its clock `clock` (deprecated, still accepted).
    const b = new MemoryGuardrail({ name: 'b', registry, clock, autoStart: false, sampler: createSyntheticSampler(clock, { rssMb: () => 300 }) });
    a.check();
    b.check();
    expect(await metricValue(registry, 'guard_memory_rss_bytes', { name: 'a' })).toBe(100 * BYTES_PER_MB);
    expect(await metricValue(registry, 'guard_memory_rss_bytes', { name: 'b' })).toBe(300 * BYTES_PER_MB);
    await a.close();
    await b.close();
  });

  it('report() carries series, regression line and thresholds for a chart', async () => {
    const { guardrail, run } = rig(linearRssMb(200, 6));
    expect(guardrail.report().latest).toBeNull();
    run(11);
    const report = guardrail.report();
    expect(report.series).toHaveLength(11);
    expect(report.thresholds).toMatchObject({ rssMb: 700, rssBytes: 700 * BYTES_PER_MB, cacheEntries: 2200, leakRateMbPerMin: 5 });
    const line = report.regression!;
    expect(line.windowStartAt).toBe(report.series[0]!.at);
    // The line reproduces the series at both ends.
    const at = (t: number) => line.interceptMb + (line.slopeMbPerMin * (t - line.originAt)) / MINUTE;
    expect(at(report.series[0]!.at)).toBeCloseTo(200, 6);
    expect(at(report.series.at(-1)!.at)).toBeCloseTo(260, 6);
    expect(report.status).toBe('warning');
    expect(report.restart).toEqual({ autoRestart: false, inProgress: false, last: null, lastFailed: null, retryAfterMs: 0, fleetWait: null });
    expect(JSON.parse(JSON.stringify(report)).series).toHaveLength(11);
    await guardrail.close();
  });
});

describe('MemoryGuardrail timer and lifecycle', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('checks on start and every checkIntervalMs, and stops on close', async () => {
    vi.useFakeTimers();
    const start = Date.now();
    const guardrail = new MemoryGuardrail({
      checkIntervalMs: 1000,
      sampler: createSyntheticSampler(Date.now, { rssMb: () => 100 }, start),
      registry: new Registry(),
    });
    expect(guardrail.snapshots()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(guardrail.snapshots()).toHaveLength(6);
    await guardrail.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(guardrail.snapshots()).toHaveLength(6);
  });

  it('logs a failing sampler on the timer instead of throwing', async () => {
    vi.useFakeTimers();
    const { logger, lines } = recordingLogger();
    const guardrail = new MemoryGuardrail({
      checkIntervalMs: 1000,
      logger,
      registry: new Registry(),
      sampler: () => {
        throw new Error('no /proc');
      },
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(lines.filter((l) => l.msg === 'memory check failed')).toHaveLength(2);
    await guardrail.close();
  });

  it('is closed idempotently and rejects work after close with CLOSED', async () => {
    const { guardrail } = rig(() => 100);
    await guardrail.close();
    await guardrail[Symbol.asyncDispose]();
    expect(() => guardrail.check()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => guardrail.assess()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => guardrail.start()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await expect(guardrail.requestRestart('manual')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('works with await using', async () => {
    let outer: MemoryGuardrail | undefined;
    {
      await using guardrail = new MemoryGuardrail({ autoStart: false, registry: new Registry() });
      outer = guardrail;
      expect(guardrail.check().snapshot.rssBytes).toBeGreaterThan(0); // the real process sampler
    }
    expect(() => outer!.check()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it.each([
    [{ rssThresholdMb: 0 }, 'rssThresholdMb'],
    [{ cacheEntriesThreshold: -1 }, 'cacheEntriesThreshold'],
    [{ checkIntervalMs: Number.NaN }, 'checkIntervalMs'],
    [{ baselineSamples: 2.5 }, 'baselineSamples'],
    [{ minFitR2: 1.5 }, 'minFitR2'],
    [{ warningRatio: 0 }, 'warningRatio'],
    [{ minLeakSamples: 1 }, 'minLeakSamples'],
    [{ leakWindowMs: 2 * 3_600_000 }, 'leakWindowMs'],
    [{ name: '' }, 'name'],
    [{ sampler: 'process' as never }, 'sampler'],
    [{ restartStateFile: '' }, 'restartStateFile'],
  ])('rejects bad option %j with INVALID_OPTION naming %s', (options, field) => {
    try {
      new MemoryGuardrail({ autoStart: false, registry: new Registry(), ...options });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe(field);
    }
  });

  it('rejects a duplicate cache probe with INVALID_OPTION', async () => {
    const { guardrail } = rig(() => 100, { cacheProbes: { a: () => 1 } });
    expect(() => guardrail.addCacheProbe('a', () => 2)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    await guardrail.close();
  });
});

describe('MemoryGuardrail restart budget (in process, terminate injected)', () => {
  const restarts = restartSuite();
  const { clock } = restarts;

  /** A guardrail with auto-restart on, reading `rssMb` (options win). */
  function restartRig(rssMb: number, options: MemoryGuardrailOptions = {}) {
    return restarts.rig({ sampler: createSyntheticSampler(clock, { rssMb: () => rssMb }), autoRestart: true, ...options });
  }

  it('restarts on a hard threshold: hooks, final log, terminate, persisted time', async () => {
    const { logger, lines } = recordingLogger();
    const hookSignals: AbortSignal[] = [];
    const { guardrail, terminated, notices } = restartRig(800, { logger });
    guardrail.onShutdown((signal) => {
      hookSignals.push(signal);
    });
    guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(1);
    expect(hookSignals).toHaveLength(1);
    expect(notices).toEqual([{ name: 'default', reason: 'rss_threshold', outcome: 'started', at: clock() }]);
    const state = JSON.parse(readFileSync(restarts.stateFile, 'utf8'));
    expect(state).toMatchObject({ lastRestartAt: clock(), reason: 'rss_threshold', pid: process.pid });
    const final = lines.find((l) => l.msg === 'memory guardrail restarting the process')!;
    expect(final.level).toBe('fatal');
    expect(final.obj).toMatchObject({
      reason: 'rss_threshold',
      trigger: { status: 'critical', rssBytes: 800 * BYTES_PER_MB },
      status: 'critical',
      rssBytes: 800 * BYTES_PER_MB,
    });
    // Further checks while the restart is under way do not start another one.
    guardrail.check();
    await guardrail.close();
    expect(terminated).toHaveLength(1);
  });

  it('refuses a second restart within 5 minutes, also from a new instance, and allows one after', async () => {
    const first = restartRig(800);
    first.guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(first.terminated).toHaveLength(1);
    await first.guardrail.close();

    clock.advance(2 * MINUTE); // the "restarted" process comes up and is over the threshold again
    const second = restartRig(800);
    const decision = await second.guardrail.requestRestart('rss_threshold');
    expect(decision).toMatchObject({ restarted: false, skipped: 'cooldown', retryAfterMs: 3 * MINUTE });
    second.guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(second.terminated).toHaveLength(0);
    expect(second.notices.map((n) => n.outcome)).toEqual(['skipped', 'skipped']);
    expect(second.guardrail.report().restart.retryAfterMs).toBe(3 * MINUTE);

    clock.advance(3 * MINUTE);
    second.guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(second.terminated).toHaveLength(1);
    await second.guardrail.close();
  });

  it('restarts on a predicted breach and terminates even when a hook hangs past the deadline', async () => {
    const { logger, lines } = recordingLogger();
    const terminated: number[] = [];
    const guardrail = new MemoryGuardrail({
      sampler: createSyntheticSampler(clock, { rssMb: linearRssMb(630, 5) }),
      now: clock,
      registry: new Registry(),
      autoStart: false,
      autoRestart: true,
      shutdownTimeoutMs: 50,
      terminate: () => terminated.push(1),
      logger,
    });
    let aborted = false;
    guardrail.onShutdown(
      (signal) =>
        new Promise<void>(() => {
          signal.addEventListener('abort', () => (aborted = true));
        }),
    );
    guardrail.onShutdown(() => {
      throw new Error('hook failed');
    });
    for (let i = 0; i < 11; i++) {
      if (i > 0) clock.advance(MINUTE);
      guardrail.check();
    }
    await vi.advanceTimersByTimeAsync(49);
    expect(terminated).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(1);
    expect(aborted).toBe(true);
    expect(lines.some((l) => l.msg === 'shutdown hooks timed out')).toBe(true);
    expect(lines.find((l) => l.msg === 'memory guardrail restarting the process')!.obj).toMatchObject({ reason: 'predicted_breach' });
    await guardrail.close();
  });

  it('does not restart when autoRestart is off, but a manual request does', async () => {
    const { guardrail, terminated } = restartRig(800, { autoRestart: false });
    expect(guardrail.check().restartReason).toBe('rss_threshold');
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(0);
    expect(await guardrail.requestRestart('manual')).toEqual({ restarted: true, reason: 'manual', at: clock() });
    expect(await guardrail.requestRestart('manual')).toMatchObject({ restarted: false, skipped: 'in_progress' });
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(1);
    await guardrail.close();
  });

  it('logs a terminate that throws instead of leaving an unhandled rejection', async () => {
    const { logger, lines } = recordingLogger();
    const guardrail = new MemoryGuardrail({
      sampler: createSyntheticSampler(clock, { rssMb: () => 800 }),
      now: clock,
      registry: new Registry(),
      autoStart: false,
      autoRestart: true,
      logger,
      terminate: () => {
        throw new Error('no permission');
      },
    });
    guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(lines.some((l) => l.msg === 'terminate failed')).toBe(true);
    await expect(guardrail.close()).resolves.toBeUndefined();
  });

  it('does not restart when the state file cannot be written (RESTART_STATE_ERROR)', async () => {
    const blocker = join(restarts.dir, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const { guardrail, terminated } = restartRig(800, { autoRestart: false, restartStateFile: join(blocker, 'restart.json') });
    const refused = expect(guardrail.requestRestart('manual')).rejects.toMatchObject({ code: 'RESTART_STATE_ERROR' });
    // The budget retries the lock for up to 2 s before it gives up.
    await vi.advanceTimersByTimeAsync(2_500);
    await refused;
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(0);
    await guardrail.close();
  });

  it('ignores a corrupt state file with a warning', async () => {
    const { logger, lines } = recordingLogger();
    const file = restarts.stateFile;
    const { guardrail } = restartRig(100, { autoRestart: false, logger });
    writeFileSync(join(restarts.dir, 'garbage'), 'x');
    const other = new MemoryGuardrail({ autoStart: false, registry: new Registry(), restartStateFile: join(restarts.dir, 'garbage'), logger, terminate: () => {} });
    expect(other.report().restart.last).toBeNull();
    expect(lines.some((l) => l.msg === 'restart state file is not valid; ignoring it')).toBe(true);
    expect(guardrail.report().restart.last).toBeNull();
    expect(() => readFileSync(file)).toThrow();
    await guardrail.close();
    await other.close();
  });
});
