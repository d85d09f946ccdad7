/** Neural-network composites: softmax, normalization, attention, dropout. */
import { noGrad } from '../autograd.js';
import type { AttentionSpec } from '../backend.js';
import { tidy } from '../scope.js';
import { fmtShape, normAxis, shapesEqual, sizeOf } from '../shape.js';
import { composite, record, Tensor } from '../tensor.js';
import { type Generator, rand } from './creation.js';
import { add, div, exp, log, lt, mul, rsqrt, silu, sub } from './elementwise.js';
import { matmulT } from './linalg.js';
import { reshape } from './movement.js';
import { max, mean, sum, variance } from './reduce.js';

/**
 * softmax(scale·x)_i = e^(z_i − m) / Σ_j e^(z_j − m), z = scale·x, m = max z (for range, not
 * gradient). Over the last axis a backend's fused kernel runs when it has one, with the VJP
 * dx = scale · y ⊙ (dy − Σ_j dy_j y_j); otherwise the composite.
 */
export function softmax(x: Tensor, axis = -1, scale = 1): Tensor {
  const a = normAxis(axis, x.rank);
  const be = x.backend;
  if (a === x.rank - 1 && be.softmax && be.softmaxBackward && x.size > 0) {
    const cols = x.shape[a]!;
    const spec = { rows: x.size / cols, cols, scale };
    const y = new Tensor(be.softmax(x.storage, spec), x.shape);
    return record(y, 'softmax', [x], (g) => [
      new Tensor(be.softmaxBackward!(y.storage, g.storage, spec), x.shape),
    ]);
  }
  return composite(() => {
    const z = scale === 1 ? x : mul(x, scale);
    const m = noGrad(() => max(z, a, true));
    const e = exp(sub(z, m));
    return div(e, sum(e, a, true));
  });
}

/** log softmax(x)_i = x_i − m − log Σ_j e^(x_j − m). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis(axis, x.rank);
  return composite(() => {
    const m = noGrad(() => max(x, a, true));
    const shifted = sub(x, m);
    return sub(shifted, log(sum(exp(shifted), a, true)));
  });
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
  // Over the trailing D = Π normalized dims, layer norm of the rows of x as [R, D] is group norm
  // with one group, D channels and no spatial extent (the affine map per channel = per feature),
  // so the backend's fused group-norm kernels serve it when weight and bias are D-vectors.
  const d = sizeOf(x.shape.slice(x.rank - normalizedDims));
  const vector = (t?: Tensor | null): boolean => !t || t.size === d;
  if (
    normalizedDims >= 1 &&
    normalizedDims <= x.rank &&
    d > 0 &&
    vector(weight) &&
    vector(bias) &&
    canFuseGroupNorm(x, weight, bias)
  ) {
    return composite(() => {
      const flat = (t?: Tensor | null): Tensor | null => (t ? reshape(t, [d]) : null);
      const rows = reshape(x, [x.size / d, d]);
      return reshape(groupNormFused(rows, 1, flat(weight), flat(bias), eps), x.shape);
    });
  }
  return composite(() => {
    const mu = mean(x, axes, true);
    const xc = sub(x, mu);
    let y = mul(xc, rsqrt(add(mean(mul(xc, xc), axes, true), eps)));
    if (weight) y = mul(y, weight);
    if (bias) y = add(y, bias);
    return y;
  });
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
  checkGroups(x, groups, 'groupNorm');
  if (canFuseGroupNorm(x, weight, bias)) {
    return groupNormFused(x, groups, weight ?? null, bias ?? null, eps);
  }
  return composite(() => {
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
  });
}

/**
 * silu(groupNorm(x, groups, weight, bias, eps)), the norm → SiLU pair of diffusers' ResNet blocks
 * and output heads, as one fused kernel forward and backward when the backend has one
 * (GroupNormSpec.activation) and weight and bias are both given or both absent; otherwise the
 * composite.
 */
export function groupNormSilu(
  x: Tensor,
  groups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  checkGroups(x, groups, 'groupNormSilu');
  if (canFuseGroupNorm(x, weight, bias) && !weight === !bias) {
    return groupNormFused(x, groups, weight ?? null, bias ?? null, eps, 'silu');
  }
  return composite(() => silu(groupNorm(x, groups, weight, bias, eps)));
}

function checkGroups(x: Tensor, groups: number, what: string): void {
  const c = x.shape[1]!;
  if (x.rank < 2 || c % groups !== 0) {
    throw new Error(
      `${what}: ${fmtShape(x.shape)} has ${c} channels, not divisible into ${groups} groups`,
    );
  }
}

function canFuseGroupNorm(x: Tensor, weight?: Tensor | null, bias?: Tensor | null): boolean {
  const be = x.backend;
  const sameType = (t?: Tensor | null): boolean => !t || (t.dtype === x.dtype && t.backend === be);
  return (
    be.groupNorm !== undefined &&
    be.groupNormBackward !== undefined &&
    sameType(weight) &&
    sameType(bias) &&
    x.size > 0
  );
}

/** groupNorm (and its SiLU, when asked) through the backend's fused forward and backward kernels. */
function groupNormFused(
  x: Tensor,
  groups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  activation?: 'silu',
): Tensor {
  const be = x.backend;
  const [n, c] = x.shape as [number, number];
  const spec = { n, channels: c, groups, spatial: x.size / (n * c), eps, activation };
  const r = be.groupNorm!(x.storage, weight?.storage ?? null, bias?.storage ?? null, spec);
  const y = new Tensor(r.y, x.shape);
  const stats = [new Tensor(r.mean, [n, groups]), new Tensor(r.rstd, [n, groups])] as const;
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  record(y, activation ? 'groupNormSilu' : 'groupNorm', inputs, (g) => {
    const gr = be.groupNormBackward!(
      x.storage,
      weight?.storage ?? null,
      bias?.storage ?? null,
      stats[0].storage,
      stats[1].storage,
      g.storage,
      spec,
    );
    const out: Tensor[] = [new Tensor(gr.dx, x.shape)];
    const dw = gr.dweight === null ? null : new Tensor(gr.dweight, [c]);
    const db = gr.dbias === null ? null : new Tensor(gr.dbias, [c]);
    if (weight) out.push(dw!);
    else dw?.dispose();
    if (bias) out.push(db ?? sum(g, [0, ...x.shape.slice(2).map((_, i) => i + 2)]));
    else db?.dispose();
    return out;
  });
  // Without a graph node nothing refers to the statistics any more.
  if (y.node === null) for (const t of stats) t.dispose();
  return y;
}

export interface AttentionOptions {
  /** Added to the scores before softmax (broadcast to [..., Lq, Lk]); −Infinity masks out. */
  mask?: Tensor | null;
  /** Defaults to 1/√d. */
  scale?: number;
}

/**
 * softmax(q kᵀ · scale + mask) v, with q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]. Without a
 * mask, and with the same leading dims on q, k and v, the backend's fused kernel runs when it
 * has one (FusedKernels.attention: the Lq × Lk scores are never stored; the VJP is
 * attentionBackward, which recomputes them from q, k and the saved logsumexp); otherwise the
 * composite matmul → softmax → matmul.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  const d = q.shape[q.rank - 1]!;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const spec = opts.mask ? null : fusedAttentionSpec(q, k, v, scale);
  if (spec !== null) return attentionFused(q, k, v, spec);
  const mask = opts.mask;
  return composite(() => {
    const scores = matmulT(q, k, false, true);
    const probs = mask ? softmax(add(mul(scores, scale), mask), -1) : softmax(scores, -1, scale);
    return matmulT(probs, v, false, false);
  });
}

/** The fused kernel's spec, or null when the backend has none or the shapes need the composite. */
function fusedAttentionSpec(q: Tensor, k: Tensor, v: Tensor, scale: number): AttentionSpec | null {
  const be = q.backend;
  if (!be.attention || !be.attentionBackward || q.dtype === 'int32' || q.rank < 2) return null;
  if ([k, v].some((t) => t.rank !== q.rank || t.backend !== be || t.dtype !== q.dtype)) {
    return null;
  }
  const lead = q.shape.slice(0, -2);
  if (!shapesEqual(lead, k.shape.slice(0, -2)) || !shapesEqual(lead, v.shape.slice(0, -2))) {
    return null;
  }
  const [lq, d] = q.shape.slice(-2) as [number, number];
  const [lk, dk] = k.shape.slice(-2) as [number, number];
  const [lv, dv] = v.shape.slice(-2) as [number, number];
  const batch = sizeOf(lead);
  // Mismatched shapes go to the composite, which reports them; empty ones too.
  if (dk !== d || lv !== lk || batch * lq * lk * d * dv === 0) return null;
  return { batch, lq, lk, d, dv, scale };
}

function attentionFused(q: Tensor, k: Tensor, v: Tensor, spec: AttentionSpec): Tensor {
  const be = q.backend;
  const r = be.attention!(q.storage, k.storage, v.storage, spec);
  const out = new Tensor(r.out, [...q.shape.slice(0, -1), spec.dv]);
  const lse = new Tensor(r.logsumexp, [spec.batch, spec.lq]);
  record(out, 'scaledDotProductAttention', [q, k, v], (g) => {
    const gr = be.attentionBackward!(
      q.storage,
      k.storage,
      v.storage,
      out.storage,
      lse.storage,
      g.storage,
      spec,
    );
    return [new Tensor(gr.dq, q.shape), new Tensor(gr.dk, k.shape), new Tensor(gr.dv, v.shape)];
  });
  // Without a graph node nothing refers to the logsumexp any more.
  if (out.node === null) lse.dispose();
  return out;
}

/** Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p). */
export function dropout(x: Tensor, p: number, generator: Generator, training = true): Tensor {
  if (!training || p === 0) return x;
  if (p < 0 || p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  return composite(() => {
    const keepMask = noGrad(() =>
      tidy(() => lt(rand(x.shape, { generator, dtype: x.dtype, backend: x.backend }), 1 - p)),
    );
    return mul(x, mul(keepMask, 1 / (1 - p)));
  });
}
