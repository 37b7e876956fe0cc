import type { MemorySnapshot } from './memory-snapshot.js';

/** The baseline: mean RSS of the first `baselineSamples` checks. */
export interface MemoryBaseline {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Samples averaged so far. */
  readonly samples: number;
  /** True once `baselineSamples` samples were taken. */
  readonly complete: boolean;
  /** Epoch ms of the first sample. */
  readonly startedAt: number;
}

/** Averages the first `samples` snapshots into the baseline that `/self-check/baseline` compares against. */
export class BaselineAverage {
  readonly #samples: number;
  #rss = 0;
  #heapUsed = 0;
  #count = 0;
  #startedAt = 0;

  constructor(samples: number) {
    this.#samples = samples;
  }

  /** Counts the snapshot while the baseline is not complete yet. */
  add(snapshot: MemorySnapshot): void {
    if (this.#count >= this.#samples) return;
    if (this.#count === 0) this.#startedAt = snapshot.at;
    this.#rss += snapshot.rssBytes;
    this.#heapUsed += snapshot.heapUsedBytes;
    this.#count++;
  }

  /** The baseline so far, or null before the first snapshot. */
  current(): MemoryBaseline | null {
    const count = this.#count;
    if (count === 0) return null;
    return {
      rssBytes: this.#rss / count,
      heapUsedBytes: this.#heapUsed / count,
      samples: count,
      complete: count >= this.#samples,
      startedAt: this.#startedAt,
    };
  }
}
