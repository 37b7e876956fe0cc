import type { GrowthEstimate } from './growth-window.js';
import type { HeapSnapshotRecord } from './heap-snapshot.js';
import type { MemoryAssessment, MemoryStatus } from './memory-assessment.js';
import type { MemoryBaseline } from './memory-baseline.js';
import type { MemorySnapshot } from './memory-snapshot.js';
import type { RestartState } from './restart-controller.js';

/**
 * Everything a dashboard needs to draw the RSS chart with its regression line and threshold.
 *
 * @example
 * const { series, regression, thresholds } = guardrail.report();
 * const points = series.map((s) => [s.at, s.rssBytes / BYTES_PER_MB]);
 */
export interface MemoryReport {
  readonly name: string;
  readonly status: MemoryStatus;
  /** The last check, or null before the first one. */
  readonly latest: MemoryAssessment | null;
  /** Snapshots kept (at most `retentionMs` old), oldest first. */
  readonly series: readonly MemorySnapshot[];
  /** The regression line of the latest check, with the window it covers. */
  readonly regression: (GrowthEstimate & { readonly windowStartAt: number }) | null;
  readonly thresholds: {
    readonly rssBytes: number;
    readonly rssMb: number;
    readonly warningRatio: number;
    readonly cacheEntries: number;
    readonly leakRateMbPerMin: number;
    readonly minFitR2: number;
    readonly baselineAcceptanceMb: number;
  };
  readonly baseline: MemoryBaseline | null;
  readonly restart: RestartState & { readonly autoRestart: boolean };
  readonly lastHeapSnapshot: HeapSnapshotRecord | null;
  readonly checkIntervalMs: number;
  readonly leakWindowMs: number;
  /** Snapshots before this epoch ms are start-up growth, left out of the regression (`startupGraceMs`); null before the first check. */
  readonly startupGraceEndsAt: number | null;
}
