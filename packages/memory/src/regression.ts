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
 * Fits a straight line through the points by ordinary least squares, in one pass (O(n), no allocation).
 * Fewer than two points, or all points at the same x, give a flat line through the mean with `r2` 0.
 *
 * @example
 * const fit = fitLine([0, 1, 2, 3], [100, 105, 110, 115]);
 * fit.slope; // 5
 * fit.r2; // 1
 */
export function fitLine(xs: ArrayLike<number>, ys: ArrayLike<number>, length = Math.min(xs.length, ys.length)): LinearFit {
  const n = length;
  if (n === 0) return { slope: 0, intercept: 0, r2: 0, n: 0 };
  // Shift by the first point so large epoch-like values do not cost precision.
  const x0 = xs[0]!;
  const y0 = ys[0]!;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const x = xs[i]! - x0;
    const y = ys[i]! - y0;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    syy += y * y;
  }
  return fitFromSums(n, sx, sy, sxx, sxy, syy, x0, y0);
}

/**
 * The least-squares line from running sums of points shifted by `(x0, y0)` (internal; not exported from the package).
 * Shifting by a point near the data keeps the sums small, so the variances do not lose precision.
 */
export function fitFromSums(n: number, sx: number, sy: number, sxx: number, sxy: number, syy: number, x0 = 0, y0 = 0): LinearFit {
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
