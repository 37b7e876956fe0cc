import { describe, expect, it } from 'vitest';
import { envReader } from './env.js';
import { isGuardError } from './guard-error.js';

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('envReader', () => {
  it('returns fallbacks for unset and empty variables', () => {
    const env = envReader({ EMPTY: '  ' });
    expect(env.number('MISSING', 7)).toBe(7);
    expect(env.boolean('EMPTY', true)).toBe(true);
    expect(env.string('MISSING')).toBeUndefined();
  });

  it('parses booleans in their common spellings', () => {
    const env = envReader({ A: 'true', B: '0', C: 'YES', D: 'off', E: 'enabled' });
    expect([env.boolean('A', false), env.boolean('B', true), env.boolean('C', false), env.boolean('D', true), env.boolean('E', false)]).toEqual([
      true, false, true, false, true,
    ]);
  });

  it('rejects a bad boolean naming the variable', () => {
    const error = errorOf(() => envReader({ AUTO_RESTART_ENABLED: 'maybe' }).boolean('AUTO_RESTART_ENABLED', false));
    expect(isGuardError(error, 'INVALID_ENV')).toBe(true);
    expect((error as Error).message).toContain('AUTO_RESTART_ENABLED');
    expect((error as { details: { variable: string } }).details.variable).toBe('AUTO_RESTART_ENABLED');
  });

  it('parses numbers within bounds and rejects the rest', () => {
    const env = envReader({ N: '700', NEG: '-1', FRAC: '2.5', JUNK: '12abc', NAN: 'NaN' });
    expect(env.number('N', 0, { min: 1 })).toBe(700);
    expect(() => env.number('NEG', 0, { min: 0 })).toThrow(/NEG.*>= 0/);
    expect(() => env.number('FRAC', 0, { integer: true })).toThrow(/FRAC.*integer/);
    expect(() => env.number('JUNK', 0)).toThrow(/JUNK/);
    expect(() => env.number('NAN', 0)).toThrow(/NAN/);
  });

  it('parses durations with units and bare numbers in the given unit', () => {
    const env = envReader({ A: '5s', B: '250ms', C: '10min', D: '60', E: '1h', BAD: '5 parsecs' });
    expect(env.durationMs('A', 0)).toBe(5_000);
    expect(env.durationMs('B', 0)).toBe(250);
    expect(env.durationMs('C', 0)).toBe(600_000);
    expect(env.durationMs('D', 0, 's')).toBe(60_000);
    expect(env.durationMs('E', 0)).toBe(3_600_000);
    expect(() => env.durationMs('BAD', 0)).toThrow(/BAD="5 parsecs" is invalid/);
  });

  it('reads a duration with a unit as parseDuration does (the unit of the name applies to bare numbers only)', () => {
    const env = envReader({ WINDOW_SEC: '1.5m', LEASE_MIN: '1d', BARE_MIN: '2', NEG: '-5s', LOW: '10ms' });
    expect(env.durationMs('WINDOW_SEC', 0, 's')).toBe(90_000);
    expect(env.durationMs('LEASE_MIN', 0, 'min')).toBe(86_400_000);
    expect(env.durationMs('BARE_MIN', 0, 'min')).toBe(120_000);
    expect(() => env.durationMs('NEG', 0)).toThrow(/NEG="-5s" is invalid/);
    expect(() => env.durationMs('LOW', 0, 'ms', { min: 100 })).toThrow(/LOW="10ms" is invalid: expected a duration .* >= 100/);
  });

  it('parses enums case-insensitively and rejects unknown values', () => {
    const env = envReader({ MODE: 'FULL', BAD: 'loud' });
    expect(env.oneOf('MODE', ['disabled', 'dry_run', 'detect', 'full'], 'dry_run')).toBe('full');
    expect(() => env.oneOf('BAD', ['disabled', 'full'], 'full')).toThrow(/BAD.*one of disabled, full/);
  });

  it('reads a Prometheus metric-name prefix and rejects one Prometheus would not take', () => {
    const env = envReader({ P: 'api_v2:', BAD: '2fast', SPACE: 'my prefix' });
    expect(env.metricsPrefix('P', 'guard')).toBe('api_v2:');
    expect(env.metricsPrefix('UNSET', 'guard')).toBe('guard');
    expect(() => env.metricsPrefix('BAD', 'guard')).toThrow(expect.objectContaining({ code: 'INVALID_ENV', details: expect.objectContaining({ variable: 'BAD', value: '2fast' }) }));
    expect(() => env.metricsPrefix('SPACE', 'guard')).toThrow(/SPACE="my prefix" is invalid: expected a Prometheus name prefix/);
  });

  it('parses key=value thresholds and rejects malformed or unknown keys', () => {
    const env = envReader({ T: 'ack_timeout=3, leak_threshold=1000', BAD: 'ack_timeout', UNKNOWN: 'nope=1' });
    expect(env.thresholds('T')).toEqual({ ack_timeout: 3, leak_threshold: 1000 });
    expect(() => env.thresholds('BAD')).toThrow(/BAD/);
    expect(() => env.thresholds('UNKNOWN', ['ack_timeout'])).toThrow(/UNKNOWN.*ack_timeout/);
  });

  it('accepts aliases, the first set name winning', () => {
    const env = envReader({ ANALYZER_MAX_CONNECTIONS: '20' });
    expect(env.number(['GUARD_MAX_CONNECTIONS', 'ANALYZER_MAX_CONNECTIONS'], 50)).toBe(20);
    expect(env.nameOf(['GUARD_MAX_CONNECTIONS', 'ANALYZER_MAX_CONNECTIONS'])).toBe('ANALYZER_MAX_CONNECTIONS');
    const both = envReader({ GUARD_MAX_CONNECTIONS: '10', ANALYZER_MAX_CONNECTIONS: '20' });
    expect(both.number(['GUARD_MAX_CONNECTIONS', 'ANALYZER_MAX_CONNECTIONS'], 50)).toBe(10);
  });
});
