import { once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { createJsonLogger, GuardBus, isGuardError } from '@guard/core';
import type { ImmuneEventNotice } from './bus-events.js';
import { ImmuneService } from './immune-service.js';
import type { ImmuneStreamEnvelope } from './immune-service.js';
import { MemoryEventStore } from './memory-store.js';
import type { EventStore } from './event-store.js';
import { freshRegistry } from './test-helpers.js';
import { createImmuneHandler } from './http-handler.js';
import { createSqliteStore } from './sqlite.js';

const nextTurn = () => new Promise((r) => setImmediate(r));

async function errorOf(promise: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown> }> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: { code?: string; details?: Record<string, unknown> }) => e,
  );
}

describe('ImmuneService', () => {
  it('publishes, stores and answers recent events newest first', async () => {
    await using service = new ImmuneService();
    const first = await service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'one', agentId: 'a1', module: 'cache' });
    const second = await service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'two', meta: { rate: 0.5 } });
    const events = await service.getRecentEvents();
    expect(events.map((e) => e.id)).toEqual([second, first]);
    expect(events[1]).toMatchObject({ agentId: 'a1', module: 'cache', severity: 'INFO', meta: {} });
    expect(events[0]!.meta).toEqual({ rate: 0.5 });
    expect(await service.getRecentEvents({ severity: 'INFO' })).toHaveLength(1);
    expect(await service.getRecentEvents({ type: 'ERROR_SPIKE' })).toHaveLength(1);
    expect(await service.getRecentEvents({ limit: 1 })).toHaveLength(1);
  });

  it('summarises a window with counts, the latest critical event and a status', async () => {
    let now = 1_800_000_000_000;
    await using service = new ImmuneService({ now: () => now });
    expect((await service.healthSummary()).status).toBe('healthy');
    await service.publishEvent({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'w' });
    expect((await service.healthSummary()).status).toBe('warning');
    const critical = await service.publishEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', message: 'c' });
    await service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'i' });
    const summary = await service.healthSummary({ windowMs: 60_000 });
    expect(summary).toMatchObject({
      status: 'critical',
      windowMs: 60_000,
      since: now - 60_000,
      total: 3,
      bySeverity: { INFO: 1, WARNING: 1, CRITICAL: 1 },
      byType: { ERROR_SPIKE: 1, POLICY_VIOLATION: 1, SELF_HEALING_ACTION: 1 },
      generatedAt: now,
    });
    expect(summary.latestCritical?.id).toBe(critical);
    now += 120_000; // the window moves on
    expect(await service.healthSummary({ windowMs: 60_000 })).toMatchObject({ status: 'healthy', total: 0, latestCritical: undefined });
    expect(await service.getRecentEvents({ windowMs: 60_000 })).toEqual([]);
    expect(await service.getRecentEvents({ since: 0 })).toHaveLength(3);
  });

  it('caps limits at maxLimit', async () => {
    await using service = new ImmuneService({ maxLimit: 5, defaultLimit: 2 });
    await Promise.all(Array.from({ length: 8 }, (_, i) => service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `m${i}` })));
    expect(await service.getRecentEvents()).toHaveLength(2);
    expect(await service.getRecentEvents({ limit: 1_000 })).toHaveLength(5);
  });

  it('rejects bad input with INVALID_INPUT naming the field, and counts it', async () => {
    const registry = freshRegistry();
    await using service = new ImmuneService({ registry });
    expect(await errorOf(service.publishEvent({ severity: 'LOUD', type: 'ERROR_SPIKE', message: 'x' } as never))).toMatchObject({
      code: 'INVALID_INPUT',
      details: { field: 'severity' },
    });
    expect(await errorOf(service.getRecentEvents({ windowMs: -1 }))).toMatchObject({ code: 'INVALID_INPUT', details: { field: 'windowMs' } });
    expect(await errorOf(service.getRecentEvents({ limit: 0 }))).toMatchObject({ details: { field: 'limit' } });
    expect(await errorOf(service.getRecentEvents({ severity: 'nope' as never }))).toMatchObject({ details: { field: 'severity' } });
    expect(await errorOf(service.getRecentEvents({ type: 'nope' as never }))).toMatchObject({ details: { field: 'type' } });
    expect(await errorOf(service.getRecentEvents({ since: Number.NaN }))).toMatchObject({ details: { field: 'since' } });
    expect(await errorOf(service.healthSummary({ windowMs: 1e15 }))).toMatchObject({ details: { field: 'windowMs' } });
    const metric = await registry.getSingleMetric('guard_immune_publish_rejected_total')!.get();
    expect(metric.values.find((v) => v.labels.reason === 'invalid')?.value).toBe(1);
  });

  it('streams every event with the seed envelope, and CRITICAL ones also as critical_event', async () => {
    await using service = new ImmuneService({ target: 'fleet' });
    const published: ImmuneStreamEnvelope[] = [];
    const critical: ImmuneStreamEnvelope[] = [];
    service.on('immune.event_published', (e) => published.push(e));
    service.on('immune.critical_event', (e) => critical.push(e));
    const info = await service.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'healed', agentId: 'a', module: 'm', meta: { k: 1 } });
    const crit = await service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'down' });
    await nextTurn();
    expect(published).toHaveLength(2);
    expect(published[0]).toEqual({
      type: 'immune.event_published',
      source: 'immune_service',
      target: 'fleet',
      payload: {
        event_id: info,
        severity: 'INFO',
        type: 'SELF_HEALING_ACTION',
        message: 'healed',
        agent_id: 'a',
        module: 'm',
        meta: { k: 1 },
        published_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      },
    });
    expect(critical).toHaveLength(1);
    expect(critical[0]).toMatchObject({ type: 'immune.critical_event', source: 'immune_service', payload: { event_id: crit, severity: 'CRITICAL' } });
    expect(critical[0]!.payload.critical_at).toMatch(/^\d{4}-/);
    expect(critical[0]!.payload).not.toHaveProperty('agent_id');
  });

  it('once delivers one event and detaches, also through events.once (no listener left behind)', async () => {
    await using service = new ImmuneService();
    const seen = vi.fn();
    service.once('immune.event_published', seen);
    const next = once(service as never, 'immune.event_published') as Promise<[ImmuneStreamEnvelope]>;
    const first = await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'first' });
    const [envelope] = await next;
    expect(envelope.payload.event_id).toBe(first);
    await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'second' });
    await nextTurn();
    expect(seen).toHaveBeenCalledTimes(1);
    expect(service.listenerCount('immune.event_published')).toBe(0);
    expect(service.eventNames()).toEqual([]); // events.once's own 'error' listener is gone too
  });

  it('ends only its own registration: a subscription, off, and the onX methods', async () => {
    await using service = new ImmuneService();
    const listener = vi.fn();
    const first = service.on('immune.event_published', listener);
    service.on('immune.event_published', listener);
    const critical = vi.fn();
    using _critical = service.onCriticalEvent(critical);
    first();
    first(); // a second call does nothing
    await service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'one' });
    await nextTurn();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(critical).toHaveBeenCalledTimes(1);
    service.off('immune.event_published', listener);
    const published = vi.fn();
    const sub = service.onEventPublished(published);
    await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'two' });
    await nextTurn();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(published).toHaveBeenCalledTimes(1);
    sub();
    expect(service.listenerCount('immune.event_published')).toBe(0);
  });

  it('keeps publishing when a listener throws, rejects or is slow', async () => {
    const lines: string[] = [];
    const registry = freshRegistry();
    await using service = new ImmuneService({ registry, logger: createJsonLogger({ level: 'error', write: (l) => lines.push(l) }) });
    const good = vi.fn();
    let slowCalls = 0;
    service.on('immune.event_published', () => {
      throw new Error('listener bug');
    });
    service.on('immune.event_published', async () => {
      throw new Error('async listener bug');
    });
    service.on('immune.event_published', () => {
      slowCalls++;
      return new Promise(() => {}); // never settles
    });
    service.on('immune.event_published', good);
    const ids = await Promise.all([1, 2, 3].map((i) => service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: `e${i}` })));
    expect(ids).toHaveLength(3);
    expect(good).not.toHaveBeenCalled(); // listeners run after the publishers resumed
    await nextTurn();
    await nextTurn();
    expect(good).toHaveBeenCalledTimes(3);
    expect(slowCalls).toBe(3);
    expect(lines.filter((l) => l.includes('listener threw'))).toHaveLength(6);
    const metric = await registry.getSingleMetric('guard_immune_listener_errors_total')!.get();
    expect(metric.values[0]?.value).toBe(6);
    expect(await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'still fine' })).toMatch(/-7/);
  });

  it('announces every stored event on the GuardBus as immuneEvent (camelCase)', async () => {
    const bus = new GuardBus();
    const notices: ImmuneEventNotice[] = [];
    bus.subscribe('immuneEvent', (n) => notices.push(n));
    bus.subscribe('immuneEvent', () => {
      throw new Error('bus listener bug');
    });
    await using service = new ImmuneService({ bus });
    const id = await service.publishEvent({ severity: 'WARNING', type: 'POLICY_VIOLATION', message: 'acl', agentId: 'x', meta: { topic: 't' } });
    await nextTurn();
    expect(notices).toEqual([
      { id, severity: 'WARNING', type: 'POLICY_VIOLATION', message: 'acl', agentId: 'x', meta: { topic: 't' }, createdAt: expect.any(Number) },
    ]);
  });

  it('counts stored events by severity and type', async () => {
    const registry = freshRegistry();
    await using service = new ImmuneService({ registry });
    await Promise.all([
      service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'a' }),
      service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'b' }),
      service.publishEvent({ severity: 'CRITICAL', type: 'POLICY_VIOLATION', message: 'c' }),
    ]);
    await nextTurn();
    const metric = await registry.getSingleMetric('guard_immune_events_total')!.get();
    const value = (severity: string, type: string) => metric.values.find((v) => v.labels.severity === severity && v.labels.type === type)?.value;
    expect(value('INFO', 'ERROR_SPIKE')).toBe(2);
    expect(value('CRITICAL', 'POLICY_VIOLATION')).toBe(1);
  });

  it('registers no metric with metrics: false (service, store and handler)', async () => {
    const registry = freshRegistry();
    await using service = new ImmuneService({ registry, metrics: false, store: await createSqliteStore({ path: ':memory:', registry, metrics: false }) });
    await using handler = createImmuneHandler(service, { registry, metrics: false });
    await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'counted nowhere' });
    await service.getRecentEvents({ windowMs: 1_000, limit: 1, type: 'ERROR_SPIKE' });
    expect(handler.sseClients).toBe(0);
    expect(await registry.getMetricsAsJSON()).toEqual([]);
  });

  it('works with no listeners at all', async () => {
    await using service = new ImmuneService();
    await expect(service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'alone' })).resolves.toBeTypeOf('string');
  });

  it('reports store failures as STORE_ERROR and does not announce them', async () => {
    const failing: EventStore = {
      kind: 'broken',
      insert: () => Promise.reject(new Error('disk on fire')),
      query: async () => [],
      counts: async () => new MemoryEventStore().counts(0),
      close: async () => {},
      [Symbol.asyncDispose]: async () => {},
    };
    await using service = new ImmuneService({ store: failing });
    const seen = vi.fn();
    service.on('immune.event_published', seen);
    const error = await errorOf(service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'x' }));
    expect(isGuardError(error, 'STORE_ERROR')).toBe(true);
    await nextTurn();
    expect(seen).not.toHaveBeenCalled();
  });

  it('rejects an aborted publish with ABORTED', async () => {
    await using service = new ImmuneService();
    const error = await errorOf(service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'x' }, { signal: AbortSignal.abort() }));
    expect(isGuardError(error, 'ABORTED')).toBe(true);
  });

  it('closes idempotently, waits for in-flight publishes, closes its store and then rejects with CLOSED', async () => {
    const store = new MemoryEventStore();
    const service = new ImmuneService({ store });
    const delivered = vi.fn();
    service.on('immune.event_published', delivered);
    const pending = service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'last' });
    await Promise.all([service.close(), service.close()]);
    await expect(pending).resolves.toBeTypeOf('string');
    expect(delivered).toHaveBeenCalledTimes(1);
    expect(isGuardError(await errorOf(service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'x' })), 'CLOSED')).toBe(true);
    expect(isGuardError(await errorOf(service.healthSummary()), 'CLOSED')).toBe(true);
    expect(isGuardError(await errorOf(service.getRecentEvents()), 'CLOSED')).toBe(true);
    expect(isGuardError(await errorOf(store.insert({} as never)), 'CLOSED')).toBe(true);
  });

  it('leaves a shared store open with closeStore: false', async () => {
    await using store = new MemoryEventStore();
    const service = new ImmuneService({ store, closeStore: false });
    await service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'x' });
    await service.close();
    expect((await store.counts(0)).total).toBe(1);
  });

  it('validates options with INVALID_OPTION', () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ maxLimit: 0 }, 'maxLimit'],
      [{ defaultLimit: 5_000 }, 'defaultLimit'],
      [{ defaultWindowMs: -5 }, 'defaultWindowMs'],
      [{ maxWindowMs: Number.NaN }, 'maxWindowMs'],
      [{ store: {} }, 'store'],
      [{ target: '' }, 'target'],
    ];
    for (const [options, field] of bad) {
      let error: unknown;
      try {
        new ImmuneService(options as never);
      } catch (e) {
        error = e;
      }
      expect(isGuardError(error, 'INVALID_OPTION'), field).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe(field);
    }
  });
});
