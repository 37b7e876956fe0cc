import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { counter, gauge, histogram, metricName } from './metrics.js';
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
