import { GuardBus, isGuardError } from '@guard/core';
import type { Detection, SanitizeResult } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeferredSanitizer } from './deferred-sanitizer.js';
import type { SanitizeReport, Sanitizer } from './sanitizer.js';
import { MemoryWebSocketTarget } from './testing.js';
import { createWebSocketSanitizer } from './websocket-sanitizer.js';

let seq = 0;
function detection(component: string, resourceId = `r${++seq}`): Detection {
  return {
    id: `det_${++seq}`,
    component,
    pattern: 'test_pattern',
    severity: 'critical',
    resourceId,
    message: 'test',
    details: {},
    detectedAt: Date.now(),
  };
}

/** A sanitizer that takes `workMs` of (fake) time and records what it saw. */
function timedSanitizer(component: string, workMs: number, report: SanitizeReport = { outcome: 'success' }) {
  const state = { started: [] as string[], running: 0, maxRunning: 0, signals: [] as AbortSignal[] };
  const sanitizer: Sanitizer = {
    component,
    async sanitize(d, { signal }) {
      state.started.push(d.resourceId);
      state.signals.push(signal);
      state.running++;
      state.maxRunning = Math.max(state.maxRunning, state.running);
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, workMs);
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(signal.reason);
          });
        });
        return report;
      } finally {
        state.running--;
      }
    },
  };
  return { sanitizer, state };
}

function collect(bus: GuardBus): SanitizeResult[] {
  const results: SanitizeResult[] = [];
  bus.subscribe('sanitization', (r) => results.push(r));
  return results;
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value;
}

describe('DeferredSanitizer queue', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits the websocket default of 5 s before running, and the configured delay for others', async () => {
    const ws = timedSanitizer('websocket', 0);
    const db = timedSanitizer('db', 0);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [ws.sanitizer, db.sanitizer], metrics: false, delaysMs: { db: 300 } });
    expect(sanitizer.delayFor('websocket')).toBe(5_000);
    expect(sanitizer.schedule(detection('websocket', 'conn-1'))).toBe(true);
    expect(sanitizer.schedule(detection('db', 'conn-9'))).toBe(true);
    expect(sanitizer.stats()).toEqual({ delayed: 2, queued: 0, running: 0 });
    await vi.advanceTimersByTimeAsync(299);
    expect(db.state.started).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(db.state.started).toEqual(['conn-9']);
    await vi.advanceTimersByTimeAsync(4_699);
    expect(ws.state.started).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.state.started).toEqual(['conn-1']);
  });

  it('never runs more than `concurrency` jobs at once and runs them all', async () => {
    const bus = new GuardBus();
    const results = collect(bus);
    const work = timedSanitizer('eventbus', 100);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], bus, concurrency: 2, delaysMs: { eventbus: 0 }, metrics: false });
    for (let i = 0; i < 7; i++) expect(sanitizer.schedule(detection('eventbus'))).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(sanitizer.stats()).toEqual({ delayed: 0, queued: 5, running: 2 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(work.state.maxRunning).toBe(2);
    expect(results).toHaveLength(7);
    expect(results.every((r) => r.outcome === 'success')).toBe(true);
    expect(sanitizer.stats()).toEqual({ delayed: 0, queued: 0, running: 0 });
  });

  it('aborts the signal after timeoutMs and reports outcome timeout, even when the sanitizer ignores the signal', async () => {
    const bus = new GuardBus();
    const results = collect(bus);
    const polite = timedSanitizer('db', 60_000);
    let deafSignal: AbortSignal | undefined;
    const deaf: Sanitizer = {
      component: 'batch',
      sanitize: (_d, { signal }) => {
        deafSignal = signal;
        return new Promise(() => {});
      },
    };
    await using sanitizer = new DeferredSanitizer({
      sanitizers: [polite.sanitizer, deaf],
      bus,
      timeoutMs: 1_000,
      delaysMs: { db: 0, batch: 0 },
      metrics: false,
    });
    sanitizer.schedule(detection('db', 'orphan-1'));
    sanitizer.schedule(detection('batch', 'writer-1'));
    await vi.advanceTimersByTimeAsync(999);
    expect(results).toEqual([]);
    expect(polite.state.signals[0]!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(results.map((r) => [r.resourceId, r.outcome])).toEqual([
      ['orphan-1', 'timeout'],
      ['writer-1', 'timeout'],
    ]);
    expect(polite.state.signals[0]!.aborted).toBe(true);
    expect(isGuardError(polite.state.signals[0]!.reason, 'TIMEOUT')).toBe(true);
    expect(deafSignal?.aborted).toBe(true);
    expect(results[0]!.error).toMatch(/1000 ms/);
    // The slot is free again: the resource can be scheduled anew.
    expect(sanitizer.schedule(detection('batch', 'writer-1'))).toBe(true);
  });

  it('refuses a duplicate resource while delayed or running, and accepts it again once finished', async () => {
    const work = timedSanitizer('context', 500);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], delaysMs: { context: 100 }, metrics: false });
    expect(sanitizer.schedule(detection('context', 'span-1'))).toBe(true);
    expect(sanitizer.schedule(detection('context', 'span-1'))).toBe(false);
    expect(sanitizer.schedule(detection('context', 'span-2'))).toBe(true);
    expect(sanitizer.isScheduled('context', 'span-1')).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(sanitizer.stats().running).toBe(2);
    expect(sanitizer.schedule(detection('context', 'span-1'))).toBe(false);
    await vi.advanceTimersByTimeAsync(500);
    expect(sanitizer.isScheduled('context', 'span-1')).toBe(false);
    expect(sanitizer.schedule(detection('context', 'span-1'))).toBe(true);
    expect(work.state.started).toEqual(['span-1', 'span-2']);
  });

  it('refuses components without a sanitizer, disabled components and a full queue', async () => {
    const a = timedSanitizer('db', 0);
    const b = timedSanitizer('eventbus', 0);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [a.sanitizer, b.sanitizer], disabledComponents: ['eventbus'], maxQueued: 2, metrics: false });
    expect(sanitizer.schedule(detection('websocket'))).toBe(false);
    expect(sanitizer.schedule(detection('eventbus'))).toBe(false);
    expect(sanitizer.schedule(detection('db'))).toBe(true);
    expect(sanitizer.schedule(detection('db'))).toBe(true);
    expect(sanitizer.schedule(detection('db'))).toBe(false);
  });

  it('waitForSanitization resolves true once drained and false when the time runs out', async () => {
    const work = timedSanitizer('db', 1_000);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], delaysMs: { db: 2_000 }, metrics: false });
    await expect(sanitizer.waitForSanitization(10)).resolves.toBe(true);
    sanitizer.schedule(detection('db'));
    const short = sanitizer.waitForSanitization(2_500);
    const long = sanitizer.waitForSanitization(3_500);
    let shortDone: boolean | undefined;
    let longDone: boolean | undefined;
    void short.then((v) => (shortDone = v));
    void long.then((v) => (longDone = v));
    await vi.advanceTimersByTimeAsync(2_500);
    expect(shortDone).toBe(false);
    expect(longDone).toBeUndefined();
    await vi.advanceTimersByTimeAsync(500);
    expect(longDone).toBe(true);
  });

  it('waitForSanitization({ flush: true }) runs delayed jobs at once', async () => {
    const work = timedSanitizer('websocket', 10);
    await using sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], metrics: false });
    sanitizer.schedule(detection('websocket', 'conn-a'));
    const drained = sanitizer.waitForSanitization(100, { flush: true });
    await vi.advanceTimersByTimeAsync(10);
    await expect(drained).resolves.toBe(true);
    expect(work.state.started).toEqual(['conn-a']);
  });

  it('counts outcomes, tracks active jobs and durations on a private registry with the seed names', async () => {
    const registry = new Registry();
    const ok = timedSanitizer('eventbus', 200, { outcome: 'success', actions: ['removeStale'], details: { removed: 3 } });
    const boom: Sanitizer = {
      component: 'db',
      sanitize: async () => {
        throw new Error('pool exploded');
      },
    };
    const slow = timedSanitizer('context', 10_000);
    const bus = new GuardBus();
    const results = collect(bus);
    await using sanitizer = new DeferredSanitizer({
      sanitizers: [ok.sanitizer, boom, slow.sanitizer],
      bus,
      registry,
      timeoutMs: 1_000,
      delaysMs: { eventbus: 0, db: 0, context: 0 },
    });
    sanitizer.schedule(detection('eventbus'));
    sanitizer.schedule(detection('db'));
    sanitizer.schedule(detection('context'));
    await vi.advanceTimersByTimeAsync(100);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'eventbus' })).toBe(1);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'context' })).toBe(1);
    expect(await metricValue(registry, 'parasite_sanitized_total', { component: 'db', outcome: 'failed' })).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await metricValue(registry, 'parasite_sanitized_total', { component: 'eventbus', outcome: 'success' })).toBe(1);
    expect(await metricValue(registry, 'parasite_sanitized_total', { component: 'context', outcome: 'timeout' })).toBe(1);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'eventbus' })).toBe(0);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'context' })).toBe(0);
    const durations = (await registry.getMetricsAsJSON()).find((m) => m.name === 'parasite_sanitization_duration_seconds');
    const count = durations?.values.find((v) => (v as { metricName?: string }).metricName === 'parasite_sanitization_duration_seconds_count' && v.labels.component === 'eventbus');
    expect(count?.value).toBe(1);
    const failed = results.find((r) => r.component === 'db')!;
    expect(failed).toMatchObject({ outcome: 'failed', error: 'pool exploded', actions: [], details: {} });
    const success = results.find((r) => r.component === 'eventbus')!;
    expect(success).toMatchObject({ outcome: 'success', actions: ['removeStale'], details: { removed: 3 } });
    expect(success.finishedAt - success.startedAt).toBe(200);
  });

  it('parasite_active_sanitizations adds up the sanitizers on one registry; a closed one stops counting', async () => {
    const registry = new Registry();
    const [first, second] = [timedSanitizer('db', 1_000), timedSanitizer('db', 1_000)];
    const a = new DeferredSanitizer({ sanitizers: [first.sanitizer], registry, delaysMs: { db: 0 } });
    await using b = new DeferredSanitizer({ sanitizers: [second.sanitizer], registry, delaysMs: { db: 0 } });
    a.schedule(detection('db'));
    b.schedule(detection('db'));
    await vi.advanceTimersByTimeAsync(1);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'db' })).toBe(2);
    await a.close();
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'db' })).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await metricValue(registry, 'parasite_active_sanitizations', { component: 'db' })).toBe(0);
  });

  it('shares metrics between instances on one registry and honours the prefix', async () => {
    const registry = new Registry();
    const a = new DeferredSanitizer({ sanitizers: [timedSanitizer('db', 0).sanitizer], registry, delaysMs: { db: 0 } });
    const b = new DeferredSanitizer({ sanitizers: [timedSanitizer('db', 0).sanitizer], registry, delaysMs: { db: 0 } });
    const c = new DeferredSanitizer({ sanitizers: [timedSanitizer('db', 0).sanitizer], registry, prefix: 'edge', delaysMs: { db: 0 } });
    a.schedule(detection('db'));
    b.schedule(detection('db'));
    c.schedule(detection('db'));
    await vi.advanceTimersByTimeAsync(1);
    expect(await metricValue(registry, 'parasite_sanitized_total', { component: 'db', outcome: 'success' })).toBe(2);
    expect(await metricValue(registry, 'edge_sanitized_total', { component: 'db', outcome: 'success' })).toBe(1);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('turns a synchronous throw and an invalid report into outcome failed', async () => {
    const bus = new GuardBus();
    const results = collect(bus);
    const sync: Sanitizer = {
      component: 'db',
      sanitize: () => {
        throw new Error('sync boom');
      },
    };
    const bogus: Sanitizer = { component: 'batch', sanitize: async () => ({ outcome: 'great' }) as never };
    await using sanitizer = new DeferredSanitizer({ sanitizers: [sync, bogus], bus, delaysMs: { db: 0, batch: 0 }, metrics: false });
    sanitizer.schedule(detection('db'));
    sanitizer.schedule(detection('batch'));
    await vi.advanceTimersByTimeAsync(1);
    expect(results.map((r) => [r.component, r.outcome])).toEqual([
      ['db', 'failed'],
      ['batch', 'failed'],
    ]);
    expect(results[0]!.error).toBe('sync boom');
    expect(results[1]!.error).toMatch(/invalid outcome: great/);
  });

  it('close() cancels delayed jobs, aborts running ones, refuses new work and is idempotent', async () => {
    const bus = new GuardBus();
    const results = collect(bus);
    const work = timedSanitizer('db', 60_000);
    const sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], bus, delaysMs: { db: 0 }, metrics: false });
    sanitizer.schedule(detection('db', 'running'));
    await vi.advanceTimersByTimeAsync(1);
    const waiting = sanitizer.waitForSanitization(60_000);
    await sanitizer.close();
    await sanitizer[Symbol.asyncDispose]();
    await expect(waiting).resolves.toBe(false);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ resourceId: 'running', outcome: 'failed' });
    expect(results[0]!.error).toMatch(/closed/);
    expect(isGuardError(work.state.signals[0]!.reason, 'CLOSED')).toBe(true);
    expect(sanitizer.schedule(detection('db'))).toBe(false);
    await expect(sanitizer.waitForSanitization(1)).resolves.toBe(true);

    const delayed = new DeferredSanitizer({ sanitizers: [work.sanitizer], delaysMs: { db: 1_000 }, metrics: false });
    delayed.schedule(detection('db', 'later'));
    await delayed.close();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(work.state.started).toEqual(['running']);
  });
});

describe('DeferredSanitizer and the event loop', () => {
  const timeouts = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;

  it('keeps the process alive only while someone waits for a drain (delayed jobs alone do not)', async () => {
    const work = timedSanitizer('db', 0);
    const sanitizer = new DeferredSanitizer({ sanitizers: [work.sanitizer], delaysMs: { db: 60_000 }, metrics: false });
    const before = timeouts();
    sanitizer.schedule(detection('db'));
    expect(timeouts()).toBe(before);
    const waiting = sanitizer.waitForSanitization(60_000, { flush: true });
    expect(timeouts()).toBe(before + 1);
    await expect(waiting).resolves.toBe(true);
    expect(timeouts()).toBe(before);
    expect(work.state.started).toHaveLength(1);
    await sanitizer.close();
  });
});

describe('DeferredSanitizer options', () => {
  const noop: Sanitizer = { component: 'db', sanitize: async () => ({ outcome: 'skipped' }) };

  it.each([
    ['concurrency', { concurrency: 0 }],
    ['timeoutMs', { timeoutMs: -1 }],
    ['maxQueued', { maxQueued: 1.5 }],
    ['defaultDelayMs', { defaultDelayMs: Number.NaN }],
    ['delaysMs.websocket', { delaysMs: { websocket: -5 } }],
  ])('rejects a bad %s with INVALID_OPTION naming the field', (field, options) => {
    try {
      new DeferredSanitizer({ sanitizers: [noop], metrics: false, ...options });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
      expect((error as { details: Record<string, unknown> }).details.field).toBe(field);
    }
  });

  it('rejects the same sanitizer twice, several for one component without owns, a non-array and a bad prefix', () => {
    expect(() => new DeferredSanitizer({ sanitizers: [noop, noop], metrics: false })).toThrow(/same sanitizer for component db/);
    expect(() => new DeferredSanitizer({ sanitizers: [noop, { ...noop }], metrics: false })).toThrow(/2 sanitizers for component db.*owns/);
    expect(() => new DeferredSanitizer({ sanitizers: undefined as never })).toThrow(/sanitizers/);
    expect(() => new DeferredSanitizer({ sanitizers: [{ component: 'db' } as never] })).toThrow(/sanitize function/);
    expect(() => new DeferredSanitizer({ sanitizers: [noop], registry: new Registry(), prefix: 'bad prefix' })).toThrow(/not a valid Prometheus name/);
  });

  it('routes each detection to the sanitizer that owns its resource, keyed by target', async () => {
    const healed: string[] = [];
    const owning = (name: string, ids: string[]): Sanitizer => ({
      component: 'db',
      owns: (resourceId) => ids.includes(resourceId),
      async sanitize(d) {
        healed.push(`${name}:${d.resourceId}`);
        return { outcome: 'success' };
      },
    });
    await using sanitizer = new DeferredSanitizer({ sanitizers: [owning('a', ['conn_1']), owning('b', ['conn_2'])], delaysMs: { db: 0 }, metrics: false });
    expect(sanitizer.schedule(detection('db', 'conn_2'))).toBe(true);
    expect(sanitizer.schedule(detection('db', 'conn_1'))).toBe(true);
    expect(sanitizer.schedule(detection('db', 'conn_9'))).toBe(false);
    expect(await sanitizer.waitForSanitization(1_000)).toBe(true);
    expect(healed.sort()).toEqual(['a:conn_1', 'b:conn_2']);
  });

  it('routes between the in-memory targets of @guard/sanitizer/testing by owns, as between trackers', async () => {
    const first = new MemoryWebSocketTarget();
    const second = new MemoryWebSocketTarget();
    first.add('ws_1', { pending: 2 });
    second.add('ws_2', { pending: 5 });
    await using sanitizer = new DeferredSanitizer({
      sanitizers: [createWebSocketSanitizer(first, { graceMs: 0 }), createWebSocketSanitizer(second, { graceMs: 0 })],
      delaysMs: { websocket: 0 },
      metrics: false,
    });
    expect(sanitizer.schedule(detection('websocket', 'ws_2'))).toBe(true);
    expect(await sanitizer.waitForSanitization(1_000)).toBe(true);
    expect(second.forgotten.get('ws_2')).toMatchObject({ closeCode: 1011, pending: 5 });
    expect(first.get('ws_1')).toMatchObject({ state: 'open' });
  });

  it('rejects a bad waitForSanitization timeout', async () => {
    await using sanitizer = new DeferredSanitizer({ sanitizers: [noop], metrics: false });
    expect(() => sanitizer.waitForSanitization(-1)).toThrow(/timeoutMs/);
  });
});
