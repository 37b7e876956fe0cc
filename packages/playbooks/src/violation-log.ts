import { GuardError } from '@guard/core';

/** One denied publish, published on {@link ACL_VIOLATION_TOPIC}. */
export interface AclViolation {
  readonly bus: string;
  readonly actor: string;
  readonly topic: string;
  /** True when the topic is a control topic. */
  readonly control: boolean;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** Violation timestamps kept (a ring; older ones are counted as "at least"). */
const VIOLATION_RING = 4_096;

/**
 * The bus's record of ACL violations: a count per kind (for the metrics) and a ring of the latest 4 096 timestamps,
 * so "how many since" is exact for recent violations and costs no allocation per violation.
 *
 * @example
 * const log = new ViolationLog();
 * log.record(Date.now(), false);
 * log.since(Date.now() - 2_000); // 1
 */
export class ViolationLog {
  /** Violations since creation, by kind. */
  readonly counts = { topic: 0, control: 0 };
  readonly #times = new Float64Array(VIOLATION_RING);
  #recorded = 0;

  record(at: number, control: boolean): void {
    this.counts[control ? 'control' : 'topic']++;
    this.#times[this.#recorded % VIOLATION_RING] = at;
    this.#recorded++;
  }

  /** How many violations happened at or after `sinceEpochMs` (exact for the last 4 096; more are reported as 4 096). */
  since(sinceEpochMs: number): number {
    if (typeof sinceEpochMs !== 'number' || Number.isNaN(sinceEpochMs)) {
      throw new GuardError('INVALID_INPUT', 'sinceEpochMs must be a number', { details: { field: 'sinceEpochMs' } });
    }
    const kept = Math.min(this.#recorded, VIOLATION_RING);
    let n = 0;
    for (let i = 1; i <= kept; i++) {
      if (this.#times[(this.#recorded - i) % VIOLATION_RING]! < sinceEpochMs) break;
      n++;
    }
    return n;
  }

  /** Epoch ms of the latest violation, undefined when there was none. */
  get lastAt(): number | undefined {
    return this.#recorded === 0 ? undefined : this.#times[(this.#recorded - 1) % VIOLATION_RING];
  }
}
