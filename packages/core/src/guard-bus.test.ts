import { once } from 'node:events';
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
  it('runs a once listener a single time and removes it, also when another listener throws', () => {
    const bus = new GuardBus();
    const seen: string[] = [];
    bus.on('detection', () => {
      throw new Error('boom');
    });
    bus.once('detection', (d) => seen.push(d.id));
    bus.emit('detection', detection);
    bus.emit('detection', { ...detection, id: 'det_2' });
    expect(seen).toEqual(['det_1']);
    expect(bus.listenerCount('detection')).toBe(1);
  });

  it("works with node's events.once and leaves no listener behind", async () => {
    const bus = new GuardBus();
    const next = once(bus as never, 'detection');
    bus.emit('detection', detection);
    expect(await next).toEqual([detection]);
    expect(bus.listenerCount('detection')).toBe(0);
  });

  it('calls a listener with the context it was added with', () => {
    const bus = new GuardBus();
    const owner = { name: 'owner', got: '' };
    bus.on('detection', function (this: typeof owner, d) { this.got = d.id; }, owner);
    bus.emit('detection', detection);
    expect(owner.got).toBe('det_1');
  });

  it('ending a subscription removes only its own registration of a shared function', () => {
    const bus = new GuardBus();
    let calls = 0;
    const count = () => void calls++;
    const first = bus.subscribe('detection', count);
    bus.subscribe('detection', count);
    first();
    bus.emit('detection', detection);
    expect(calls).toBe(1);
    expect(bus.listenerCount('detection')).toBe(1);
  });

  it('reports a rejected promise of an async listener instead of leaving it unhandled', async () => {
    const errors: unknown[] = [];
    const logger = { error: (obj: { err: unknown }) => errors.push(obj.err), warn() {}, info() {}, debug() {}, trace() {}, fatal() {} } as unknown as Logger;
    const bus = new GuardBus({ logger });
    bus.on('detection', async () => {
      throw new Error('async boom');
    });
    bus.emit('detection', detection);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toHaveLength(1);
  });

  it('events.once leaves no listener behind, the error listener it adds included', async () => {
    const bus = new GuardBus();
    const next = once(bus as never, 'modeChange');
    expect(bus.eventNames().sort()).toEqual(['error', 'modeChange']);
    bus.emit('modeChange', { component: '*', from: 'detect', to: 'full' });
    await next;
    expect(bus.eventNames()).toEqual([]);
  });

  it('off removes one registration; off without a listener and removeAllListeners remove the rest', () => {
    const bus = new GuardBus();
    let calls = 0;
    const count = () => void calls++;
    bus.on('detection', count);
    bus.on('detection', count);
    bus.off('detection', count);
    bus.emit('detection', detection);
    expect(calls).toBe(1);
    bus.on('detection', count);
    bus.removeListener('detection');
    expect(bus.listenerCount('detection')).toBe(0);
    bus.on('modeChange', () => {});
    bus.on('sanitization', () => {});
    bus.removeAllListeners();
    expect(bus.eventNames()).toEqual([]);
  });

  it('subscribe adds and removes through the bus\'s own on/off, so an emitter tracker patched onto it sees both', () => {
    const bus = new GuardBus();
    const calls: string[] = [];
    const on = bus.on.bind(bus);
    const off = bus.off.bind(bus);
    Object.assign(bus, {
      on: (...args: Parameters<typeof on>) => (calls.push('on'), on(...args)),
      off: (...args: Parameters<typeof off>) => (calls.push('off'), off(...args)),
    });
    const sub = bus.subscribe('detection', () => {});
    sub();
    expect(calls).toEqual(['on', 'off']);
    expect(bus.listenerCount('detection')).toBe(0);
  });
});
