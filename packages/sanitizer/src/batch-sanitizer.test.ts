import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BatchTarget, Detection } from '@guard/core';
import Database from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import type { Generated } from 'kysely';
import { BatchWriter } from '@guard/detectors';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createBatchSanitizer } from './batch-sanitizer.js';

interface Tables {
  payments: { id: Generated<number>; account: string; amount: number };
  dead_letter: { id: Generated<number>; payload: string; error: string };
}

type Item = { account: string; amount: number };

/** A minimal real batch writer: buffers items, flushes in one transaction, retries per item, dead-letters the rest. */
class TestBatchWriter implements BatchTarget {
  readonly buffer: Item[] = [];
  constructor(readonly db: Kysely<Tables>) {}

  add(item: Item): void {
    this.buffer.push(item);
  }
  async flush(): Promise<{ flushed: number; deadLettered: number; lost: number; remaining: number }> {
    const result = await this.#flush();
    return { ...result, lost: this.taken - result.flushed - result.deadLettered, remaining: this.buffer.length };
  }
  /** Items taken from the buffer by the last flush. */
  taken = 0;
  /** When set, the flush "forgets" this many items: a bug the sanitizer must report, not hide. */
  forget = 0;
  async #flush(): Promise<{ flushed: number; deadLettered: number }> {
    const items = this.buffer.splice(0);
    this.taken = items.length;
    items.splice(0, this.forget);
    if (items.length === 0) return { flushed: 0, deadLettered: 0 };
    try {
      await this.db.transaction().execute((trx) => trx.insertInto('payments').values(items).execute());
      return { flushed: items.length, deadLettered: 0 };
    } catch {
      let flushed = 0;
      let deadLettered = 0;
      for (const item of items) {
        try {
          await this.db.insertInto('payments').values(item).execute();
          flushed++;
        } catch (error) {
          await this.db.insertInto('dead_letter').values({ payload: JSON.stringify(item), error: (error as Error).message }).execute();
          deadLettered++;
        }
      }
      return { flushed, deadLettered };
    }
  }
}

const files: string[] = [];
afterEach(() => {
  for (const file of files.splice(0)) rmSync(file, { force: true });
});

async function openWriter(): Promise<{ writer: TestBatchWriter; db: Kysely<Tables>; file: string }> {
  const file = join(tmpdir(), `guard-sanitizer-batch-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.db`);
  files.push(file, `${file}-wal`, `${file}-shm`);
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: new Database(file) }) });
  await sql`create table payments (id integer primary key, account text not null, amount integer not null check (amount >= 0))`.execute(db);
  await sql`create table dead_letter (id integer primary key, payload text not null, error text not null)`.execute(db);
  return { writer: new TestBatchWriter(db), db, file };
}

function detection(): Detection {
  return { id: 'det_batch', component: 'batch', pattern: 'flush_loss', severity: 'critical', resourceId: 'payments-writer', message: '', details: {}, detectedAt: 0 };
}

const signal = new AbortController().signal;

describe('createBatchSanitizer against a real SQLite sink and dead-letter table', () => {
  it('forces a flush: good items land in the sink, failing ones in the durable dead-letter table, none lost', async () => {
    const { writer, db, file } = await openWriter();
    try {
      for (let i = 0; i < 10; i++) writer.add({ account: `acct-${i}`, amount: 100 + i });
      for (let i = 0; i < 4; i++) writer.add({ account: `bad-${i}`, amount: -1 }); // the sink's CHECK constraint refuses these

      const report = await createBatchSanitizer(writer).sanitize(detection(), { signal });

      expect(report).toEqual({ outcome: 'success', actions: ['flush'], details: { flushed: 10, deadLettered: 4, lost: 0, remaining: 0 } });
      expect(writer.buffer).toHaveLength(0);
    } finally {
      await db.destroy();
    }
    // Reopen the file: what was flushed and dead-lettered is on disk.
    const reopened = new Database(file, { readonly: true });
    try {
      expect(reopened.prepare('select count(*) as n from payments').get()).toEqual({ n: 10 });
      const dead = reopened.prepare('select payload, error from dead_letter order by id').all() as Array<{ payload: string; error: string }>;
      expect(dead).toHaveLength(4);
      expect(dead.map((d) => (JSON.parse(d.payload) as Item).account)).toEqual(['bad-0', 'bad-1', 'bad-2', 'bad-3']);
      expect(dead.every((d) => /CHECK constraint failed/.test(d.error))).toBe(true);
    } finally {
      reopened.close();
    }
  });

  it('reports a clean flush with nothing dead-lettered', async () => {
    const { writer, db } = await openWriter();
    try {
      writer.add({ account: 'a', amount: 1 });
      await expect(createBatchSanitizer(writer).sanitize(detection(), { signal })).resolves.toEqual({
        outcome: 'success',
        actions: ['flush'],
        details: { flushed: 1, deadLettered: 0, lost: 0, remaining: 0 },
      });
    } finally {
      await db.destroy();
    }
  });

  it('reports lost items the target counted as failed, and says nothing about loss when the target does not count it', async () => {
    const { writer, db } = await openWriter();
    try {
      for (let i = 0; i < 3; i++) writer.add({ account: `a${i}`, amount: i });
      writer.forget = 1;
      await expect(createBatchSanitizer(writer).sanitize(detection(), { signal })).resolves.toEqual({
        outcome: 'failed',
        actions: ['flush'],
        details: { flushed: 2, deadLettered: 0, lost: 1, remaining: 0 },
        error: '1 item(s) lost by the flush',
      });
      const bare: BatchTarget = { flush: async () => ({ flushed: 5, deadLettered: 0 }) };
      const report = await createBatchSanitizer(bare).sanitize(detection(), { signal });
      expect(report).toEqual({ outcome: 'success', actions: ['flush'], details: { flushed: 5, deadLettered: 0 } });
    } finally {
      await db.destroy();
    }
  });

  it('lets a failing flush surface as an error (the scheduler turns it into outcome failed)', async () => {
    const { writer, db } = await openWriter();
    writer.add({ account: 'a', amount: 1 });
    await db.destroy(); // the store is gone: even the dead-letter insert fails
    await expect(createBatchSanitizer(writer).sanitize(detection(), { signal })).rejects.toThrow();
  });
});

describe('createBatchSanitizer on @guard/detectors BatchWriter: lost and remaining are the writer\'s counts', () => {
  it('a sink that never answers ends the flush early: the rest stays buffered (partial), nothing lost (fake timers)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const db = new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
    const writer = new BatchWriter<number>({ db, name: 'stuck', maxBatchSize: 2, retries: 0, writeTimeoutMs: 20, write: () => new Promise<void>(() => {}) });
    try {
      await writer.ensureSchema();
      for (let n = 0; n < 5; n++) writer.add(n);
      const report = createBatchSanitizer(writer).sanitize(detection(), { signal });
      // the add that filled the first batch started a background flush: the sanitizer's flush waits for it, then
      // takes the next batch, which times out too and ends the flush with one item left
      await vi.advanceTimersByTimeAsync(100);
      await expect(report).resolves.toEqual({ outcome: 'partial', actions: ['flush'], details: { flushed: 0, deadLettered: 2, lost: 0, remaining: 1 } });
      expect(writer.buffered).toBe(1);
      expect(await writer.deadLetterCount()).toBe(4);
    } finally {
      vi.useRealTimers();
      await db.destroy();
    }
  });
});
