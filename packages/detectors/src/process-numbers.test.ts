import { describe, expect, it } from 'vitest';
import { nextProcessNumber } from './process-numbers.js';

describe('nextProcessNumber', () => {
  it('counts per kind, shared through globalThis so a second copy of the package continues the same sequence', () => {
    const a = nextProcessNumber('test-kind');
    expect(nextProcessNumber('test-kind')).toBe(a + 1);
    expect(nextProcessNumber('other-test-kind')).toBe(1);
    // what a second copy (the CJS build beside the ESM one) finds: the same map under the registered symbol
    const shared = (globalThis as Record<symbol, Map<string, number>>)[Symbol.for('@guard/detectors.processNumbers')]!;
    expect(shared.get('test-kind')).toBe(a + 1);
  });
});
