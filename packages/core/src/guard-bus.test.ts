import { describe, expect, it } from 'vitest';
import { GuardBus } from './guard-bus.js';
import type { Detection } from './types.js';
import type { Logger } from './logger.js';

const detection: Detection = {
  id: 'det_1', component: 'websocket', pattern: 'no_ack', severity: 'critical',
  resourceId: 'conn-1', message: 'unacked', details: {}, detectedAt: 1,
};

describe('GuardBus', () => {
  it('delivers typed events to subscribers', () => {
    const bus = new GuardBus();
    const seen: string[] = [];
    bus.on('detection', (d) => seen.push(d.id));
    expect(bus.emit('detection', detection)).toBe(true);
    expect(seen).toEqual(['det_1']);
  });

  it('isolates a throwing listener: later listeners run and emit does not throw', () => {
    const errors: unknown[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (obj) => errors.push(obj) };
    const bus = new GuardBus({ logger });
    const seen: string[] = [];
    bus.on('detection', () => {
      throw new Error('boom');
    });
    bus.on('detection', (d) => seen.push(d.id));
    expect(() => bus.emit('detection', detection)).not.toThrow();
    expect(seen).toEqual(['det_1']);
    expect(errors).toHaveLength(1);
  });

  it('subscriptions are disposable and leave no listener behind', () => {
    const bus = new GuardBus();
    {
      using _sub = bus.subscribe('modeChange', () => {});
      expect(bus.listenerCount('modeChange')).toBe(1);
    }
    expect(bus.listenerCount('modeChange')).toBe(0);
    const off = bus.subscribe('modeChange', () => {});
    off();
    off();
    expect(bus.listenerCount('modeChange')).toBe(0);
  });
});
