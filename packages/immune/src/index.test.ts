import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
      'IMMUNE_SEVERITIES',
      'IMMUNE_EVENT_TYPES',
      'EVENT_LIMITS',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
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
