import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How a spawned Node script ended. */
export interface NodeRunOutcome {
  /** The exit code; `null` when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for {@link runNodeBin}. */
export interface RunNodeBinOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Runs a bin script (or any Node file) in a fresh Node process, as an operator would, and resolves with its exit
 * code and output, also when it fails: tests assert the exit code and the lines, never a thrown error.
 *
 * @example
 * const out = await runNodeBin(fileURLToPath(new URL('../bin/guard-chaos-scenarios.mjs', import.meta.url)), ['--help']);
 * expect(out).toMatchObject({ code: 0, stderr: '' });
 */
export function runNodeBin(file: string, args: readonly string[] = [], options: RunNodeBinOptions = {}): Promise<NodeRunOutcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { cwd: options.cwd, env: options.env, encoding: 'utf8' }, (error, stdout, stderr) => {
      const failed = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
      // A failure of our own (output over maxBuffer, no spawn) has a string code: exit code null, its message on stderr.
      const ours = typeof failed?.code === 'string';
      const code = failed === null ? 0 : typeof failed.code === 'number' ? failed.code : null;
      resolve({ code, signal: failed?.signal ?? null, stdout, stderr: ours ? `${stderr}${failed!.message}\n` : stderr });
    });
  });
}

/**
 * Runs `script` (an ES module body) in a fresh Node process from `packageDir`, where the package's own name resolves
 * to its built files through the exports map (as after `npm i`), and returns what the script printed, parsed as
 * JSON. Throws with the script's stderr when it fails.
 *
 * @example
 * const packageDir = new URL('..', import.meta.url);
 * const out = runPackageScript<{ type: string }>(packageDir, "const m = await import('@guard/core'); console.log(JSON.stringify({ type: typeof m.GuardBus }))");
 */
export function runPackageScript<T>(packageDir: string | URL, script: string): T {
  const cwd = typeof packageDir === 'string' ? packageDir : fileURLToPath(packageDir);
  // stderr is captured, so a failing script's message lands in the thrown error instead of the test output.
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as T;
}

/** What {@link scrapeDualBuild} found. */
export interface DualBuildScrape {
  /** The export came from two different copies (the ESM and the CommonJS build). */
  readonly distinct: boolean;
  /** The scraped exposition lines that matched `metrics`. */
  readonly lines: string[];
}

/** Options for {@link scrapeDualBuild}. */
export interface ScrapeDualBuildOptions {
  /** The package's directory (its `package.json` names the package), e.g. `new URL('..', import.meta.url)`. */
  readonly packageDir: string | URL;
  /** An export of both builds that must be two different copies, e.g. `CircuitBreaker`. */
  readonly exportName: string;
  /** Which exposition lines to return, e.g. `/^guard_circuit_state\{/`. */
  readonly metrics: RegExp;
  /**
   * An async function body that sees `esm` and `cjs` (the two builds) and `registry` (a fresh prom-client
   * Registry), creates objects through both builds and returns those to `close()` after the scrape.
   */
  readonly body: string;
}

/**
 * Loads a package's ESM and CommonJS builds into one Node process (as a bundle mixing `import` and `require` does),
 * lets `body` create objects through both with one prom-client registry, and returns the scraped lines: the check
 * that both copies report into one registry without clashing. prom-client is CommonJS only, so both copies share
 * its one instance (resolved from `@guard/core`, the package that owns the metrics helpers).
 *
 * @example
 * const out = scrapeDualBuild({
 *   packageDir: new URL('..', import.meta.url), exportName: 'CircuitBreaker',
 *   metrics: /^guard_circuit_state\{/,
 *   body: "return [new esm.CircuitBreaker({ name: 'a', registry }), new cjs.CircuitBreaker({ name: 'b', registry })];",
 * });
 * expect(out.distinct).toBe(true);
 */
export function scrapeDualBuild(options: ScrapeDualBuildOptions): DualBuildScrape {
  const packageDir = typeof options.packageDir === 'string' ? options.packageDir : fileURLToPath(options.packageDir);
  const { name } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { name: string };
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(process.cwd() + '/package.json');
    const cjs = require(${JSON.stringify(name)});
    const esm = await import(${JSON.stringify(name)});
    const { Registry } = createRequire(require.resolve('@guard/core'))('prom-client');
    const registry = new Registry();
    const opened = (await (async (esm, cjs, registry) => { ${options.body} })(esm, cjs, registry)) ?? [];
    const metrics = new RegExp(${JSON.stringify(options.metrics.source)}, ${JSON.stringify(options.metrics.flags)});
    const lines = (await registry.metrics()).split('\\n').filter((line) => metrics.test(line));
    const name = ${JSON.stringify(options.exportName)};
    console.log(JSON.stringify({ distinct: esm[name] !== undefined && esm[name] !== cjs[name], lines }));
    for (const item of opened) await item.close();
  `;
  return runPackageScript<DualBuildScrape>(packageDir, script);
}
