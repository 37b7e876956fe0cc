import { BYTES_PER_MB } from './memory-snapshot.js';
import type { MemorySnapshot } from './memory-snapshot.js';
import { LinearSums } from './regression.js';
import type { LinearFit } from './regression.js';
import { SnapshotRing } from './snapshot-ring.js';

const MS_PER_MIN = 60_000;

/** The least-squares RSS line over the leak window: `rssMb(t) = interceptMb + slopeMbPerMin * (t - originAt) / 60000`. */
export interface GrowthEstimate {
  readonly slopeMbPerMin: number;
  /** Fitted RSS in MB at `originAt`. */
  readonly interceptMb: number;
  /** Epoch ms of the newest point (x = 0 of the line). */
  readonly originAt: number;
  /** Goodness of fit (R squared, 0-1); a spike or a step fits a line badly. */
  readonly r2: number;
  /** Points in the window. */
  readonly samples: number;
  /** Time between the oldest and the newest point in the window. */
  readonly spanMs: number;
  /** Growth at or over the limit, with a good fit and enough samples. */
  readonly leakDetected: boolean;
}

/** What counts as a leak: growth at or over the rate, with a good fit, over enough points. */
export interface LeakCriteria {
  readonly leakRateMbPerMin: number;
  readonly minFitR2: number;
  readonly minLeakSamples: number;
}

/** Options of {@link GrowthWindow}. */
export interface GrowthWindowOptions {
  /** Snapshots kept (the ring's size). */
  readonly capacity: number;
  /** Only points this recent take part in the fit. */
  readonly windowMs: number;
  /** Points taken within this time of the first one are kept in the series but left out of every fit. */
  readonly startupGraceMs: number;
}

/**
 * The stored series and the growth regression over its newest `windowMs` (RSS in MB against minutes).
 *
 * Running least-squares sums over the window, shifted by (`#base` ms, `#y0` MB), make a check cost O(1) amortized
 * instead of a scan of the window. They are rebuilt from the ring every `capacity` stores (which bounds rounding drift)
 * and when the clock moves backwards (which restarts the window).
 *
 * The start-up grace: a process that has just started grows while it loads code, fills caches and warms the JIT. Read
 * as a leak, that growth predicts a breach and restarts a replica that was just restarted. Points taken in the first
 * `startupGraceMs` are therefore never fitted; hard thresholds still apply to them.
 */
export class GrowthWindow {
  readonly #ring: SnapshotRing<MemorySnapshot>;
  readonly #windowMs: number;
  readonly #startupGraceMs: number;
  /** Points before this time are start-up growth (set by the first store). */
  #fitFrom: number | undefined;
  readonly #sums = new LinearSums();
  #base = 0;
  #y0 = 0;
  #lastAt = -Infinity;
  #stores = 0;

  constructor(options: GrowthWindowOptions) {
    this.#ring = new SnapshotRing(options.capacity);
    this.#windowMs = options.windowMs;
    this.#startupGraceMs = options.startupGraceMs;
  }

  /** Epoch ms from which points are fitted (the end of the start-up grace), or undefined before the first store. */
  get fitFrom(): number | undefined {
    return this.#fitFrom;
  }

  /** Stored snapshots with `at >= minAt`, oldest first. */
  since(minAt: number): MemorySnapshot[] {
    return this.#ring.since(minAt);
  }

  /** Stores a snapshot and moves the window's running sums along. */
  store(snapshot: MemorySnapshot): void {
    this.#fitFrom ??= snapshot.at + this.#startupGraceMs;
    // A clock that moves backwards restarts the window, and ends the grace: its end is in the new clock's future.
    if (snapshot.at < this.#lastAt) this.#fitFrom = Math.min(this.#fitFrom, snapshot.at);
    const ring = this.#ring;
    const sums = this.#sums;
    const yMb = snapshot.rssBytes / BYTES_PER_MB;
    const rebuild = sums.n === 0 || snapshot.at < this.#lastAt || this.#stores >= ring.capacity;
    if (!rebuild && ring.size === ring.capacity && sums.n === ring.capacity) {
      // The slot about to be overwritten is still in the window: take it out first.
      this.#remove(ring.indexBack(ring.capacity - 1));
    }
    ring.push(snapshot, yMb);
    this.#lastAt = snapshot.at;
    if (rebuild) {
      this.#rebuild(snapshot.at);
      return;
    }
    sums.add((snapshot.at - this.#base) / MS_PER_MIN, yMb - this.#y0);
    this.#stores++;
    const minAt = this.#minAt(snapshot.at);
    while (sums.n > 0) {
      const oldest = ring.indexBack(sums.n - 1);
      if (ring.ats[oldest]! >= minAt) break;
      this.#remove(oldest);
    }
  }

  /** The growth over the window ending at the newest stored snapshot (what `check()` acts on). */
  estimateStored(criteria: LeakCriteria): GrowthEstimate {
    const ring = this.#ring;
    const origin = this.#lastAt;
    const currentMb = ring.values[ring.newestIndex]!;
    const sums = this.#sums;
    let fit = sums.fit(0, this.#y0);
    if (fit.n >= 2) fit = { ...fit, intercept: fit.intercept + (fit.slope * (origin - this.#base)) / MS_PER_MIN };
    const oldest = sums.n > 0 ? ring.ats[ring.indexBack(sums.n - 1)]! : origin;
    return estimate(fit, origin, oldest, currentMb, criteria);
  }

  /** The growth over the window ending at a live snapshot that is not stored (what `assess()` reports). */
  estimateLive(snapshot: MemorySnapshot, criteria: LeakCriteria): GrowthEstimate {
    const origin = snapshot.at;
    const currentMb = snapshot.rssBytes / BYTES_PER_MB;
    // The live sample is the point (0, 0) of the shifted coordinates.
    const sums = new LinearSums();
    sums.add(0, 0);
    const oldest = this.#scan(sums, origin, currentMb) ?? origin;
    return estimate(sums.fit(0, currentMb), origin, oldest, currentMb, criteria);
  }

  #minAt(origin: number): number {
    return Math.max(origin - this.#windowMs, this.#fitFrom ?? -Infinity);
  }

  #remove(index: number): void {
    this.#sums.add((this.#ring.ats[index]! - this.#base) / MS_PER_MIN, this.#ring.values[index]! - this.#y0, -1);
  }

  #rebuild(origin: number): void {
    this.#base = origin;
    this.#y0 = this.#ring.values[this.#ring.newestIndex]!;
    this.#sums.reset();
    this.#stores = 0;
    this.#scan(this.#sums, origin, this.#y0);
  }

  /** Adds every stored point of the window ending at `origin` to `sums`, shifted by (origin, y0); returns the oldest time. */
  #scan(sums: LinearSums, origin: number, y0: number): number | undefined {
    const ring = this.#ring;
    const minAt = this.#minAt(origin);
    let oldest: number | undefined;
    for (let back = 0; back < ring.size; back++) {
      const index = ring.indexBack(back);
      const at = ring.ats[index]!;
      if (at < minAt || at > origin) break;
      sums.add((at - origin) / MS_PER_MIN, ring.values[index]! - y0);
      oldest = at;
    }
    return oldest;
  }
}

function estimate(fit: LinearFit, origin: number, oldest: number, currentMb: number, criteria: LeakCriteria): GrowthEstimate {
  const leakDetected =
    fit.n >= criteria.minLeakSamples && fit.slope >= criteria.leakRateMbPerMin * (1 - 1e-9) && fit.slope > 0 && fit.r2 >= criteria.minFitR2;
  return {
    slopeMbPerMin: fit.slope,
    interceptMb: fit.n >= 2 ? fit.intercept : currentMb,
    originAt: origin,
    r2: fit.r2,
    samples: fit.n,
    spanMs: origin - oldest,
    leakDetected,
  };
}
