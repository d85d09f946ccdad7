/** Neural-network composites: softmax, normalization, attention, dropout. */
import { noGrad } from '../autograd.js';
import { fmtShape, normAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { type Generator, rand } from './creation.js';
import { add, div, exp, log, lt, mul, rsqrt, sub } from './elementwise.js';
import { matmulT } from './linalg.js';
import { reshape } from './movement.js';
import { max, mean, sum, variance } from './reduce.js';

/** softmax(x)_i = e^(x_i − m) / Σ_j e^(x_j − m), m = max x (for range, not gradient). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis(axis, x.rank);
  const m = noGrad(() => max(x, a, true));
  const e = exp(sub(x, m));
  return div(e, sum(e, a, true));
}

/** log softmax(x)_i = x_i − m − log Σ_j e^(x_j − m). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis(axis, x.rank);
  const m = noGrad(() => max(x, a, true));
  const shifted = sub(x, m);
  return sub(shifted, log(sum(exp(shifted), a, true)));
}

/** (x − mean) / √(var + eps) over the trailing `normalizedDims` axes, then the affine map. */
export function layerNorm(
  x: Tensor,
  normalizedDims: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const axes = Array.from({ length: normalizedDims }, (_, i) => x.rank - normalizedDims + i);
  const mu = mean(x, axes, true);
  const xc = sub(x, mu);
  let y = mul(xc, rsqrt(add(mean(mul(xc, xc), axes, true), eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/**
 * Group normalization (Wu & He 2018): channels split into `groups`, each normalized over its
 * channels and space with the biased variance, then a per-channel affine map. x is [N, C, ...].
 */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const [n, c] = x.shape as [number, number];
  if (x.rank < 2 || c % groups !== 0) {
    throw new Error(
      `groupNorm: ${fmtShape(x.shape)} has ${c} channels, not divisible into ${groups} groups`,
    );
  }
  const g = reshape(x, [n, groups, -1]);
  const mu = mean(g, 2, true);
  const xc = sub(g, mu);
  const v = variance(g, 2, true);
  const normed = reshape(mul(xc, rsqrt(add(v, eps))), x.shape);
  const affineShape = [1, c, ...x.shape.slice(2).map(() => 1)];
  let y = normed;
  if (weight) y = mul(y, reshape(weight, affineShape));
  if (bias) y = add(y, reshape(bias, affineShape));
  return y;
}

export interface AttentionOptions {
  /** Added to the scores before softmax (broadcast to [..., Lq, Lk]); −Infinity masks out. */
  mask?: Tensor | null;
  /** Defaults to 1/√d. */
  scale?: number;
}

/** softmax(q kᵀ · scale + mask) v, with q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]. */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  const d = q.shape[q.rank - 1]!;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  let scores = mul(matmulT(q, k, false, true), scale);
  if (opts.mask) scores = add(scores, opts.mask);
  return matmulT(softmax(scores, -1), v, false, false);
}

/** Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p). */
export function dropout(x: Tensor, p: number, generator: Generator, training = true): Tensor {
  if (!training || p === 0) return x;
  if (p < 0 || p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  const keepMask = noGrad(() =>
    lt(rand(x.shape, { generator, dtype: x.dtype, backend: x.backend }), 1 - p),
  );
  return mul(x, mul(keepMask, 1 / (1 - p)));
}
