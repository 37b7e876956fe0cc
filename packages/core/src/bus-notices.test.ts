import { describe, expect, it } from 'vitest';
import { BusNotices } from './bus-notices.js';
import type { HeartbeatNotice } from './contract-events.js';
import { GuardBus } from './guard-bus.js';
import type { Logger } from './logger.js';

const notice: HeartbeatNotice = { kind: 'missed', component: 'ingest', reason: 'deadline', at: 1 };

function recordingLogger(): Logger & { errors: Array<{ fields: unknown; message: unknown }> } {
  const errors: Array<{ fields: unknown; message: unknown }> = [];
  const noop = () => {};
  return { errors, debug: noop, info: noop, warn: noop, error: (fields: unknown, message?: unknown) => void errors.push({ fields, message }) };
}

describe('BusNotices', () => {
  it('delivers to its own listeners first, then on the bus under its event name', () => {
    const bus = new GuardBus();
    const notices = new BusNotices('heartbeat', { bus, owner: 'Watchdog' });
    const seen: string[] = [];
    notices.on((n) => void seen.push(`local ${n.kind}`));
    bus.on('heartbeat', (n) => void seen.push(`bus ${n.kind}`));
    notices.emit(notice);
    expect(seen).toEqual(['local missed', 'bus missed']);
  });

  it('a throwing or rejecting listener is logged under the owner’s name; the others and the bus still get the notice', async () => {
    const bus = new GuardBus();
    const logger = recordingLogger();
    const notices = new BusNotices('heartbeat', { bus, logger, owner: 'Watchdog' });
    const got: HeartbeatNotice[] = [];
    notices.on(() => {
      throw new Error('listener bug');
    });
    notices.on(() => Promise.reject(new Error('async listener bug')));
    notices.on((n) => void got.push(n));
    bus.on('heartbeat', (n) => void got.push(n));
    expect(() => notices.emit(notice)).not.toThrow();
    expect(got).toEqual([notice, notice]);
    await Promise.resolve();
    expect(logger.errors.map((e) => e.message)).toEqual(['Watchdog listener threw', 'Watchdog listener threw']);
    expect(logger.errors[0]!.fields).toMatchObject({ err: { message: 'listener bug' }, event: 'heartbeat' });
  });

  it('a subscription and removeAllListeners end local delivery only; without a bus only local listeners hear it', () => {
    const bus = new GuardBus();
    const withBus = new BusNotices('heartbeat', { bus, owner: 'Watchdog' });
    const alone = new BusNotices('heartbeat', { owner: 'Watchdog' });
    let local = 0;
    let onBus = 0;
    const sub = withBus.on(() => void local++);
    bus.on('heartbeat', () => void onBus++);
    alone.on(() => void local++);
    alone.emit(notice);
    sub();
    withBus.emit(notice);
    withBus.on(() => void local++);
    withBus.removeAllListeners();
    withBus.emit(notice);
    expect({ local, onBus }).toEqual({ local: 1, onBus: 2 });
  });
});
