import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { counter, gauge, histogram, metricName, registryScoped } from './metrics.js';
import { isGuardError } from './guard-error.js';

describe('metrics helpers', () => {
  it('two instances on one registry share a metric instead of crashing', async () => {
    const registry = new Registry();
    const a = counter(registry, { name: 'guard_test_calls_total', help: 'calls', labelNames: ['outcome'] });
    const b = counter(registry, { name: 'guard_test_calls_total', help: 'calls', labelNames: ['outcome'] });
    expect(a).toBe(b);
    a.inc({ outcome: 'success' });
    b.inc({ outcome: 'success' });
    expect(await registry.metrics()).toContain('guard_test_calls_total{outcome="success"} 2');
  });

  it('refuses a name already registered with another type', () => {
    const registry = new Registry();
    gauge(registry, { name: 'guard_test_value', help: 'v' });
    try {
      histogram(registry, { name: 'guard_test_value', help: 'v' });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
    }
  });

  it('builds prefixed names and rejects invalid ones', () => {
    expect(metricName('parasite', 'detected_total')).toBe('parasite_detected_total');
    expect(metricName(undefined, 'x_total')).toBe('x_total');
    expect(() => metricName('bad-prefix', 'x')).toThrow(/not a valid Prometheus name/);
  });
});

describe('registryScoped', () => {
  it('keeps one value per registry and key, and replaces a stale one', () => {
    const a = new Registry();
    const b = new Registry();
    const first = registryScoped(a, 'test.scoped.v1', () => ({ n: 1 }));
    expect(registryScoped(a, 'test.scoped.v1', () => ({ n: 2 }))).toBe(first);
    expect(registryScoped(b, 'test.scoped.v1', () => ({ n: 3 }))).toEqual({ n: 3 });
    expect(registryScoped(a, 'test.other.v1', () => ({ n: 4 }))).toEqual({ n: 4 });
    const fresh = registryScoped(a, 'test.scoped.v1', () => ({ n: 5 }), (value) => value.n === 1);
    expect(fresh).toEqual({ n: 5 });
    expect(registryScoped(a, 'test.scoped.v1', () => ({ n: 6 }))).toBe(fresh);
  });

  it('the ESM and the CommonJS build loaded in one process share the value for a registry', () => {
    const packageDir = fileURLToPath(new URL('..', import.meta.url));
    const script = [
      "import { createRequire } from 'node:module';",
      "import { Registry } from 'prom-client';",
      "import * as esm from '@guard/core';",
      "const cjs = createRequire(process.cwd() + '/package.json')('@guard/core');",
      'const registry = new Registry();',
      "const fromEsm = esm.registryScoped(registry, 'shared.v1', () => ({ copy: 'esm' }));",
      "const fromCjs = cjs.registryScoped(registry, 'shared.v1', () => ({ copy: 'cjs' }));",
      'console.log(esm.registryScoped !== cjs.registryScoped, fromEsm === fromCjs, fromCjs.copy);',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packageDir, encoding: 'utf8' }).trim();
    expect(out).toBe('true true esm');
  });
});
