/**
 * Dense matrix products on the CPU. Both operands are packed into f64 panels (4 rows of op(A),
 * 4 columns of op(B), each contiguous along k), which handles every transpose case the same way;
 * a 4×4 micro-kernel then keeps 16 accumulators in locals while it walks k. Accumulation is in
 * f64 whatever the storage type.
 */
import type { MatmulSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { gemmF32, simdRuntime } from './simd-gemm.js';

const R = 4;

export interface Gemm {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** If set, C += op(A)·op(B); otherwise C = op(A)·op(B). */
  accumulate: boolean;
}

/**
 * Packs op(X) restricted to `rows` rows (of the m×k or n×k operand as seen by the product) into
 * panels: panel q holds rows 4q..4q+3 as [k][4], zero-padded past the last row.
 * `rowMajorK` says whether X stores each of those rows contiguously along k.
 */
function pack(
  x: TypedArray,
  off: number,
  rows: number,
  k: number,
  rowMajorK: boolean,
  out: Float64Array,
): void {
  const panels = Math.ceil(rows / R);
  for (let q = 0; q < panels; q++) {
    const base = q * k * R;
    for (let r = 0; r < R; r++) {
      const row = q * R + r;
      if (row >= rows) {
        for (let p = 0; p < k; p++) out[base + p * R + r] = 0;
      } else if (rowMajorK) {
        const src = off + row * k;
        for (let p = 0; p < k; p++) out[base + p * R + r] = x[src + p]!;
      } else {
        const src = off + row;
        for (let p = 0; p < k; p++) out[base + p * R + r] = x[src + p * rows]!;
      }
    }
  }
}

const panels: [Float64Array, Float64Array] = [new Float64Array(0), new Float64Array(0)];
const TILE = new Float64Array(R * R);

/** Scratch buffer `which` (0: A panels, 1: B panels) of at least `size` elements. */
function panelBuffer(which: 0 | 1, size: number): Float64Array {
  if (panels[which].length < size)
    panels[which] = new Float64Array(Math.max(size, 2 * panels[which].length));
  return panels[which];
}

/**
 * C[m×n] (at cOff) = op(A)·op(B), with A at aOff ([m×k], or [k×m] when transA) and B at bOff
 * ([k×n], or [n×k] when transB), all row-major and contiguous.
 */
export function gemm(
  g: Gemm,
  a: TypedArray,
  aOff: number,
  b: TypedArray,
  bOff: number,
  c: TypedArray,
  cOff: number,
): void {
  const rt = simdRuntime();
  if (rt && a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array) {
    gemmF32(rt, g, a, aOff, b, bOff, c, cOff);
    return;
  }
  const { m, n, k } = g;
  // Panels live in buffers reused across calls (gemm is not re-entrant: JS runs it on one thread),
  // so a convolution's per-image calls allocate nothing.
  const ap = panelBuffer(0, Math.ceil(m / R) * R * k);
  const bp = panelBuffer(1, Math.ceil(n / R) * R * k);
  // Rows of op(A) are contiguous in A unless transposed; columns of op(B) are rows of B only if transB.
  pack(a, aOff, m, k, !g.transA, ap);
  pack(b, bOff, n, k, g.transB, bp);
  const tile = TILE;
  for (let jq = 0; jq < n; jq += R) {
    const bBase = (jq / R) * k * R;
    for (let iq = 0; iq < m; iq += R) {
      const aBase = (iq / R) * k * R;
      let c00 = 0,
        c01 = 0,
        c02 = 0,
        c03 = 0;
      let c10 = 0,
        c11 = 0,
        c12 = 0,
        c13 = 0;
      let c20 = 0,
        c21 = 0,
        c22 = 0,
        c23 = 0;
      let c30 = 0,
        c31 = 0,
        c32 = 0,
        c33 = 0;
      for (let p = 0; p < k; p++) {
        const pa = aBase + p * R;
        const pb = bBase + p * R;
        const a0 = ap[pa]!,
          a1 = ap[pa + 1]!,
          a2 = ap[pa + 2]!,
          a3 = ap[pa + 3]!;
        const b0 = bp[pb]!,
          b1 = bp[pb + 1]!,
          b2 = bp[pb + 2]!,
          b3 = bp[pb + 3]!;
        c00 += a0 * b0;
        c01 += a0 * b1;
        c02 += a0 * b2;
        c03 += a0 * b3;
        c10 += a1 * b0;
        c11 += a1 * b1;
        c12 += a1 * b2;
        c13 += a1 * b3;
        c20 += a2 * b0;
        c21 += a2 * b1;
        c22 += a2 * b2;
        c23 += a2 * b3;
        c30 += a3 * b0;
        c31 += a3 * b1;
        c32 += a3 * b2;
        c33 += a3 * b3;
      }
      tile[0] = c00;
      tile[1] = c01;
      tile[2] = c02;
      tile[3] = c03;
      tile[4] = c10;
      tile[5] = c11;
      tile[6] = c12;
      tile[7] = c13;
      tile[8] = c20;
      tile[9] = c21;
      tile[10] = c22;
      tile[11] = c23;
      tile[12] = c30;
      tile[13] = c31;
      tile[14] = c32;
      tile[15] = c33;
      const mi = Math.min(R, m - iq);
      const nj = Math.min(R, n - jq);
      for (let r = 0; r < mi; r++) {
        const o = cOff + (iq + r) * n + jq;
        for (let s = 0; s < nj; s++) {
          const v = tile[r * R + s]!;
          c[o + s] = g.accumulate ? c[o + s]! + v : v;
        }
      }
    }
  }
}

export function matmulKernel(
  a: TypedArray,
  b: TypedArray,
  spec: MatmulSpec,
  out: TypedArray,
): void {
  const { batch, m, n, k } = spec;
  const g: Gemm = { m, n, k, transA: spec.transA, transB: spec.transB, accumulate: false };
  for (let bi = 0; bi < batch; bi++) {
    gemm(g, a, bi * spec.aBatchStride, b, bi * spec.bBatchStride, out, bi * m * n);
  }
}
