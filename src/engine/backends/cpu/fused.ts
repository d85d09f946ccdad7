/**
 * Reference definitions of the optional fused kernels (FusedKernels in backend.ts): softmax over
 * rows, group normalization with an optional SiLU (forward and backward), scaled dot-product
 * attention (forward and backward), the GELU derivative and the Adam/AdamW update. Plain loops with f64
 * accumulation; every backend's fused kernel is tested against these, and they match the
 * composite ops.
 */
import type { AdamSpec, AttentionSpec, GroupNormSpec, SoftmaxSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { normalCdf, sigmoid } from './math.js';
import { gemm } from './matmul.js';
import { simdRuntime } from './simd-gemm.js';

/**
 * The scratch type of the attention kernels: float32 for float32 inputs when the SIMD gemm is
 * there (its products accumulate in float32, as the GPU's do), float64 otherwise.
 */
function scratchType(x: TypedArray): Float32ArrayConstructor | Float64ArrayConstructor {
  return x instanceof Float32Array && simdRuntime() !== null ? Float32Array : Float64Array;
}

/** y = softmax(scale · x) per row: e^{z_i − max z} / Σ_j e^{z_j − max z}, z = scale · x. */
export function softmaxKernel(x: TypedArray, spec: SoftmaxSpec, y: TypedArray): void {
  const { rows, cols, scale } = spec;
  const z = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let i = 0; i < cols; i++) {
      z[i] = scale * x[o + i]!;
      if (z[i]! > m || Number.isNaN(z[i]!)) m = z[i]!;
    }
    let sum = 0;
    for (let i = 0; i < cols; i++) {
      z[i] = Math.exp(z[i]! - m);
      sum += z[i]!;
    }
    for (let i = 0; i < cols; i++) y[o + i] = z[i]! / sum;
  }
}

/** dx = scale · y ⊙ (dy − Σ_j dy_j y_j) per row. */
export function softmaxBackwardKernel(
  y: TypedArray,
  dy: TypedArray,
  spec: SoftmaxSpec,
  dx: TypedArray,
): void {
  const { rows, cols, scale } = spec;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let i = 0; i < cols; i++) dot += dy[o + i]! * y[o + i]!;
    for (let i = 0; i < cols; i++) dx[o + i] = scale * y[o + i]! * (dy[o + i]! - dot);
  }
}

/**
 * The groups of a GroupNormSpec: cg channels and size = cg · spatial values each, and whether a
 * SiLU follows the affine map.
 */
export function normGroups(spec: GroupNormSpec): { cg: number; size: number; silu: boolean } {
  const cg = spec.channels / spec.groups;
  return { cg, size: cg * spec.spatial, silu: spec.activation === 'silu' };
}

/**
 * Group norm forward: per (sample, group) of M = (C/G)·spatial values, mean μ and biased
 * variance σ², rstd = 1/√(σ² + eps), z = (x − μ)·rstd·w[c] + b[c], and y = z, or y = z·σ(z)
 * with spec.activation 'silu'. Writes mean and rstd [n, G].
 */
export function groupNormKernel(
  x: TypedArray,
  weight: TypedArray | null,
  bias: TypedArray | null,
  spec: GroupNormSpec,
  y: TypedArray,
  mean: TypedArray,
  rstd: TypedArray,
): void {
  const { n, channels, groups, spatial, eps } = spec;
  const { cg, size, silu } = normGroups(spec);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      let sum = 0;
      for (let i = 0; i < size; i++) sum += x[o + i]!;
      const mu = sum / size;
      let sq = 0;
      for (let i = 0; i < size; i++) sq += (x[o + i]! - mu) ** 2;
      const r = 1 / Math.sqrt(sq / size + eps);
      mean[s * groups + g] = mu;
      rstd[s * groups + g] = r;
      for (let c = 0; c < cg; c++) {
        const ch = g * cg + c;
        const w = weight === null ? 1 : weight[ch]!;
        const b = bias === null ? 0 : bias[ch]!;
        for (let i = 0; i < spatial; i++) {
          const k = o + c * spatial + i;
          const z = (x[k]! - mu) * r * w + b;
          y[k] = silu ? z * sigmoid(z) : z;
        }
      }
    }
  }
}

/**
 * Group norm backward. With x̂ = (x − μ)·rstd, dz the gradient at z = x̂·w[c] + b[c] (dy, or
 * dy·σ(z)·(1 + z·(1 − σ(z))) with the SiLU) and dx̂ = dz·w[c], over each group of M values:
 *   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)),
 *   dweight[c] = Σ_{n,s} dz ⊙ x̂,   dbias[c] = Σ_{n,s} dz.
 * dweight and dbias are written only when given (the forward had a weight). The bias is read
 * only with the activation.
 */
export function groupNormBackwardKernel(
  x: TypedArray,
  weight: TypedArray | null,
  bias: TypedArray | null,
  mean: TypedArray,
  rstd: TypedArray,
  dy: TypedArray,
  spec: GroupNormSpec,
  dx: TypedArray,
  dweight: TypedArray | null,
  dbias: TypedArray | null,
): void {
  const { n, channels, groups, spatial } = spec;
  const { cg, size, silu } = normGroups(spec);
  const dw = new Float64Array(channels);
  const db = new Float64Array(channels);
  const dz = new Float64Array(size);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      const mu = mean[s * groups + g]!;
      const r = rstd[s * groups + g]!;
      let sum1 = 0; // Σ dx̂
      let sum2 = 0; // Σ dx̂ x̂
      for (let c = 0; c < cg; c++) {
        const ch = g * cg + c;
        const w = weight === null ? 1 : weight[ch]!;
        const b = bias === null ? 0 : bias[ch]!;
        for (let i = 0; i < spatial; i++) {
          const k = o + c * spatial + i;
          const xh = (x[k]! - mu) * r;
          let d = dy[k]!;
          if (silu) {
            const z = xh * w + b;
            const sg = sigmoid(z);
            d *= sg * (1 + z * (1 - sg));
          }
          dz[c * spatial + i] = d;
          dw[ch]! += d * xh;
          db[ch]! += d;
          sum1 += d * w;
          sum2 += d * w * xh;
        }
      }
      for (let c = 0; c < cg; c++) {
        const w = weight === null ? 1 : weight[g * cg + c]!;
        for (let i = 0; i < spatial; i++) {
          const k = o + c * spatial + i;
          const xh = (x[k]! - mu) * r;
          dx[k] = r * (dz[c * spatial + i]! * w - sum1 / size - (xh * sum2) / size);
        }
      }
    }
  }
  dweight?.set(dw);
  dbias?.set(db);
}

/** Query rows per block of the attention kernels: the scores held at once are QB × lk. */
const QB = 64;

/**
 * Attention forward (AttentionSpec), per slice b and query row i:
 *   s_ij = scale · q_i·k_j,  m_i = max_j s_ij,  lse_i = m_i + log Σ_j e^{s_ij − m_i},
 *   out_i = Σ_j e^{s_ij − lse_i} v_j.
 * Query rows go in blocks of QB: the block's scores (QB × lk, f64, or f32 through the SIMD gemm
 * for float32 inputs) come from the CPU gemm, are
 * turned into probabilities in place, and a second gemm multiplies them into v. The full
 * lq × lk matrix is never held.
 */
export function attentionKernel(
  q: TypedArray,
  k: TypedArray,
  v: TypedArray,
  spec: AttentionSpec,
  out: TypedArray,
  lse: TypedArray,
): void {
  const { batch, lq, lk, d, dv, scale } = spec;
  const p = new (scratchType(q))(Math.min(QB, lq) * lk);
  for (let b = 0; b < batch; b++) {
    for (let i0 = 0; i0 < lq; i0 += QB) {
      const rows = Math.min(QB, lq - i0);
      const row0 = b * lq + i0;
      const scores = { m: rows, n: lk, k: d, transA: false, transB: true, accumulate: false };
      gemm(scores, q, row0 * d, k, b * lk * d, p, 0);
      for (let r = 0; r < rows; r++) {
        const o = r * lk;
        let m = -Infinity;
        for (let j = 0; j < lk; j++) {
          const z = scale * p[o + j]!;
          p[o + j] = z;
          if (z > m || Number.isNaN(z)) m = z;
        }
        let sum = 0;
        for (let j = 0; j < lk; j++) {
          const e = Math.exp(p[o + j]! - m);
          p[o + j] = e;
          sum += e;
        }
        for (let j = 0; j < lk; j++) p[o + j]! /= sum;
        lse[row0 + r] = m + Math.log(sum);
      }
      const pv = { m: rows, n: dv, k: lk, transA: false, transB: false, accumulate: false };
      gemm(pv, p, 0, v, b * lk * dv, out, row0 * dv);
    }
  }
}

/**
 * Attention backward (FlashAttention-2, Dao 2023, Algorithm 2, blocked over query rows only):
 * with P_ij = e^{s_ij − lse_i} recomputed from q, k and the forward's logsumexp,
 *   D_i = Σ_c dOut_ic out_ic,  dP_ij = dOut_i·v_j,  dS_ij = P_ij (dP_ij − D_i),
 *   dq_i = scale Σ_j dS_ij k_j,  dk_j = scale Σ_i dS_ij q_i,  dv_j = Σ_i P_ij dOut_i.
 * Every product is a CPU gemm over one block of QB query rows (f64 accumulation); dk and dv
 * accumulate over the blocks in f64.
 */
export function attentionBackwardKernel(
  q: TypedArray,
  k: TypedArray,
  v: TypedArray,
  out: TypedArray,
  lse: TypedArray,
  dOut: TypedArray,
  spec: AttentionSpec,
  dq: TypedArray,
  dk: TypedArray,
  dvOut: TypedArray,
): void {
  const { batch, lq, lk, d, dv, scale } = spec;
  const block = Math.min(QB, lq);
  const F = scratchType(q);
  const p = new F(block * lk);
  const ds = new F(block * lk);
  const gq = new F(block * d);
  const gk = new F(lk * d);
  const gv = new F(lk * dv);
  for (let b = 0; b < batch; b++) {
    const kb = b * lk * d;
    const vb = b * lk * dv;
    gk.fill(0);
    gv.fill(0);
    for (let i0 = 0; i0 < lq; i0 += QB) {
      const rows = Math.min(QB, lq - i0);
      const row0 = b * lq + i0;
      gemm(
        { m: rows, n: lk, k: d, transA: false, transB: true, accumulate: false },
        q,
        row0 * d,
        k,
        kb,
        p,
        0,
      );
      gemm(
        { m: rows, n: lk, k: dv, transA: false, transB: true, accumulate: false },
        dOut,
        row0 * dv,
        v,
        vb,
        ds,
        0,
      );
      for (let r = 0; r < rows; r++) {
        const go = (row0 + r) * dv;
        let dd = 0;
        for (let c = 0; c < dv; c++) dd += dOut[go + c]! * out[go + c]!;
        const l = lse[row0 + r]!;
        const o = r * lk;
        for (let j = 0; j < lk; j++) {
          const pr = Math.exp(scale * p[o + j]! - l);
          p[o + j] = pr;
          ds[o + j] = pr * (ds[o + j]! - dd);
        }
      }
      gemm(
        { m: rows, n: d, k: lk, transA: false, transB: false, accumulate: false },
        ds,
        0,
        k,
        kb,
        gq,
        0,
      );
      for (let i = 0; i < rows * d; i++) dq[row0 * d + i] = scale * gq[i]!;
      gemm(
        { m: lk, n: d, k: rows, transA: true, transB: false, accumulate: true },
        ds,
        0,
        q,
        row0 * d,
        gk,
        0,
      );
      gemm(
        { m: lk, n: dv, k: rows, transA: true, transB: false, accumulate: true },
        p,
        0,
        dOut,
        row0 * dv,
        gv,
        0,
      );
    }
    for (let i = 0; i < lk * d; i++) dk[kb + i] = scale * gk[i]!;
    dvOut.set(gv, vb);
  }
}

/** dx = dy · (Φ(x) + x φ(x)): GELU's derivative, φ(x) = e^(−x²/2)/√(2π). */
export function geluBackwardKernel(x: TypedArray, dy: TypedArray, dx: TypedArray): void {
  const invSqrt2Pi = 1 / Math.sqrt(2 * Math.PI);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    dx[i] = dy[i]! * (normalCdf(v) + v * invSqrt2Pi * Math.exp(-0.5 * v * v));
  }
}

/** One Adam/AdamW step per element (AdamSpec), writing the new θ, m and v. */
export function adamKernel(
  param: TypedArray,
  grad: TypedArray,
  m: TypedArray,
  v: TypedArray,
  spec: AdamSpec,
  outParam: TypedArray,
  outM: TypedArray,
  outV: TypedArray,
): void {
  const { lr, beta1, beta2, eps, weightDecay: wd, decoupled } = spec;
  const stepSize = lr / spec.biasCorrection1;
  for (let i = 0; i < param.length; i++) {
    const p = param[i]!;
    const theta = wd !== 0 && decoupled ? p * (1 - lr * wd) : p;
    const g = wd !== 0 && !decoupled ? grad[i]! + p * wd : grad[i]!;
    const mi = m[i]! + (g - m[i]!) * (1 - beta1);
    const vi = v[i]! * beta2 + g * g * (1 - beta2);
    outM[i] = mi;
    outV[i] = vi;
    outParam[i] = theta - (mi * stepSize) / (Math.sqrt(vi) / spec.biasCorrection2Sqrt + eps);
  }
}
