import { describe, expect, it } from 'vitest';
import { assertNumberOption, GuardError, isGuardError } from './guard-error.js';

describe('GuardError', () => {
  it('carries a stable code, details and its cause', () => {
    const cause = new Error('socket hang up');
    const error = new GuardError('TIMEOUT', 'call timed out', { cause, details: { timeoutMs: 10 } });
    expect(error.code).toBe('TIMEOUT');
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ timeoutMs: 10 });
    expect(error.toJSON()).toMatchObject({ code: 'TIMEOUT', message: 'call timed out' });
  });

  it('isGuardError checks the brand and the code, not instanceof', () => {
    const error = new GuardError('CLOSED', 'closed');
    const copy = { ...error, [Symbol.for('@guard/core.GuardError')]: true, code: 'CLOSED' };
    expect(isGuardError(error, 'CLOSED')).toBe(true);
    expect(isGuardError(error, 'TIMEOUT')).toBe(false);
    expect(isGuardError(copy, 'CLOSED')).toBe(true);
    expect(isGuardError(new Error('x'))).toBe(false);
    expect(isGuardError(null)).toBe(false);
  });

  it('assertNumberOption rejects NaN, negatives and fractions with INVALID_OPTION naming the field', () => {
    expect(() => assertNumberOption('failureThreshold', NaN, { min: 1 })).toThrow(/failureThreshold/);
    expect(() => assertNumberOption('failureThreshold', -1, { min: 1 })).toThrow(/>= 1/);
    expect(() => assertNumberOption('failureThreshold', 1.5, { integer: true })).toThrow(/integer/);
    expect(() => assertNumberOption('x', '5')).toThrow(GuardError);
    try {
      assertNumberOption('resetTimeoutMs', -5, { min: 0 });
    } catch (error) {
      expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
      expect((error as GuardError).details.field).toBe('resetTimeoutMs');
    }
    expect(() => assertNumberOption('ok', 5, { min: 1, integer: true })).not.toThrow();
  });
});
