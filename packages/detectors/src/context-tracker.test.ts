import { GuardBus, isGuardError, sleep } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ContextTracker } from './context-tracker.js';
import type { Span } from './context-tracker.js';
import { DetectorChain } from './detector-chain.js';
import { fileLine, lineHere, recordingScheduler } from './test-support.js';

function setup(mode: 'dry_run' | 'detect' | 'full' = 'detect', options: ConstructorParameters<typeof ContextTracker>[0] = {}) {
  const scheduler = recordingScheduler();
  const chain = new DetectorChain({ mode, scanIntervalMs: 0, bus: new GuardBus(), registry: new Registry(), scheduler });
  const tracker = chain.add(new ContextTracker({ maxAgeMs: 1_000, maxDepth: 5, ...options }));
  return { chain, tracker, scheduler };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ContextTracker (C6) over AsyncLocalStorage', () => {
  it('propagates the span through async work and closes it when the work settles', async () => {
    const { chain, tracker } = setup();
    let inside: Span | undefined;
    const result = await tracker.run('request', async (span) => {
      await sleep(1); // async work across a timer: the span must follow it
      inside = tracker.current();
      expect(inside).toBe(span);
      return 42;
    });
    expect(result).toBe(42);
    expect(inside!.status).toBe('ok');
    await expect(tracker.run('failing', async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(() => tracker.run('sync-failing', () => { throw new Error('y'); })).toThrow('y');
    expect(tracker.openCount).toBe(0);
    expect(tracker.current()).toBeUndefined();
    expect(chain.scan(Date.now() + 60_000)).toEqual([]);
  });

  it('flags contexts never closed with the opening line, and closeOrphans closes them with an error status', async () => {
    vi.useFakeTimers();
    const { chain, tracker, scheduler } = setup('full');
    const here = lineHere(); const leaked = tracker.open('job');
    const fresh = tracker.open('job');
    await vi.advanceTimersByTimeAsync(1_100);
    const young = tracker.open('job');
    const [detection] = chain.scan();
    expect(detection).toMatchObject({ component: 'context', pattern: 'context_stack_leak', severity: 'critical', resourceId: 'job', details: { reason: 'orphan', open: 2 } });
    expect(fileLine(detection!.source![0])).toBe(here);
    expect(scheduler.scheduled.map((d) => d.id)).toEqual([detection!.id]);
    expect(tracker.closeOrphans('job', 'error')).toBe(2);
    expect(leaked.status).toBe('error');
    expect(fresh.status).toBe('error');
    expect(young.status).toBeUndefined();
    young.close();
    expect(tracker.openCount).toBe(0);
    chain.scan();
    expect(chain.active()).toEqual([]);
  });

  it('closeOrphans only closes spans past maxAgeMs', () => {
    const { tracker } = setup('full', { maxAgeMs: 60_000 });
    const young = tracker.open('job');
    expect(tracker.closeOrphans('job', 'error')).toBe(0);
    expect(young.status).toBeUndefined();
  });

  it('flags context stack depth growth past maxDepth', () => {
    const { chain, tracker } = setup('detect', { maxDepth: 5 });
    const spans: Span[] = [];
    const nest = (n: number): void => {
      if (n === 0) return;
      const span = tracker.open(`level`);
      spans.push(span);
      span.run(() => nest(n - 1));
    };
    nest(8);
    expect(spans.at(-1)!.depth).toBe(8);
    const found = chain.scan(Date.now());
    expect(found).toEqual([expect.objectContaining({ pattern: 'context_stack_leak', resourceId: 'depth:level', details: expect.objectContaining({ reason: 'depth', depth: 8 }) })]);
    expect(tracker.closeOrphans('depth:level', 'error')).toBe(3);
    expect(chain.scan(Date.now())).toEqual([]);
  });

  it('dry_run and detect never close contexts', () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      const { chain, tracker, scheduler } = setup(mode);
      const span = tracker.open('job');
      expect(chain.scan(Date.now() + 5_000)).toHaveLength(1);
      expect(span.status).toBeUndefined();
      expect(scheduler.scheduled).toEqual([]);
    }
  });

  it('validates options and refuses new spans after close', async () => {
    expect(() => new ContextTracker({ maxDepth: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    const tracker = new ContextTracker();
    await tracker.close();
    await tracker.close();
    try {
      tracker.open('x');
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    }
  });
});
