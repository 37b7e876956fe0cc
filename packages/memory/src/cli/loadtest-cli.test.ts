import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadTest } from '../load-test.js';
import type { LoadTestProgress } from '../load-test.js';
import { createProgressPrinter } from './progress-printer.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'guard-loadtest.mjs');
const execFileAsync = promisify(execFile);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function runBin(args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [bin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A real service with a fixed RSS at /self-check/baseline. */
async function startService() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(req.url === '/self-check/baseline' ? JSON.stringify({ current: { rssBytes: 150 * 1024 * 1024 } }) : '{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('guard-loadtest (the committed bin shim)', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  beforeAll(async () => {
    if (!existsSync(join(dirname(bin), '..', 'dist', 'cli', 'loadtest.js'))) throw new Error('build @guard/memory first');
    service = await startService();
  });
  afterAll(() => service.close());

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
      expect.stringMatching(/^\[\s*\d+\.\ds\] started warm-up 0\.\ds\/0\.2s {2}sent 0 {2}ok 0 {2}failed 0 {2}rss 150\.0 MB$/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] ended warm-up 0\.\ds\/0\.2s {2}sent 4 {2}ok 4 {2}failed 0/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] started run 0\.\ds\/1\.0s {2}sent 0/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] ended run \d\.\ds\/1\.0s {2}sent 20 {2}ok 20 {2}failed 0 {2}rss 150\.0 MB$/),
      expect.stringMatching(/^\[\s*\d+\.\ds\] finished {2}sent 20 {2}ok 20 {2}failed 0 {2}rss 150\.0 MB$/),
    ]);
    expect(out.stdout.trim()).toMatch(/PASS$/);
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
