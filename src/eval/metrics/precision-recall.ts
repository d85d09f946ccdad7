/**
 * Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
 * for Assessing Generative Models", §2). Each set's manifold is the union of balls around its
 * samples, the radius of a ball being the distance to that sample's k-th nearest neighbour in the
 * same set (the sample itself excluded):
 *
 *   f(φ, Φ) = 1 if ‖φ − φ'‖ ≤ ‖φ' − NN_k(φ', Φ)‖ for some φ' ∈ Φ, else 0
 *   precision = (1/|G|) Σ_{g∈G} f(g, R),   recall = (1/|R|) Σ_{r∈R} f(r, G)
 *
 * with R the real and G the generated features. Distances are exact (Σ_c (a_c − b_c)², compared
 * squared); no distance matrix is kept, so memory is O((|R| + |G|) k).
 */
import { squaredDistances4 } from './dense.js';
import { checkFinite, checkPair, type FeatureMatrix, squaredDistance } from './features.js';

export interface PrecisionRecallOptions {
  /** Neighbour defining the radii (default 3). */
  k?: number;
}

export interface PrecisionRecallResult {
  /** Fraction of generated samples inside some real sample's ball. */
  precision: number;
  /** Fraction of real samples inside some generated sample's ball. */
  recall: number;
  k: number;
  /** Squared k-NN radii of the real and of the generated samples. */
  realRadii2: Float64Array;
  generatedRadii2: Float64Array;
}

/** Rows per cache tile of the pairwise loops. */
const TILE = 32;

/**
 * Squared distance of each row to its k-th nearest other row of the same set. Every pair is
 * computed once and offered to both rows' sorted lists of the k smallest.
 */
export function kthNeighbourRadii2(x: FeatureMatrix, k: number): Float64Array {
  const n = x.rows;
  if (!Number.isInteger(k) || k < 1) throw new Error(`precision/recall: k must be ≥ 1, got ${k}`);
  if (n <= k) throw new Error(`precision/recall: needs more than k = ${k} rows, got ${n}`);
  const best = new Float64Array(n * k).fill(Infinity);
  const offer = (i: number, v: number): void => {
    const o = i * k;
    if (v >= best[o + k - 1]!) return;
    let p = o + k - 1;
    while (p > o && best[p - 1]! > v) {
      best[p] = best[p - 1]!;
      p--;
    }
    best[p] = v;
  };
  const z = x.data;
  const d = x.cols;
  const s = new Float64Array(4);
  for (let ib = 0; ib < n; ib += TILE) {
    const ie = Math.min(ib + TILE, n);
    for (let jb = ib; jb < n; jb += TILE) {
      const je = Math.min(jb + TILE, n);
      for (let i = ib; i < ie; i++) {
        const a = i * d;
        let j = Math.max(jb, i + 1);
        // Four rows j at a time share each read of row i.
        for (; j + 3 < je; j += 4) {
          const b0 = j * d;
          squaredDistances4(s, z, a, z, [b0, b0 + d, b0 + 2 * d, b0 + 3 * d], d);
          for (let q = 0; q < 4; q++) {
            offer(i, s[q]!);
            offer(j + q, s[q]!);
          }
        }
        for (; j < je; j++) {
          const v = squaredDistance(x, i, x, j);
          offer(i, v);
          offer(j, v);
        }
      }
    }
  }
  return Float64Array.from({ length: n }, (_, i) => best[i * k + k - 1]!);
}

/**
 * Fraction of the rows of `probe` within the ball of some row of `ref` (squared radii radii2).
 * Balls are tried largest first and each probe stops at its first hit; the result is exact.
 */
export function fractionCovered(
  probe: FeatureMatrix,
  ref: FeatureMatrix,
  radii2: Float64Array,
): number {
  if (radii2.length !== ref.rows) throw new Error('precision/recall: one radius per reference row');
  const order = Array.from({ length: ref.rows }, (_, i) => i).sort(
    (a, b) => radii2[b]! - radii2[a]!,
  );
  const n = order.length;
  const d = ref.cols;
  const p = probe.data;
  const r = ref.data;
  const s = new Float64Array(4);
  let covered = 0;
  for (let i = 0; i < probe.rows; i++) {
    const a = i * d;
    let hit = false;
    let q = 0;
    // Four balls at a time share each read of the probe row.
    for (; q + 3 < n && !hit; q += 4) {
      const j0 = order[q]!;
      const j1 = order[q + 1]!;
      const j2 = order[q + 2]!;
      const j3 = order[q + 3]!;
      squaredDistances4(s, p, a, r, [j0 * d, j1 * d, j2 * d, j3 * d], d);
      hit =
        s[0]! <= radii2[j0]! ||
        s[1]! <= radii2[j1]! ||
        s[2]! <= radii2[j2]! ||
        s[3]! <= radii2[j3]!;
    }
    for (; q < n && !hit; q++)
      hit = squaredDistance(probe, i, ref, order[q]!) <= radii2[order[q]!]!;
    if (hit) covered++;
  }
  return covered / probe.rows;
}

/** Improved precision and recall of generated features against real ones. */
export function precisionRecall(
  real: FeatureMatrix,
  generated: FeatureMatrix,
  opts: PrecisionRecallOptions = {},
): PrecisionRecallResult {
  const k = opts.k ?? 3;
  checkPair(real, generated, k + 1, 'precision/recall');
  checkFinite(real, 'precision/recall');
  checkFinite(generated, 'precision/recall');
  const realRadii2 = kthNeighbourRadii2(real, k);
  const generatedRadii2 = kthNeighbourRadii2(generated, k);
  return {
    precision: fractionCovered(generated, real, realRadii2),
    recall: fractionCovered(real, generated, generatedRadii2),
    k,
    realRadii2,
    generatedRadii2,
  };
}
