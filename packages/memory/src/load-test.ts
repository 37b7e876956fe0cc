import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNumberOption, GuardError } from '@guard/core';

/** Pass/fail limits; defaults are the WAL-609 seed's (growth < 50 MB, p95 < 200 ms) plus a success ratio. */
export interface LoadTestCriteria {
  /** RSS growth (after minus before, from `/self-check/baseline`) must stay below this. Default 50. */
  readonly maxRssGrowthMb?: number;
  /** p95 latency must stay below this. Default 200. */
  readonly maxP95Ms?: number;
  /** Share of 2xx-3xx answers must be at least this. Default 0.99. */
  readonly minSuccessRatio?: number;
}

/**
 * Options for {@link runLoadTest}.
 *
 * @example
 * const options: LoadTestOptions = { url: 'http://127.0.0.1:3000/api/items', ratePerSec: 5, durationMs: parseDurationMs('10m') };
 */
export interface LoadTestOptions {
  /** Target URL (http or https). */
  readonly url: string | URL;
  /** Requests per second, held open-loop: requests start on schedule whether or not earlier ones answered. */
  readonly ratePerSec: number;
  readonly durationMs: number;
  /** Where RSS is read before and after. Default: `/self-check/baseline` on the target's origin; `false` skips the growth check. */
  readonly baselineUrl?: string | URL | false;
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
}

/** One pass/fail criterion. */
export interface LoadTestCheck {
  readonly name: 'rss_growth_mb' | 'p95_ms' | 'success_ratio' | 'completed';
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
  readonly rss: {
    readonly baselineUrl: string;
    readonly beforeBytes: number | null;
    readonly afterBytes: number | null;
    readonly growthBytes: number | null;
    readonly growthMb: number | null;
    readonly error?: string;
  } | null;
  readonly checks: readonly LoadTestCheck[];
  readonly pass: boolean;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/**
 * Parses a duration like `500ms`, `30s`, `10m`, `10min` or `1h`; a bare number is seconds.
 *
 * @example
 * parseDurationMs('10m'); // 600000
 */
export function parseDurationMs(text: string, field = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$/i.exec(text);
  if (!match) {
    throw new GuardError('INVALID_OPTION', `${field} must be a duration like 500ms, 30s, 10m or 1h, got ${JSON.stringify(text)}`, {
      details: { field, value: text },
    });
  }
  return Number(match[1]) * UNIT_MS[(match[2] ?? 's').toLowerCase()]!;
}

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
 * the test down and hide its own latency). Reads RSS from `/self-check/baseline` before and after, and judges the run
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
  const maxRssGrowthMb = options.criteria?.maxRssGrowthMb ?? 50;
  const maxP95Ms = options.criteria?.maxP95Ms ?? 200;
  const minSuccessRatio = options.criteria?.minSuccessRatio ?? 0.99;
  assertNumberOption('criteria.maxRssGrowthMb', maxRssGrowthMb);
  assertNumberOption('criteria.maxP95Ms', maxP95Ms, { min: 0 });
  assertNumberOption('criteria.minSuccessRatio', minSuccessRatio, { min: 0, max: 1 });
  const baselineUrl = options.baselineUrl === false ? undefined : toUrl(options.baselineUrl ?? new URL('/self-check/baseline', url), 'baselineUrl');
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
    const target = baselineUrl!;
    const { status, body } = await exchange(target, {
      method: 'GET',
      headers: { accept: 'application/json' },
      agent: target.protocol === 'https:' ? new HttpsAgent({ keepAlive: false }) : baselineAgent,
      signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]),
      keepBody: true,
    });
    if (status < 200 || status >= 300) throw new Error(`${target.href} answered ${status}`);
    const parsed = JSON.parse(body) as { current?: { rssBytes?: unknown }; rssBytes?: unknown };
    const rss = parsed.current?.rssBytes ?? parsed.rssBytes;
    if (typeof rss !== 'number') throw new Error(`${target.href} has no current.rssBytes`);
    return rss;
  };

  let rssError: string | undefined;
  let beforeBytes: number | null = null;
  let afterBytes: number | null = null;
  const startedAt = new Date();
  const counts = { scheduled: 0, sent: 0, succeeded: 0, failed: 0, timedOut: 0, dropped: 0 };
  const statusCodes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const total = Math.max(1, Math.round((options.durationMs / 1000) * options.ratePerSec));
  const latencies = new Float64Array(total);
  let completed = 0;
  const inFlight = new Set<Promise<void>>();
  let elapsedMs: number;

  try {
    if (baselineUrl) {
      try {
        beforeBytes = await readRss();
      } catch (error) {
        rssError = `before: ${(error as Error).message}`;
      }
    }

    const fire = (dueAt: number) => {
      counts.sent++;
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([stop.signal, timeout]);
      const run = exchange(url, { method, headers, ...(options.body === undefined ? {} : { body: options.body }), agent, signal, keepBody: false })
        .then(
          ({ status }) => {
            statusCodes[status] = (statusCodes[status] ?? 0) + 1;
            if (status >= 200 && status < 400) counts.succeeded++;
            else counts.failed++;
            latencies[completed++] = performance.now() - dueAt;
          },
          (error: unknown) => {
            counts.failed++;
            const timedOut = timeout.aborted && !stop.signal.aborted;
            if (timedOut) counts.timedOut++;
            const code = errorCode(error, timedOut);
            errors[code] = (errors[code] ?? 0) + 1;
          },
        )
        .finally(() => inFlight.delete(run));
      inFlight.add(run);
    };

    const intervalMs = 1000 / options.ratePerSec;
    const start = performance.now();
    let i = 0;
    while (i < total && !stop.signal.aborted) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 1) {
        try {
          await sleep(wait, undefined, { signal: stop.signal });
        } catch {
          break;
        }
      }
      const now = performance.now();
      while (i < total && start + i * intervalMs <= now + 0.5) {
        counts.scheduled++;
        if (inFlight.size >= maxInFlight) {
          counts.dropped++;
          counts.failed++;
          errors.DROPPED = (errors.DROPPED ?? 0) + 1;
        } else fire(start + i * intervalMs);
        i++;
      }
    }
    await Promise.allSettled([...inFlight]);
    elapsedMs = performance.now() - start;

    if (baselineUrl && !stop.signal.aborted) {
      try {
        afterBytes = await readRss();
      } catch (error) {
        rssError = [rssError, `after: ${(error as Error).message}`].filter(Boolean).join('; ');
      }
    }
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
  const growthBytes = beforeBytes !== null && afterBytes !== null ? afterBytes - beforeBytes : null;
  const growthMb = growthBytes === null ? null : round(growthBytes / (1024 * 1024));
  const aborted = stop.signal.aborted;

  const checks: LoadTestCheck[] = [];
  if (baselineUrl) {
    checks.push({
      name: 'rss_growth_mb',
      limit: maxRssGrowthMb,
      actual: growthMb,
      pass: growthMb !== null && growthMb < maxRssGrowthMb,
      ...(rssError === undefined ? {} : { note: `RSS not read: ${rssError}` }),
    });
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
    rss: baselineUrl
      ? { baselineUrl: baselineUrl.href, beforeBytes, afterBytes, growthBytes, growthMb, ...(rssError === undefined ? {} : { error: rssError }) }
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
  if (result.rss) {
    lines.push(
      result.rss.growthMb === null
        ? `  rss       not read (${result.rss.error ?? 'unknown'})`
        : `  rss       ${(result.rss.beforeBytes! / 1048576).toFixed(1)} MB -> ${(result.rss.afterBytes! / 1048576).toFixed(1)} MB (growth ${result.rss.growthMb} MB)`,
    );
  }
  for (const check of result.checks) {
    const op = check.name === 'success_ratio' ? '>=' : '<';
    lines.push(`  ${check.pass ? 'ok  ' : 'FAIL'}      ${check.name} ${check.actual ?? 'n/a'} ${op} ${check.limit}${check.note ? ` (${check.note})` : ''}`);
  }
  lines.push(result.pass ? 'PASS' : 'FAIL');
  return lines.join('\n');
}
