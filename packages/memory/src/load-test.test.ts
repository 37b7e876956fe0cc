import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isGuardError } from '@guard/core';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatLoadTestReport, parseDurationMs, runLoadTest } from './load-test.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import { createSelfCheckHandler } from './self-check-handler.js';

const MB = 1024 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

/** A real service: fast, slow, failing and hanging routes behind the self-check handler. RSS grows per hit, as set. */
async function startService() {
  /** `spike`: extra RSS while the hit count is in [fromHit, toHit), like a burst of allocations mid-run. */
  const state = { hits: 0, rssPerHitMb: 0, inFlight: 0, maxInFlight: 0, spike: { fromHit: 0, toHit: 0, mb: 0 } };
  const guardrail = new MemoryGuardrail({
    autoStart: false,
    registry: new Registry(),
    sampler: () => {
      const { fromHit, toHit, mb } = state.spike;
      const spikeMb = state.hits >= fromHit && state.hits < toHit ? mb : 0;
      const rss = (200 + state.hits * state.rssPerHitMb + spikeMb) * 1024 * 1024;
      return { rss, heapUsed: rss / 2, heapTotal: rss / 2, external: 0, arrayBuffers: 0 };
    },
  });
  guardrail.check();
  const selfCheck = createSelfCheckHandler(guardrail);
  const server: Server = createServer((req, res) =>
    selfCheck(req, res, () => {
      state.hits++;
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      const done = (status: number) => {
        state.inFlight--;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      };
      if (req.url === '/api/items') done(200);
      else if (req.url === '/api/slow') setTimeout(() => done(200), 300);
      else if (req.url === '/api/error') done(500);
      else if (req.url === '/api/hang') return; // never answers
      else done(404);
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    state,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await guardrail.close();
    },
  };
}

describe('runLoadTest against a real local server', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  beforeAll(async () => {
    service = await startService();
  });
  afterAll(async () => {
    await service.close();
  });
  beforeEach(() => {
    Object.assign(service.state, { hits: 0, rssPerHitMb: 0, inFlight: 0, maxInFlight: 0, spike: { fromHit: 0, toHit: 0, mb: 0 } });
  });

  it('holds the rate, measures latency and RSS growth, and passes', async () => {
    service.state.rssPerHitMb = 0.1;
    const result = await runLoadTest({ url: `${service.url}/api/items`, ratePerSec: 50, durationMs: 1000, criteria: { maxP95Ms: 10_000 } });
    expect(result.requests).toEqual({ scheduled: 50, sent: 50, succeeded: 50, failed: 0, timedOut: 0, dropped: 0 });
    // The default warm-up (10 % of the duration) sent 5 more, not judged, before the baseline was read.
    expect(result.warmup).toEqual({ durationMs: 100, sent: 5, succeeded: 5, failed: 0 });
    expect(service.state.hits).toBe(55);
    expect(result.rss).toMatchObject({ initialBytes: 200 * MB, baselineBytes: 200.5 * MB, finalBytes: 205.5 * MB });
    expect(result.successRatio).toBe(1);
    expect(result.statusCodes).toEqual({ 200: 50 });
    const l = result.latencyMs!;
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p95);
    expect(l.p95).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(result.rss).toMatchObject({ baselineUrl: `${service.url}/self-check/baseline`, growthMb: 5 });
    expect(result.checks.map((c) => [c.name, c.pass])).toEqual([
      ['rss_growth_mb', true],
      ['p95_ms', true],
      ['success_ratio', true],
    ]);
    expect(result.pass).toBe(true);
    expect(result.aborted).toBe(false);
    expect(formatLoadTestReport(result)).toMatch(/PASS$/);
  });

  it('samples RSS during the run: a spike in the middle shows in the Memory Range and peak, though RSS is back down at the end', async () => {
    // Requests 40-69 of the run (0.4 s to 0.7 s in) hold 300 MB more.
    service.state.spike = { fromHit: 40, toHit: 70, mb: 300 };
    const result = await runLoadTest({
      url: `${service.url}/api/items`,
      ratePerSec: 100,
      durationMs: 1000,
      warmupMs: 0,
      rssSampleIntervalMs: 50,
      criteria: { maxP95Ms: 10_000, maxRssPeakGrowthMb: 100 },
    });
    const rss = result.rss!;
    expect(rss).toMatchObject({ initialBytes: 200 * MB, baselineBytes: 200 * MB, finalBytes: 200 * MB, growthMb: 0, sampleErrors: 0 });
    expect(rss.samples.length).toBeGreaterThanOrEqual(5);
    expect(rss.samples.some((sample) => sample.rssBytes === 500 * MB)).toBe(true);
    expect(rss).toMatchObject({ minBytes: 200 * MB, maxBytes: 500 * MB, rangeMb: 300, peakGrowthMb: 300 });
    expect(rss.peakAtMs).toBeGreaterThan(0);
    expect(rss.peakAtMs).toBeLessThan(result.elapsedMs + 100);
    // Before/after alone would call this run flat; the peak check catches the spike.
    expect(result.checks.map((c) => [c.name, c.pass])).toEqual([
      ['rss_growth_mb', true],
      ['rss_peak_growth_mb', false],
      ['p95_ms', true],
      ['success_ratio', true],
    ]);
    const report = formatLoadTestReport(result);
    console.log(report);
    expect(report).toMatch(/Memory Range\s+200\.0 MB - 500\.0 MB \(300 MB; peak at/);
  });

  it('reads Initial RSS before the warm-up and Baseline RSS after it, through an injected sampler', async () => {
    service.state.rssPerHitMb = 1;
    const reads: number[] = [];
    const result = await runLoadTest({
      url: `${service.url}/api/items`,
      ratePerSec: 50,
      durationMs: 1000,
      warmupMs: 200,
      rssSampleIntervalMs: 100,
      rssSampler: () => {
        reads.push(service.state.hits);
        return (200 + service.state.hits) * MB;
      },
      criteria: { maxP95Ms: 10_000 },
    });
    expect(reads[0]).toBe(0);
    expect(result.warmup).toMatchObject({ durationMs: 200, sent: 10, succeeded: 10 });
    expect(result.rss).toMatchObject({ baselineUrl: 'rssSampler', initialBytes: 200 * MB, baselineBytes: 210 * MB, finalBytes: 260 * MB, growthMb: 50 });
    expect(result.rss!.samples.length).toBeGreaterThanOrEqual(3);
    // Growth is judged from the baseline (after warm-up): 50 MB is not below the 50 MB limit.
    expect(result.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: 50 });
  });

  it('is open-loop: a slow server gets every request on schedule, concurrently', async () => {
    const result = await runLoadTest({
      url: `${service.url}/api/slow`,
      ratePerSec: 20,
      durationMs: 1000,
      baselineUrl: false,
      criteria: { maxP95Ms: 10_000 },
    });
    // A back-to-back client would have sent about 3 requests of 300 ms in one second.
    expect(result.requests.sent).toBe(20);
    expect(result.requests.succeeded).toBe(20);
    expect(service.state.maxInFlight).toBeGreaterThan(1);
    expect(result.latencyMs!.p50).toBeGreaterThanOrEqual(295);
    expect(result.rss).toBeNull();
    expect(result.checks.map((c) => c.name)).toEqual(['p95_ms', 'success_ratio']);
  });

  it('fails on the seed criteria: p95 >= 200 ms, or RSS growth >= 50 MB', async () => {
    const slow = await runLoadTest({ url: `${service.url}/api/slow`, ratePerSec: 10, durationMs: 500 });
    expect(slow.latencyMs!.p95).toBeGreaterThanOrEqual(300);
    expect(slow.checks.find((c) => c.name === 'p95_ms')).toMatchObject({ pass: false, limit: 200 });
    expect(slow.pass).toBe(false);
    expect(formatLoadTestReport(slow)).toMatch(/FAIL\s+p95_ms[\s\S]*FAIL$/);

    service.state.rssPerHitMb = 3;
    const leaky = await runLoadTest({ url: `${service.url}/api/items`, ratePerSec: 40, durationMs: 500, criteria: { maxP95Ms: 10_000 } });
    expect(leaky.rss!.growthMb).toBe(60);
    expect(leaky.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: 60, limit: 50 });
    expect(leaky.pass).toBe(false);
  });

  it('counts error statuses, timeouts, refused connections and drops as failures', async () => {
    const errors = await runLoadTest({ url: `${service.url}/api/error`, ratePerSec: 20, durationMs: 500, baselineUrl: false });
    expect(errors.requests).toMatchObject({ sent: 10, succeeded: 0, failed: 10 });
    expect(errors.statusCodes).toEqual({ 500: 10 });
    expect(errors.checks.find((c) => c.name === 'success_ratio')).toMatchObject({ pass: false, actual: 0 });

    const hang = await runLoadTest({ url: `${service.url}/api/hang`, ratePerSec: 10, durationMs: 300, timeoutMs: 200, baselineUrl: false });
    expect(hang.requests).toMatchObject({ sent: 3, timedOut: 3, failed: 3 });
    expect(hang.errors).toEqual({ TIMEOUT: 3 });
    expect(hang.latencyMs).toBeNull();

    const drops = await runLoadTest({ url: `${service.url}/api/slow`, ratePerSec: 20, durationMs: 500, maxInFlight: 1, baselineUrl: false });
    expect(drops.requests.dropped).toBeGreaterThan(0);
    expect(drops.requests.sent + drops.requests.dropped).toBe(10);
    expect(drops.errors.DROPPED).toBe(drops.requests.dropped);

    const refused = await runLoadTest({ url: 'http://127.0.0.1:1/', ratePerSec: 10, durationMs: 200 });
    expect(refused.errors.ECONNREFUSED).toBe(2);
    expect(refused.rss).toMatchObject({ growthMb: null });
    expect(refused.rss!.error).toMatch(/initial: .*ECONNREFUSED/);
    expect(refused.checks.find((c) => c.name === 'rss_growth_mb')).toMatchObject({ pass: false, actual: null });
  });

  it('fails the growth check when the baseline endpoint is missing', async () => {
    const result = await runLoadTest({
      url: `${service.url}/api/items`,
      ratePerSec: 10,
      durationMs: 200,
      baselineUrl: `${service.url}/api/nope`,
      criteria: { maxP95Ms: 10_000 },
    });
    expect(result.rss!.error).toMatch(/answered 404/);
    expect(result.pass).toBe(false);
  });

  it('stops early on abort and reports a failed, partial run', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await runLoadTest({ url: `${service.url}/api/items`, ratePerSec: 20, durationMs: 60_000, signal: controller.signal });
    expect(result.aborted).toBe(true);
    expect(result.requests.scheduled).toBeLessThan(100);
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

describe('parseDurationMs', () => {
  it.each([
    ['10m', 600_000],
    ['10min', 600_000],
    ['30s', 30_000],
    ['30', 30_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each(['', 'ten minutes', '10 parsecs', '-5s'])('rejects %j with INVALID_OPTION', (text) => {
    expect(() => parseDurationMs(text, '--duration')).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', details: { field: '--duration', value: text } }));
  });
});

describe('guard-loadtest bin', () => {
  const bin = join(root, 'dist', 'cli', 'loadtest.js');
  let service: Awaited<ReturnType<typeof startService>>;
  let dir: string;
  beforeAll(async () => {
    if (!existsSync(bin)) throw new Error('build @guard/memory first (pnpm --filter @guard/memory build)');
    service = await startService();
    dir = mkdtempSync(join(tmpdir(), 'guard-loadtest-'));
  });
  afterAll(async () => {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints PASS, writes --json and exits 0', async () => {
    const out = join(dir, 'out.json');
    const { stdout } = await run(process.execPath, [bin, '--url', `${service.url}/api/items`, '--rate', '20', '--duration', '1s', '--json', out, '--max-p95-ms', '10000']);
    expect(stdout).toMatch(/Baseline RSS\s+200\.0 MB/);
    expect(stdout).toMatch(/Final RSS\s+200\.0 MB/);
    expect(stdout).toMatch(/Memory Range\s+200\.0 MB - 200\.0 MB/);
    expect(stdout.trim()).toMatch(/PASS$/);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result).toMatchObject({ pass: true, ratePerSec: 20, durationMs: 1000, requests: { sent: 20, succeeded: 20 } });
  });

  it('exits 1 on FAIL and 2 on bad usage', async () => {
    const fail = await run(process.execPath, [bin, '--url', `${service.url}/api/error`, '--rate', '10', '--duration', '300ms', '--no-baseline']).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect(fail).toMatchObject({ code: 1 });
    expect((fail as { stdout: string }).stdout.trim()).toMatch(/FAIL$/);

    for (const args of [[], ['--url', service.url, '--rate', 'fast'], ['--url', service.url, '--duration', '10 parsecs'], ['--bogus']]) {
      const usage = await run(process.execPath, [bin, ...args]).catch((e: { code: number; stderr: string }) => e);
      expect(usage).toMatchObject({ code: 2 });
    }
    const help = await run(process.execPath, [bin, '--help']);
    expect(help.stdout).toMatch(/Usage: guard-loadtest/);
  });
});
