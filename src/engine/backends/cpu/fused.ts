/**
 * Reference definitions of the optional fused kernels (FusedKernels in backend.ts): softmax over
 * rows, group normalization (forward and backward) and the Adam/AdamW update. Plain loops with f64 accumulation; every
 * backend's fused kernel is tested against these, and they match the composite ops.
 */
import type { AdamSpec, GroupNormSpec, SoftmaxSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';

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
 * Group norm forward: per (sample, group) of M = (C/G)·spatial values, mean μ and biased
 * variance σ², rstd = 1/√(σ² + eps), y = (x − μ)·rstd·w[c] + b[c]. Writes mean and rstd [n, G].
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
  const cg = channels / groups;
  const size = cg * spatial;
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
          y[k] = (x[k]! - mu) * r * w + b;
        }
      }
    }
  }
}

/**
 * Group norm backward. With x̂ = (x − μ)·rstd and dx̂ = dy·w[c], over each group of M values:
 *   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)),
 *   dweight[c] = Σ_{n,s} dy ⊙ x̂,   dbias[c] = Σ_{n,s} dy.
 * dweight and dbias are written only when given (the forward had a weight).
 */
export function groupNormBackwardKernel(
  x: TypedArray,
  weight: TypedArray | null,
  mean: TypedArray,
  rstd: TypedArray,
  dy: TypedArray,
  spec: GroupNormSpec,
  dx: TypedArray,
  dweight: TypedArray | null,
  dbias: TypedArray | null,
): void {
  const { n, channels, groups, spatial } = spec;
  const cg = channels / groups;
  const size = cg * spatial;
  const dw = new Float64Array(channels);
  const db = new Float64Array(channels);
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
        for (let i = 0; i < spatial; i++) {
          const k = o + c * spatial + i;
          const xh = (x[k]! - mu) * r;
          dw[ch]! += dy[k]! * xh;
          db[ch]! += dy[k]!;
          sum1 += dy[k]! * w;
          sum2 += dy[k]! * w * xh;
        }
      }
      for (let c = 0; c < cg; c++) {
        const w = weight === null ? 1 : weight[g * cg + c]!;
        for (let i = 0; i < spatial; i++) {
          const k = o + c * spatial + i;
          const xh = (x[k]! - mu) * r;
          dx[k] = r * (dy[k]! * w - sum1 / size - (xh * sum2) / size);
        }
      }
    }
  }
  dweight?.set(dw);
  dbias?.set(db);
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
