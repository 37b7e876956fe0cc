// The shape of a load test's result (`runLoadTest`'s return value), re-exported by `@guard/memory/load-test`.

/** One pass/fail criterion. */
export interface LoadTestCheck {
  readonly name: 'rss_growth_mb' | 'rss_peak_growth_mb' | 'p95_ms' | 'success_ratio' | 'completed';
  /** `<`, or `>=` for the success ratio. */
  readonly limit: number;
  readonly actual: number | null;
  readonly pass: boolean;
  readonly note?: string;
}

/** Latency percentiles in ms, measured from each request's scheduled start to the end of its response. */
export interface LatencySummary {
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * The outcome of {@link runLoadTest}.
 *
 * @example
 * const { pass, latencyMs, rss } = await runLoadTest(options);
 */
export interface LoadTestResult {
  readonly url: string;
  readonly ratePerSec: number;
  readonly durationMs: number;
  readonly startedAt: string;
  readonly elapsedMs: number;
  readonly aborted: boolean;
  readonly requests: {
    readonly scheduled: number;
    readonly sent: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly timedOut: number;
    readonly dropped: number;
  };
  readonly successRatio: number;
  readonly achievedRatePerSec: number;
  /** Null when no request completed. */
  readonly latencyMs: LatencySummary | null;
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly errors: Readonly<Record<string, number>>;
  /** The warm-up before the measured run (its requests are not in `requests` or `latencyMs`). */
  readonly warmup: { readonly durationMs: number; readonly sent: number; readonly succeeded: number; readonly failed: number };
  readonly rss: LoadTestRss | null;
  readonly checks: readonly LoadTestCheck[];
  readonly pass: boolean;
}

/** One RSS reading during the measured run. */
export interface RssSample {
  /** Milliseconds since the measured run started. */
  readonly atMs: number;
  readonly rssBytes: number;
}

/**
 * RSS over the run, with the seed's names: Initial RSS (before the warm-up), Baseline RSS (after it), Final RSS
 * (after the run) and the Memory Range (lowest to highest reading, samples during the run included).
 */
export interface LoadTestRss {
  /** Where RSS was read: the baseline URL, or `'rssSampler'`. */
  readonly baselineUrl: string;
  readonly initialBytes: number | null;
  readonly baselineBytes: number | null;
  readonly finalBytes: number | null;
  /** Same as `baselineBytes` (the reference of the growth check). */
  readonly beforeBytes: number | null;
  /** Same as `finalBytes`. */
  readonly afterBytes: number | null;
  /** Final minus baseline. */
  readonly growthBytes: number | null;
  readonly growthMb: number | null;
  /** Lowest and highest of baseline, samples and final; null when none was read. */
  readonly minBytes: number | null;
  readonly maxBytes: number | null;
  /** `maxBytes - minBytes`. */
  readonly rangeBytes: number | null;
  readonly rangeMb: number | null;
  /** When the highest reading was taken, ms since the measured run started (0 = the baseline). */
  readonly peakAtMs: number | null;
  /** Highest reading minus baseline. */
  readonly peakGrowthMb: number | null;
  /** Readings during the run, in order (at most 10 000 kept; min/max cover all). */
  readonly samples: readonly RssSample[];
  /** Samples that could not be read. */
  readonly sampleErrors: number;
  readonly error?: string;
}
