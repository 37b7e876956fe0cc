import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from './index.js';

const dist = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'dist');

describe('@guard/immune entry points', () => {
  it('exports the public API by name', () => {
    for (const name of [
      'ImmuneService',
      'MemoryEventStore',
      'createMemoryStore',
      'KyselyEventStore',
      'createKyselyEventStore',
      'GroupCommitter',
      'createImmuneHandler',
      'bridgeGuardBus',
      'classifyDetection',
      'parseEventInput',
      'parseWireEventInput',
      'toWireEvent',
      'createEventId',
      'immuneConfigFromEnv',
      'immuneOptionsFromEnv',
      'immuneStoreOptionsFromEnv',
      'immuneHandlerOptionsFromEnv',
      'dialectOf',
      'IMMUNE_SEVERITIES',
      'IMMUNE_EVENT_TYPES',
      'EVENT_LIMITS',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
  });

  it('ships a ./testing entry that loads no test framework (vitest is not a dependency)', () => {
    if (!existsSync(join(dist, 'testing.js'))) throw new Error('build @guard/immune first');
    for (const file of ['testing.js', 'testing.cjs']) expect(readFileSync(join(dist, file), 'utf8'), file).not.toMatch(/vitest|@jest|mocha/);
  });

  it('loads neither better-sqlite3 nor pg from the main entry (CJS and ESM)', () => {
    if (!existsSync(join(dist, 'index.cjs'))) throw new Error('build @guard/immune first');
    const cjs = execFileSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(join(dist, 'index.cjs'))}); console.log(Object.keys(require.cache).filter((k) => /better-sqlite3|[\\\\/]pg[\\\\/]/.test(k)).length)`],
      { encoding: 'utf8' },
    );
    expect(cjs.trim()).toBe('0');
    const esmLoads = (file: string) =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createRequire } from 'node:module'; await import(${JSON.stringify(join(dist, file))}); const require = createRequire(import.meta.url); console.log(Object.keys(require.cache).filter((k) => /better-sqlite3|[\\\\/]pg[\\\\/]/.test(k)).length)`,
        ],
        { encoding: 'utf8' },
      ).trim();
    const esm = esmLoads('index.js');
    // The probe can see a driver: the subpath entries do load theirs.
    expect(Number(esmLoads('sqlite.js'))).toBeGreaterThan(0);
    expect(Number(esmLoads('postgres.js'))).toBeGreaterThan(0);
    expect(esm.trim()).toBe('0');
  });
});
