import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { MemoryEventStore, createMemoryStore } from './memory-store.js';
import { describeEventStoreContract, makeEvent } from './testing.js';

describeEventStoreContract('memory', () => new MemoryEventStore({ capacity: 10_000 }), { test: { describe, it } });

describe('MemoryEventStore', () => {
  it('never grows past its capacity and drops the oldest first', async () => {
    await using store = createMemoryStore({ capacity: 3 });
    const events = Array.from({ length: 5 }, (_, i) => makeEvent({ createdAt: 1_000 + i }));
    for (const e of events) await store.insert(e);
    expect(store.size).toBe(3);
    expect((await store.query({ since: 0, limit: 10 })).map((e) => e.id)).toEqual([events[4]!.id, events[3]!.id, events[2]!.id]);
    expect((await store.counts(0)).total).toBe(3);
  });

  it('keeps inserting in O(1) after wrapping many times', async () => {
    await using store = new MemoryEventStore({ capacity: 100 });
    for (let i = 0; i < 10_000; i++) await store.insert(makeEvent({ createdAt: i, meta: { i } }));
    expect(store.size).toBe(100);
    const [newest] = await store.query({ since: 0, limit: 1 });
    expect(newest?.meta.i).toBe(9_999);
  });

  it('rejects a bad capacity with INVALID_OPTION', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) {
      let error: unknown;
      try {
        new MemoryEventStore({ capacity });
      } catch (e) {
        error = e;
      }
      expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe('capacity');
    }
  });
});
