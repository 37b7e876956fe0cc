import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES } from './event.js';
import type { ImmuneEvent } from './event.js';
import { SEVERITY_COLUMN_LENGTH, TYPE_COLUMN_LENGTH } from './migrations.js';
import { pruneCutoff, rollupDeltas, rollupRanges } from './rollups.js';
import { makeEvent } from './testing.js';

const fine = 60_000;
const coarse = 3_600_000;
const hour = 1_700_002_800_000; // a whole hour

describe('rollups', () => {
  // The rollup columns come from event.ts's lists: a severity or type added there is counted in its own cell and fits
  // the table, instead of landing in a wrong cell or none.
  it('has one cell per severity x type of event.ts, and every name fits its column', () => {
    const events: ImmuneEvent[] = [];
    for (const severity of IMMUNE_SEVERITIES) {
      for (const [i, type] of IMMUNE_EVENT_TYPES.entries()) {
        for (let n = 0; n <= i; n++) events.push(makeEvent({ severity, type, createdAt: hour + events.length }));
      }
    }
    const deltas = rollupDeltas(events, fine, coarse);
    for (const width of [fine, coarse]) {
      const cells = deltas.filter((d) => d.width === width).map((d) => [d.severity, d.type, d.count]);
      const expected = IMMUNE_SEVERITIES.flatMap((severity) => IMMUNE_EVENT_TYPES.map((type, i) => [severity, type, i + 1]));
      expect(cells).toEqual(expected);
    }
    for (const severity of IMMUNE_SEVERITIES) expect(severity.length, severity).toBeLessThanOrEqual(SEVERITY_COLUMN_LENGTH);
    for (const type of IMMUNE_EVENT_TYPES) expect(type.length, type).toBeLessThanOrEqual(TYPE_COLUMN_LENGTH);
  });

  it('refuses an event whose severity or type event.ts does not list', () => {
    for (const [field, event] of [
      ['type', makeEvent({ type: 'NEW_KIND' as never })],
      ['severity', makeEvent({ severity: 'FATAL' as never })],
    ] as const) {
      let error: unknown;
      try {
        rollupDeltas([makeEvent(), event], fine, coarse);
      } catch (e) {
        error = e;
      }
      expect(isGuardError(error, 'INVALID_INPUT'), field).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe(field);
    }
  });

  it('sums fine buckets into coarse ones, fine first and each in bucket order', () => {
    const at = (offset: number) => makeEvent({ severity: 'INFO', type: 'ERROR_SPIKE', createdAt: hour + offset });
    const deltas = rollupDeltas([at(coarse + 5), at(0), at(1), at(fine), at(coarse + fine)], fine, coarse);
    expect(deltas.map((d) => [d.width, d.bucket - hour, d.count])).toEqual([
      [fine, 0, 2],
      [fine, fine, 1],
      [fine, coarse, 1],
      [fine, coarse + fine, 1],
      [coarse, 0, 3],
      [coarse, coarse, 2],
    ]);
  });

  it('splits a window into raw, fine and coarse ranges, and prunes whole coarse buckets', () => {
    expect(rollupRanges(hour + 1, fine, coarse)).toEqual({ fineStart: hour + fine, coarseStart: hour + coarse });
    expect(rollupRanges(hour, fine, coarse)).toEqual({ fineStart: hour, coarseStart: hour });
    expect(pruneCutoff(hour + coarse - 1, coarse)).toBe(hour);
  });
});
