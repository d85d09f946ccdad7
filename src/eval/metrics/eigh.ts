/**
 * Eigendecomposition of a real symmetric matrix in float64, A = V Λ Vᵀ, in two stages
 * (Golub & Van Loan, Matrix Computations, 4th ed., §8.3):
 *
 * 1. Householder tridiagonalization T = Qᵀ A Q with Q = H_0 H_1 ⋯ H_{n−3}. The reflector
 *    H_k = I − β v vᵀ maps x = A[k+1:, k] to α e_1 with α = −sign(x_0) ‖x‖, v = x − α e_1,
 *    β = 2 / vᵀv. On the trailing block A' it is applied as a rank-2 update:
 *      p = β A' v,  w = p − (β/2)(vᵀp) v,  A' ← A' − v wᵀ − w vᵀ.
 * 2. Implicit symmetric QR steps on T (diagonal d, off-diagonal e) with the Wilkinson shift
 *      μ = d_hi − e² / (δ + sign(δ) √(δ² + e²)),  δ = (d_{hi−1} − d_hi)/2,  e = e_{hi−1},
 *    chasing the bulge down with Givens rotations; e_i is set to zero (deflation) once
 *    |e_i| ≤ ε (|d_i| + |d_{i+1}|). Each rotation R acts on rows k, k+1 of Z, which starts as Qᵀ,
 *    so at the end the rows of Z are the eigenvectors.
 *
 * Cost in flops: (4/3) n³ for the reduction (upper triangle only), (4/3) n³ to form Q, O(n²) for
 * the QR steps on T and about 6 n³ for their rotations of Z (vectors only). All loops run along
 * rows of the row-major arrays.
 */
import { addRowCombination } from './dense.js';

export interface EighOptions {
  /** Compute the eigenvectors too (default true); without them only the values are returned. */
  vectors?: boolean;
}

export interface EighResult {
  /** The eigenvalues in ascending order. */
  values: Float64Array;
  /**
   * n×n row-major with column j the unit eigenvector of values[j] (numpy.linalg.eigh's layout);
   * null when vectors were not requested.
   */
  vectors: Float64Array | null;
}

const EPS = Number.EPSILON;
/** |e_i| below this counts as zero whatever the diagonal (guards the all-zero block). */
const TINY = 1e-300;
/** QR steps allowed for one eigenvalue before giving up. */
const MAX_STEPS = 60;

/**
 * Eigenvalues (ascending) and optionally eigenvectors of the symmetric part (A + Aᵀ)/2 of the
 * n×n row-major matrix `a`. Throws on non-finite input or if the QR iteration fails to converge.
 */
export function eigh(a: ArrayLike<number>, n: number, opts: EighOptions = {}): EighResult {
  if (!Number.isInteger(n) || n < 0) throw new Error(`eigh: n must be a non-negative integer`);
  if (a.length !== n * n) throw new Error(`eigh: expected ${n * n} entries, got ${a.length}`);
  const wantVectors = opts.vectors ?? true;
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = 0.5 * (a[i * n + j]! + a[j * n + i]!);
      if (!Number.isFinite(v)) throw new Error(`eigh: entry (${i}, ${j}) is not finite`);
      w[i * n + j] = v;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const betas = new Float64Array(n);
  tridiagonalize(w, n, d, e, betas);
  const z = wantVectors ? reflectorsTransposed(w, n, betas) : null;
  tridiagonalQr(d, e, z, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((p, q) => d[p]! - d[q]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  if (z === null) return { values, vectors: null };
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const row = order[j]! * n;
    for (let i = 0; i < n; i++) vectors[i * n + j] = z[row + i]!;
  }
  return { values, vectors };
}

/**
 * Reduces the symmetric matrix whose upper triangle w holds to tridiagonal form in place (the
 * strict lower triangle is never read). On return d and e hold T, row k of w holds the
 * Householder vector v_k in columns k+1…n−1 and betas[k] its β (0 when column k was already
 * reduced).
 */
function tridiagonalize(
  w: Float64Array,
  n: number,
  d: Float64Array,
  e: Float64Array,
  betas: Float64Array,
): void {
  const p = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const row = k * n;
    const start = k + 1;
    // x = w[k, k+1:] (the column below the diagonal, by symmetry); ‖x‖ scaled against overflow.
    let scale = 0;
    for (let j = start; j < n; j++) scale = Math.max(scale, Math.abs(w[row + j]!));
    if (scale === 0) {
      e[k] = 0;
      betas[k] = 0;
      continue;
    }
    let ss = 0;
    for (let j = start; j < n; j++) ss += (w[row + j]! / scale) ** 2;
    const norm = scale * Math.sqrt(ss);
    const x0 = w[row + start]!;
    const alpha = x0 > 0 ? -norm : norm;
    // v = x − α e_1; ‖v‖² = 2‖x‖² − 2α x_0 = 2 ‖x‖ (‖x‖ + |x_0|), no cancellation.
    w[row + start] = x0 - alpha;
    const beta = 2 / (2 * norm * (norm + Math.abs(x0)));
    betas[k] = beta;
    e[k] = alpha;
    // p = β A' v over the trailing block (rows and columns k+1…n−1), from its upper triangle:
    // a_ij (j > i) contributes a_ij v_j to p_i and a_ij v_i to p_j.
    p.fill(0, start, n);
    for (let i = start; i < n; i++) {
      const ri = i * n;
      const vi = w[row + i]!;
      let acc = w[ri + i]! * vi;
      for (let j = i + 1; j < n; j++) {
        const aij = w[ri + j]!;
        acc += aij * w[row + j]!;
        p[j] = p[j]! + aij * vi;
      }
      p[i] = p[i]! + acc;
    }
    let vp = 0;
    for (let i = start; i < n; i++) {
      p[i] = beta * p[i]!;
      vp += w[row + i]! * p[i]!;
    }
    // w = p − (β/2)(vᵀp) v, stored over p.
    const half = 0.5 * beta * vp;
    for (let i = start; i < n; i++) p[i] = p[i]! - half * w[row + i]!;
    // A' ← A' − v wᵀ − w vᵀ, upper triangle only.
    for (let i = start; i < n; i++) {
      const ri = i * n;
      const vi = w[row + i]!;
      const wi = p[i]!;
      for (let j = i; j < n; j++) w[ri + j] = w[ri + j]! - vi * p[j]! - wi * w[row + j]!;
    }
  }
  for (let k = 0; k < n; k++) d[k] = w[k * n + k]!;
  if (n >= 2) e[n - 2] = w[(n - 2) * n + n - 1]!;
}

/**
 * Qᵀ from the reflectors left in w by tridiagonalize: Q = H_0 ⋯ H_{n−3} is accumulated from
 * the right end, Q ← H_k Q (each touches rows and columns k+1…n−1 only), then transposed.
 */
function reflectorsTransposed(w: Float64Array, n: number, betas: Float64Array): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const s = new Float64Array(n);
  for (let k = n - 3; k >= 0; k--) {
    const beta = betas[k]!;
    if (beta === 0) continue;
    const row = k * n;
    const start = k + 1;
    // s = vᵀ Q[start:, start:], then Q[start:, start:] −= β v sᵀ
    s.fill(0, start, n);
    // Rows and columns start…n−1 of Q: a view that starts at Q[start, start], rows n apart.
    addRowCombination(
      s.subarray(start),
      w.subarray(row + start, row + n),
      q.subarray(start * n + start),
      n,
    );
    for (let i = start; i < n; i++) {
      const f = beta * w[row + i]!;
      const ri = i * n;
      for (let j = start; j < n; j++) q[ri + j] = q[ri + j]! - f * s[j]!;
    }
  }
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qt[j * n + i] = q[i * n + j]!;
  return qt;
}

function negligible(d: Float64Array, e: Float64Array, i: number): boolean {
  const off = Math.abs(e[i]!);
  return off <= EPS * (Math.abs(d[i]!) + Math.abs(d[i + 1]!)) || off < TINY;
}

/**
 * Diagonalizes the tridiagonal (d, e) in place by implicit Wilkinson-shifted QR steps; d ends as
 * the eigenvalues (unsorted). When z is given, every rotation is applied to its rows k, k+1.
 */
function tridiagonalQr(d: Float64Array, e: Float64Array, z: Float64Array | null, n: number): void {
  let hi = n - 1;
  let steps = 0;
  const sweep: RotationSweep = { lo: 0, hi: 0, cs: new Float64Array(n), sn: new Float64Array(n) };
  while (hi > 0) {
    if (negligible(d, e, hi - 1)) {
      e[hi - 1] = 0;
      hi--;
      steps = 0;
      continue;
    }
    let lo = hi - 1;
    while (lo > 0 && !negligible(d, e, lo - 1)) lo--;
    if (lo > 0) e[lo - 1] = 0;
    if (++steps > MAX_STEPS) {
      throw new Error(`eigh: QR iteration did not converge for eigenvalue ${hi} of ${n}`);
    }
    sweep.lo = lo;
    sweep.hi = hi;
    qrStep(d, e, sweep);
    if (z !== null) rotateRows(z, n, sweep);
  }
}

/** The Givens rotations R_k = [[c_k, s_k], [−s_k, c_k]] on rows k, k+1 for k = lo…hi−1. */
interface RotationSweep {
  lo: number;
  hi: number;
  /** c_k at index k. */
  cs: Float64Array;
  /** s_k at index k. */
  sn: Float64Array;
}

/**
 * One implicit QR step with the Wilkinson shift on the unreduced block sweep.lo…sweep.hi; its
 * rotations are recorded in the sweep.
 */
function qrStep(d: Float64Array, e: Float64Array, sweep: RotationSweep): void {
  const { lo, hi, cs, sn } = sweep;
  const f = e[hi - 1]!;
  const delta = 0.5 * (d[hi - 1]! - d[hi]!);
  const mu = d[hi]! - (f * f) / (delta + (delta >= 0 ? 1 : -1) * Math.hypot(delta, f));
  let x = d[lo]! - mu;
  let y = e[lo]!;
  for (let k = lo; k < hi; k++) {
    // R = [[c, s], [−s, c]] on rows/columns k, k+1 maps (x, y) to (r, 0).
    const r = Math.hypot(x, y);
    const c = r === 0 ? 1 : x / r;
    const s = r === 0 ? 0 : y / r;
    if (k > lo) e[k - 1] = r;
    // The 2×2 block B = [[a, b], [b, g]] becomes R B Rᵀ.
    const a = d[k]!;
    const b = e[k]!;
    const g = d[k + 1]!;
    const cxs = c * s;
    d[k] = c * c * a + 2 * cxs * b + s * s * g;
    d[k + 1] = s * s * a - 2 * cxs * b + c * c * g;
    e[k] = cxs * (g - a) + (c * c - s * s) * b;
    if (k + 1 < hi) {
      // Row k picks up the bulge s·e_{k+1} at column k+2.
      y = s * e[k + 1]!;
      e[k + 1] = c * e[k + 1]!;
      x = e[k]!;
    }
    cs[k] = c;
    sn[k] = s;
  }
}

/**
 * Z ← R_{hi−1} ⋯ R_lo Z for the rotations of the sweep. Two consecutive rotations share one pass
 * over rows k, k+1, k+2.
 */
function rotateRows(z: Float64Array, n: number, sweep: RotationSweep): void {
  const { lo, hi, cs, sn } = sweep;
  let k = lo;
  for (; k + 1 < hi; k += 2) {
    const c0 = cs[k]!;
    const s0 = sn[k]!;
    const c1 = cs[k + 1]!;
    const s1 = sn[k + 1]!;
    const r0 = k * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    for (let j = 0; j < n; j++) {
      const a = z[r0 + j]!;
      const b = z[r1 + j]!;
      const g = z[r2 + j]!;
      const b1 = c0 * b - s0 * a;
      z[r0 + j] = c0 * a + s0 * b;
      z[r1 + j] = c1 * b1 + s1 * g;
      z[r2 + j] = c1 * g - s1 * b1;
    }
  }
  if (k < hi) {
    const c = cs[k]!;
    const s = sn[k]!;
    const r0 = k * n;
    const r1 = r0 + n;
    for (let j = 0; j < n; j++) {
      const u = z[r0 + j]!;
      const v = z[r1 + j]!;
      z[r0 + j] = c * u + s * v;
      z[r1 + j] = c * v - s * u;
    }
  }
}
