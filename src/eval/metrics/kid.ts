/**
 * Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", §4): the unbiased
 * estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
 *
 *   k(x, y) = (xᵀy / d + 1)³
 *
 *   MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j)
 *            − 2/(mn) Σ_{i,j} k(x_i, y_j),
 *
 * averaged over random subsets of both sets (drawn without replacement, independently per
 * subset), with the spread over subsets. The estimate is unbiased, so it can be slightly negative.
 */
import { cpuBackend, Generator, rand } from '../../engine/index.js';
import { dots4 } from './dense.js';
import { checkFinite, checkPair, type FeatureMatrix } from './features.js';

export interface KidOptions {
  /** Number of random subsets (default 100). */
  subsets?: number;
  /** Rows per subset of each set (default 1000), capped at the smaller set's size. */
  subsetSize?: number;
  /** Philox seed for the subsets (default 0); or pass a generator. */
  seed?: number;
  generator?: Generator;
}

export interface KidResult {
  /** Mean of MMD²_u over the subsets. */
  kid: number;
  /** Standard deviation of MMD²_u over the subsets (population form, divided by the count). */
  std: number;
  /** MMD²_u of each subset. */
  values: Float64Array;
  /** Rows taken from each set per subset (after the cap). */
  subsetSize: number;
}

/** Index lists of one subset: rows of the first set and rows of the second. */
export interface KidSubset {
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

/** Rows per cache tile of the Gram-matrix loops. */
const TILE = 32;

/** Copies the listed rows of f into a contiguous float64 matrix. */
function gatherRows(f: FeatureMatrix, idx: ArrayLike<number>, out: Float64Array, at: number): void {
  const d = f.cols;
  for (let r = 0; r < idx.length; r++) {
    const i = idx[r]!;
    if (!Number.isInteger(i) || i < 0 || i >= f.rows) {
      throw new Error(`kid: row index ${i} is outside [0, ${f.rows - 1}]`);
    }
    const src = i * d;
    const dst = (at + r) * d;
    for (let c = 0; c < d; c++) out[dst + c] = f.data[src + c]!;
  }
}

/** (g/d + 1)³ for a dot product g. */
function cubic(g: number, invD: number): number {
  const k = g * invD + 1;
  return k * k * k;
}

/**
 * Σ k(z_i, z_j) over i in [i0, i1) and j in [j0, j1), only j > i when `upper` (the two ranges
 * then coincide). Row i is read once for four rows j at a time, in cache tiles of rows.
 */
function kernelSum(
  z: Float64Array,
  d: number,
  i0: number,
  i1: number,
  j0: number,
  j1: number,
  upper: boolean,
): number {
  const invD = 1 / d;
  const g = new Float64Array(4);
  let total = 0;
  for (let ib = i0; ib < i1; ib += TILE) {
    const ie = Math.min(ib + TILE, i1);
    for (let jb = upper ? ib : j0; jb < j1; jb += TILE) {
      const je = Math.min(jb + TILE, j1);
      for (let i = ib; i < ie; i++) {
        const a = i * d;
        let j = upper ? Math.max(jb, i + 1) : jb;
        for (; j + 3 < je; j += 4) {
          const b0 = j * d;
          dots4(g, 0, z, a, z, [b0, b0 + d, b0 + 2 * d, b0 + 3 * d], d);
          total +=
            cubic(g[0]!, invD) + cubic(g[1]!, invD) + cubic(g[2]!, invD) + cubic(g[3]!, invD);
        }
        for (; j < je; j++) {
          const b = j * d;
          let g = 0;
          for (let c = 0; c < d; c++) g += z[a + c]! * z[b + c]!;
          total += cubic(g, invD);
        }
      }
    }
  }
  return total;
}

/** MMD²_u with k(x, y) = (xᵀy/d + 1)³ between the listed rows of x and of y (≥ 2 each). */
export function polynomialMmd2(x: FeatureMatrix, y: FeatureMatrix, subset: KidSubset): number {
  checkPair(x, y, 2, 'kid');
  const m = subset.x.length;
  const n = subset.y.length;
  if (m < 2 || n < 2) throw new Error(`kid: a subset needs at least 2 rows of each set`);
  const d = x.cols;
  const z = new Float64Array((m + n) * d);
  gatherRows(x, subset.x, z, 0);
  gatherRows(y, subset.y, z, m);
  const kxx = 2 * kernelSum(z, d, 0, m, 0, m, true);
  const kyy = 2 * kernelSum(z, d, m, m + n, m, m + n, true);
  const kxy = kernelSum(z, d, 0, m, m, m + n, false);
  return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - (2 * kxy) / (m * n);
}

/** KID over given subsets: mean and population standard deviation of MMD²_u. */
export function kidFromSubsets(
  x: FeatureMatrix,
  y: FeatureMatrix,
  subsets: readonly KidSubset[],
): KidResult {
  if (subsets.length === 0) throw new Error('kid: no subsets');
  const values = Float64Array.from(subsets, (s) => polynomialMmd2(x, y, s));
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return {
    kid: mean,
    std: Math.sqrt(ss / values.length),
    values,
    subsetSize: subsets[0]!.x.length,
  };
}

/**
 * m distinct indices drawn uniformly from 0…n−1 by a partial Fisher–Yates shuffle: step i swaps
 * position i with i + ⌊u_i (n − i)⌋, u_i uniform in (0, 1) from the Philox stream.
 */
export function sampleWithoutReplacement(n: number, m: number, gen: Generator): Int32Array {
  if (m > n) throw new Error(`cannot draw ${m} of ${n} without replacement`);
  const u = rand([m], { generator: gen, dtype: 'float64', backend: cpuBackend() });
  const us = u.dataSync();
  u.dispose();
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + Math.min(Math.floor(us[i]! * (n - i)), n - i - 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm.slice(0, m);
}

/**
 * KID between two feature sets: `subsets` subsets of m = min(subsetSize, rows of x, rows of y)
 * rows of each, drawn from the Philox stream (deterministic given the seed). Cost
 * O(subsets · m² · d).
 */
export function kernelInceptionDistance(
  x: FeatureMatrix,
  y: FeatureMatrix,
  opts: KidOptions = {},
): KidResult {
  checkPair(x, y, 2, 'kid');
  checkFinite(x, 'kid');
  checkFinite(y, 'kid');
  const count = opts.subsets ?? 100;
  if (!Number.isInteger(count) || count < 1) throw new Error(`kid: subsets must be ≥ 1`);
  const size = opts.subsetSize ?? 1000;
  if (!Number.isInteger(size) || size < 2) throw new Error(`kid: subsetSize must be ≥ 2`);
  const m = Math.min(size, x.rows, y.rows);
  const gen = opts.generator ?? new Generator(opts.seed ?? 0);
  const subsets: KidSubset[] = [];
  for (let s = 0; s < count; s++) {
    subsets.push({
      x: sampleWithoutReplacement(x.rows, m, gen),
      y: sampleWithoutReplacement(y.rows, m, gen),
    });
  }
  return kidFromSubsets(x, y, subsets);
}
