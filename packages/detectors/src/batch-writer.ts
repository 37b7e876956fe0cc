import { GuardError, assertNumberOption, assertOpen, closeOnce, createId, errorMessage, isGuardError, sleep } from '@guard/core';
import type { BatchTarget } from '@guard/core';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Detector, DetectorContext, Finding } from './detector.js';
import { nextProcessNumber } from './process-numbers.js';

/**
 * Options for {@link BatchWriter}.
 *
 * @example
 * new BatchWriter({ db, write: (rows) => sink(rows), maxBatchSize: 100, maxAgeMs: 5_000, retries: 2 });
 */
export interface BatchWriterOptions<T> {
  /**
   * Writes one batch; throw to fail it. The signal aborts when the attempt ran past `writeTimeoutMs`: pass it
   * on (fetch, a driver) so the abandoned write stops too.
   */
  readonly write: (items: readonly T[], options: { readonly signal: AbortSignal }) => Promise<void>;
  /** Where the dead-letter table lives (SQLite or Postgres). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a Kysely of any schema: the writer only touches its own table
  readonly db: Kysely<any>;
  /** The writer's name: resource id of its detections and a column of its dead letters. Default `batch`, then `batch_2`... for further unnamed writers in the process. */
  readonly name?: string;
  /** Dead-letter table name. Default `guard_dead_letter`. */
  readonly deadLetterTable?: string;
  /** Flush when this many items are buffered. Default 100. */
  readonly maxBatchSize?: number;
  /** Flush when the oldest buffered item is this old; an item buffered for twice this long is reported. Default 5000. */
  readonly maxAgeMs?: number;
  /** More buffered items than this is reported (nothing is ever dropped). Default 10000. */
  readonly maxBufferSize?: number;
  /** Extra attempts of a failed batch before its items are retried one by one. Default 2. */
  readonly retries?: number;
  /** Wait between attempts (doubled each time). Default 100. */
  readonly retryDelayMs?: number;
  /**
   * Longest one `write` call (and one dead-letter insert) may take. A write past it counts as failed (`TIMEOUT`),
   * is retried, then dead-lettered; a sink that never settles can no longer hold a flush forever. Default 10000.
   */
  readonly writeTimeoutMs?: number;
}

/** The dead-letter table, under whatever name `deadLetterTable` gives it. */
interface DeadLetterRow {
  id: string;
  writer: string;
  payload: string;
  error: string;
  attempts: number;
  failed_at: number;
}
type DeadLetterTables = Record<string, DeadLetterRow>;

interface Buffered<T> {
  readonly item: T;
  readonly at: number;
}

/**
 * What one flush did.
 *
 * @example
 * const { flushed, deadLettered } = await writer.flush();
 */
export interface FlushResult {
  readonly flushed: number;
  readonly deadLettered: number;
  /** Items this flush took from the buffer and neither wrote, dead-lettered nor put back. Always 0 unless a bug says otherwise: it is counted, not assumed. */
  readonly lost: number;
  /** Items still buffered when the flush ended (a timed-out sink ends a flush early, see {@link BatchWriterOptions.writeTimeoutMs}). */
  readonly remaining: number;
}

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** Items failed and could not be written to the dead-letter table either; they stay buffered. */
    DEAD_LETTER_FAILED: true;
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * C5: buffers items and writes them in batches, flushing on size or age with retries. A batch that still
 * fails is retried item by item and the failing items go to a durable dead-letter table (kysely; create
 * it with `ensureSchema`), never dropped. Reports `flush_loss` (resource id = name) when items stay
 * buffered past twice `maxAgeMs` or the buffer is over `maxBufferSize` (critical), or after failed
 * flushes (warning).
 *
 * @example
 * const writer = chain.add(new BatchWriter({ db, write: (rows) => db.insertInto('events').values(rows).execute() }));
 * await writer.ensureSchema();
 * writer.add({ kind: 'click' });
 */
export class BatchWriter<T = unknown> implements Detector, BatchTarget, AsyncDisposable {
  readonly component = 'batch';
  readonly pattern = 'flush_loss';
  readonly name: string;
  readonly deadLetterTable: string;
  readonly maxBatchSize: number;
  readonly maxAgeMs: number;
  readonly maxBufferSize: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly writeTimeoutMs: number;
  readonly #write: BatchWriterOptions<T>['write'];
  readonly #db: Kysely<DeadLetterTables>;
  #buffer: Buffered<T>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<FlushResult> | undefined;
  #failedFlushes = 0;
  #lastFailureAt = 0;
  #deadLettered = 0;
  #lastError: string | undefined;
  #trigger: (() => void) | undefined;
  #closed = false;

  constructor(options: BatchWriterOptions<T>) {
    if (typeof options?.write !== 'function') throw new GuardError('INVALID_OPTION', 'write must be a function', { details: { field: 'write' } });
    if (options.db === undefined) throw new GuardError('INVALID_OPTION', 'db must be a Kysely instance', { details: { field: 'db' } });
    // unnamed writers are numbered per process so two of them never share a resource id
    const unnamed = options.name === undefined ? nextProcessNumber('batch-writer') : 0;
    this.name = options.name ?? (unnamed === 1 ? 'batch' : `batch_${unnamed}`);
    this.deadLetterTable = options.deadLetterTable ?? 'guard_dead_letter';
    if (!NAME.test(this.deadLetterTable)) {
      throw new GuardError('INVALID_OPTION', `deadLetterTable must be a plain SQL identifier, got ${this.deadLetterTable}`, { details: { field: 'deadLetterTable' } });
    }
    this.maxBatchSize = options.maxBatchSize ?? 100;
    this.maxAgeMs = options.maxAgeMs ?? 5_000;
    this.maxBufferSize = options.maxBufferSize ?? 10_000;
    this.retries = options.retries ?? 2;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.writeTimeoutMs = options.writeTimeoutMs ?? 10_000;
    assertNumberOption('maxBatchSize', this.maxBatchSize, { min: 1, integer: true });
    assertNumberOption('maxAgeMs', this.maxAgeMs, { min: 1 });
    assertNumberOption('maxBufferSize', this.maxBufferSize, { min: 1, integer: true });
    assertNumberOption('retries', this.retries, { min: 0, integer: true });
    assertNumberOption('retryDelayMs', this.retryDelayMs, { min: 0 });
    assertNumberOption('writeTimeoutMs', this.writeTimeoutMs, { min: 1 });
    this.#write = options.write;
    this.#db = options.db as Kysely<DeadLetterTables>;
  }

  /** Creates the dead-letter table and its index if missing (idempotent, like a migration). */
  async ensureSchema(): Promise<void> {
    // Under the dialect's migration lock (Postgres: an advisory lock; SQLite: its single writer), so replicas that
    // start together on a fresh database do not race on the catalog (`create table if not exists` alone does).
    // kysely's Postgres lock is session-level: taken and released on one connection, released even on failure.
    if (this.#db.isTransaction) return this.#createSchema(this.#db);
    const lock = { lockTable: `${this.deadLetterTable}_lock`, lockRowId: 'schema' };
    await this.#db.connection().execute(async (db) => {
      const adapter = db.getExecutor().adapter;
      await adapter.acquireMigrationLock(db, lock);
      try {
        await this.#createSchema(db);
      } finally {
        await adapter.releaseMigrationLock(db, lock);
      }
    });
  }

  async #createSchema(db: Kysely<DeadLetterTables>): Promise<void> {
    await db.schema
      .createTable(this.deadLetterTable)
      .ifNotExists()
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('writer', 'varchar(255)', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('error', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('failed_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex(`${this.deadLetterTable}_writer_idx`).ifNotExists().on(this.deadLetterTable).column('writer').execute();
  }

  /** Buffers one item; flushes in the background when the batch is full or the oldest item is `maxAgeMs` old. */
  add(item: T): void {
    assertOpen(this.#closed, 'BatchWriter');
    this.#buffer.push({ item, at: Date.now() });
    if (this.#buffer.length >= this.maxBatchSize) this.#background();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#background();
      }, this.maxAgeMs);
      this.#timer.unref();
    }
    if (this.#buffer.length === this.maxBufferSize + 1) this.#trigger?.();
  }

  /** True when `resourceId` is this writer's name: sanitizers route detections by it. */
  owns(resourceId: string): boolean {
    return resourceId === this.name;
  }

  /** Items waiting to be written. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Stats since construction. */
  stats(): { buffered: number; failedFlushes: number; deadLettered: number; lastError: string | undefined } {
    return { buffered: this.#buffer.length, failedFlushes: this.#failedFlushes, deadLettered: this.#deadLettered, lastError: this.#lastError };
  }

  /** Rows in the dead-letter table for this writer. */
  async deadLetterCount(): Promise<number> {
    const row = await this.#db
      .selectFrom(this.deadLetterTable)
      .select(sql<string | number>`count(*)`.as('n'))
      .where('writer', '=', this.name)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /**
   * Writes everything buffered now; items that still fail after the retries go to the dead-letter table.
   * One flush runs at a time (a second call waits for it, then flushes what is left). If even the
   * dead-letter insert fails, the items go back to the buffer and the error is thrown. A batch whose every
   * attempt timed out is dead-lettered whole (writing its items one by one would wait once per item) and ends
   * the flush: the rest stays buffered for the next one. So one flush waits at most about
   * `(retries + 2) × writeTimeoutMs` plus the retry delays.
   */
  async flush(): Promise<FlushResult> {
    while (this.#flushing) await this.#flushing.catch(() => {});
    const run = this.#flushAll();
    this.#flushing = run;
    try {
      return await run;
    } finally {
      this.#flushing = undefined;
    }
  }

  attach(context: DetectorContext): void {
    this.#trigger = context.trigger;
  }

  scan(now: number): Finding[] {
    const reasons: string[] = [];
    let severity: 'warning' | 'critical' = 'warning';
    const oldest = this.#buffer[0];
    const ageMs = oldest ? now - oldest.at : 0;
    if (oldest && ageMs > 2 * this.maxAgeMs) {
      reasons.push('buffered_too_long');
      severity = 'critical';
    }
    if (this.#buffer.length > this.maxBufferSize) {
      reasons.push('buffer_over_cap');
      severity = 'critical';
    }
    // A failure is history once its items were dead-lettered, nothing is buffered and the sink has been quiet for
    // 2 x maxAgeMs: with no new traffic no clean flush would ever come to clear it.
    if (this.#failedFlushes > 0 && !oldest && now - this.#lastFailureAt > 2 * this.maxAgeMs) this.#failedFlushes = 0;
    if (this.#failedFlushes > 0) reasons.push('failed_flushes');
    if (reasons.length === 0) return [];
    return [
      {
        pattern: 'flush_loss',
        severity,
        resourceId: this.name,
        message: `batch writer ${this.name}: ${reasons.join(', ')} (${this.#buffer.length} buffered, oldest ${ageMs} ms, ${this.#failedFlushes} failed flush(es))`,
        details: {
          reasons,
          buffered: this.#buffer.length,
          oldestAgeMs: ageMs,
          maxAgeMs: this.maxAgeMs,
          maxBufferSize: this.maxBufferSize,
          failedFlushes: this.#failedFlushes,
          deadLettered: this.#deadLettered,
          lastError: this.#lastError,
        },
      },
    ];
  }

  /** Flushes what is buffered, then stops accepting items; safe to call twice. */
  readonly close = closeOnce(async () => {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#buffer.length > 0 || this.#flushing) await this.flush();
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #background(): void {
    if (this.#flushing) return;
    this.flush().catch(() => {});
  }

  async #flushAll(): Promise<FlushResult> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    let flushed = 0;
    let deadLettered = 0;
    let taken = 0;
    let returned = 0;
    const result = (): FlushResult => ({ flushed, deadLettered, lost: taken - flushed - deadLettered - returned, remaining: this.#buffer.length });
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.maxBatchSize);
      taken += batch.length;
      const items = batch.map((b) => b.item);
      const error = await this.#attempt(items, this.retries);
      if (error === undefined) {
        flushed += items.length;
        continue;
      }
      this.#failedFlushes++;
      this.#lastFailureAt = Date.now();
      this.#lastError = errorMessage(error);
      this.#trigger?.();
      const timedOut = isGuardError(error, 'TIMEOUT');
      const failed: { item: T; error: unknown }[] = [];
      if (timedOut) for (const item of items) failed.push({ item, error });
      else {
        for (const item of items) {
          const itemError = await this.#attempt([item], 0);
          if (itemError === undefined) flushed++;
          else failed.push({ item, error: itemError });
        }
      }
      if (failed.length > 0) {
        try {
          await this.#deadLetter(failed);
        } catch (deadLetterError) {
          const back = batch.filter((b) => failed.some((f) => f.item === b.item));
          this.#buffer.unshift(...back);
          returned += back.length;
          throw new GuardError('DEAD_LETTER_FAILED', `dead-letter insert into ${this.deadLetterTable} failed; ${back.length} item(s) kept in the buffer`, {
            cause: deadLetterError,
            details: { table: this.deadLetterTable, ...result() },
          });
        }
        deadLettered += failed.length;
        this.#deadLettered += failed.length;
      }
      // The sink did not answer in time: stop here instead of waiting once more per remaining batch.
      if (timedOut) break;
    }
    if (this.#failedFlushes > 0 && deadLettered === 0) {
      // a clean flush after failures: the condition no longer holds
      this.#failedFlushes = 0;
    }
    return result();
  }

  async #attempt(items: readonly T[], retries: number): Promise<unknown> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0 && this.retryDelayMs > 0) await sleep(this.retryDelayMs * 2 ** (attempt - 1), { unref: true });
      try {
        await this.#withTimeout('write', (signal) => this.#write(items, { signal }));
        return undefined;
      } catch (error) {
        lastError = error ?? new Error('write failed');
      }
    }
    return lastError;
  }

  /** Runs `work` under `writeTimeoutMs`: rejects with `TIMEOUT` (and aborts its signal) when it runs past it. */
  async #withTimeout(what: string, work: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new GuardError('TIMEOUT', `${this.name}: ${what} took longer than writeTimeoutMs (${this.writeTimeoutMs} ms)`, { details: { writer: this.name } });
        controller.abort(error);
        reject(error);
      }, this.writeTimeoutMs);
      timer.unref();
    });
    try {
      const running = Promise.resolve().then(() => work(controller.signal));
      running.catch(() => {}); // a write that fails after its timeout must not become an unhandled rejection
      await Promise.race([running, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #deadLetter(failed: readonly { item: T; error: unknown }[]): Promise<void> {
    const now = Date.now();
    const rows = failed.map(({ item, error }) => ({
      id: createId('dl'),
      writer: this.name,
      payload: JSON.stringify(item) ?? 'null',
      error: errorMessage(error),
      attempts: this.retries + 2,
      failed_at: now,
    }));
    await this.#withTimeout('dead-letter insert', () =>
      this.#db.transaction().execute(async (trx) => {
        for (let i = 0; i < rows.length; i += 100) await trx.insertInto(this.deadLetterTable).values(rows.slice(i, i + 100)).execute();
      }),
    );
  }
}
