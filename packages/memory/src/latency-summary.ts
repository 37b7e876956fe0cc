import type { LatencySummary } from './load-test-result.js';
import { round2 } from './load-test-units.js';

/** The value at percentile `p` of sorted values (nearest rank). */
function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/**
 * Min, mean, p50/p90/p95/p99 and max of the first `count` latencies (sorted in place); null when `count` is 0.
 *
 * @example
 * summarizeLatencies(Float64Array.of(12, 3, 7), 3); // { min: 3, mean: 7.33, p50: 7, ..., max: 12 }
 */
export function summarizeLatencies(latencies: Float64Array, count: number): LatencySummary | null {
  if (count === 0) return null;
  const sorted = latencies.subarray(0, count).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    min: round2(sorted[0]!),
    mean: round2(sum / count),
    p50: round2(percentile(sorted, 50)),
    p90: round2(percentile(sorted, 90)),
    p95: round2(percentile(sorted, 95)),
    p99: round2(percentile(sorted, 99)),
    max: round2(sorted[count - 1]!),
  };
}
