import { describe, expect, it } from 'vitest';
import { runBuiltPackageScript } from './test-support.js';

describe('the ESM and the CommonJS build in one process', () => {
  it('breakers created through either copy appear in one guard_circuit_* scrape of the shared registry', () => {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(process.cwd() + '/package.json');
      const cjs = require('@guard/circuit');
      const esm = await import('@guard/circuit');
      // prom-client is CommonJS only, so both copies (and this script) share its one instance.
      const { Registry } = createRequire(require.resolve('@guard/core'))('prom-client');
      const registry = new Registry();
      const viaEsm = new esm.CircuitBreaker({ name: 'via_esm', registry, failureThreshold: 1 });
      const viaCjs = new cjs.CircuitBreaker({ name: 'via_cjs', registry, failureThreshold: 1 });
      await viaEsm.execute(async () => 'ok');
      await viaCjs.execute(async () => { throw new Error('down'); }).catch(() => {});
      const lines = (await registry.metrics()).split('\\n').filter((line) => /^guard_circuit_(state|calls_total)\\{/.test(line));
      console.log(JSON.stringify({ distinct: esm.CircuitBreaker !== cjs.CircuitBreaker, lines }));
      await viaEsm.close();
      await viaCjs.close();
    `;
    // Loads the built package by name (self-reference through the exports map), as `npm i @guard/circuit` would.
    const out = runBuiltPackageScript<{ distinct: boolean; lines: string[] }>(script);
    expect(out.distinct).toBe(true);
    expect(out.lines).toEqual(
      expect.arrayContaining([
        'guard_circuit_state{circuit="via_esm"} 0',
        'guard_circuit_state{circuit="via_cjs"} 2',
        'guard_circuit_calls_total{circuit="via_esm",outcome="success"} 1',
        'guard_circuit_calls_total{circuit="via_cjs",outcome="failure"} 1',
      ]),
    );
  });
});
