import type { LoadTestSettings } from './load-test-options.js';
import type { LatencySummary, LoadTestCheck, LoadTestRss } from './load-test-result.js';
import { round2 } from './load-test-units.js';

/** What a run measured, as the verdict reads it. */
export interface LoadTestMeasures {
  readonly rss: LoadTestRss | null;
  readonly latencyMs: LatencySummary | null;
  readonly successRatio: number;
  readonly aborted: boolean;
  /** Requests planned for the measured run, and how many were scheduled before it ended. */
  readonly planned: number;
  readonly scheduled: number;
}

/**
 * Judges a run by the criteria: RSS growth (final minus baseline) and, when set, peak growth below their limits,
 * p95 below its limit, a success ratio at least its limit, and the run not aborted.
 *
 * @example
 * const checks = judgeLoadTest(settings.criteria, measures);
 * const pass = checks.every((check) => check.pass);
 */
export function judgeLoadTest(criteria: LoadTestSettings['criteria'], measures: LoadTestMeasures): LoadTestCheck[] {
  const { rss, latencyMs, successRatio } = measures;
  const checks: LoadTestCheck[] = [];
  if (rss !== null) {
    checks.push({
      name: 'rss_growth_mb',
      limit: criteria.maxRssGrowthMb,
      actual: rss.growthMb,
      pass: rss.growthMb !== null && rss.growthMb < criteria.maxRssGrowthMb,
      ...(rss.error === undefined ? {} : { note: `RSS not read: ${rss.error}` }),
    });
    const maxPeak = criteria.maxRssPeakGrowthMb;
    if (maxPeak !== undefined) {
      checks.push({
        name: 'rss_peak_growth_mb',
        limit: maxPeak,
        actual: rss.peakGrowthMb,
        pass: rss.peakGrowthMb !== null && rss.peakGrowthMb < maxPeak,
        ...(rss.peakAtMs === null ? {} : { note: `peak at ${round2(rss.peakAtMs / 1000)} s into the run` }),
      });
    }
  }
  checks.push({ name: 'p95_ms', limit: criteria.maxP95Ms, actual: latencyMs?.p95 ?? null, pass: latencyMs !== null && latencyMs.p95 < criteria.maxP95Ms });
  checks.push({ name: 'success_ratio', limit: criteria.minSuccessRatio, actual: round2(successRatio * 10_000) / 10_000, pass: successRatio >= criteria.minSuccessRatio });
  if (measures.aborted) checks.push({ name: 'completed', limit: measures.planned, actual: measures.scheduled, pass: false, note: 'the run was aborted' });
  return checks;
}
