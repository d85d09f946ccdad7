/**
 * Dense matrix products on the CPU. One kernel per transpose case, each with a unit-stride inner
 * loop, blocked over k so a band of B stays in cache; accumulation in f64.
 */
import type { MatmulSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';

const K_BLOCK = 128;

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
  scratch?: Float64Array,
): void {
  const { m, n, k } = g;
  if (g.transB && !g.transA) {
    // C[i,j] = Σ_p A[i,p] B[j,p]: dot products of two contiguous rows.
    for (let i = 0; i < m; i++) {
      const ai = aOff + i * k;
      for (let j = 0; j < n; j++) {
        const bj = bOff + j * k;
        let s = 0;
        for (let p = 0; p < k; p++) s += a[ai + p]! * b[bj + p]!;
        const o = cOff + i * n + j;
        c[o] = g.accumulate ? c[o]! + s : s;
      }
    }
    return;
  }
  if (g.transA && g.transB) {
    // Aᵀ·Bᵀ: transpose A into scratch ([m×k]) and take the row-dot path.
    const at = new Float64Array(m * k);
    for (let p = 0; p < k; p++) for (let i = 0; i < m; i++) at[i * k + p] = a[aOff + p * m + i]!;
    gemm({ ...g, transA: false }, at, 0, b, bOff, c, cOff);
    return;
  }
  // Row updates C[i,:] += A(i,p) · B[p,:], accumulated in an f64 copy of C.
  const acc = scratch !== undefined && scratch.length >= m * n ? scratch : new Float64Array(m * n);
  if (g.accumulate) for (let q = 0; q < m * n; q++) acc[q] = c[cOff + q]!;
  else acc.fill(0, 0, m * n);
  for (let p0 = 0; p0 < k; p0 += K_BLOCK) {
    const p1 = Math.min(k, p0 + K_BLOCK);
    for (let i = 0; i < m; i++) {
      const ci = i * n;
      for (let p = p0; p < p1; p++) {
        const aip = g.transA ? a[aOff + p * m + i]! : a[aOff + i * k + p]!;
        if (aip === 0) continue;
        const bp = bOff + p * n;
        for (let j = 0; j < n; j++) acc[ci + j]! += aip * b[bp + j]!;
      }
    }
  }
  for (let q = 0; q < m * n; q++) c[cOff + q] = acc[q]!;
}

export function matmulKernel(
  a: TypedArray,
  b: TypedArray,
  spec: MatmulSpec,
  out: TypedArray,
): void {
  const { batch, m, n, k } = spec;
  const g: Gemm = { m, n, k, transA: spec.transA, transB: spec.transB, accumulate: false };
  const scratch = new Float64Array(m * n);
  for (let bi = 0; bi < batch; bi++) {
    gemm(g, a, bi * spec.aBatchStride, b, bi * spec.bBatchStride, out, bi * m * n, scratch);
  }
}
