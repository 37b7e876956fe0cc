import type {} from './errors.js';
import { GuardError } from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES } from './event.js';

/**
 * One change to the count rollup: `count` more events of (`severity`, `type`) in the bucket of width `width` that
 * starts at `bucket` (epoch ms).
 *
 * @example
 * const delta: RollupDelta = { width: 60_000, bucket: 1_700_000_040_000, severity: 'INFO', type: 'ERROR_SPIKE', count: 3 };
 */
export interface RollupDelta {
  readonly width: number;
  readonly bucket: number;
  readonly severity: ImmuneSeverity;
  readonly type: ImmuneEventType;
  readonly count: number;
}

/** A coarse bucket is this many fine buckets wide. */
export const COARSE_BUCKETS_PER_FINE = 60;

// One cell per (severity, type), both taken from event.ts: a new severity or type gets its own cell, never NaN.
const TYPES = IMMUNE_EVENT_TYPES.length;
const CELLS = IMMUNE_SEVERITIES.length * TYPES;
const SEVERITY_INDEX: Readonly<Record<string, number>> = Object.fromEntries(IMMUNE_SEVERITIES.map((s, i) => [s, i]));
const TYPE_INDEX: Readonly<Record<string, number>> = Object.fromEntries(IMMUNE_EVENT_TYPES.map((t, i) => [t, i]));

function cellOf(event: ImmuneEvent): number {
  const severity = SEVERITY_INDEX[event.severity];
  const type = TYPE_INDEX[event.type];
  if (severity === undefined || type === undefined) {
    // A stored event the rollup cannot count would make summaries disagree with queries: refuse the batch instead.
    const field = severity === undefined ? 'severity' : 'type';
    throw new GuardError('INVALID_INPUT', `event ${event.id} has an unknown ${field} ${JSON.stringify(event[field])}`, { details: { field } });
  }
  return severity * TYPES + type;
}

/**
 * Count deltas of one batch per (width, bucket, severity, type), fine buckets first, then by bucket. The fixed order
 * keeps row locks ordered across fleet instances (no deadlocks on Postgres). Throws `INVALID_INPUT` for an event
 * whose severity or type event.ts does not list.
 *
 * @example
 * const deltas = rollupDeltas(batch, 60_000, 3_600_000);
 */
export function rollupDeltas(events: readonly ImmuneEvent[], fineMs: number, coarseMs: number): RollupDelta[] {
  const fine = new Map<number, number[]>();
  let last = NaN;
  let counts: number[] = [];
  for (const e of events) {
    const bucket = Math.floor(e.createdAt / fineMs) * fineMs;
    if (bucket !== last) {
      last = bucket;
      let found = fine.get(bucket);
      if (!found) fine.set(bucket, (found = new Array<number>(CELLS).fill(0)));
      counts = found;
    }
    counts[cellOf(e)]!++;
  }
  const coarse = new Map<number, number[]>();
  for (const [bucket, c] of fine) {
    const key = Math.floor(bucket / coarseMs) * coarseMs;
    let sum = coarse.get(key);
    if (!sum) coarse.set(key, (sum = new Array<number>(CELLS).fill(0)));
    for (let i = 0; i < CELLS; i++) sum[i]! += c[i]!;
  }
  const deltas: RollupDelta[] = [];
  for (const [width, map] of [
    [fineMs, fine],
    [coarseMs, coarse],
  ] as const) {
    for (const bucket of [...map.keys()].sort((a, b) => a - b)) {
      const c = map.get(bucket)!;
      for (let i = 0; i < CELLS; i++) {
        if (c[i]! > 0) deltas.push({ width, bucket, severity: IMMUNE_SEVERITIES[Math.floor(i / TYPES)]!, type: IMMUNE_EVENT_TYPES[i % TYPES]!, count: c[i]! });
      }
    }
  }
  return deltas;
}

/**
 * Where a summary from `since` reads what: raw rows in [since, fineStart), fine buckets in [fineStart, coarseStart),
 * coarse buckets from coarseStart on. So a summary reads at most ~60 fine rows, the coarse rows and the raw rows of
 * one partial fine bucket, however many events the window holds.
 *
 * @example
 * const { fineStart, coarseStart } = rollupRanges(since, 60_000, 3_600_000);
 */
export function rollupRanges(since: number, fineMs: number, coarseMs: number): { fineStart: number; coarseStart: number } {
  return { fineStart: Math.ceil(since / fineMs) * fineMs, coarseStart: Math.ceil(since / coarseMs) * coarseMs };
}

/**
 * The prune cutoff for "before `before`": rounded down to a coarse bucket, so every bucket left is whole and counts
 * stay exact.
 *
 * @example
 * const cutoff = pruneCutoff(Date.now() - retentionMs, 3_600_000);
 */
export function pruneCutoff(before: number, coarseMs: number): number {
  return Math.floor(before / coarseMs) * coarseMs;
}
