import { isGuardError } from '@guard/core';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { BatchWriter } from './batch-writer.js';
import type { BatchWriterOptions } from './batch-writer.js';
import { chainFor, pgDatabaseForFile, uniqueName } from './test-support.js';
import type { AnyTables } from './test-support.js';

const pgUrl = pgDatabaseForFile('detectors_batch_writer');
const dir = mkdtempSync(join(tmpdir(), 'guard-detectors-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
});

interface Item {
  readonly n: number;
  readonly bad?: boolean;
}

function sqlite(name: string): Kysely<AnyTables> {
  return new Kysely<AnyTables>({ dialect: new SqliteDialect({ database: new Database(join(dir, `${name}.db`)) }) });
}

/** A real sink table; items marked `bad` violate its CHECK constraint, so the database itself rejects them. */
async function sink(db: Kysely<AnyTables>, table: string) {
  await db.schema.createTable(table).addColumn('n', 'integer', (c) => c.notNull().check(sql.raw('n >= 0'))).execute();
  return {
    write: async (items: readonly Item[]) => {
      await db.insertInto(table).values(items.map((i) => ({ n: i.bad ? -1 : i.n }))).execute();
    },
    count: async () => (await db.selectFrom(table).selectAll().execute()).length,
  };
}

describe('BatchWriter (C5) on SQLite', () => {
  it('flushes on size and on age and is not flagged while healthy', async () => {
    const db = sqlite('healthy');
    const table = uniqueName('sink');
    const { write, count } = await sink(db, table);
    const { chain } = chainFor();
    const writer = chain.add(new BatchWriter<Item>({ db, write, maxBatchSize: 10, maxAgeMs: 30, deadLetterTable: uniqueName('dl') }));
    await writer.ensureSchema();
    await writer.ensureSchema();
    for (let i = 0; i < 10; i++) writer.add({ n: i });
    await vi.waitFor(async () => expect(await count()).toBe(10));
    writer.add({ n: 99 });
    expect(writer.buffered).toBe(1);
    await vi.waitFor(async () => expect(await count()).toBe(11), { timeout: 2_000 });
    expect(chain.scan()).toEqual([]);
    await writer.close();
    await db.destroy();
  });

  it('retries, then dead-letters exactly the failing items (none lost) and reports failed flushes', async () => {
    const db = sqlite('deadletter');
    const table = uniqueName('sink');
    const { write, count } = await sink(db, table);
    let calls = 0;
    const { chain } = chainFor();
    const writer = chain.add(
      new BatchWriter<Item>({ db, write: (items) => (calls++, write(items)), maxBatchSize: 100, retries: 2, retryDelayMs: 1, name: 'events', deadLetterTable: uniqueName('dl') }),
    );
    await writer.ensureSchema();
    const items: Item[] = Array.from({ length: 20 }, (_, n) => ({ n, bad: n % 5 === 0 }));
    for (const item of items) writer.add(item);
    const result = await writer.flush();
    expect(result).toEqual({ flushed: 16, deadLettered: 4, lost: 0, remaining: 0 });
    expect(calls).toBe(3 + 20);
    expect(await count()).toBe(16);
    expect(await writer.deadLetterCount()).toBe(4);
    const rows = await db.selectFrom(writer.deadLetterTable).selectAll().orderBy('payload').execute();
    expect(rows.map((r) => JSON.parse(r.payload as string).n).sort((a: number, b: number) => a - b)).toEqual([0, 5, 10, 15]);
    expect(rows[0]).toMatchObject({ writer: 'events', attempts: 4, error: expect.stringContaining('CHECK') });
    const [detection] = chain.scan();
    expect(detection).toMatchObject({ component: 'batch', pattern: 'flush_loss', severity: 'warning', resourceId: 'events', details: { reasons: ['failed_flushes'], deadLettered: 4 } });
    writer.add({ n: 100 });
    await writer.flush();
    expect(chain.scan()).toEqual([]);
    await writer.close();
    await db.destroy();
  });

  it('clears a failed-flush finding after a quiet 2 x maxAgeMs with nothing buffered, even when no traffic brings a clean flush', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const db = sqlite('quiet-after-failure');
      const { chain } = chainFor();
      const writer = chain.add(
        new BatchWriter<Item>({ db, write: () => Promise.reject(new Error('sink down')), maxAgeMs: 1_000, retries: 0, name: 'quiet', deadLetterTable: uniqueName('dl') }),
      );
      await writer.ensureSchema();
      writer.add({ n: 1 });
      expect(await writer.flush()).toMatchObject({ deadLettered: 1, remaining: 0 });
      expect(chain.scan()).toMatchObject([{ pattern: 'flush_loss', details: { reasons: ['failed_flushes'] } }]);
      vi.setSystemTime(Date.now() + 1_500);
      chain.scan();
      expect(chain.active()).toHaveLength(1);
      vi.setSystemTime(Date.now() + 1_000);
      chain.scan();
      expect(chain.active()).toEqual([]);
      expect(writer.stats().failedFlushes).toBe(0);
      await writer.close();
      await db.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('flags items buffered too long (stuck writer) as critical; a forced flush dead-letters them; dry_run/detect change nothing', async () => {
    for (const mode of ['dry_run', 'detect', 'full'] as const) {
      vi.useFakeTimers({ toFake: ['Date'] });
      const db = sqlite(`stuck-${mode}`);
      let healthy = false;
      const { chain, scheduler } = chainFor(mode);
      const writer = chain.add(
        new BatchWriter<Item>({
          db,
          write: async () => {
            if (!healthy) throw new Error('downstream unavailable');
          },
          maxAgeMs: 1_000,
          retries: 0,
          retryDelayMs: 0,
          deadLetterTable: uniqueName('dl'),
        }),
      );
      await writer.ensureSchema();
      for (let i = 0; i < 3; i++) writer.add({ n: i });
      vi.setSystemTime(Date.now() + 2_500);
      const [detection] = chain.scan();
      expect(detection).toMatchObject({ severity: 'critical', details: { reasons: ['buffered_too_long'], buffered: 3 } });
      expect(writer.buffered).toBe(3);
      expect(scheduler.scheduled.length).toBe(mode === 'full' ? 1 : 0);
      if (mode === 'full') {
        // what the batch sanitizer does, through the BatchTarget contract:
        expect(await writer.flush()).toEqual({ flushed: 0, deadLettered: 3, lost: 0, remaining: 0 });
        expect(await writer.deadLetterCount()).toBe(3);
        expect(writer.buffered).toBe(0);
        healthy = true;
        writer.add({ n: 9 });
        expect(await writer.flush()).toEqual({ flushed: 1, deadLettered: 0, lost: 0, remaining: 0 });
        expect(chain.scan()).toEqual([]);
      } else {
        expect(await writer.deadLetterCount()).toBe(0);
        healthy = true;
      }
      vi.useRealTimers();
      await writer.close();
      await db.destroy();
    }
  });

  it('reports a buffer over its cap without dropping anything', async () => {
    const db = sqlite('cap');
    const { chain } = chainFor();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const written: Item[] = [];
    const writer = chain.add(
      new BatchWriter<Item>({ db, write: async (items) => { await gate; written.push(...items); }, maxBatchSize: 5, maxBufferSize: 10, deadLetterTable: uniqueName('dl') }),
    );
    for (let i = 0; i < 30; i++) writer.add({ n: i });
    await new Promise((r) => setImmediate(r));
    expect(chain.active()).toEqual([expect.objectContaining({ severity: 'critical', details: expect.objectContaining({ reasons: ['buffer_over_cap'] }) })]);
    release();
    await writer.close();
    expect(written.map((i) => i.n)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    await db.destroy();
  });

  it('keeps items in the buffer when even the dead-letter insert fails', async () => {
    const db = sqlite('nodl');
    const writer = new BatchWriter<Item>({ db, write: async () => Promise.reject(new Error('down')), retries: 0, deadLetterTable: uniqueName('missing') });
    writer.add({ n: 1 });
    await expect(writer.flush()).rejects.toSatisfy((e) => isGuardError(e, 'DEAD_LETTER_FAILED'));
    expect(writer.buffered).toBe(1);
    await writer.ensureSchema();
    expect(await writer.flush()).toEqual({ flushed: 0, deadLettered: 1, lost: 0, remaining: 0 });
    await writer.close();
    await db.destroy();
  });

  it('validates options and refuses items after close', async () => {
    const db = sqlite('opts');
    const write = async () => {};
    expect(() => new BatchWriter({ db, write: undefined as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new BatchWriter({ db, write, maxBatchSize: 0 })).toThrow(/maxBatchSize/);
    expect(() => new BatchWriter({ db, write, deadLetterTable: 'x; drop table y' })).toThrow(/deadLetterTable/);
    const writer = new BatchWriter({ db, write });
    await writer.close();
    await writer.close();
    expect(() => writer.add(1)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await db.destroy();
  });
});

/** A writer with `writeTimeoutMs: 1_000` on a SQLite file of its own, under fake timers (timers only: SQLite I/O stays real). */
function timedWriter(name: string, options: Pick<BatchWriterOptions<Item>, 'write'> & Partial<BatchWriterOptions<Item>>) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  const db = sqlite(name);
  return { db, writer: new BatchWriter<Item>({ db, writeTimeoutMs: 1_000, deadLetterTable: uniqueName('dl'), ...options }) };
}

describe('BatchWriter (C5) write timeout', () => {
  it('a sink that never settles: each attempt times out, the batch is retried, dead-lettered, and the flush ends', async () => {
    const signals: AbortSignal[] = [];
    const { db, writer } = timedWriter('never', {
      write: (_items, { signal }) => {
        signals.push(signal);
        return new Promise(() => {}); // never settles
      },
      maxBatchSize: 5,
      retries: 1,
      retryDelayMs: 100,
    });
    await writer.ensureSchema();
    // the 5th item starts a background flush of the first batch; the forced flush below waits for it first
    for (let n = 0; n < 12; n++) writer.add({ n });
    let settled: unknown;
    const forced = writer.flush().then((r) => (settled = r));
    await vi.advanceTimersByTimeAsync(999);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signals[0]!.aborted).toBe(true);
    expect(isGuardError(signals[0]!.reason, 'TIMEOUT')).toBe(true);
    // the retry after retryDelayMs, then its own timeout: the background flush dead-letters its batch and stops
    await vi.advanceTimersByTimeAsync(100 + 1_000);
    expect(signals.length).toBeGreaterThanOrEqual(2);
    // its dead-letter insert is real SQLite I/O; then the forced flush writes the next batch
    while (signals.length < 3) await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeUndefined();
    expect(await writer.deadLetterCount()).toBe(5);
    // the forced flush: one more batch, two attempts, dead-lettered; it ends instead of waiting once per batch
    await vi.advanceTimersByTimeAsync(1_000 + 100 + 1_000);
    await forced;
    expect(signals).toHaveLength(4);
    expect(settled).toEqual({ flushed: 0, deadLettered: 5, lost: 0, remaining: 2 });
    expect(writer.buffered).toBe(2);
    expect(writer.stats()).toMatchObject({ deadLettered: 10, lastError: expect.stringContaining('writeTimeoutMs') });
    vi.useRealTimers();
    expect(await writer.deadLetterCount()).toBe(10);
    expect(() => new BatchWriter({ db, write: async () => {}, writeTimeoutMs: 0 })).toThrow(/writeTimeoutMs/);
    await db.destroy();
  });

  it('a write that answers within writeTimeoutMs is unaffected', async () => {
    const written: number[] = [];
    const { db, writer } = timedWriter('slow-ok', {
      write: async (items) => {
        await new Promise((resolve) => setTimeout(resolve, 900));
        written.push(...items.map((i) => i.n));
      },
    });
    for (let n = 0; n < 3; n++) writer.add({ n });
    const flushing = writer.flush();
    await vi.advanceTimersByTimeAsync(900);
    expect(await flushing).toEqual({ flushed: 3, deadLettered: 0, lost: 0, remaining: 0 });
    expect(written).toEqual([0, 1, 2]);
    vi.useRealTimers();
    await writer.close();
    await db.destroy();
  });
});

describe('BatchWriter (C5) dead-letter table on the real local Postgres', () => {
  it('dead-letters the failing items durably', async () => {
    const db = new Kysely<AnyTables>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: pgUrl(), max: 2 }) }) });
    const table = uniqueName('sink');
    const deadLetterTable = uniqueName('dl');
    const { write, count } = await sink(db, table);
    const writer = new BatchWriter<Item>({ db, write, retries: 1, retryDelayMs: 1, deadLetterTable });
    await writer.ensureSchema();
    for (let n = 0; n < 10; n++) writer.add({ n, bad: n === 3 || n === 7 });
    expect(await writer.flush()).toEqual({ flushed: 8, deadLettered: 2, lost: 0, remaining: 0 });
    expect(await count()).toBe(8);
    expect(await writer.deadLetterCount()).toBe(2);
    await writer.close();
    await db.schema.dropTable(table).execute();
    await db.schema.dropTable(deadLetterTable).execute();
    await db.destroy();
  });
});

describe('BatchWriter (C5) schema under concurrency (real Postgres)', () => {
  it('three writers creating the dead-letter table at the same moment all succeed (migration lock)', async () => {
    const deadLetterTable = uniqueName('dl');
    const dbs = [0, 1, 2].map(() => new Kysely<AnyTables>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: pgUrl(), max: 1 }) }) }));
    try {
      // Warm connections, so the three statements reach the server together.
      await Promise.all(dbs.map((db) => sql`select 1`.execute(db)));
      const writers = dbs.map((db) => new BatchWriter<Item>({ db, write: async () => {}, deadLetterTable }));
      const results = await Promise.allSettled(writers.map((w) => w.ensureSchema()));
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      await Promise.all(writers.map((w) => w.close()));
    } finally {
      await dbs[0]!.schema.dropTable(deadLetterTable).ifExists().execute();
      await Promise.all(dbs.map((db) => db.destroy()));
    }
  });
});
