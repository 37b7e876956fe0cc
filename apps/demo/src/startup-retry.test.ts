import { silentLogger } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { retryWhileUnavailable } from './startup-retry.js';

const statementTimeout = Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });

describe('retryWhileUnavailable', () => {
  it('retries while the database is unavailable, then returns the result', async () => {
    let calls = 0;
    const result = await retryWhileUnavailable('t', async () => (++calls < 3 ? Promise.reject(new Error('wrapped', { cause: statementTimeout })) : 'ok'), { logger: silentLogger, deadlineMs: 10_000, delayMs: 0 });
    expect([result, calls]).toEqual(['ok', 3]);
  });

  it('rejects a bug at once, and an outage once the deadline passed', async () => {
    let calls = 0;
    await expect(retryWhileUnavailable('t', async () => Promise.reject(new TypeError(`bug ${++calls}`)), { logger: silentLogger, deadlineMs: 10_000, delayMs: 0 })).rejects.toThrow('bug 1');
    await expect(retryWhileUnavailable('t', async () => Promise.reject(statementTimeout), { logger: silentLogger, deadlineMs: 0, delayMs: 10 })).rejects.toBe(statementTimeout);
  });
});
