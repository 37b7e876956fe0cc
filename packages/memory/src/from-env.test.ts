import { isGuardError } from '@guard/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { memoryOptionsFromEnv } from './from-env.js';
import { MemoryGuardrail } from './memory-guardrail.js';

describe('memoryOptionsFromEnv', () => {
  it('returns nothing for an empty environment, so code defaults stay', () => {
    expect(memoryOptionsFromEnv({})).toEqual({});
    expect(memoryOptionsFromEnv({ MEMORY_RSS_THRESHOLD_MB: '  ' })).toEqual({});
  });

  it('reads the seed names with their units', () => {
    expect(
      memoryOptionsFromEnv({
        MEMORY_RSS_THRESHOLD_MB: '512',
        CACHE_ENTRIES_THRESHOLD: '5000',
        AUTO_RESTART_ENABLED: 'true',
        MEMORY_CHECK_INTERVAL_SEC: '30',
        BASELINE_SAMPLE_COUNT: '5',
        LEAK_DETECTION_WINDOW_MIN: '15',
        MEMORY_LEAK_RATE_MB_PER_MIN: '2.5',
        MEMORY_RESTART_STATE_FILE: '/var/lib/app/restart.json',
        MEMORY_HEAP_SNAPSHOT_DIR: '/var/lib/app/heap',
      }),
    ).toEqual({
      rssThresholdMb: 512,
      cacheEntriesThreshold: 5000,
      autoRestart: true,
      checkIntervalMs: 30_000,
      baselineSamples: 5,
      leakWindowMs: 900_000,
      leakRateMbPerMin: 2.5,
      restartStateFile: '/var/lib/app/restart.json',
      heapSnapshotDir: '/var/lib/app/heap',
    });
    expect(memoryOptionsFromEnv({ MEMORY_CHECK_INTERVAL_SEC: '500ms', LEAK_DETECTION_WINDOW_MIN: '90s' })).toEqual({
      checkIntervalMs: 500,
      leakWindowMs: 90_000,
    });
  });

  it.each([
    ['MEMORY_RSS_THRESHOLD_MB', 'lots'],
    ['MEMORY_RSS_THRESHOLD_MB', '0'],
    ['CACHE_ENTRIES_THRESHOLD', '12.5'],
    ['AUTO_RESTART_ENABLED', 'maybe'],
    ['MEMORY_CHECK_INTERVAL_SEC', '-1'],
    ['MEMORY_CHECK_INTERVAL_SEC', 'soon'],
    ['BASELINE_SAMPLE_COUNT', '0'],
    ['LEAK_DETECTION_WINDOW_MIN', '10 minutes'],
  ])('%s=%s throws INVALID_ENV naming the variable', (name, value) => {
    try {
      memoryOptionsFromEnv({ [name]: value });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'INVALID_ENV')).toBe(true);
      expect((error as Error).message).toContain(name);
      expect((error as { details: { variable: string } }).details.variable).toBe(name);
    }
  });

  it('MemoryGuardrail.fromEnv: code wins over the environment, which wins over the defaults', async () => {
    const env = { MEMORY_RSS_THRESHOLD_MB: '300', CACHE_ENTRIES_THRESHOLD: '40' };
    const guardrail = MemoryGuardrail.fromEnv(env, { rssThresholdMb: 900, autoStart: false, registry: new Registry() });
    expect(guardrail.report().thresholds).toMatchObject({ rssMb: 900, cacheEntries: 40, warningRatio: 0.8 });
    await guardrail.close();
  });
});
