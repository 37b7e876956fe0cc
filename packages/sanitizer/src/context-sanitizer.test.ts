import { AsyncLocalStorage } from 'node:async_hooks';
import { sleep } from '@guard/core';
import type { ContextTarget, Detection } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createContextSanitizer } from './context-sanitizer.js';

interface Span {
  readonly id: number;
  readonly name: string;
  readonly parent?: Span;
  status?: string;
  endedAt?: number;
}

/** A minimal real tracker of AsyncLocalStorage spans: opened with `startSpan`, closed with `end`. */
class TestContextTracker implements ContextTarget {
  readonly storage = new AsyncLocalStorage<Span>();
  readonly open = new Map<number, Span>();
  #next = 0;

  startSpan<T>(name: string, fn: (span: Span) => T): T {
    const span: Span = { id: ++this.#next, name, parent: this.storage.getStore() };
    this.open.set(span.id, span);
    return this.storage.run(span, () => fn(span));
  }
  end(span: Span, status = 'ok'): void {
    span.status = status;
    span.endedAt = Date.now();
    this.open.delete(span.id);
  }
  closeOrphans(resourceId: string, status: string): number {
    let closed = 0;
    for (const span of [...this.open.values()]) {
      if (span.name !== resourceId) continue;
      this.end(span, status);
      closed++;
    }
    return closed;
  }
}

function detection(resourceId: string): Detection {
  return { id: 'det_c', component: 'context', pattern: 'context_stack_leak', severity: 'warning', resourceId, message: '', details: {}, detectedAt: 0 };
}

describe('createContextSanitizer against real AsyncLocalStorage contexts', () => {
  it('closes contexts that were opened and never closed with status error, and leaves closed ones alone', async () => {
    const tracker = new TestContextTracker();
    const leaked: Span[] = [];
    const healthy = await tracker.startSpan('request', async (span) => {
      await new Promise((resolve) => setImmediate(resolve));
      tracker.end(span);
      return span;
    });
    // A handler that opens nested spans in async work and forgets to end them.
    await Promise.all(
      [1, 2, 3].map((i) =>
        tracker.startSpan('job', async (span) => {
          await sleep(i); // async work of different lengths, interleaved
          leaked.push(span);
          tracker.startSpan('job', (inner) => leaked.push(inner));
        }),
      ),
    );
    expect(leaked.every((s) => s.name === 'job')).toBe(true);
    expect(leaked.filter((s) => s.parent !== undefined)).toHaveLength(3);
    expect(tracker.open.size).toBe(6);

    const report = await createContextSanitizer(tracker).sanitize(detection('job'), { signal: new AbortController().signal });

    expect(report).toEqual({ outcome: 'success', actions: ['closeOrphans(error)'], details: { closed: 6, status: 'error' } });
    expect(tracker.open.size).toBe(0);
    expect(leaked.every((s) => s.status === 'error' && typeof s.endedAt === 'number')).toBe(true);
    expect(healthy.status).toBe('ok');
    await expect(createContextSanitizer(tracker).sanitize(detection('job'), { signal: new AbortController().signal })).resolves.toMatchObject({
      outcome: 'skipped',
    });
  });
});
