import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { assertNumberOption, errorMessage, GuardError, linkSignal, sleep } from '@guard/core';

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

const MAX_KEPT_SAMPLES = 10_000;

function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

const round = (value: number) => Math.round(value * 100) / 100;

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

interface Exchange {
  readonly status: number;
  readonly body: string;
}

function exchange(
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; agent: HttpAgent; signal: AbortSignal; keepBody: boolean },
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: init.method, headers: init.headers, agent: init.agent, signal: init.signal }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (init.keepBody) chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: init.keepBody ? Buffer.concat(chunks).toString('utf8') : '' }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

function errorCode(error: unknown, timedOut: boolean): string {
  if (timedOut) return 'TIMEOUT';
  const err = error as { code?: unknown; name?: unknown };
  if (typeof err?.code === 'string') return err.code;
  if (err?.name === 'AbortError') return 'ABORTED';
  return 'ERROR';
}

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
  const url = toUrl(options.url, 'url');
  assertNumberOption('ratePerSec', options.ratePerSec, { min: 0.001, max: 100_000 });
  assertNumberOption('durationMs', options.durationMs, { min: 1 });
  const timeoutMs = options.timeoutMs ?? 5000;
  assertNumberOption('timeoutMs', timeoutMs, { min: 1 });
  const maxInFlight = options.maxInFlight ?? 1000;
  assertNumberOption('maxInFlight', maxInFlight, { min: 1, integer: true });
  const warmupMs = options.warmupMs ?? Math.min(30_000, Math.round(options.durationMs * 0.1));
  assertNumberOption('warmupMs', warmupMs, { min: 0 });
  const sampleIntervalMs = options.rssSampleIntervalMs ?? 1000;
  assertNumberOption('rssSampleIntervalMs', sampleIntervalMs, { min: 10 });
  const progressIntervalMs = options.progressIntervalMs ?? 1000;
  assertNumberOption('progressIntervalMs', progressIntervalMs, { min: 10 });
  const maxRssGrowthMb = options.criteria?.maxRssGrowthMb ?? 50;
  const maxP95Ms = options.criteria?.maxP95Ms ?? 200;
  const minSuccessRatio = options.criteria?.minSuccessRatio ?? 0.99;
  const maxPeakGrowthMb = options.criteria?.maxRssPeakGrowthMb;
  assertNumberOption('criteria.maxRssGrowthMb', maxRssGrowthMb);
  assertNumberOption('criteria.maxP95Ms', maxP95Ms, { min: 0 });
  assertNumberOption('criteria.minSuccessRatio', minSuccessRatio, { min: 0, max: 1 });
  if (maxPeakGrowthMb !== undefined) assertNumberOption('criteria.maxRssPeakGrowthMb', maxPeakGrowthMb);
  if (options.rssSampler !== undefined && typeof options.rssSampler !== 'function') {
    throw new GuardError('INVALID_OPTION', 'rssSampler must be a function', { details: { field: 'rssSampler' } });
  }
  const baselineUrl =
    options.rssSampler !== undefined || options.baselineUrl === false
      ? undefined
      : toUrl(options.baselineUrl ?? new URL('/self-check/baseline', url), 'baselineUrl');
  const measuresRss = options.rssSampler !== undefined || baselineUrl !== undefined;
  const method = (options.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }

  const AgentClass = url.protocol === 'https:' ? HttpsAgent : HttpAgent;
  const agent = new AgentClass({ keepAlive: true, maxSockets: maxInFlight });
  const baselineAgent = new HttpAgent({ keepAlive: false });
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const readRss = async (): Promise<number> => {
    using deadline = linkSignal(stop.signal, { timeoutMs });
    const { signal } = deadline;
    if (options.rssSampler !== undefined) {
      const rss = await options.rssSampler(signal);
      if (typeof rss !== 'number' || !Number.isFinite(rss)) throw new Error(`rssSampler returned ${String(rss)}, not a number of bytes`);
      return rss;
    }
    const target = baselineUrl!;
    const { status, body } = await exchange(target, {
      method: 'GET',
      headers: { accept: 'application/json' },
      agent: target.protocol === 'https:' ? new HttpsAgent({ keepAlive: false }) : baselineAgent,
      signal,
      keepBody: true,
    });
    if (status < 200 || status >= 300) throw new Error(`${target.href} answered ${status}`);
    const parsed = JSON.parse(body) as { current?: { rssBytes?: unknown }; rssBytes?: unknown };
    const rss = parsed.current?.rssBytes ?? parsed.rssBytes;
    if (typeof rss !== 'number') throw new Error(`${target.href} has no current.rssBytes`);
    return rss;
  };
  const rssErrors: string[] = [];
  const tryReadRss = async (when: string): Promise<number | null> => {
    if (!measuresRss || stop.signal.aborted) return null;
    try {
      return await readRss();
    } catch (error) {
      rssErrors.push(`${when}: ${errorMessage(error)}`);
      return null;
    }
  };

  const startedAt = new Date();
  const counts = { scheduled: 0, sent: 0, succeeded: 0, failed: 0, timedOut: 0, dropped: 0 };
  const warmCounts = { sent: 0, succeeded: 0, failed: 0 };
  const statusCodes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const total = Math.max(1, Math.round((options.durationMs / 1000) * options.ratePerSec));
  const latencies = new Float64Array(total);
  let completed = 0;
  const inFlight = new Set<Promise<void>>();
  const samples: RssSample[] = [];
  let sampleErrors = 0;
  let minBytes: number | null = null;
  let maxBytes: number | null = null;
  let peakAtMs: number | null = null;
  let latestRssBytes: number | null = null;
  const observe = (rssBytes: number, atMs: number) => {
    latestRssBytes = rssBytes;
    if (minBytes === null || rssBytes < minBytes) minBytes = rssBytes;
    if (maxBytes === null || rssBytes > maxBytes) {
      maxBytes = rssBytes;
      peakAtMs = atMs;
    }
  };
  let initialBytes: number | null;
  let baselineBytes: number | null;
  let finalBytes: number | null;
  let elapsedMs: number;

  const fire = (dueAt: number, measured: boolean) => {
    const deadline = linkSignal(stop.signal, { timeoutMs });
    const { signal } = deadline;
    const request = exchange(url, { method, headers, ...(options.body === undefined ? {} : { body: options.body }), agent, signal, keepBody: false });
    const run = (
      measured
        ? request.then(
            ({ status }) => {
              statusCodes[status] = (statusCodes[status] ?? 0) + 1;
              if (status >= 200 && status < 400) counts.succeeded++;
              else counts.failed++;
              latencies[completed++] = performance.now() - dueAt;
            },
            (error: unknown) => {
              counts.failed++;
              const timedOut = signal.aborted && !stop.signal.aborted;
              if (timedOut) counts.timedOut++;
              const code = errorCode(error, timedOut);
              errors[code] = (errors[code] ?? 0) + 1;
            },
          )
        : request.then(
            ({ status }) => {
              if (status >= 200 && status < 400) warmCounts.succeeded++;
              else warmCounts.failed++;
            },
            () => {
              warmCounts.failed++;
            },
          )
    ).finally(() => {
      deadline.dispose();
      inFlight.delete(run);
    });
    inFlight.add(run);
  };

  const report = (phaseName: LoadTestProgress['phase'], kind: LoadTestProgress['kind'], startedAt: number, phaseDurationMs: number) => {
    if (options.onProgress === undefined) return;
    const c = phaseName === 'warmup' ? warmCounts : counts;
    try {
      options.onProgress({
        phase: phaseName,
        kind,
        elapsedMs: round(performance.now() - startedAt),
        phaseDurationMs,
        sent: c.sent,
        succeeded: c.succeeded,
        failed: c.failed,
        rssBytes: latestRssBytes,
      });
    } catch {
      // Progress is for the operator's eyes; a failing callback must not fail the run.
    }
  };

  /** Holds the rate for `count` requests from `start`; the measured run counts and times them, the warm-up does not. */
  const phase = async (count: number, measured: boolean): Promise<number> => {
    const intervalMs = 1000 / options.ratePerSec;
    const start = performance.now();
    const phaseName = measured ? 'run' : 'warmup';
    const phaseDurationMs = round(count * intervalMs);
    report(phaseName, 'start', start, phaseDurationMs);
    const ticker = options.onProgress === undefined ? undefined : setInterval(() => report(phaseName, 'tick', start, phaseDurationMs), progressIntervalMs);
    ticker?.unref();
    try {
      return await runPhase(count, measured, intervalMs, start);
    } finally {
      clearInterval(ticker);
      report(phaseName, 'end', start, phaseDurationMs);
    }
  };

  const runPhase = async (count: number, measured: boolean, intervalMs: number, start: number): Promise<number> => {
    let i = 0;
    while (i < count && !stop.signal.aborted) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 1) {
        try {
          await sleep(wait, { signal: stop.signal });
        } catch {
          break;
        }
      }
      const now = performance.now();
      while (i < count && start + i * intervalMs <= now + 0.5) {
        if (measured) counts.scheduled++;
        if (inFlight.size >= maxInFlight) {
          if (measured) {
            counts.dropped++;
            counts.failed++;
            errors.DROPPED = (errors.DROPPED ?? 0) + 1;
          } else warmCounts.failed++;
        } else {
          if (measured) counts.sent++;
          else warmCounts.sent++;
          fire(start + i * intervalMs, measured);
        }
        i++;
      }
    }
    await Promise.allSettled([...inFlight]);
    return performance.now() - start;
  };

  try {
    initialBytes = await tryReadRss('initial');
    latestRssBytes = initialBytes;
    const warmupCount = warmupMs > 0 ? Math.max(1, Math.round((warmupMs / 1000) * options.ratePerSec)) : 0;
    if (warmupCount > 0) await phase(warmupCount, false);
    baselineBytes = await tryReadRss('baseline');
    if (baselineBytes !== null) observe(baselineBytes, 0);

    // Sample RSS during the run, so a spike in the middle shows even when RSS is back down at the end.
    const sampling = new AbortController();
    const runStart = performance.now();
    const sampler = measuresRss
      ? (async () => {
          for (;;) {
            try {
              await sleep(sampleIntervalMs, { signal: AbortSignal.any([sampling.signal, stop.signal]) });
            } catch {
              return;
            }
            try {
              const rssBytes = await readRss();
              const atMs = round(performance.now() - runStart);
              observe(rssBytes, atMs);
              if (samples.length < MAX_KEPT_SAMPLES) samples.push({ atMs, rssBytes });
            } catch {
              if (!stop.signal.aborted && !sampling.signal.aborted) sampleErrors++;
            }
          }
        })()
      : undefined;
    try {
      elapsedMs = await phase(total, true);
    } finally {
      sampling.abort();
      await sampler;
    }
    finalBytes = await tryReadRss('final');
    if (finalBytes !== null) observe(finalBytes, round(performance.now() - runStart));
    report('done', 'end', runStart, options.durationMs);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    agent.destroy();
    baselineAgent.destroy();
  }

  const sorted = latencies.subarray(0, completed).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  const latencyMs: LatencySummary | null =
    completed === 0
      ? null
      : {
          min: round(sorted[0]!),
          mean: round(sum / completed),
          p50: round(percentile(sorted, 50)),
          p90: round(percentile(sorted, 90)),
          p95: round(percentile(sorted, 95)),
          p99: round(percentile(sorted, 99)),
          max: round(sorted[completed - 1]!),
        };
  const successRatio = counts.scheduled === 0 ? 0 : counts.succeeded / counts.scheduled;
  const toMb = (bytes: number | null) => (bytes === null ? null : round(bytes / (1024 * 1024)));
  const growthBytes = baselineBytes !== null && finalBytes !== null ? finalBytes - baselineBytes : null;
  const growthMb = toMb(growthBytes);
  const [lo, hi] = [minBytes as number | null, maxBytes as number | null];
  const rangeBytes = lo !== null && hi !== null ? hi - lo : null;
  const peakGrowthMb = hi !== null && baselineBytes !== null ? toMb(hi - baselineBytes) : null;
  const aborted = stop.signal.aborted;
  const rssError = rssErrors.length > 0 ? rssErrors.join('; ') : undefined;

  const checks: LoadTestCheck[] = [];
  if (measuresRss) {
    checks.push({
      name: 'rss_growth_mb',
      limit: maxRssGrowthMb,
      actual: growthMb,
      pass: growthMb !== null && growthMb < maxRssGrowthMb,
      ...(rssError === undefined ? {} : { note: `RSS not read: ${rssError}` }),
    });
    if (maxPeakGrowthMb !== undefined) {
      checks.push({
        name: 'rss_peak_growth_mb',
        limit: maxPeakGrowthMb,
        actual: peakGrowthMb,
        pass: peakGrowthMb !== null && peakGrowthMb < maxPeakGrowthMb,
        ...(peakAtMs === null ? {} : { note: `peak at ${round((peakAtMs as number) / 1000)} s into the run` }),
      });
    }
  }
  checks.push({ name: 'p95_ms', limit: maxP95Ms, actual: latencyMs?.p95 ?? null, pass: latencyMs !== null && latencyMs.p95 < maxP95Ms });
  checks.push({ name: 'success_ratio', limit: minSuccessRatio, actual: round(successRatio * 10_000) / 10_000, pass: successRatio >= minSuccessRatio });
  if (aborted) checks.push({ name: 'completed', limit: total, actual: counts.scheduled, pass: false, note: 'the run was aborted' });

  return {
    url: url.href,
    ratePerSec: options.ratePerSec,
    durationMs: options.durationMs,
    startedAt: startedAt.toISOString(),
    elapsedMs: round(elapsedMs),
    aborted,
    requests: counts,
    successRatio,
    achievedRatePerSec: elapsedMs > 0 ? round((counts.sent * 1000) / elapsedMs) : 0,
    latencyMs,
    statusCodes,
    errors,
    warmup: { durationMs: warmupMs, ...warmCounts },
    rss: measuresRss
      ? {
          baselineUrl: baselineUrl?.href ?? 'rssSampler',
          initialBytes,
          baselineBytes,
          finalBytes,
          beforeBytes: baselineBytes,
          afterBytes: finalBytes,
          growthBytes,
          growthMb,
          minBytes: lo,
          maxBytes: hi,
          rangeBytes,
          rangeMb: toMb(rangeBytes),
          peakAtMs,
          peakGrowthMb,
          samples,
          sampleErrors,
          ...(rssError === undefined ? {} : { error: rssError }),
        }
      : null,
    checks,
    pass: checks.every((check) => check.pass),
  };
}

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
