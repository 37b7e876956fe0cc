import { assertNumberOption, GuardError } from '@guard/core';

/** Pass/fail limits; defaults are the WAL-609 seed's (growth < 50 MB, p95 < 200 ms) plus a success ratio. */
export interface LoadTestCriteria {
  /** RSS growth (final minus baseline, from `/self-check/baseline`) must stay below this. Default 50. */
  readonly maxRssGrowthMb?: number;
  /** When set, the peak RSS sampled during the run minus the baseline must stay below this too. Off by default. */
  readonly maxRssPeakGrowthMb?: number;
  /** p95 latency must stay below this. Default 200. */
  readonly maxP95Ms?: number;
  /** Share of 2xx-3xx answers must be at least this. Default 0.99. */
  readonly minSuccessRatio?: number;
}

/**
 * Options for {@link runLoadTest}.
 *
 * @example
 * const options: LoadTestOptions = { url: 'http://127.0.0.1:3000/api/items', ratePerSec: 5, durationMs: parseDuration('10m') };
 */
export interface LoadTestOptions {
  /** Target URL (http or https). */
  readonly url: string | URL;
  /** Requests per second, held open-loop: requests start on schedule whether or not earlier ones answered. */
  readonly ratePerSec: number;
  readonly durationMs: number;
  /** Where RSS is read (before, after the warm-up, during the run, after). Default: `/self-check/baseline` on the target's origin; `false` skips the RSS checks. */
  readonly baselineUrl?: string | URL | false;
  /**
   * Reads the target's RSS in bytes instead of `baselineUrl` (e.g. from a metrics endpoint, or `process.memoryUsage`
   * when the target runs in this process).
   */
  readonly rssSampler?: (signal: AbortSignal) => number | Promise<number>;
  /**
   * Warm-up at the same rate before the measured run (JIT, caches and pools fill up); its requests are not judged,
   * and the baseline RSS is read after it. Default 10 % of `durationMs`, at most 30 000; 0 skips it.
   */
  readonly warmupMs?: number;
  /** How often RSS is sampled during the run, so a spike in the middle shows. Default 1000. */
  readonly rssSampleIntervalMs?: number;
  /** Default `GET`. */
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Per-request timeout. Default 5000. */
  readonly timeoutMs?: number;
  /** Requests in flight at most; a request due while the cap is reached is counted as dropped. Default 1000. */
  readonly maxInFlight?: number;
  readonly criteria?: LoadTestCriteria;
  /** Stops the run early; the result then has `aborted: true` and fails. */
  readonly signal?: AbortSignal;
  /**
   * Called when a phase starts and ends and every `progressIntervalMs` during it, so a caller (the CLI) can show a
   * long run's progress. A throwing callback is ignored: progress never fails the run.
   */
  readonly onProgress?: (progress: LoadTestProgress) => void;
  /** How often `onProgress` is called during a phase. Default 1000. */
  readonly progressIntervalMs?: number;
}

/**
 * A progress report from {@link runLoadTest}: which phase, how far into it, and the counts so far.
 *
 * @example
 * runLoadTest({ url, ratePerSec: 5, durationMs: 60_000, onProgress: (p) => console.error(p.phase, p.elapsedMs) });
 */
export interface LoadTestProgress {
  /** `warmup` (not judged), `run` (measured), `done` (after the final RSS reading). */
  readonly phase: 'warmup' | 'run' | 'done';
  /** `start` and `end` once per phase, `tick` every `progressIntervalMs` in between. */
  readonly kind: 'start' | 'tick' | 'end';
  /** Milliseconds since this phase started. */
  readonly elapsedMs: number;
  /** The phase's planned length. */
  readonly phaseDurationMs: number;
  /** Requests sent, answered 2xx-3xx and failed so far in this phase. */
  readonly sent: number;
  readonly succeeded: number;
  readonly failed: number;
  /** The latest RSS reading (bytes), or null when none was read yet or RSS is not measured. */
  readonly rssBytes: number | null;
}

/** {@link LoadTestOptions} validated, with every default applied. */
export interface LoadTestSettings {
  readonly url: URL;
  readonly ratePerSec: number;
  readonly durationMs: number;
  /** Where RSS is read over HTTP; undefined with `rssSampler` or `baselineUrl: false`. */
  readonly baselineUrl: URL | undefined;
  readonly rssSampler: ((signal: AbortSignal) => number | Promise<number>) | undefined;
  /** True when RSS is read at all (a sampler or a baseline URL). */
  readonly measuresRss: boolean;
  readonly warmupMs: number;
  readonly rssSampleIntervalMs: number;
  readonly method: string;
  /** The caller's headers, plus `content-type: application/json` for a body without one. */
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly criteria: Required<Omit<LoadTestCriteria, 'maxRssPeakGrowthMb'>> & Pick<LoadTestCriteria, 'maxRssPeakGrowthMb'>;
  readonly onProgress: ((progress: LoadTestProgress) => void) | undefined;
  readonly progressIntervalMs: number;
}

/**
 * Validates `options` (`INVALID_OPTION` naming the field) and applies the defaults.
 *
 * @example
 * resolveLoadTestOptions({ url: 'http://127.0.0.1:3000/', ratePerSec: 5, durationMs: 60_000 }).warmupMs; // 6000
 */
export function resolveLoadTestOptions(options: LoadTestOptions): LoadTestSettings {
  const url = toUrl(options.url, 'url');
  assertNumberOption('ratePerSec', options.ratePerSec, { min: 0.001, max: 100_000 });
  assertNumberOption('durationMs', options.durationMs, { min: 1 });
  const timeoutMs = options.timeoutMs ?? 5000;
  assertNumberOption('timeoutMs', timeoutMs, { min: 1 });
  const maxInFlight = options.maxInFlight ?? 1000;
  assertNumberOption('maxInFlight', maxInFlight, { min: 1, integer: true });
  const warmupMs = options.warmupMs ?? Math.min(30_000, Math.round(options.durationMs * 0.1));
  assertNumberOption('warmupMs', warmupMs, { min: 0 });
  const rssSampleIntervalMs = options.rssSampleIntervalMs ?? 1000;
  assertNumberOption('rssSampleIntervalMs', rssSampleIntervalMs, { min: 10 });
  const progressIntervalMs = options.progressIntervalMs ?? 1000;
  assertNumberOption('progressIntervalMs', progressIntervalMs, { min: 10 });
  const maxRssGrowthMb = options.criteria?.maxRssGrowthMb ?? 50;
  const maxP95Ms = options.criteria?.maxP95Ms ?? 200;
  const minSuccessRatio = options.criteria?.minSuccessRatio ?? 0.99;
  const maxRssPeakGrowthMb = options.criteria?.maxRssPeakGrowthMb;
  assertNumberOption('criteria.maxRssGrowthMb', maxRssGrowthMb);
  assertNumberOption('criteria.maxP95Ms', maxP95Ms, { min: 0 });
  assertNumberOption('criteria.minSuccessRatio', minSuccessRatio, { min: 0, max: 1 });
  if (maxRssPeakGrowthMb !== undefined) assertNumberOption('criteria.maxRssPeakGrowthMb', maxRssPeakGrowthMb);
  if (options.rssSampler !== undefined && typeof options.rssSampler !== 'function') {
    throw new GuardError('INVALID_OPTION', 'rssSampler must be a function', { details: { field: 'rssSampler' } });
  }
  const baselineUrl =
    options.rssSampler !== undefined || options.baselineUrl === false
      ? undefined
      : toUrl(options.baselineUrl ?? new URL('/self-check/baseline', url), 'baselineUrl');
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  return {
    url,
    ratePerSec: options.ratePerSec,
    durationMs: options.durationMs,
    baselineUrl,
    rssSampler: options.rssSampler,
    measuresRss: options.rssSampler !== undefined || baselineUrl !== undefined,
    warmupMs,
    rssSampleIntervalMs,
    method: (options.method ?? 'GET').toUpperCase(),
    headers,
    body: options.body,
    timeoutMs,
    maxInFlight,
    criteria: { maxRssGrowthMb, maxP95Ms, minSuccessRatio, ...(maxRssPeakGrowthMb === undefined ? {} : { maxRssPeakGrowthMb }) },
    onProgress: options.onProgress,
    progressIntervalMs,
  };
}

function toUrl(value: string | URL, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (error) {
    throw new GuardError('INVALID_OPTION', `${field} must be an absolute http(s) URL, got ${JSON.stringify(String(value))}`, {
      cause: error,
      details: { field },
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new GuardError('INVALID_OPTION', `${field} must be http or https, got ${url.protocol}`, { details: { field } });
  }
  return url;
}
