import { describe, expect, it } from 'vitest';
import { errorMessage } from './error-message.js';
import { GuardError } from './guard-error.js';

describe('errorMessage', () => {
  it.each([
    [new Error('boom'), 'boom'],
    [new GuardError('TIMEOUT', 'slow'), 'slow'],
    [new TypeError(''), 'TypeError'],
    ['plain text', 'plain text'],
    [{ message: 'from an object' }, 'from an object'],
    [42, '42'],
    [undefined, 'undefined'],
    [null, 'null'],
    [Object.create(null) as object, '[object Object]'],
  ])('%s -> %j', (error, message) => {
    expect(errorMessage(error)).toBe(message);
  });
});
