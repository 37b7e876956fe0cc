import type { ImmuneEvent } from './event.js';
import type { RollupDelta } from './rollups.js';
import type { AnyKysely } from './store-dialect.js';

/**
 * How a store commits one batch of events and its rollup deltas, all or nothing. One implementation per dialect
 * (`sqlite-writer.ts`, `postgres-writer.ts`); the store picks it from the kysely adapter.
 *
 * @example
 * await writer.write(batch);
 */
export interface EventWriter {
  /** Commits the batch; a writer that returns no promise has committed it when it returns. */
  write(events: readonly ImmuneEvent[]): void | Promise<void>;
}

/**
 * What every writer is built from: the database, the two tables and the rollup arithmetic of the store.
 *
 * @example
 * createPostgresWriter({ db, table: 'immune_events', rollupTable: 'immune_events_rollup', deltas });
 */
export interface EventWriterOptions {
  readonly db: AnyKysely;
  readonly table: string;
  readonly rollupTable: string;
  /** The rollup deltas of a batch (the store's bucket widths applied). */
  readonly deltas: (events: readonly ImmuneEvent[]) => RollupDelta[];
}
