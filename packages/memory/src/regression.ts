/** A least-squares straight line `y = intercept + slope * x` and how well it fits. */
export interface LinearFit {
  /** Change of y per unit of x. */
  readonly slope: number;
  /** y at x = 0. */
  readonly intercept: number;
  /**
   * Coefficient of determination (0-1): the share of the variance of y the line explains.
   * 1 for a perfect line (and for a flat series); a single spike or a step gives a low value.
   */
  readonly r2: number;
  /** Number of points fitted. */
  readonly n: number;
}

/**
 * Running least-squares sums of points shifted by an origin `(x0, y0)` near the data, so points can be added and
 * removed in O(1) and the variances do not lose precision (internal; not exported from the package). This is the one
 * place the sums are accumulated: {@link fitLine} and the guardrail's growth window both use it.
 */
export class LinearSums {
  n = 0;
  sx = 0;
  sy = 0;
  sxx = 0;
  sxy = 0;
  syy = 0;

  /** Adds a shifted point, or removes one with `sign` -1. */
  add(x: number, y: number, sign: 1 | -1 = 1): void {
    this.n += sign;
    this.sx += sign * x;
    this.sy += sign * y;
    this.sxx += sign * x * x;
    this.sxy += sign * x * y;
    this.syy += sign * y * y;
  }

  reset(): void {
    this.n = this.sx = this.sy = this.sxx = this.sxy = this.syy = 0;
  }

  /**
   * The least-squares line in unshifted coordinates. Fewer than two points, or all points at the same x, give a flat
   * line through the mean with `r2` 0.
   */
  fit(x0 = 0, y0 = 0): LinearFit {
    const { n, sx, sy, sxx, sxy, syy } = this;
    if (n === 0) return { slope: 0, intercept: 0, r2: 0, n: 0 };
    const varX = sxx - (sx * sx) / n;
    const meanY = sy / n + y0;
    if (n < 2 || varX <= 0) return { slope: 0, intercept: meanY, r2: 0, n };
    const cov = sxy - (sx * sy) / n;
    const varY = syy - (sy * sy) / n;
    const slope = cov / varX;
    const intercept = meanY - slope * (sx / n + x0);
    const r2 = varY <= Number.EPSILON * Math.max(1, Math.abs(meanY)) ? 1 : Math.min(1, Math.max(0, (cov * cov) / (varX * varY)));
    return { slope, intercept, r2, n };
  }
}

/**
 * Fits a straight line through the points by ordinary least squares, in one pass (O(n)).
 * Fewer than two points, or all points at the same x, give a flat line through the mean with `r2` 0.
 *
 * @example
 * const fit = fitLine([0, 1, 2, 3], [100, 105, 110, 115]);
 * fit.slope; // 5
 * fit.r2; // 1
 */
export function fitLine(xs: ArrayLike<number>, ys: ArrayLike<number>, length = Math.min(xs.length, ys.length)): LinearFit {
  const sums = new LinearSums();
  if (length === 0) return sums.fit();
  // Shift by the first point so large epoch-like values do not cost precision.
  const x0 = xs[0]!;
  const y0 = ys[0]!;
  for (let i = 0; i < length; i++) sums.add(xs[i]! - x0, ys[i]! - y0);
  return sums.fit(x0, y0);
}
