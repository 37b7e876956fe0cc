import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

/**
 * An app directory where @guard/immune is installed with its dependencies but without the optional peers pg and
 * better-sqlite3, as after `npm i @guard/immune kysely prom-client`: the real missing-package case, no mock.
 */
function appWithoutDrivers(): string {
  const app = mkdtempSync(join(tmpdir(), 'guard-immune-nopeer-'));
  const installed = join(app, 'node_modules', '@guard', 'immune');
  mkdirSync(installed, { recursive: true });
  cpSync(join(packageRoot, 'package.json'), join(installed, 'package.json'));
  cpSync(join(packageRoot, 'dist'), join(installed, 'dist'), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
  };
  const wanted = [...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)].filter((name) => name !== 'pg' && name !== 'better-sqlite3');
  for (const name of wanted) {
    const link = join(app, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(realpathSync(join(packageRoot, 'node_modules', name)), link, 'dir');
  }
  return app;
}

async function node(cwd: string, code: string, type: 'commonjs' | 'module') {
  const args = type === 'module' ? ['--input-type=module', '-e', code] : ['-e', code];
  try {
    // pnpm's bin shims set NODE_PATH to the workspace store, where pg is found; an app has no such path.
    const { NODE_PATH: _storePath, ...env } = process.env;
    const { stdout } = await run(process.execPath, args, { cwd, env });
    return { code: 0, stdout };
  } catch (error) {
    return { code: (error as { code: number }).code, stdout: (error as { stdout: string }).stdout };
  }
}

describe('a missing optional peer', () => {
  let app: string;
  beforeAll(() => {
    if (!existsSync(join(packageRoot, 'dist', 'postgres.cjs'))) throw new Error('build @guard/immune first');
    app = appWithoutDrivers();
  });
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  const report = 'console.log(JSON.stringify({ code: e.code, message: e.message, peer: e.details?.peer }))';

  it.each([
    ['postgres', 'pg', '@types/pg'],
    ['sqlite', 'better-sqlite3', '@types/better-sqlite3'],
  ])("require('@guard/immune/%s') throws MISSING_PEER naming %s", async (entry, peer, types) => {
    const out = await node(app, `try { require('@guard/immune/${entry}'); console.log('loaded') } catch (e) { ${report} }`, 'commonjs');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({
      code: 'MISSING_PEER',
      peer,
      message: `@guard/immune/${entry} needs the optional peer dependency "${peer}", which is not installed: npm i ${peer} (TypeScript: also npm i -D ${types})`,
    });
  });

  it.each(['postgres', 'sqlite'])("import('@guard/immune/%s') throws MISSING_PEER too", async (entry) => {
    const out = await node(app, `try { await import('@guard/immune/${entry}'); console.log('loaded') } catch (e) { ${report} }`, 'module');
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 'MISSING_PEER', message: expect.stringContaining('npm i ') });
  });

  it('the main entry loads without either driver', async () => {
    const out = await node(app, `const immune = require('@guard/immune'); console.log(typeof immune.ImmuneService)`, 'commonjs');
    expect(out).toEqual({ code: 0, stdout: 'function\n' });
  });
});
