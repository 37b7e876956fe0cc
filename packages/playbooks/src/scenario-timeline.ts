/** The timeline of one stress scenario; times are ms after the fault was injected. */
export interface ScenarioTimeline {
  readonly scenario: 'S01' | 'S02' | 'S03';
  readonly title: string;
  readonly injectedMs: 0;
  readonly detectedMs: number | undefined;
  readonly remediatedMs: number | undefined;
  readonly recoveredMs: number | undefined;
  /** True when every target below was met. */
  readonly passed: boolean;
  /** What was required, in words. */
  readonly targets: readonly string[];
  /** Targets that were missed. */
  readonly misses: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

/** Times on `performance.now()`'s clock; the timeline holds them relative to `injectedAt`. */
export interface ScenarioTimes {
  readonly injectedAt: number;
  readonly detectedAt: number | undefined;
  readonly remediatedAt: number | undefined;
  readonly recoveredAt: number | undefined;
}

/**
 * A scenario's verdict: its times relative to the injection, and each target as `[words, met]`; it passes when every
 * target was met.
 *
 * @example
 * scenarioTimeline('S01', 'heartbeat pause', times, [['missed heartbeat detected', detectedAt !== undefined]], {});
 */
export function scenarioTimeline(
  scenario: ScenarioTimeline['scenario'],
  title: string,
  times: ScenarioTimes,
  checks: readonly [string, boolean][],
  details: Record<string, unknown>,
): ScenarioTimeline {
  const misses = checks.filter(([, ok]) => !ok).map(([t]) => t);
  return {
    scenario,
    title,
    injectedMs: 0,
    detectedMs: since(times.injectedAt, times.detectedAt),
    remediatedMs: since(times.injectedAt, times.remediatedAt),
    recoveredMs: since(times.injectedAt, times.recoveredAt),
    passed: misses.length === 0,
    targets: checks.map(([t]) => t),
    misses,
    details,
  };
}

/** `ms` to a tenth (undefined stays undefined). */
export const roundTenth = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 10) / 10);

/** ms from `from` to `at`, to a tenth (undefined when it never happened). */
export const since = (from: number, at: number | undefined): number | undefined => roundTenth(at === undefined ? undefined : at - from);

/**
 * Formats timelines as a table: scenario, injected, detected, remediated, recovered (ms), result.
 *
 * @example
 * console.log(formatTimelines([await runS01(), await runS02()]));
 */
export function formatTimelines(timelines: readonly ScenarioTimeline[]): string {
  const rows = [['scenario', 'injected ms', 'detected ms', 'remediated ms', 'recovered ms', 'result']];
  const fmt = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  for (const t of timelines) {
    rows.push([`${t.scenario} ${t.title}`, '0', fmt(t.detectedMs), fmt(t.remediatedMs), fmt(t.recoveredMs), t.passed ? 'PASS' : `MISS: ${t.misses.join('; ')}`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
