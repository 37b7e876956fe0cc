import { sql } from 'kysely';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { fromRow, type EventRow } from './event-row.js';
import type { EventCounts, EventQuery } from './event-store.js';
import { emptyCounters } from './event-store.js';
import { pruneCutoff, rollupRanges } from './rollups.js';
import type { AnyKysely } from './store-dialect.js';
import { guardedRead } from './store-error.js';

/**
 * The tables a store reads and the rollup bucket widths it wrote them with.
 *
 * @example
 * const tables: StoreTables = { db, table: 'immune_events', rollupTable: 'immune_events_rollup', fineMs: 60_000, coarseMs: 3_600_000 };
 */
export interface StoreTables {
  readonly db: AnyKysely;
  readonly table: string;
  readonly rollupTable: string;
  readonly fineMs: number;
  readonly coarseMs: number;
}

/** Rows deleted per statement by {@link pruneEvents}: a large backlog never holds the database for long. */
const PRUNE_CHUNK = 5_000;

/**
 * Events matching `query`, newest first (the same SQL on both dialects; reads retry a lost connection).
 *
 * @example
 * const latest = await queryEvents(tables, { since: 0, severity: 'CRITICAL', limit: 10 });
 */
export async function queryEvents({ db, table }: StoreTables, query: EventQuery): Promise<ImmuneEvent[]> {
  if (query.limit <= 0) return [];
  let q = db.selectFrom(table).selectAll().where('created_at', '>=', query.since);
  if (query.severity !== undefined) q = q.where('severity', '=', query.severity);
  if (query.type !== undefined) q = q.where('type', '=', query.type);
  const rows = await guardedRead(() => q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(Math.floor(query.limit)).execute());
  return (rows as EventRow[]).map(fromRow);
}

/**
 * Counts since `since` from the rollup (whole buckets) plus the raw rows of the partial fine bucket at the start,
 * and the latest CRITICAL event.
 *
 * @example
 * const { total, bySeverity } = await countEvents(tables, Date.now() - 900_000);
 */
export async function countEvents({ db, table, rollupTable, fineMs, coarseMs }: StoreTables, since: number): Promise<EventCounts> {
  const { fineStart, coarseStart } = rollupRanges(since, fineMs, coarseMs);
  const [rolled, edge, latest] = await guardedRead(() =>
    Promise.all([
      db
        .selectFrom(rollupTable)
        .select(['severity', 'type', sql<string>`sum(count)`.as('n')])
        .where((eb) =>
          eb.or([
            eb.and([eb('width', '=', fineMs), eb('bucket', '>=', fineStart), eb('bucket', '<', coarseStart)]),
            eb.and([eb('width', '=', coarseMs), eb('bucket', '>=', coarseStart)]),
          ]),
        )
        .groupBy(['severity', 'type'])
        .execute(),
      fineStart > since
        ? db
            .selectFrom(table)
            .select(['severity', 'type', sql<string>`count(*)`.as('n')])
            .where('created_at', '>=', since)
            .where('created_at', '<', fineStart)
            .groupBy(['severity', 'type'])
            .execute()
        : Promise.resolve([]),
      db
        .selectFrom(table)
        .selectAll()
        .where('severity', '=', 'CRITICAL')
        .where('created_at', '>=', since)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst(),
    ]),
  );
  const { bySeverity, byType } = emptyCounters();
  let total = 0;
  for (const r of [...rolled, ...edge] as Array<{ severity: ImmuneSeverity; type: ImmuneEventType; n: string | number }>) {
    const n = Number(r.n);
    if (r.severity in bySeverity) bySeverity[r.severity] += n;
    if (r.type in byType) byType[r.type] += n;
    total += n;
  }
  return { total, bySeverity, byType, latestCritical: latest ? fromRow(latest as EventRow) : undefined };
}

/**
 * Deletes events created before `before`, rounded down to a coarse rollup bucket so counts stay exact, in chunks;
 * stops between chunks once `stopped()` says so. Resolves with how many events were removed.
 *
 * @example
 * const removed = await pruneEvents(tables, Date.now() - retentionMs, () => closed);
 */
export async function pruneEvents({ db, table, rollupTable, coarseMs }: StoreTables, before: number, stopped: () => boolean): Promise<number> {
  const cutoff = pruneCutoff(before, coarseMs);
  let removed = 0;
  for (;;) {
    // Delete up to the created_at of the PRUNE_CHUNK-th oldest row: a primary-key range delete on both dialects.
    const edge = await guardedRead(() =>
      db.selectFrom(table).select('created_at').where('created_at', '<', cutoff).orderBy('created_at').offset(PRUNE_CHUNK - 1).limit(1).executeTakeFirst(),
    );
    const upTo = edge ? Math.min(cutoff, Number(edge.created_at) + 1) : cutoff;
    const result = await guardedRead(() => db.deleteFrom(table).where('created_at', '<', upTo).executeTakeFirst());
    removed += Number(result.numDeletedRows);
    if (upTo >= cutoff || stopped()) break;
  }
  await guardedRead(() => db.deleteFrom(rollupTable).where('bucket', '<', cutoff).execute());
  return removed;
}
