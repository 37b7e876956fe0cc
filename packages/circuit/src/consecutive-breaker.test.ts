import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { ConsecutiveBreaker } from './consecutive-breaker.js';
import { failTimes } from './test-support.js';

describe('ConsecutiveBreaker', () => {
  it('opens on the threshold-th failure in a row; a success starts the count again', () => {
    const breaker = new ConsecutiveBreaker(3);
    expect([breaker.failure(), breaker.failure()]).toEqual([false, false]);
    breaker.success();
    expect([breaker.failure(), breaker.failure(), breaker.failure()]).toEqual([false, false, true]);
  });

  it('its state is the count, and a saved count round-trips through a CircuitBreaker', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 5 });
    await failTimes(breaker, 4);
    const saved = JSON.parse(JSON.stringify(breaker)) as ReturnType<CircuitBreaker['toJSON']>;
    await using restored = new CircuitBreaker({ metrics: false, failureThreshold: 5, initialState: saved });
    expect(restored.toJSON()).toEqual(breaker.toJSON());
    await failTimes(restored, 1);
    expect(restored.state).toBe('open');
  });

  it('a bad saved count throws INVALID_OPTION naming the field', () => {
    expect(() => new CircuitBreaker({ metrics: false, initialState: { consecutiveFailures: -1 } })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', details: expect.objectContaining({ field: 'initialState.consecutiveFailures' }) }),
    );
  });
});
