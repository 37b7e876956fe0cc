import { GuardError } from '@guard/core';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** `setThresholds` got an unknown field or a value out of range (`details.field` names it). */
    INVALID_THRESHOLD: true;
  }
}

/**
 * The thresholds a running guardrail can change without a restart ({@link MemoryGuardrail.setThresholds}).
 *
 * @example
 * const { rssThresholdMb, cacheEntriesThreshold } = guardrail.thresholds();
 */
export interface MemoryThresholds {
  /** Hard RSS threshold (critical). */
  readonly rssThresholdMb: number;
  /** Hard threshold of entries per cache probe (critical). */
  readonly cacheEntriesThreshold: number;
  /** Share of a threshold at which the status becomes warning (0.01-1). */
  readonly warningRatio: number;
  /** Growth at or above which a good fit is a leak. */
  readonly leakRateMbPerMin: number;
}

/** Payload of the `memoryThresholdsChanged` bus event: the audit record of a run-time threshold change. */
export interface MemoryThresholdsChange {
  readonly name: string;
  readonly previous: MemoryThresholds;
  readonly current: MemoryThresholds;
  /** Fields whose value changed. */
  readonly changed: readonly (keyof MemoryThresholds)[];
  /** Who changed them: `'api'` by default, `'http'` from `POST /self-check/thresholds`, or what the caller passed. */
  readonly source: string;
  /** For `'http'`: the client's address. */
  readonly remoteAddress?: string;
  readonly at: number;
}

/** Options of {@link MemoryGuardrail.setThresholds}. */
export interface SetThresholdsOptions {
  /** Recorded in the audit event and log line. Default `'api'`. */
  readonly source?: string;
  readonly remoteAddress?: string;
}

/** The range of each threshold, shared by the constructor's options and `setThresholds`. */
export const THRESHOLD_BOUNDS: Readonly<Record<keyof MemoryThresholds, { readonly min: number; readonly max: number }>> = {
  rssThresholdMb: { min: 1, max: 1_048_576 },
  cacheEntriesThreshold: { min: 1, max: Number.MAX_SAFE_INTEGER },
  warningRatio: { min: 0.01, max: 1 },
  leakRateMbPerMin: { min: 0, max: 1_048_576 },
};

const FIELDS = Object.keys(THRESHOLD_BOUNDS) as (keyof MemoryThresholds)[];

function invalid(field: string, value: unknown, message: string): GuardError {
  return new GuardError('INVALID_THRESHOLD', message, { details: { field, value, status: 400, title: 'Invalid threshold' } });
}

/**
 * Validates a run-time change (all fields before any is applied) and returns the thresholds it leads to.
 * An unknown field or a value out of range throws `INVALID_THRESHOLD` naming the field.
 */
export function applyThresholdChanges(previous: MemoryThresholds, changes: unknown): MemoryThresholds {
  if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) {
    throw invalid('thresholds', changes, 'thresholds must be an object such as {"rssThresholdMb": 900}');
  }
  const fields = Object.keys(changes);
  if (fields.length === 0) throw invalid('thresholds', changes, `name at least one of ${FIELDS.join(', ')}`);
  for (const field of fields) {
    const value: unknown = (changes as Record<string, unknown>)[field];
    if (!Object.hasOwn(THRESHOLD_BOUNDS, field)) throw invalid(field, value, `${field} is not a threshold; use ${FIELDS.join(', ')}`);
    const { min, max } = THRESHOLD_BOUNDS[field as keyof MemoryThresholds];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw invalid(field, value, `${field} must be a finite number >= ${min}${max < Infinity ? ` and <= ${max}` : ''}, got ${JSON.stringify(value)}`);
    }
  }
  return { ...previous, ...(changes as Partial<MemoryThresholds>) };
}

/** The fields whose value differs. */
export function changedThresholds(previous: MemoryThresholds, current: MemoryThresholds): (keyof MemoryThresholds)[] {
  return FIELDS.filter((field) => current[field] !== previous[field]);
}
