import { describe, expect, it } from 'vitest';
import { assertOpen, closeOnce } from './closeable.js';
import { isGuardError } from './guard-error.js';

describe('closeOnce', () => {
  it('runs the close function once however often it is called', async () => {
    let runs = 0;
    const close = closeOnce(async () => {
      runs += 1;
    });
    await Promise.all([close(), close()]);
    await close();
    expect(runs).toBe(1);
  });

  it('supports await using through Symbol.asyncDispose', async () => {
    let closed = false;
    {
      await using _resource = { close: closeOnce(() => { closed = true; }), [Symbol.asyncDispose]() { return this.close(); } };
    }
    expect(closed).toBe(true);
  });

  it('assertOpen throws CLOSED', () => {
    expect(() => assertOpen(false, 'Pool')).not.toThrow();
    try {
      assertOpen(true, 'Pool');
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    }
  });
});
