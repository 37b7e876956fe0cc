import { describe, expect, it } from 'vitest';
import type { ChaosStatus } from './chaos-verdict.js';
import { judge } from './chaos-verdict.js';

const base = (over: Partial<ChaosStatus>): ChaosStatus => ({
  scenario: 'cpu-spike',
  claim: 'healed',
  injectedAt: 1_000,
  injected: 'fault',
  finished: true,
  targets: { detectMs: 20_000, recoverMs: 60_000 },
  ...over,
});

describe('judge (the chaos CLI verdict)', () => {
  it('a healed claim passes only with detection, a remedy by the guard and recovery, in that order', () => {
    expect(judge(base({ detectedAt: 2_000, remediatedAt: 3_000, recoveredAt: 4_000 }))).toMatchObject({ ok: true, verdict: 'healed', detectedMs: 1_000, remediatedMs: 2_000, recoveredMs: 3_000 });
    // Recovery without a remedy (the fault ended by itself, or a notify-only playbook) is a FAIL.
    expect(judge(base({ detectedAt: 2_000, recoveredAt: 4_000 }))).toMatchObject({ ok: false, verdict: 'FAIL', misses: ['no healing action by the guard'] });
    expect(judge(base({ detectedAt: 2_000, remediatedAt: 3_000 })).misses).toEqual(['not recovered']);
    expect(judge(base({ remediatedAt: 3_000, recoveredAt: 4_000 })).misses).toContain('not detected');
    expect(judge(base({ detectedAt: 3_000, remediatedAt: 2_000, recoveredAt: 4_000 })).misses).toEqual(['remedy before detection']);
    expect(judge(base({ detectedAt: 2_000, remediatedAt: 3_000, recoveredAt: 2_500 })).misses).toEqual(['recovered before the remedy']);
  });

  it('misses the targets', () => {
    expect(judge(base({ detectedAt: 30_000, remediatedAt: 31_000, recoveredAt: 32_000 })).misses).toEqual(['detected after 29000 ms > 20000 ms']);
    expect(judge(base({ detectedAt: 2_000, remediatedAt: 3_000, recoveredAt: 70_000 })).misses).toEqual(['recovered after 69000 ms > 60000 ms']);
  });

  it('a protected claim names the missing protection', () => {
    expect(judge(base({ claim: 'protected', detectedAt: 2_000, recoveredAt: 9_000 })).misses).toEqual(['no protection by the guard']);
    expect(judge(base({ claim: 'protected', detectedAt: 2_000, remediatedAt: 2_100, recoveredAt: 9_000 }))).toMatchObject({ ok: true, verdict: 'protected' });
  });

  it('a reported claim passes on the report alone and fails if anything claims to have healed it', () => {
    expect(judge(base({ claim: 'reported', detectedAt: 2_000, reportedAt: 2_001 }))).toMatchObject({ ok: true, verdict: 'reported', remediatedMs: undefined });
    expect(judge(base({ claim: 'reported', detectedAt: 2_000 })).misses).toEqual(['not reported in the immune log']);
    expect(judge(base({ claim: 'reported', detectedAt: 2_000, reportedAt: 2_001, remediatedAt: 2_500 })).misses).toEqual(['claims a heal for a report-only finding']);
  });
});
