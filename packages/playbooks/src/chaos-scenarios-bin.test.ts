import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNodeBin } from '@guard/core/testing';

// The guard-chaos-scenarios bin as an operator runs it: spawned, real scenarios (S01 takes well under a second).
const bin = fileURLToPath(new URL('../bin/guard-chaos-scenarios.mjs', import.meta.url));
const runBin = (args: string[]) => runNodeBin(bin, args);

describe('guard-chaos-scenarios', () => {
  it('--help prints usage and exits 0', async () => {
    const out = await runBin(['--help']);
    expect(out).toMatchObject({ code: 0, stderr: '' });
    expect(out.stdout).toMatch(/^Usage: guard-chaos-scenarios \[S01\] \[S02\] \[S03\] \[--json\]/);
  });

  it.each([
    [['--bogus'], "guard-chaos-scenarios: unknown option '--bogus'; see guard-chaos-scenarios --help"],
    [['S09'], 'guard-chaos-scenarios: unknown scenario S09 (S01, S02 or S03); see guard-chaos-scenarios --help'],
  ])('%j is one clear line and exit 2', async (args, line) => {
    const out = await runBin(args);
    expect(out).toMatchObject({ code: 2, stdout: '', stderr: `${line}\n` });
  });

  it('prints a progress line when a scenario starts and ends, then its timeline', async () => {
    const out = await runBin(['S01']);
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toMatch(/^\[\s*\d+\.\ds\] S01 started$/);
    expect(lines[1]).toMatch(/^\[\s*\d+\.\ds\] S01 passed in \d+\.\d s$/);
    expect(out.stdout).toMatch(/S01 heartbeat pause .*PASS/);
  });

  it('--json keeps stdout one JSON document (progress on stderr)', async () => {
    const out = await runBin(['S01', '--json']);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([expect.objectContaining({ scenario: 'S01', passed: true })]);
    expect(out.stderr).toMatch(/S01 started/);
  });
});
