// The `@guard/memory/load-test` entry: `runLoadTest` wires the parts together. The options and their defaults are in
// load-test-options.ts, the request schedule in open-loop-runner.ts, RSS in rss-recorder.ts, the latency figures in
// latency-summary.ts, the pass/fail checks in load-test-verdict.ts and the text report in load-test-report.ts.
import { resolveLoadTestOptions } from './load-test-options.js';
import type { LoadTestOptions } from './load-test-options.js';
import type { LoadTestResult } from './load-test-result.js';
import { summarizeLatencies } from './latency-summary.js';
import { round2 } from './load-test-units.js';
import { judgeLoadTest } from './load-test-verdict.js';
import { OpenLoopRunner } from './open-loop-runner.js';
import { RssRecorder } from './rss-recorder.js';

export type { LoadTestCriteria, LoadTestOptions, LoadTestProgress } from './load-test-options.js';
export type { LatencySummary, LoadTestCheck, LoadTestResult, LoadTestRss, RssSample } from './load-test-result.js';
export { formatLoadTestReport } from './load-test-report.js';

/**
 * Load-tests a URL at a fixed request rate (open-loop: requests start on schedule, so a slow server cannot slow
 * the test down and hide its own latency). After a warm-up (not judged), reads RSS from `/self-check/baseline`: Initial
 * (before the warm-up), Baseline (after it), every `rssSampleIntervalMs` during the run (so a spike in the middle shows
 * in the Memory Range and peak) and Final; judges the run
 * by the WAL-609 criteria: RSS growth < 50 MB, p95 < 200 ms, plus at least 99 % successful answers.
 *
 * @example
 * const result = await runLoadTest({ url: 'http://127.0.0.1:3000/api/items', ratePerSec: 5, durationMs: 600_000 });
 * console.log(formatLoadTestReport(result));
 */
export async function runLoadTest(options: LoadTestOptions): Promise<LoadTestResult> {
  options.signal?.throwIfAborted();
  const settings = resolveLoadTestOptions(options);
  const planned = Math.max(1, Math.round((settings.durationMs / 1000) * settings.ratePerSec));
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const rss = new RssRecorder(settings, stop.signal);
  const runner = new OpenLoopRunner(settings, planned, stop.signal, () => rss.latestBytes);
  const startedAt = new Date();
  let elapsedMs: number;
  try {
    await rss.readInitial();
    const warmupCount = settings.warmupMs > 0 ? Math.max(1, Math.round((settings.warmupMs / 1000) * settings.ratePerSec)) : 0;
    if (warmupCount > 0) await runner.runPhase(warmupCount, false);
    await rss.readBaseline();
    // Sample RSS during the run, so a spike in the middle shows even when RSS is back down at the end.
    const sampling = new AbortController();
    const runStart = performance.now();
    const sampler = rss.sampleUntil(sampling.signal, runStart);
    try {
      elapsedMs = await runner.runPhase(planned, true);
    } finally {
      sampling.abort();
      await sampler;
    }
    await rss.readFinal(runStart);
    runner.progress('done', 'end', runStart, settings.durationMs);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    runner.close();
    rss.close();
  }

  const { counts } = runner;
  const latencyMs = summarizeLatencies(runner.latencies, runner.completed);
  const successRatio = counts.scheduled === 0 ? 0 : counts.succeeded / counts.scheduled;
  const aborted = stop.signal.aborted;
  const rssReport = rss.report();
  const checks = judgeLoadTest(settings.criteria, { rss: rssReport, latencyMs, successRatio, aborted, planned, scheduled: counts.scheduled });
  return {
    url: settings.url.href,
    ratePerSec: settings.ratePerSec,
    durationMs: settings.durationMs,
    startedAt: startedAt.toISOString(),
    elapsedMs: round2(elapsedMs),
    aborted,
    requests: counts,
    successRatio,
    achievedRatePerSec: elapsedMs > 0 ? round2((counts.sent * 1000) / elapsedMs) : 0,
    latencyMs,
    statusCodes: runner.statusCodes,
    errors: runner.errors,
    warmup: { durationMs: settings.warmupMs, ...runner.warmup },
    rss: rssReport,
    checks,
    pass: checks.every((check) => check.pass),
  };
}
