/**
 * The Fréchet distance between two Gaussians fitted to feature sets (Dowson & Landau 1982; as FID,
 * Heusel et al. 2017):
 *
 *   FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})
 *
 * Matrix square roots come from symmetric eigendecompositions (eigh.ts), not a Newton iteration.
 * With Σ₁ = V Λ Vᵀ and U = V Λ^{1/2}, the matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2} = V (Uᵀ Σ₂ U) Vᵀ is
 * orthogonally similar to M = Uᵀ Σ₂ U, so tr(…)^{1/2} = Σ_i √λ_i(M) needs only the eigenvalues
 * of M. Rounding leaves eigenvalues of these positive semi-definite matrices slightly below zero;
 * they are clamped to 0 and reported. With a singular Σ (fewer samples than dimensions, dead
 * features) the zero eigenvalues of M come out as ±δ with δ ~ ε‖Σ‖ and enter the trace as √δ, so
 * FD is then accurate to about √(ε‖Σ‖) per zero eigenvalue rather than to ε (as any eigenvalue-
 * or Newton-based square root is).
 */
import { addRowCombination, dots4 } from './dense.js';
import { eigh } from './eigh.js';
import type { FeatureMatrix } from './features.js';
import { checkFinite } from './features.js';

/** A Gaussian fitted to features: mean μ (dim) and covariance Σ (dim×dim row-major). */
export interface GaussianStats {
  readonly dim: number;
  readonly mean: Float64Array;
  readonly cov: Float64Array;
}

/** GaussianStats of a sample, with the sample size it came from. */
export interface FeatureStats extends GaussianStats {
  readonly n: number;
}

/** Rows centred at a time while accumulating the covariance (bounds the scratch memory). */
const COV_BLOCK = 64;

/**
 * Mean and unbiased covariance of the rows of x, in float64, in two passes:
 *   μ = (1/n) Σ_r x_r, refined by μ += (1/n) Σ_r (x_r − μ) (the rounding of the first sum);
 *   Σ = 1/(n−1) Σ_r (x_r − μ)(x_r − μ)ᵀ, accumulated from centred rows.
 */
export function featureStats(x: FeatureMatrix): FeatureStats {
  const { data, rows: n, cols: d } = x;
  if (n < 2) throw new Error(`featureStats: needs at least 2 rows, got ${n}`);
  checkFinite(x, 'featureStats');
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    for (let c = 0; c < d; c++) mean[c] = mean[c]! + data[o + c]!;
  }
  for (let c = 0; c < d; c++) mean[c] = mean[c]! / n;
  const fix = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    for (let c = 0; c < d; c++) fix[c] = fix[c]! + (data[o + c]! - mean[c]!);
  }
  for (let c = 0; c < d; c++) mean[c] = mean[c]! + fix[c]! / n;

  // Upper triangle of Σ_r y_r y_rᵀ with y_r = x_r − μ, a block of centred rows at a time.
  const cov = new Float64Array(d * d);
  const block = new Float64Array(COV_BLOCK * d);
  for (let r0 = 0; r0 < n; r0 += COV_BLOCK) {
    const m = Math.min(COV_BLOCK, n - r0);
    for (let b = 0; b < m; b++) {
      const o = (r0 + b) * d;
      for (let c = 0; c < d; c++) block[b * d + c] = data[o + c]! - mean[c]!;
    }
    for (let i = 0; i < d; i++) {
      const ci = i * d;
      let b = 0;
      // Four centred rows per pass over row i of Σ.
      for (; b + 3 < m; b += 4) {
        const o0 = b * d;
        const o1 = o0 + d;
        const o2 = o1 + d;
        const o3 = o2 + d;
        const y0 = block[o0 + i]!;
        const y1 = block[o1 + i]!;
        const y2 = block[o2 + i]!;
        const y3 = block[o3 + i]!;
        for (let j = i; j < d; j++) {
          cov[ci + j] =
            cov[ci + j]! +
            (y0 * block[o0 + j]! +
              y1 * block[o1 + j]! +
              (y2 * block[o2 + j]! + y3 * block[o3 + j]!));
        }
      }
      for (; b < m; b++) {
        const bo = b * d;
        const yi = block[bo + i]!;
        for (let j = i; j < d; j++) cov[ci + j] = cov[ci + j]! + yi * block[bo + j]!;
      }
    }
  }
  const inv = 1 / (n - 1);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = cov[i * d + j]! * inv;
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  return { dim: d, n, mean, cov };
}

/** Eigenvalues below zero that were clamped to 0 before a square root. */
export interface ClampReport {
  /** How many eigenvalues were negative. */
  count: number;
  /** The most negative eigenvalue (0 when none was negative). */
  mostNegative: number;
  /** |mostNegative| / the largest |eigenvalue| (0 when none was negative). */
  relative: number;
}

export interface FrechetResult {
  /** FD = meanTerm + traceTerm. Can come out a rounding error below 0 for equal inputs. */
  distance: number;
  /** ‖μ₁ − μ₂‖² */
  meanTerm: number;
  /** tr Σ₁ + tr Σ₂ − 2 tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) */
  traceTerm: number;
  /** tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) */
  traceSqrtProduct: number;
  /** Clamped eigenvalues of Σ₁ (for Σ₁^{1/2}) and of Σ₁^{1/2} Σ₂ Σ₁^{1/2}. */
  clamped: { sigma1: ClampReport; product: ClampReport };
}

export interface FrechetOptions {
  /**
   * A negative eigenvalue larger than this times the largest |eigenvalue| means the input is not
   * a covariance (not positive semi-definite) and throws; smaller ones are rounding, clamped to 0.
   * Default 1e-9.
   */
  psdTolerance?: number;
}

/** A B for n×n row-major matrices: row i of the result is Σ_k a_ik (row k of B), four k at a time. */
function multiply(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    addRowCombination(out.subarray(i * n, (i + 1) * n), a.subarray(i * n, (i + 1) * n), b, n);
  }
  return out;
}

/**
 * A Bᵀ for n×n row-major matrices when the result is known to be symmetric: entry (i, j) is the
 * dot product of rows i and j, computed for j ≥ i (four j at a time) and mirrored.
 */
function multiplyTransposed(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ra = i * n;
    let j = i;
    for (; j + 3 < n; j += 4) {
      const r0 = j * n;
      dots4(out, ra + j, a, ra, b, [r0, r0 + n, r0 + 2 * n, r0 + 3 * n], n);
    }
    for (; j < n; j++) {
      const rb = j * n;
      let s = 0;
      for (let k = 0; k < n; k++) s += a[ra + k]! * b[rb + k]!;
      out[ra + j] = s;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[i * n + j] = out[j * n + i]!;
  return out;
}

function clampNegatives(values: Float64Array, what: string, tolerance: number): ClampReport {
  let count = 0;
  let mostNegative = 0;
  let largest = 0;
  for (const v of values) {
    largest = Math.max(largest, Math.abs(v));
    if (v < 0) {
      count++;
      mostNegative = Math.min(mostNegative, v);
    }
  }
  const relative = count === 0 ? 0 : -mostNegative / largest;
  if (relative > tolerance) {
    throw new Error(
      `frechetDistance: ${what} is not positive semi-definite: eigenvalue ${mostNegative} ` +
        `against a largest of ${largest} (relative ${relative.toExponential(2)} > ${tolerance})`,
    );
  }
  for (let i = 0; i < values.length; i++) if (values[i]! < 0) values[i] = 0;
  return { count, mostNegative, relative };
}

function checkStats(s: GaussianStats, what: string): void {
  const d = s.dim;
  if (s.mean.length !== d || s.cov.length !== d * d) {
    throw new Error(
      `frechetDistance: ${what} has dim ${d} but ${s.mean.length} means and ${s.cov.length} covariances`,
    );
  }
}

/** The Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (see the file header for the equations). */
export function frechetDistance(
  a: GaussianStats,
  b: GaussianStats,
  opts: FrechetOptions = {},
): FrechetResult {
  checkStats(a, 'the first Gaussian');
  checkStats(b, 'the second Gaussian');
  if (a.dim !== b.dim) throw new Error(`frechetDistance: dims differ (${a.dim} and ${b.dim})`);
  const tol = opts.psdTolerance ?? 1e-9;
  const d = a.dim;
  let meanTerm = 0;
  let trace1 = 0;
  let trace2 = 0;
  for (let i = 0; i < d; i++) {
    meanTerm += (a.mean[i]! - b.mean[i]!) ** 2;
    trace1 += a.cov[i * d + i]!;
    trace2 += b.cov[i * d + i]!;
  }
  // Σ₁ = V Λ Vᵀ; the rows of W = Uᵀ = Λ^{1/2} Vᵀ are the eigenvectors scaled by √λ_j.
  const e1 = eigh(a.cov, d);
  const sigma1 = clampNegatives(e1.values, 'Σ₁', tol);
  const v = e1.vectors!;
  const w = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    const s = Math.sqrt(e1.values[j]!);
    for (let i = 0; i < d; i++) w[j * d + i] = v[i * d + j]! * s;
  }
  // M = Uᵀ Σ₂ U = (W Σ₂) Wᵀ.
  const m = multiplyTransposed(multiply(w, b.cov, d), w, d);
  const mu = eigh(m, d, { vectors: false }).values;
  const product = clampNegatives(mu, 'Σ₁^{1/2} Σ₂ Σ₁^{1/2}', tol);
  let traceSqrtProduct = 0;
  for (const v of mu) traceSqrtProduct += Math.sqrt(v);
  const traceTerm = trace1 + trace2 - 2 * traceSqrtProduct;
  return {
    distance: meanTerm + traceTerm,
    meanTerm,
    traceTerm,
    traceSqrtProduct,
    clamped: { sigma1, product },
  };
}

/** FD between the Gaussians fitted to two feature sets (featureStats of each, then frechetDistance). */
export function frechetDistanceOfFeatures(
  a: FeatureMatrix,
  b: FeatureMatrix,
  opts: FrechetOptions = {},
): FrechetResult {
  if (a.cols !== b.cols) {
    throw new Error(`frechetDistance: feature sizes differ (${a.cols} and ${b.cols})`);
  }
  return frechetDistance(featureStats(a), featureStats(b), opts);
}
