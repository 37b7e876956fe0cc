import { describe, expect, it } from 'vitest';
import { processMemorySampler } from './memory-sampler.js';
import type { MemorySampler } from './memory-sampler.js';
import { createManualClock, createSyntheticSampler, linearRssMb } from './testing.js';

/** The contract every MemorySampler meets; the real and the synthetic sampler both run it. */
function describeSamplerContract(name: string, factory: () => MemorySampler) {
  describe(`${name} (MemorySampler contract)`, () => {
    it('returns finite, non-negative byte counts for every field', () => {
      const sample = factory()();
      for (const field of ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers'] as const) {
        expect(Number.isFinite(sample[field]), field).toBe(true);
        expect(sample[field], field).toBeGreaterThanOrEqual(0);
      }
    });

    it('reports a heap that fits in the resident set and heapUsed <= heapTotal', () => {
      const sample = factory()();
      expect(sample.heapUsed).toBeLessThanOrEqual(sample.heapTotal);
      expect(sample.heapTotal).toBeLessThanOrEqual(sample.rss);
    });

    it('can be called repeatedly', () => {
      const sampler = factory();
      for (let i = 0; i < 100; i++) expect(sampler().rss).toBeGreaterThan(0);
    });
  });
}

describeSamplerContract('processMemorySampler', () => processMemorySampler);
describeSamplerContract('createSyntheticSampler', () => createSyntheticSampler(createManualClock(), { rssMb: linearRssMb(300, 5) }));

describe('createSyntheticSampler', () => {
  it('follows the series on the given clock', () => {
    const clock = createManualClock(1_000);
    const sampler = createSyntheticSampler(clock, { rssMb: linearRssMb(100, 6), heapUsedMb: () => 10 });
    expect(sampler().rss).toBe(100 * 1024 * 1024);
    clock.advance(30_000);
    expect(sampler().rss).toBe(103 * 1024 * 1024);
    expect(sampler().heapUsed).toBe(10 * 1024 * 1024);
    clock.set(61_000);
    expect(clock()).toBe(61_000);
    expect(sampler().rss).toBe(106 * 1024 * 1024);
  });
});
