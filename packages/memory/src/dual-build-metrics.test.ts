import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Loads the built package by name (self-reference through the exports map), as `npm i @guard/memory` would.
const packageDir = fileURLToPath(new URL('..', import.meta.url));

describe('the ESM and the CommonJS build in one process', () => {
  it('guardrails created through either copy appear in one guard_memory_* scrape of the shared registry', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { Registry } from 'prom-client';
      const require = createRequire(process.cwd() + '/package.json');
      const cjs = require('@guard/memory');
      const esm = await import('@guard/memory');
      const registry = new Registry();
      const sampler = (mb) => () => ({ rss: mb * 1048576, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 });
      const viaEsm = new esm.MemoryGuardrail({ name: 'via_esm', registry, autoStart: false, sampler: sampler(100) });
      const viaCjs = new cjs.MemoryGuardrail({ name: 'via_cjs', registry, autoStart: false, sampler: sampler(200) });
      viaEsm.check();
      viaCjs.check();
      const lines = (await registry.metrics()).split('\\n').filter((line) => line.startsWith('guard_memory_rss_bytes{'));
      console.log(JSON.stringify({ distinct: esm.MemoryGuardrail !== cjs.MemoryGuardrail, lines }));
      await viaEsm.close();
      await viaCjs.close();
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packageDir, encoding: 'utf8' })) as {
      distinct: boolean;
      lines: string[];
    };
    expect(out.distinct).toBe(true);
    expect(out.lines.sort()).toEqual(['guard_memory_rss_bytes{name="via_cjs"} 209715200', 'guard_memory_rss_bytes{name="via_esm"} 104857600']);
  });
});
