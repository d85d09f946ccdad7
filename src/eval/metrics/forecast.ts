/**
 * Metrics of probabilistic forecasts from sample paths, as GluonTS's Evaluator defines them:
 *
 * - CRPS (continuous ranked probability score) of the empirical distribution of the samples, in
 *   its energy form  CRPS(F, y) = E|X − y| − ½ E|X − X'|  (Gneiting & Raftery 2007, eq. 21),
 *   exact for the n samples (computed sorted: E|X − X'| = 2/n² Σ_i (2i − n − 1) x_(i), i = 1..n).
 *   For a point forecast (all samples equal) it is the absolute error: the CRPS of the seasonal
 *   naive forecast is its MAE.
 * - The quantile-loss CRPS of GluonTS (`mean_wQuantileLoss` without the weighting):
 *   (1/|Q|) Σ_q 2 · QL_q,  QL_q = (y − ŷ_q)(q − 1{y < ŷ_q}), over q = 0.05, 0.10, …, 0.95.
 * - MASE: the mean absolute error of the median forecast over the in-sample mean absolute error
 *   of the seasonal naive forecast (season m) on the history before the origin.
 * - Coverage of the central 50% and 90% intervals: the fraction of true values inside
 *   [q_0.25, q_0.75] and [q_0.05, q_0.95].
 */

/** The q-quantile of sorted values, linearly interpolated (NumPy's default, type 7). */
export function sortedQuantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('quantile of no values');
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/** CRPS of the empirical distribution of `samples` at the observation y (energy form, exact). */
export function crpsSamples(samples: ArrayLike<number>, y: number): number {
  const n = samples.length;
  if (n === 0) throw new Error('CRPS of no samples');
  const x = Float64Array.from(samples).sort();
  let absErr = 0;
  let spread = 0;
  for (let i = 0; i < n; i++) {
    absErr += Math.abs(x[i]! - y);
    spread += (2 * (i + 1) - n - 1) * x[i]!;
  }
  return absErr / n - spread / (n * n);
}

/** The quantile levels of the quantile-loss CRPS: 0.05, 0.10, …, 0.95. */
export const CRPS_QUANTILES: readonly number[] = Array.from({ length: 19 }, (_, i) => (i + 1) / 20);

/** GluonTS's quantile-loss approximation of the CRPS at y (see the module comment). */
export function crpsQuantileLoss(
  samples: ArrayLike<number>,
  y: number,
  quantiles: readonly number[] = CRPS_QUANTILES,
): number {
  const x = Float64Array.from(samples).sort();
  let s = 0;
  for (const q of quantiles) {
    const p = sortedQuantile(x, q);
    s += 2 * (y - p) * (q - (y < p ? 1 : 0));
  }
  return s / quantiles.length;
}

/** Mean absolute error of the seasonal naive forecast within `history` (season m): the MASE scale. */
export function seasonalError(history: ArrayLike<number>, m: number): number {
  const lag = history.length > m ? m : 1;
  let s = 0;
  let n = 0;
  for (let t = lag; t < history.length; t++) {
    s += Math.abs(history[t]! - history[t - lag]!);
    n++;
  }
  return n > 0 ? s / n : NaN;
}

/** One forecast of a univariate target: sample paths over the horizon and the truth. */
export interface ForecastCase {
  /** [numSamples][H] */
  samples: readonly ArrayLike<number>[];
  /** [H] */
  truth: ArrayLike<number>;
  /** The MASE scale of this series before the origin (seasonalError). */
  scale: number;
}

export interface ForecastMetrics {
  /** Mean CRPS per observation (energy form), in the series' units. */
  crps: number;
  /** Mean quantile-loss CRPS per observation (GluonTS's approximation). */
  crpsQuantile: number;
  /** CRPS / mean |y|: GluonTS's weighted form (its "mean_wQuantileLoss" analogue). */
  crpsWeighted: number;
  /** Mean absolute error of the median. */
  mae: number;
  mase: number;
  /** Fractions of true values inside the central 50% and 90% intervals. */
  coverage50: number;
  coverage90: number;
  /** Observations scored. */
  count: number;
}

/** The metrics over every horizon step of every case. */
export function forecastMetrics(cases: readonly ForecastCase[]): ForecastMetrics {
  let crps = 0;
  let crpsQ = 0;
  let absY = 0;
  let mae = 0;
  let mase = 0;
  let in50 = 0;
  let in90 = 0;
  let count = 0;
  for (const c of cases) {
    const H = c.truth.length;
    let caseAbs = 0;
    for (let h = 0; h < H; h++) {
      const y = c.truth[h]!;
      const col = Float64Array.from(c.samples, (p) => p[h]!).sort();
      crps += crpsSamples(col, y);
      crpsQ += crpsQuantileLoss(col, y);
      const err = Math.abs(sortedQuantile(col, 0.5) - y);
      mae += err;
      caseAbs += err;
      absY += Math.abs(y);
      if (y >= sortedQuantile(col, 0.25) && y <= sortedQuantile(col, 0.75)) in50++;
      if (y >= sortedQuantile(col, 0.05) && y <= sortedQuantile(col, 0.95)) in90++;
      count++;
    }
    mase += caseAbs / H / c.scale;
  }
  if (count === 0) throw new Error('forecastMetrics: no forecasts');
  return {
    crps: crps / count,
    crpsQuantile: crpsQ / count,
    crpsWeighted: crps / absY,
    mae: mae / count,
    mase: mase / cases.length,
    coverage50: in50 / count,
    coverage90: in90 / count,
    count,
  };
}

/** The seasonal naive forecast: ŷ_{T+h} = y_{T+h−m⌈h/m⌉} (h = 1..H) from the history. */
export function seasonalNaive(history: ArrayLike<number>, m: number, H: number): Float64Array {
  const T = history.length;
  const season = T >= m ? m : 1;
  return Float64Array.from({ length: H }, (_, h) => {
    const back = season * Math.ceil((h + 1) / season);
    return history[T + h - back]!;
  });
}
