import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import type { Logger } from '@guard/core';

/** The last heap snapshot written (or attempted: `path` is empty when writing failed). */
export interface HeapSnapshotRecord {
  readonly path: string;
  readonly at: number;
}

/** Options of {@link HeapSnapshotWriter}. */
export interface HeapSnapshotWriterOptions {
  /** Folder for the files; the writer does nothing without one. */
  readonly dir: string | undefined;
  /** At most one snapshot per this time. */
  readonly intervalMs: number;
  readonly guardrail: string;
  readonly logger: Logger;
  /** Called after each snapshot written (the metric counts them). */
  readonly onWritten: () => void;
}

/** Writes a `v8.writeHeapSnapshot` file when a leak is detected, at most once per interval. */
export class HeapSnapshotWriter {
  readonly #options: HeapSnapshotWriterOptions;
  #last: HeapSnapshotRecord | null = null;

  constructor(options: HeapSnapshotWriterOptions) {
    this.#options = options;
  }

  /** The last snapshot written or attempted, or null. */
  get last(): HeapSnapshotRecord | null {
    return this.#last;
  }

  /** Writes a snapshot unless there is no folder or the last one is more recent than the interval. */
  maybeWrite(now: number): void {
    const { dir, intervalMs, guardrail, logger } = this.#options;
    if (dir === undefined) return;
    if (this.#last !== null && now - this.#last.at < intervalMs) return;
    try {
      mkdirSync(dir, { recursive: true });
      const path = writeHeapSnapshot(join(dir, `heap-${process.pid}-${now}.heapsnapshot`));
      this.#last = { path, at: now };
      this.#options.onWritten();
      logger.warn({ guardrail, path }, 'memory leak detected: heap snapshot written');
    } catch (error) {
      // Remember the attempt so a failing disk is not retried on every check.
      this.#last = { path: '', at: now };
      logger.error({ err: error, guardrail, dir }, 'heap snapshot failed');
    }
  }
}
