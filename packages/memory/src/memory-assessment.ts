import type { MemoryAlarm } from '@guard/core';
import type { GrowthEstimate } from './growth-window.js';
import type { MemoryBaseline } from './memory-baseline.js';
import { BYTES_PER_MB } from './memory-snapshot.js';
import type { MemorySnapshot } from './memory-snapshot.js';
import type { MemoryThresholds } from './memory-thresholds.js';
import type { RestartReason } from './restart-budget.js';

/** The guardrail's overall verdict. */
export type MemoryStatus = MemoryAlarm['status'];

/** The status as a number, for the `status` gauge and for ordering reasons. */
export const STATUS_LEVEL: Readonly<Record<MemoryStatus, 0 | 1 | 2>> = { healthy: 0, warning: 1, critical: 2 };

const STATUS_OF_LEVEL: readonly MemoryStatus[] = ['healthy', 'warning', 'critical'];

/** One cache probe's verdict. */
export interface CacheStatus {
  readonly name: string;
  readonly entries: number;
  readonly threshold: number;
  readonly status: MemoryStatus;
}

/**
 * The result of one check (or a live assessment).
 *
 * @example
 * const { status, reasons, growth, timeToThresholdMs } = guardrail.check();
 */
export interface MemoryAssessment {
  readonly status: MemoryStatus;
  /** Human-readable reasons for a non-healthy status, most severe first. */
  readonly reasons: readonly string[];
  readonly snapshot: MemorySnapshot;
  readonly growth: GrowthEstimate;
  /** Predicted time until RSS reaches the threshold at the current growth, or null when it is not growing. */
  readonly timeToThresholdMs: number | null;
  readonly caches: readonly CacheStatus[];
  readonly baseline: MemoryBaseline | null;
  /** Set when a restart is advised: hard RSS or cache threshold, or a predicted breach within `predictedBreachMs`. */
  readonly restartReason: Exclude<RestartReason, 'manual'> | null;
}

/** The status policy's inputs besides the thresholds that can change at run time. */
export interface AssessmentPolicy extends MemoryThresholds {
  /** Points needed before a growth rate predicts a time to the threshold. */
  readonly minLeakSamples: number;
  /** A leak predicted to breach the RSS threshold within this time is critical. */
  readonly predictedBreachMs: number;
}

const MS_PER_MIN = 60_000;
const round = (value: number, digits = 2) => Number(value.toFixed(digits));
const percent = (ratio: number) => round(ratio * 100, 0);

/**
 * The status policy: maps a snapshot and its growth to `healthy | warning | critical` with reasons (most severe
 * first) and, for a hard threshold or a predicted breach, the restart it advises.
 *
 * | status | when (any of) |
 * | --- | --- |
 * | critical | RSS or a cache at or over its threshold; a leak predicted to reach the RSS threshold within `predictedBreachMs` |
 * | warning | RSS or a cache at or over `warningRatio` of its threshold; a leak |
 */
export function assessMemory(
  snapshot: MemorySnapshot,
  growth: GrowthEstimate,
  policy: AssessmentPolicy,
  baseline: MemoryBaseline | null,
): MemoryAssessment {
  const { rssThresholdMb, cacheEntriesThreshold, warningRatio, leakRateMbPerMin } = policy;
  const rssMb = snapshot.rssBytes / BYTES_PER_MB;
  const found: { level: number; text: string }[] = [];
  let level = 0;
  let restartReason: MemoryAssessment['restartReason'] = null;
  const raise = (to: 1 | 2, text: string) => {
    if (to > level) level = to;
    found.push({ level: to, text });
  };

  if (rssMb >= rssThresholdMb) {
    raise(2, `rss ${round(rssMb, 1)} MB is at or above the ${rssThresholdMb} MB threshold`);
    restartReason = 'rss_threshold';
  } else if (rssMb >= rssThresholdMb * warningRatio) {
    raise(1, `rss ${round(rssMb, 1)} MB is above ${percent(warningRatio)}% of the ${rssThresholdMb} MB threshold`);
  }

  const caches: CacheStatus[] = [];
  for (const name in snapshot.caches) {
    const entries = snapshot.caches[name]!;
    let status: MemoryStatus = 'healthy';
    if (entries >= cacheEntriesThreshold) {
      status = 'critical';
      raise(2, `cache ${name} holds ${entries} entries, at or above the ${cacheEntriesThreshold} threshold`);
      restartReason ??= 'cache_threshold';
    } else if (entries >= cacheEntriesThreshold * warningRatio) {
      status = 'warning';
      raise(1, `cache ${name} holds ${entries} entries, above ${percent(warningRatio)}% of the ${cacheEntriesThreshold} threshold`);
    }
    caches.push({ name, entries, threshold: cacheEntriesThreshold, status });
  }

  let timeToThresholdMs: number | null = null;
  if (growth.samples >= policy.minLeakSamples && growth.slopeMbPerMin > 0) {
    timeToThresholdMs = Math.max(0, ((rssThresholdMb - rssMb) / growth.slopeMbPerMin) * MS_PER_MIN);
  }
  if (growth.leakDetected) {
    const leak = `rss growing ${round(growth.slopeMbPerMin)} MB/min (R² ${round(growth.r2)} over ${growth.samples} samples), at or above the ${leakRateMbPerMin} MB/min leak limit`;
    if (timeToThresholdMs !== null && timeToThresholdMs <= policy.predictedBreachMs && rssMb < rssThresholdMb) {
      raise(2, `${leak}; predicted to reach ${rssThresholdMb} MB in ${Math.round(timeToThresholdMs / 1000)} s`);
      restartReason ??= 'predicted_breach';
    } else {
      raise(1, leak);
    }
  }

  if (found.length > 1) found.sort((a, b) => b.level - a.level);
  const reasons = found.map((reason) => reason.text);
  return { status: STATUS_OF_LEVEL[level]!, reasons, snapshot, growth, timeToThresholdMs, caches, baseline, restartReason };
}
