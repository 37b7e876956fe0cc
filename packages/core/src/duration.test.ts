import { describe, expect, it } from 'vitest';
import { parseDuration } from './duration.js';
import { isGuardError } from './guard-error.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['10min', 600_000],
    ['2 sec', 2_000],
    [' 3H ', 10_800_000],
    ['1500', 1_500],
    ['0', 0],
    [250, 250],
    [0.5, 0.5],
  ] as const)('%j is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '-5s', '', 's', '5 years', '5ss', '1e3', '1,5s', 'ten'])('rejects %j with INVALID_INPUT naming the field', (input) => {
    let caught: unknown;
    try {
      parseDuration(input, { field: 'window' });
    } catch (error) {
      caught = error;
    }
    expect(isGuardError(caught, 'INVALID_INPUT')).toBe(true);
    expect((caught as { details: unknown }).details).toEqual({ field: 'window', value: input });
    expect((caught as Error).message).toContain('window must be a duration');
  });

  it('names the field "duration" by default', () => {
    expect(() => parseDuration('soon')).toThrow(/^duration must be a duration/);
  });
});
