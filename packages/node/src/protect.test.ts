import { describe, expect, it } from 'vitest';
import { createGuard } from './index.js';
import { testGuardOptions } from '../test/support.js';

describe('guard.protect', () => {
  it('outside full mode the breaker opens but refuses nothing; in full mode the open breaker fails fast', async () => {
    await using guard = await createGuard(testGuardOptions({ mode: 'detect', immune: false }));
    const breaker = guard.breakers.getOrCreate('dependency', { failureThreshold: 2, resetTimeoutMs: 600_000 });
    let calls = 0;
    const down = () => {
      calls += 1;
      return Promise.reject(new Error('connection refused'));
    };
    for (let i = 0; i < 2; i++) await expect(guard.protect(breaker, down)).rejects.toThrow('connection refused');
    expect(breaker.state).toBe('open'); // the detection happens in every mode

    // detect: the refused call still reaches the dependency, and a healthy answer comes back.
    await expect(guard.protect(breaker, down)).rejects.toThrow('connection refused');
    expect(calls).toBe(3);
    await expect(guard.protect(breaker, (signal) => Promise.resolve(signal?.aborted === false ? 'ok' : 'no signal'), { timeoutMs: 1_000 })).resolves.toBe('ok');

    guard.chain.setMode('full', 'circuit');
    await expect(guard.protect(breaker, down)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect(calls).toBe(3);
  });
});
