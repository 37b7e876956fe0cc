import { scrapeDualBuild } from '@guard/core/testing';
import { describe, expect, it } from 'vitest';

describe('the ESM and the CommonJS build in one process', () => {
  it('guardrails created through either copy appear in one guard_memory_* scrape of the shared registry', () => {
    // Loads the built package by name (self-reference through the exports map), as `npm i @guard/memory` would.
    const out = scrapeDualBuild({
      packageDir: new URL('..', import.meta.url),
      exportName: 'MemoryGuardrail',
      metrics: /^guard_memory_rss_bytes\{/,
      body: `
        const sampler = (mb) => () => ({ rss: mb * 1048576, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 });
        const viaEsm = new esm.MemoryGuardrail({ name: 'via_esm', registry, autoStart: false, sampler: sampler(100) });
        const viaCjs = new cjs.MemoryGuardrail({ name: 'via_cjs', registry, autoStart: false, sampler: sampler(200) });
        viaEsm.check();
        viaCjs.check();
        return [viaEsm, viaCjs];
      `,
    });
    expect(out.distinct).toBe(true);
    expect(out.lines.sort()).toEqual(['guard_memory_rss_bytes{name="via_cjs"} 209715200', 'guard_memory_rss_bytes{name="via_esm"} 104857600']);
  });
});
