import { scrapeDualBuild } from '@guard/core/testing';
import { describe, expect, it } from 'vitest';

describe('the ESM and the CommonJS build in one process', () => {
  it('breakers created through either copy appear in one guard_circuit_* scrape of the shared registry', () => {
    // Loads the built package by name (self-reference through the exports map), as `npm i @guard/circuit` would.
    const out = scrapeDualBuild({
      packageDir: new URL('..', import.meta.url),
      exportName: 'CircuitBreaker',
      metrics: /^guard_circuit_(state|calls_total)\{/,
      body: `
        const viaEsm = new esm.CircuitBreaker({ name: 'via_esm', registry, failureThreshold: 1 });
        const viaCjs = new cjs.CircuitBreaker({ name: 'via_cjs', registry, failureThreshold: 1 });
        await viaEsm.execute(async () => 'ok');
        await viaCjs.execute(async () => { throw new Error('down'); }).catch(() => {});
        return [viaEsm, viaCjs];
      `,
    });
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
