import { EventEmitter } from 'node:events';
import type { Detection, EventBusTarget } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createEventBusSanitizer } from './eventbus-sanitizer.js';

/** A minimal real tracker over a node:events emitter: listeners registered through it, grouped by call site. */
class TestEmitterTracker implements EventBusTarget {
  readonly #bySite = new Map<string, Array<{ event: string; listener: (...args: unknown[]) => void }>>();
  constructor(readonly emitter: EventEmitter) {}

  on(event: string, listener: (...args: unknown[]) => void, site: string): void {
    this.emitter.on(event, listener);
    const list = this.#bySite.get(site) ?? [];
    list.push({ event, listener });
    this.#bySite.set(site, list);
  }
  removeStale(resourceId: string): number {
    const list = this.#bySite.get(resourceId) ?? [];
    for (const { event, listener } of list) this.emitter.off(event, listener);
    this.#bySite.delete(resourceId);
    return list.length;
  }
  listenerCount(): number {
    return this.emitter.eventNames().reduce((sum, name) => sum + this.emitter.listenerCount(name), 0);
  }
}

function detection(resourceId: string): Detection {
  return { id: 'det_1', component: 'eventbus', pattern: 'subscription_leak', severity: 'warning', resourceId, message: 'leak', details: {}, detectedAt: 0 };
}

describe('createEventBusSanitizer against a real EventEmitter', () => {
  it('removes the leaked listeners, keeps the healthy ones and reports the new total', async () => {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    const tracker = new TestEmitterTracker(emitter);
    let healthyCalls = 0;
    let leakedCalls = 0;
    tracker.on('order', () => healthyCalls++, 'app.ts:10');
    for (let i = 0; i < 1_500; i++) tracker.on('order', () => leakedCalls++, 'handler.ts:42');
    expect(emitter.listenerCount('order')).toBe(1_501);

    const report = await createEventBusSanitizer(tracker).sanitize(detection('handler.ts:42'), { signal: new AbortController().signal });

    expect(report).toEqual({ outcome: 'success', actions: ['removeStale'], details: { removed: 1_500, listenersBefore: 1_501, listeners: 1 } });
    expect(emitter.listenerCount('order')).toBe(1);
    emitter.emit('order');
    expect(healthyCalls).toBe(1);
    expect(leakedCalls).toBe(0);
  });

  it('skips when nothing is left to remove, and honours an aborted signal', async () => {
    const tracker = new TestEmitterTracker(new EventEmitter());
    const sanitizer = createEventBusSanitizer(tracker);
    await expect(sanitizer.sanitize(detection('gone.ts:1'), { signal: new AbortController().signal })).resolves.toMatchObject({ outcome: 'skipped', details: { removed: 0 } });
    await expect(sanitizer.sanitize(detection('gone.ts:1'), { signal: AbortSignal.abort(new Error('stop')) })).rejects.toThrow('stop');
  });
});
