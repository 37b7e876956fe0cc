import { EventEmitter } from 'node:events';
import { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createGuard } from './index.js';
import { testGuardOptions } from '../test/support.js';

afterEach(() => vi.useRealTimers());

describe('guard.close()', () => {
  it('leaves nothing running: every timer and interval of every part is gone, the app bus has no listener of Guard left', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const wss = new WebSocketServer({ noServer: true });
    const appBus = new EventEmitter();
    const guard = await createGuard(testGuardOptions({
      wss,
      emitters: { app: appBus },
      bulkhead: { name: 'downstream', maxConcurrent: 2 },
      pressure: true,
      playbooks: { acl: { api: ['orders.*'] } },
    }));
    guard.breakers.getOrCreate('payments');
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    expect(wss.listenerCount('connection')).toBe(1);
    await guard.close();
    await guard.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(wss.listenerCount('connection')).toBe(0);
    expect(appBus.eventNames()).toEqual([]);
    expect(guard.shuttingDown).toBe(true);
  });
});
