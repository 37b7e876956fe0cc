import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Consumers load the built package by name (self-reference through the exports map), as `npm i @guard/core` would.
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: packageDir, encoding: 'utf8' }).trim();

describe('published entry points', () => {
  it('require() gets the CommonJS build', () => {
    expect(node(['-e', "const c = require('@guard/core'); console.log(typeof c.GuardBus, typeof c.isGuardError)"])).toBe('function function');
  });

  it('import gets the ES module build', () => {
    expect(node(['--input-type=module', '-e', "import { GuardBus, envReader } from '@guard/core'; console.log(typeof GuardBus, typeof envReader)"])).toBe('function function');
  });

  it('importing registers no metrics and starts no timers (sideEffects: false holds)', () => {
    const script = "const { register } = require('prom-client'); require('@guard/core'); console.log(register.getMetricsAsArray().length, process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length)";
    expect(node(['-e', script])).toBe('0 0');
  });
});
