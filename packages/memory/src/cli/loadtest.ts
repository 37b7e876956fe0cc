#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage, isGuardError, parseDuration } from '@guard/core';
import { formatLoadTestReport, runLoadTest } from '../load-test.js';
import { createProgressPrinter } from './progress-printer.js';

const USAGE = `Usage: guard-loadtest --url <url> [options]

Holds a fixed request rate (open-loop) against a URL after a warm-up, reads RSS from
/self-check/baseline before the warm-up (Initial), after it (Baseline), every second during the
run and after it (Final), and prints the Memory Range and PASS or FAIL (RSS growth < 50 MB,
p95 < 200 ms, >= 99 % ok).

Options:
  --url <url>               target URL (required)
  --rate <n>                requests per second (default 5)
  --duration <d>            e.g. 30s, 10m, 1h; a bare number is milliseconds (default 10m)
  --baseline-url <url>      where RSS is read (default <origin>/self-check/baseline)
  --no-baseline             skip the RSS checks
  --warmup <d>              warm-up before the measured run (default 10 % of --duration, at most 30s; 0 = none)
  --sample-interval <d>     RSS sampling interval during the run (default 1s)
  --method <m>              HTTP method (default GET)
  --header <k:v>            request header, repeatable
  --body <json>             request body (content-type defaults to application/json)
  --timeout <d>             per-request timeout (default 5s)
  --max-in-flight <n>       in-flight cap; requests over it count as dropped (default 1000)
  --max-growth-mb <n>       RSS growth limit, final - baseline (default 50)
  --max-peak-growth-mb <n>  also fail when the peak RSS during the run exceeds the baseline by this (default off)
  --max-p95-ms <n>          p95 latency limit (default 200)
  --min-success-ratio <r>   success ratio floor (default 0.99)
  --json <file>             also write the full result as JSON
  --quiet                   no progress (by default a line per phase and every 10 s on stderr, a bar on a TTY)
  -h, --help                show this help

Exit code: 0 PASS, 1 FAIL, 2 bad usage.`;

function numberArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

class UsageError extends Error {}

/** A duration flag: `30s`, `2m`, `1h`, or a bare number of milliseconds (core's `parseDuration`, one meaning everywhere). */
function durationArg(name: string, value: string): number {
  return parseDuration(value, { field: `--${name}` });
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        rate: { type: 'string', default: '5' },
        duration: { type: 'string', default: '10m' },
        'baseline-url': { type: 'string' },
        'no-baseline': { type: 'boolean', default: false },
        method: { type: 'string' },
        header: { type: 'string', multiple: true },
        body: { type: 'string' },
        timeout: { type: 'string', default: '5s' },
        'max-in-flight': { type: 'string' },
        'max-growth-mb': { type: 'string' },
        'max-peak-growth-mb': { type: 'string' },
        warmup: { type: 'string' },
        'sample-interval': { type: 'string' },
        'max-p95-ms': { type: 'string' },
        'min-success-ratio': { type: 'string' },
        json: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    // One line, not the whole usage: the mistake stays visible.
    process.stderr.write(`guard-loadtest: ${errorMessage(error).split('\n')[0]}; see guard-loadtest --help\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (!values.url) throw new UsageError('--url is required');
    const headers: Record<string, string> = {};
    for (const header of values.header ?? []) {
      const at = header.indexOf(':');
      if (at <= 0) throw new UsageError(`--header must look like "name: value", got ${JSON.stringify(header)}`);
      headers[header.slice(0, at).trim()] = header.slice(at + 1).trim();
    }
    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const maxInFlight = numberArg('max-in-flight', values['max-in-flight']);
    const maxRssGrowthMb = numberArg('max-growth-mb', values['max-growth-mb']);
    const maxP95Ms = numberArg('max-p95-ms', values['max-p95-ms']);
    const minSuccessRatio = numberArg('min-success-ratio', values['min-success-ratio']);
    const maxRssPeakGrowthMb = numberArg('max-peak-growth-mb', values['max-peak-growth-mb']);
    const result = await runLoadTest({
      url: values.url,
      ratePerSec: numberArg('rate', values.rate)!,
      durationMs: durationArg('duration', values.duration),
      timeoutMs: durationArg('timeout', values.timeout),
      baselineUrl: values['no-baseline'] ? false : values['baseline-url'],
      headers,
      signal: controller.signal,
      ...(values.quiet ? {} : { onProgress: createProgressPrinter(process.stderr) }),
      ...(values.method === undefined ? {} : { method: values.method }),
      ...(values.body === undefined ? {} : { body: values.body }),
      ...(maxInFlight === undefined ? {} : { maxInFlight }),
      ...(values.warmup === undefined ? {} : { warmupMs: durationArg('warmup', values.warmup) }),
      ...(values['sample-interval'] === undefined ? {} : { rssSampleIntervalMs: durationArg('sample-interval', values['sample-interval']) }),
      criteria: {
        ...(maxRssGrowthMb === undefined ? {} : { maxRssGrowthMb }),
        ...(maxP95Ms === undefined ? {} : { maxP95Ms }),
        ...(minSuccessRatio === undefined ? {} : { minSuccessRatio }),
        ...(maxRssPeakGrowthMb === undefined ? {} : { maxRssPeakGrowthMb }),
      },
    });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.write(`${formatLoadTestReport(result)}\n`);
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
    return result.pass ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError || isGuardError(error, 'INVALID_OPTION') || isGuardError(error, 'INVALID_INPUT')) {
      process.stderr.write(`guard-loadtest: ${errorMessage(error)}; see guard-loadtest --help\n`);
      return 2;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`guard-loadtest: ${error instanceof Error && error.stack ? error.stack : errorMessage(error)}\n`);
    process.exitCode = 1;
  },
);
