import type { LoadTestResult } from './load-test-result.js';

/**
 * Renders a result as a small text report ending in PASS or FAIL.
 *
 * @example
 * console.log(formatLoadTestReport(await runLoadTest({ url, ratePerSec: 5, durationMs: 60_000 })));
 */
export function formatLoadTestReport(result: LoadTestResult): string {
  const l = result.latencyMs;
  const lines = [
    `guard-loadtest ${result.url}`,
    `  rate ${result.ratePerSec}/s for ${result.durationMs / 1000} s (achieved ${result.achievedRatePerSec}/s)${result.aborted ? ' ABORTED' : ''}`,
    `  requests  scheduled ${result.requests.scheduled}  ok ${result.requests.succeeded}  failed ${result.requests.failed}` +
      `  timeouts ${result.requests.timedOut}  dropped ${result.requests.dropped}  success ${(result.successRatio * 100).toFixed(2)} %`,
    l
      ? `  latency   p50 ${l.p50} ms  p95 ${l.p95} ms  p99 ${l.p99} ms  (min ${l.min}, mean ${l.mean}, max ${l.max})`
      : '  latency   no completed requests',
  ];
  if (result.warmup.durationMs > 0) {
    lines.push(`  warm-up   ${result.warmup.durationMs / 1000} s, ${result.warmup.sent} requests (${result.warmup.failed} failed), not judged`);
  }
  const rss = result.rss;
  if (rss) {
    const mb = (bytes: number | null) => (bytes === null ? 'n/a' : `${(bytes / 1048576).toFixed(1)} MB`);
    lines.push(
      `  Initial RSS   ${mb(rss.initialBytes)}${result.warmup.durationMs > 0 ? ' (before warm-up)' : ''}`,
      `  Baseline RSS  ${mb(rss.baselineBytes)}`,
      `  Final RSS     ${mb(rss.finalBytes)}  (growth ${rss.growthMb === null ? 'n/a' : `${rss.growthMb} MB`})`,
      rss.minBytes === null
        ? '  Memory Range  n/a'
        : `  Memory Range  ${mb(rss.minBytes)} - ${mb(rss.maxBytes)} (${rss.rangeMb} MB; peak at ${((rss.peakAtMs ?? 0) / 1000).toFixed(1)} s, ` +
            `${rss.peakGrowthMb === null ? 'n/a' : `+${rss.peakGrowthMb} MB`} over baseline; ${rss.samples.length} samples during the run)`,
    );
    if (rss.error) lines.push(`  rss       not read: ${rss.error}`);
  }
  for (const check of result.checks) {
    const op = check.name === 'success_ratio' ? '>=' : '<';
    lines.push(`  ${check.pass ? 'ok  ' : 'FAIL'}      ${check.name} ${check.actual ?? 'n/a'} ${op} ${check.limit}${check.note ? ` (${check.note})` : ''}`);
  }
  lines.push(result.pass ? 'PASS' : 'FAIL');
  return lines.join('\n');
}
