import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runNodeBin, runPackageScript, scrapeDualBuild } from '../testing.js';

const dir = mkdtempSync(join(tmpdir(), 'guard-run-node-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A script file in the temp directory. */
function script(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

const packageDir = new URL('../..', import.meta.url);

describe('runNodeBin', () => {
  it('resolves with the exit code and both streams, also when the script fails', async () => {
    const bin = script('bin.mjs', "console.log('args', process.argv.slice(2).join(' ')); console.error('warned'); process.exitCode = Number(process.argv[2] ?? 0);");
    expect(await runNodeBin(bin, ['0'])).toEqual({ code: 0, signal: null, stdout: 'args 0\n', stderr: 'warned\n' });
    expect(await runNodeBin(bin, ['2', 'x'])).toMatchObject({ code: 2, stdout: 'args 2 x\n', stderr: 'warned\n' });
  });

  it('reports a process ended by a signal with exit code null and the signal', async () => {
    const bin = script('killed.mjs', "process.kill(process.pid, 'SIGKILL');");
    expect(await runNodeBin(bin)).toMatchObject({ code: null, signal: 'SIGKILL' });
  });

  it('runs in the given directory with the given environment', async () => {
    const bin = script('env.mjs', 'console.log(process.cwd(), process.env.GUARD_RUN_NODE_TEST);');
    expect((await runNodeBin(bin, [], { cwd: dir, env: { GUARD_RUN_NODE_TEST: 'seen' } })).stdout.trim()).toBe(`${dir} seen`);
  });
});

describe('runPackageScript', () => {
  it('loads the built package by its own name and returns what the script printed as JSON', () => {
    const out = runPackageScript<{ esm: string; cjs: string }>(
      packageDir,
      "import { createRequire } from 'node:module'; const esm = await import('@guard/core'); const cjs = createRequire(process.cwd() + '/package.json')('@guard/core'); console.log(JSON.stringify({ esm: typeof esm.GuardBus, cjs: typeof cjs.GuardBus }));",
    );
    expect(out).toEqual({ esm: 'function', cjs: 'function' });
  });

  it('throws with the script’s error when it fails', () => {
    expect(() => runPackageScript(packageDir, "throw new Error('script broke')")).toThrow(/script broke/);
  });
});

describe('scrapeDualBuild', () => {
  it('sees metrics made through both builds in one registry, the two copies distinct, and closes what the body returned', () => {
    const out = scrapeDualBuild({
      packageDir,
      exportName: 'GuardBus',
      metrics: /^dual_(esm|cjs)_total /,
      body: `
        esm.counter(registry, { name: 'dual_esm_total', help: 'via esm' }).inc();
        cjs.counter(registry, { name: 'dual_cjs_total', help: 'via cjs' }).inc(2);
        const { writeFileSync } = await import('node:fs');
        return [{ close: async () => writeFileSync(${JSON.stringify(join(dir, 'closed'))}, 'closed') }];
      `,
    });
    expect(out).toEqual({ distinct: true, lines: ['dual_esm_total 1', 'dual_cjs_total 2'] });
    expect(readFileSync(join(dir, 'closed'), 'utf8')).toBe('closed');
  });
});
