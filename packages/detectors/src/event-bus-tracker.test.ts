import { GuardBus, isGuardError, waitUntil } from '@guard/core';
import type { Detection } from '@guard/core';
import { EventEmitter as EE3 } from 'eventemitter3';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DetectorChain } from './detector-chain.js';
import { EventBusTracker } from './event-bus-tracker.js';
import { chainFor, fileLine, forceGc, lineHere } from './test-support.js';

type Fn = (...args: unknown[]) => void;
/** What both emitter kinds offer, so the same tests drive both. */
interface TestEmitter {
  on(event: string, fn: Fn): unknown;
  once(event: string, fn: Fn): unknown;
  off(event: string, fn: Fn): unknown;
  removeListener(event: string, fn?: Fn): unknown;
  removeAllListeners(event?: string): unknown;
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  eventNames(): (string | symbol)[];
}

const kinds: [string, () => TestEmitter][] = [
  ['node:events', () => new EventEmitter().setMaxListeners(0) as TestEmitter],
  ['eventemitter3', () => new EE3() as TestEmitter],
];

describe.each(kinds)('EventBusTracker (C2) on %s', (_kind, make) => {
  it('counts listeners through on/once/off/removeAllListeners and does not flag a healthy emitter', () => {
    const { chain } = chainFor();
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 10 }));
    const emitter = make();
    tracker.track(emitter, { name: 'orders' });
    const a = () => {};
    const b = () => {};
    emitter.on('order', a);
    emitter.once('order', b);
    emitter.on('refund', a);
    expect(tracker.listenerCount()).toBe(3);
    emitter.emit('order');
    expect(tracker.listenerCount()).toBe(2);
    emitter.off('order', a);
    emitter.removeAllListeners('refund');
    expect(tracker.listenerCount()).toBe(0);
    for (let i = 0; i < 10; i++) emitter.on('order', () => {});
    expect(chain.scan()).toEqual([]);
  });

  it('flags more than leakThreshold listeners with the top call site at the leaking line', () => {
    const { chain, scheduler } = chainFor('detect');
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 1_000 }));
    const emitter = make();
    tracker.track(emitter, { name: 'bus' });
    emitter.on('ok', () => {});
    let here = '';
    for (let i = 0; i < 1_001; i++) {
      here = lineHere(); emitter.on('price', () => {});
    }
    const [detection] = chain.scan();
    expect(detection).toMatchObject({ component: 'eventbus', pattern: 'subscription_leak', severity: 'warning', resourceId: 'bus', details: { total: 1_002 } });
    // the first 16 registrations and ~1 in 64 after them are sampled: at least the first 16 of the leaking line
    expect((detection!.details.topSites as { site: string; count: number }[])[0]!.count).toBeGreaterThanOrEqual(15);
    expect(fileLine(detection!.source![0])).toBe(here);
    expect(scheduler.scheduled).toEqual([]);
    expect(tracker.listenerCount()).toBe(1_002);
  });

  it('full with the opt-in pruneUnowned policy: the scheduler gets it; removeStale drops the leaking site and the emitter still works', () => {
    const { chain, scheduler } = chainFor('full');
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 100, pruneUnowned: true }));
    const emitter = make();
    tracker.track(emitter, { name: 'bus' });
    let kept = 0;
    emitter.on('price', () => kept++);
    for (let i = 0; i < 150; i++) emitter.on('price', () => {});
    chain.scan();
    expect(scheduler.scheduled).toEqual([expect.objectContaining({ resourceId: 'bus', component: 'eventbus' })]);
    expect(tracker.removeStale('bus')).toBe(149);
    expect(tracker.listenerCount()).toBe(2);
    emitter.emit('price');
    expect(kept).toBe(1);
    chain.scan();
    expect(chain.active()).toEqual([]);
    expect(tracker.removeStale('unknown')).toBe(0);
  });

  it('flags listeners whose owner was collected, and removes exactly those', async () => {
    const { chain } = chainFor('detect');
    const tracker = chain.add(new EventBusTracker());
    const emitter = make();
    const live = { name: 'live view' };
    tracker.on(emitter, 'tick', () => {}, { owner: live });
    (() => {
      for (let i = 0; i < 3; i++) tracker.on(emitter, 'tick', () => {}, { owner: { name: `gone ${i}` } });
    })();
    await new Promise((r) => setImmediate(r));
    // collected owners are reported through a FinalizationRegistry, which runs after a GC in a later task
    await waitUntil(() => {
      forceGc();
      return chain.scan().length > 0 || chain.active().length > 0;
    });
    const [detection] = chain.active();
    const name = tracker.track(emitter);
    expect(name).toMatch(/^emitter_\d+$/);
    expect(detection).toMatchObject({ pattern: 'subscription_leak', severity: 'critical', resourceId: `${name}#stale`, details: { stale: 3 } });
    expect(tracker.owns(detection!.resourceId)).toBe(true);
    expect(tracker.removeStale(`${name}#stale`)).toBe(3);
    expect(tracker.listenerCount()).toBe(1);
    expect(chain.scan()).toEqual([]);
    expect(live.name).toBe('live view');
  });
});

describe('EventBusTracker', () => {
  it('dry_run and detect never remove listeners', () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      const { chain } = chainFor(mode);
      const tracker = chain.add(new EventBusTracker({ leakThreshold: 5 }));
      const emitter = new EventEmitter();
      tracker.track(emitter);
      for (let i = 0; i < 10; i++) emitter.on('x', () => {});
      expect(chain.scan()).toHaveLength(1);
      expect(emitter.listenerCount('x')).toBe(10);
    }
  });

  it('triggers a scan when crossing the threshold; parasite_eventbus_subscriptions{event_type} is counted at scrape time', async () => {
    const { chain, registry } = chainFor();
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 3 }));
    const bus = new GuardBus();
    tracker.track(bus);
    for (let i = 0; i < 4; i++) bus.on('detection', () => {});
    await new Promise((r) => setImmediate(r));
    expect(chain.active()).toHaveLength(1);
    expect(await registry.metrics()).toContain('parasite_eventbus_subscriptions{event_type="detection"} 4');
    // no scan in between: the scrape reads the emitter itself
    bus.removeAllListeners();
    expect(await registry.metrics()).not.toContain('event_type="detection"');
  });

  it('parasite_eventbus_subscriptions adds up two trackers on one registry, and a closed tracker stops counting', async () => {
    const { chain, registry } = chainFor();
    const [first, second] = [chain.add(new EventBusTracker()), chain.add(new EventBusTracker())];
    const [a, b] = [new EventEmitter(), new EventEmitter()];
    first.track(a);
    second.track(b);
    a.on('tick', () => {});
    for (let i = 0; i < 2; i++) b.on('tick', () => {});
    expect(await registry.metrics()).toContain('parasite_eventbus_subscriptions{event_type="tick"} 3');
    await second.close();
    expect(await registry.metrics()).toContain('parasite_eventbus_subscriptions{event_type="tick"} 1');
  });

  it('untracks and restores emitters; validates options; refuses use after close', async () => {
    const tracker = new EventBusTracker();
    const emitter = new EventEmitter();
    const original = emitter.on;
    tracker.track(emitter);
    expect(emitter.on).not.toBe(original);
    expect(tracker.untrack(emitter)).toBe(true);
    expect(emitter.on).toBe(original);
    expect(Object.prototype.hasOwnProperty.call(emitter, 'on')).toBe(false);
    expect(tracker.untrack(emitter)).toBe(false);
    expect(() => new EventBusTracker({ leakThreshold: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    tracker.track(emitter);
    await tracker.close();
    await tracker.close();
    expect(emitter.on).toBe(original);
    try {
      tracker.track(new EventEmitter());
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    }
  });
});

/** `global.gc` from `--expose-gc` (vitest.config.ts), then a task so FinalizationRegistry callbacks can run. */
async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  gc();
  await new Promise((resolve) => setImmediate(resolve));
}

/** Collects garbage and scans until a detection matches: collected owners show through a FinalizationRegistry, after a GC, in a later task. */
async function scanAfterGc(chain: DetectorChain, found: (detection: Detection) => boolean): Promise<void> {
  await waitUntil(() => {
    forceGc();
    chain.scan();
    return chain.active().some(found);
  });
}

/** Heals `name` and `name#stale` as a sanitizer would, in that order: how many listeners each removed. */
function healBoth(tracker: EventBusTracker, name: string): [number, number] {
  return [tracker.removeStale(name), tracker.removeStale(`${name}#stale`)];
}

/** `expected` listeners are left on `event`, and one emit reaches each of them exactly once (`hits` per listener). */
function expectLiveListeners(bus: EventEmitter, event: string, expected: number, hits: () => number[]): void {
  expect(bus.listenerCount(event)).toBe(expected);
  bus.emit(event);
  expect(hits().every((n) => n === 1)).toBe(true);
}

describe('EventBusTracker heals only what is stale (C2)', () => {
  it('2,000 live per-connection listeners over the threshold in full mode: reported with call sites, zero removed', async () => {
    const { chain, scheduler } = chainFor('full');
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 1_000 }));
    const bus = new EventEmitter().setMaxListeners(0);
    tracker.track(bus, { name: 'bus' });
    const connections: { id: number; received: number }[] = [];
    let ownedSite = '';
    let unownedSite = '';
    for (let i = 0; i < 2_000; i++) {
      const connection = { id: i, received: 0 };
      connections.push(connection);
      // half tie their listener to the connection, half (like a plain `bus.on` per socket) have no owner
      if (i % 2 === 0) {
        ownedSite = lineHere(); tracker.on(bus, 'price', () => connection.received++, { owner: connection });
      } else {
        unownedSite = lineHere(); bus.on('price', () => connection.received++);
      }
    }
    const [detection] = chain.scan();
    expect(detection).toMatchObject({ resourceId: 'bus', pattern: 'subscription_leak', severity: 'warning', details: { total: 2_000, owned: 1_000, pruneUnowned: false } });
    const sites = (detection!.details.topSites as { site: string }[]).map((s) => fileLine(s.site));
    expect(sites).toEqual(expect.arrayContaining([ownedSite, unownedSite]));
    // a warning is not handed to the sanitizer, and even a direct heal finds nothing stale to remove
    expect(scheduler.scheduled).toEqual([]);
    await collectGarbage();
    expect(healBoth(tracker, 'bus')).toEqual([0, 0]);
    expectLiveListeners(bus, 'price', 2_000, () => connections.map((c) => c.received));
  });

  it('removes the listeners of collected owners and keeps every live one, on a threshold heal too', async () => {
    const { chain, scheduler } = chainFor('full');
    const tracker = chain.add(new EventBusTracker({ leakThreshold: 100 }));
    const bus = new EventEmitter().setMaxListeners(0);
    tracker.track(bus, { name: 'views' });
    const live: { hits: number }[] = [];
    for (let i = 0; i < 150; i++) {
      const view = { hits: 0 };
      live.push(view);
      tracker.on(bus, 'tick', () => view.hits++, { owner: view });
    }
    (() => {
      for (let i = 0; i < 60; i++) tracker.on(bus, 'tick', () => {}, { owner: { gone: i } });
    })();
    await scanAfterGc(chain, (d) => d.resourceId === 'views#stale' && d.details.stale === 60);
    expect(scheduler.scheduled.map((d) => [d.resourceId, d.severity])).toEqual([['views#stale', 'critical']]);
    // the threshold heal (as a sanitizer would run it) removes the same 60, never a live view's listener
    expect(healBoth(tracker, 'views')).toEqual([60, 0]);
    expectLiveListeners(bus, 'tick', 150, () => live.map((v) => v.hits));
  });

  it('finds owners collected after registering in their own constructor (source capture keeps nothing alive)', async () => {
    const { chain } = chainFor('detect');
    const tracker = new EventBusTracker({ traceSources: true });
    chain.add(tracker);
    const bus = new EventEmitter().setMaxListeners(0);
    const name = tracker.track(bus);
    class Widget {
      constructor(emitter: EventEmitter) {
        tracker.on(emitter, 'x', () => {}, { owner: this });
      }
    }
    const kept = new Widget(bus);
    (() => {
      for (let i = 0; i < 5; i++) new Widget(bus);
    })();
    await scanAfterGc(chain, (d) => d.resourceId === `${name}#stale`);
    const [detection] = chain.active();
    expect(detection).toMatchObject({ resourceId: `${name}#stale`, details: { stale: 5 } });
    expect(fileLine(detection!.source?.[0])).toMatch(/event-bus-tracker\.test\.ts:\d+$/);
    expect(tracker.removeStale(detection!.resourceId)).toBe(5);
    expect(bus.listenerCount('x')).toBe(1);
    expect(kept).toBeInstanceOf(Widget);
  });
});
