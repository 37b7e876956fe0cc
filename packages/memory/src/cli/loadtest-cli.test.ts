import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNodeBin } from '@guard/core/testing';
import { runLoadTest } from '../load-test.js';
import type { LoadTestProgress } from '../load-test.js';
import { loadTargetForSuite } from '../test-support.js';
import { createProgressPrinter } from './progress-printer.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'guard-loadtest.mjs');
const runBin = (args: string[]) => runNodeBin(bin, args);

describe('guard-loadtest (the committed bin shim)', () => {
  const service = loadTargetForSuite();
  let dir: string;
  beforeAll(() => {
    if (!existsSync(join(dirname(bin), '..', 'dist', 'cli', 'loadtest.js'))) throw new Error('build @guard/memory first (pnpm --filter @guard/memory build)');
    dir = mkdtempSync(join(tmpdir(), 'guard-loadtest-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers --help with usage on stdout and exit 0', async () => {
    const out = await runBin(['--help']);
    expect(out).toMatchObject({ code: 0, stderr: '' });
    expect(out.stdout).toMatch(/^Usage: guard-loadtest --url <url>/);
    expect(out.stdout).toMatch(/--quiet/);
  });

  it('rejects an unknown flag with one line naming it and exit 2', async () => {
    const out = await runBin(['--bogus']);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^guard-loadtest: .*'--bogus'.*--help$/)]);
  });

  it('rejects a missing --url with one line and exit 2', async () => {
    const out = await runBin([]);
    expect(out.code).toBe(2);
    expect(out.stderr).toBe('guard-loadtest: --url is required; see guard-loadtest --help\n');
  });

  it('prints a line per phase with elapsed time on stderr, the report on stdout', async () => {
    const out = await runBin(['--url', `${service.url}/api/items`, '--rate', '20', '--duration', '1s', '--warmup', '200ms', '--max-p95-ms', '10000']);
    expect(out.code).toBe(0);
    const lines = out.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^\[\s*\d+\.\ds\] started warm-up 0\.\ds\/0\.2s {2}sent 0 {2}ok 0 {2}failed 0 {2}rss 200\.0 MB$/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] ended warm-up 0\.\ds\/0\.2s {2}sent 4 {2}ok 4 {2}failed 0/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] started run 0\.\ds\/1\.0s {2}sent 0/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] ended run \d\.\ds\/1\.0s {2}sent 20 {2}ok 20 {2}failed 0 {2}rss 200\.0 MB$/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] finished {2}sent 20 {2}ok 20 {2}failed 0 {2}rss 200\.0 MB$/),
    ]);
    expect(out.stdout.trim()).toMatch(/PASS$/);
  });

  it('prints PASS with the RSS readings, writes --json and exits 0', async () => {
    const out = join(dir, 'out.json');
    const run = await runBin(['--url', `${service.url}/api/items`, '--rate', '20', '--duration', '1s', '--json', out, '--max-p95-ms', '10000', '--quiet']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Baseline RSS\s+200\.0 MB/);
    expect(run.stdout).toMatch(/Final RSS\s+200\.0 MB/);
    expect(run.stdout).toMatch(/Memory Range\s+200\.0 MB - 200\.0 MB/);
    expect(run.stdout.trim()).toMatch(/PASS$/);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ pass: true, ratePerSec: 20, durationMs: 1000, requests: { sent: 20, succeeded: 20 } });
  });

  it('exits 1 on FAIL', async () => {
    const run = await runBin(['--url', `${service.url}/api/error`, '--rate', '10', '--duration', '300ms', '--no-baseline', '--quiet']);
    expect(run.code).toBe(1);
    expect(run.stdout.trim()).toMatch(/FAIL$/);
  });

  it.each([
    [['--url', 'http://127.0.0.1:1/', '--rate', 'fast'], /--rate must be a number/],
    [['--url', 'http://127.0.0.1:1/', '--duration', '10 parsecs'], /--duration must be a duration/],
  ])('rejects %j with one line and exit 2', async (args, message) => {
    const run = await runBin(args);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
  });

  it('--quiet prints no progress', async () => {
    const out = await runBin(['--url', `${service.url}/api/items`, '--rate', '20', '--duration', '300ms', '--warmup', '0', '--quiet', '--max-p95-ms', '10000']);
    expect(out).toMatchObject({ code: 0, stderr: '' });
  });

  it('a throwing progress callback does not fail the run', async () => {
    const result = await runLoadTest({
      url: `${service.url}/api/items`,
      ratePerSec: 20,
      durationMs: 200,
      warmupMs: 0,
      baselineUrl: false,
      criteria: { maxP95Ms: 10_000 },
      onProgress: () => {
        throw new Error('broken terminal');
      },
    });
    expect(result.pass).toBe(true);
  });
});

describe('createProgressPrinter', () => {
  const progress = (over: Partial<LoadTestProgress>): LoadTestProgress => ({
    phase: 'run',
    kind: 'tick',
    elapsedMs: 0,
    phaseDurationMs: 600_000,
    sent: 0,
    succeeded: 0,
    failed: 0,
    rssBytes: null,
    ...over,
  });

  it('in a log writes one line every 10 s of a phase, not one per tick', () => {
    const written: string[] = [];
    const print = createProgressPrinter({ write: (text) => written.push(text) });
    print(progress({ kind: 'start' }));
    for (let ms = 1000; ms <= 30_000; ms += 1000) print(progress({ elapsedMs: ms, sent: ms / 200 }));
    expect(written.map((line) => line.replace(/^\[\s*[\d.]+s\] /, ''))).toEqual([
      'started run 0.0s/600s  sent 0  ok 0  failed 0\n',
      'run 10s/600s  sent 50  ok 0  failed 0\n',
      'run 20s/600s  sent 100  ok 0  failed 0\n',
      'run 30s/600s  sent 150  ok 0  failed 0\n',
    ]);
  });

  it('on a TTY redraws one bar in place and ends it with a newline', () => {
    const written: string[] = [];
    const print = createProgressPrinter({ write: (text) => written.push(text), isTTY: true, columns: 100 });
    print(progress({ kind: 'start' }));
    print(progress({ elapsedMs: 300_000 }));
    print(progress({ kind: 'end', elapsedMs: 600_000 }));
    expect(written[0]).toMatch(/^\r\[\s*[\d.]+s\] \[-{20}\] run 0\.0s\/600s/);
    expect(written[1]).toMatch(/^\r\[\s*[\d.]+s\] \[#{10}-{10}\] run 300s\/600s/);
    expect(written[2]).toMatch(/\[#{20}\] run 600s\/600s/);
    expect(written[3]).toBe('\n');
  });
});
