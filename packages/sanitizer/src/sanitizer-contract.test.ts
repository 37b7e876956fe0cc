import type { Detection } from '@guard/core';
import { GuardBus } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createBatchSanitizer } from './batch-sanitizer.js';
import { createCircuitSanitizer } from './circuit-sanitizer.js';
import { createContextSanitizer } from './context-sanitizer.js';
import { createDbSanitizer } from './db-sanitizer.js';
import { DeferredSanitizer } from './deferred-sanitizer.js';
import { createEventBusSanitizer } from './eventbus-sanitizer.js';
import { createHandleSanitizer } from './handle-sanitizer.js';
import type { Sanitizer } from './sanitizer.js';
import {
  createRecordingSanitizer,
  MemoryBatchTarget,
  MemoryCircuitTarget,
  MemoryContextTarget,
  MemoryDbPoolTarget,
  MemoryEventBusTarget,
  MemoryWebSocketTarget,
} from './testing.js';
import { HEAL_FIXTURES } from './target-fixtures.js';
import type { HealFixture } from './target-fixtures.js';
import { createWebSocketSanitizer } from './websocket-sanitizer.js';

function detection(component: string, resourceId = 'r1', details: Record<string, unknown> = {}): Detection {
  return { id: `det_${component}_${resourceId}`, component, pattern: 'p', severity: 'critical', resourceId, message: '', details, detectedAt: 0 };
}

const OUTCOMES = ['success', 'partial', 'failed', 'skipped', 'timeout'];

/** The injected fault is there, the sanitizer heals it (measured, not taken from its report), and healing twice is harmless. */
async function checkHeals(fixture: HealFixture): Promise<void> {
  const faulty = await fixture.inject();
  expect(await fixture.faulty(), 'the injected fault is there').toBe(true);
  if (fixture.sanitizer.owns) expect(fixture.sanitizer.owns(faulty.resourceId), 'owns the resource').toBe(true);
  const report = await fixture.sanitizer.sanitize(faulty, { signal: live() });
  expect(report.outcome).toBe('success');
  expect(await fixture.faulty(), 'the fault is healed').toBe(false);
  const again = await fixture.sanitizer.sanitize(faulty, { signal: live() });
  expect(OUTCOMES).toContain(again.outcome);
  expect(await fixture.faulty(), 'still healed').toBe(false);
}

const live = () => new AbortController().signal;

/** What every Sanitizer must do, whatever its target. */
function describeSanitizerContract(name: string, component: string, make: () => Sanitizer): void {
  describe(`${name} (Sanitizer contract)`, () => {
    it('names its component', () => {
      expect(make().component).toBe(component);
    });
    it('rejects with the reason of an already aborted signal', async () => {
      const reason = new Error('aborted before start');
      await expect(make().sanitize(detection(component), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    });
    it('resolves with a valid outcome, and string actions and object details', async () => {
      const report = await make().sanitize(detection(component), { signal: live() });
      expect(['success', 'partial', 'failed', 'skipped', 'timeout']).toContain(report.outcome);
      expect(Array.isArray(report.actions)).toBe(true);
      expect(typeof report.details).toBe('object');
    });
  });
}

describeSanitizerContract('createWebSocketSanitizer', 'websocket', () => {
  const target = new MemoryWebSocketTarget();
  target.add('r1', { pending: 1 });
  return createWebSocketSanitizer(target, { graceMs: 5 });
});
describeSanitizerContract('createEventBusSanitizer', 'eventbus', () => createEventBusSanitizer(new MemoryEventBusTarget({ stale: { r1: 5 } })));
describeSanitizerContract('createDbSanitizer', 'db', () => createDbSanitizer(new MemoryDbPoolTarget({ checkedOut: ['r1'] })));
describeSanitizerContract('createCircuitSanitizer', 'circuit', () => createCircuitSanitizer(new MemoryCircuitTarget({ r1: 'half_open' })));
describeSanitizerContract('createBatchSanitizer', 'batch', () => createBatchSanitizer(new MemoryBatchTarget()));
describeSanitizerContract('createContextSanitizer', 'context', () => createContextSanitizer(new MemoryContextTarget({ r1: 2 })));
describeSanitizerContract('createHandleSanitizer', 'handles', () => createHandleSanitizer());
describeSanitizerContract('createRecordingSanitizer', 'custom', () => createRecordingSanitizer('custom'));

describe('each sanitize target heals an injected fault (real trackers and ./testing fakes)', () => {
  for (const [name, make] of HEAL_FIXTURES) {
    it(name, async () => {
      await using fixture = await make();
      await checkHeals(fixture);
    });
  }
});

describe('the sanitize-target contract can fail', () => {
  for (const [name, make] of HEAL_FIXTURES) {
    it(`${name}: a sanitizer that reports success and does nothing fails it`, async () => {
      await using fixture = await make();
      const idle: Sanitizer = { ...fixture.sanitizer, sanitize: async () => ({ outcome: 'success', actions: [], details: {} }) };
      await expect(checkHeals({ ...fixture, sanitizer: idle })).rejects.toThrow(/healed/);
    });
  }
});

describe('@guard/sanitizer/testing targets', () => {
  it('MemoryWebSocketTarget: a peer that ignores close is terminated after the grace', async () => {
    const target = new MemoryWebSocketTarget();
    target.add('c1', { pending: 4, ignoresClose: true });
    const report = await createWebSocketSanitizer(target, { graceMs: 20, pollMs: 5 }).sanitize(detection('websocket', 'c1'), { signal: live() });
    expect(report).toMatchObject({ outcome: 'success', details: { terminated: true, droppedMessages: 4, code: 1011 } });
    expect(target.forgotten.get('c1')).toMatchObject({ state: 'closed', terminated: true, closeCode: 1011 });
  });

  it('MemoryWebSocketTarget: a connection already closed is only forgotten, with its pending messages', async () => {
    const target = new MemoryWebSocketTarget();
    target.add('c2', { pending: 2 });
    target.terminate('c2');
    const report = await createWebSocketSanitizer(target).sanitize(detection('websocket', 'c2'), { signal: live() });
    expect(report).toEqual({ outcome: 'skipped', actions: ['forget'], details: { alreadyClosed: true, droppedMessages: 2, terminated: false } });
    expect(target.get('c2')).toBeUndefined();
  });

  it('MemoryDbPoolTarget: escalation, and a pool that fails to drain', async () => {
    const drains = new MemoryDbPoolTarget({ maxPoolSize: 2, checkedOut: ['a', 'b', 'c', 'd'] });
    await expect(createDbSanitizer(drains).sanitize(detection('db', 'a'), { signal: live() })).resolves.toMatchObject({ outcome: 'success', details: { disposed: true, active: 0 } });
    expect(drains.disposals).toBe(1);
    const stuck = new MemoryDbPoolTarget({ maxPoolSize: 2, checkedOut: ['a', 'b', 'c', 'd'], disposeDrains: false });
    await expect(createDbSanitizer(stuck).sanitize(detection('db', 'a'), { signal: live() })).resolves.toMatchObject({ outcome: 'failed', details: { active: 3 } });
  });

  it('MemoryBatchTarget, MemoryContextTarget, MemoryCircuitTarget, MemoryEventBusTarget record what happened', async () => {
    const batch = new MemoryBatchTarget<number>({ fails: (n) => n < 0 });
    batch.buffer.push(1, -1, 2);
    await expect(createBatchSanitizer(batch).sanitize(detection('batch'), { signal: live() })).resolves.toMatchObject({ details: { flushed: 2, deadLettered: 1 } });
    expect([batch.written, batch.deadLetters]).toEqual([[1, 2], [-1]]);

    const contexts = new MemoryContextTarget({ 'GET /orders': 4 });
    await createContextSanitizer(contexts).sanitize(detection('context', 'GET /orders'), { signal: live() });
    expect(contexts.closed).toEqual([{ resourceId: 'GET /orders', status: 'error', count: 4 }]);

    const circuits = new MemoryCircuitTarget({ payments: 'half_open' });
    await createCircuitSanitizer(circuits).sanitize(detection('circuit', 'payments'), { signal: live() });
    expect(circuits.states.get('payments')).toBe('open');

    const bus = new MemoryEventBusTarget({ healthy: 3, stale: { 'h.ts:1': 10 } });
    await expect(createEventBusSanitizer(bus).sanitize(detection('eventbus', 'h.ts:1'), { signal: live() })).resolves.toMatchObject({
      details: { removed: 10, listeners: 3 },
    });
  });

  it('createRecordingSanitizer records what a DeferredSanitizer hands it', async () => {
    const recording = createRecordingSanitizer('websocket', { outcome: 'partial' });
    const bus = new GuardBus();
    const outcomes: string[] = [];
    bus.subscribe('sanitization', (r) => outcomes.push(r.outcome));
    await using scheduler = new DeferredSanitizer({ sanitizers: [recording], bus, delaysMs: { websocket: 0 }, metrics: false });
    scheduler.schedule(detection('websocket', 'c9'));
    await expect(scheduler.waitForSanitization(1_000)).resolves.toBe(true);
    expect(recording.calls).toEqual([{ detectionId: 'det_websocket_c9', resourceId: 'c9' }]);
    expect(outcomes).toEqual(['partial']);
  });
});
