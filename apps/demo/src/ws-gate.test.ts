import { describe, expect, it } from 'vitest';
import { MessageBudget, webSocketLimitsFromEnv } from './ws-gate.js';

describe('MessageBudget', () => {
  it('allows the burst at once, then the rate, and refills with time', () => {
    const budget = new MessageBudget(2, 3, 0);
    expect([budget.take(0), budget.take(0), budget.take(0), budget.take(0)]).toEqual([true, true, true, false]);
    expect(budget.take(499)).toBe(false); // 0.998 of a token refilled
    expect(budget.take(500)).toBe(true);
    expect(budget.take(500)).toBe(false);
    expect([budget.take(10_000), budget.take(10_000), budget.take(10_000), budget.take(10_000)]).toEqual([true, true, true, false]); // capped at the burst
  });
});

describe('webSocketLimitsFromEnv', () => {
  it('reads the limits and rejects bad values naming the variable', () => {
    expect(webSocketLimitsFromEnv({})).toEqual({ maxConnections: 5_000, maxMessagesPerSec: 20, messageBurst: 40, maxPayloadBytes: 65_536 });
    expect(webSocketLimitsFromEnv({ WS_MAX_CONNECTIONS: '10', WS_MAX_MESSAGES_PER_SEC: '0.5' })).toMatchObject({ maxConnections: 10, maxMessagesPerSec: 0.5 });
    expect(() => webSocketLimitsFromEnv({ WS_MAX_CONNECTIONS: '0' })).toThrow(/WS_MAX_CONNECTIONS/);
    expect(() => webSocketLimitsFromEnv({ WS_MESSAGE_BURST: 'lots' })).toThrow(/WS_MESSAGE_BURST/);
  });
});
