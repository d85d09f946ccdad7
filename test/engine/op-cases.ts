/**
 * One table of op cases: for each, a seeded input builder and the op to apply. The gradient
 * suite gradchecks every differentiable case in float64 on the CPU; a backend-parity suite can
 * run the same cases on another backend (float32) and compare with the CPU reference. Shapes are
 * small and include odd and prime sizes, broadcasting, batch 1, 0-d and empty tensors.
 *
 * Data only (plus the functions that build inputs): no test code here.
 */
import {
  type Backend,
  cpuBackend,
  type FloatDType,
  Generator,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import * as E from '../../src/engine/index.js';

/** One input: its shape and values. int32 inputs (indices) and `constant` ones are never perturbed. */
export interface InputSpec {
  readonly shape: readonly number[];
  readonly data: Float64Array | Int32Array;
  /** Held fixed by gradient checks (masks, conditions whose sign must not flip). */
  readonly constant?: boolean;
}

export interface OpCase {
  /** Unique name, `op/variant`. */
  readonly name: string;
  /** The exported engine function this case exercises (the table must cover every op). */
  readonly op: string;
  /** Builds the inputs from a seed (same seed, same inputs). */
  readonly inputs: (seed: number) => InputSpec[];
  /** The op under test, applied to tensors made from `inputs` (in order). */
  readonly apply: (...xs: Tensor[]) => Tensor;
  /** Whether gradients flow to the non-constant float inputs (gradcheck runs when true). */
  readonly differentiable: boolean;
  /** Overrides for the float64 gradient check. */
  readonly gradcheck?: { readonly eps?: number; readonly rtol?: number; readonly atol?: number };
  /** Tolerance for comparing a float32 backend with the CPU float64 reference. */
  readonly tol?: { readonly rtol: number; readonly atol: number };
}

/** Default tolerance for float32 backends against the float64 reference. */
export const defaultParityTol = { rtol: 1e-4, atol: 1e-5 } as const;

// ---- seeded input builders --------------------------------------------------------------------

/** mulberry32: a small deterministic generator of uniforms in [0, 1). */
function uniforms(seed: number): () => number {
  let s = (seed * 0x9e3779b1 + 0x6d2b79f5) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const count = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** Input builders over one seeded stream. */
class Inputs {
  readonly #u: () => number;
  constructor(seed: number) {
    this.#u = uniforms(seed);
  }
  #fill(shape: readonly number[], f: () => number, constant = false): InputSpec {
    const data = new Float64Array(count(shape));
    for (let i = 0; i < data.length; i++) data[i] = f();
    return constant ? { shape, data, constant } : { shape, data };
  }
  /** Uniform in [lo, hi). */
  uniform(shape: readonly number[], lo = -2, hi = 2): InputSpec {
    return this.#fill(shape, () => lo + (hi - lo) * this.#u());
  }
  /** Uniform in [0.5, 2): for log, sqrt, rsqrt, pow bases. */
  positive(shape: readonly number[]): InputSpec {
    return this.uniform(shape, 0.5, 2);
  }
  /** ±[0.5, 2): for divisors and kinks at 0 (abs). */
  nonzero(shape: readonly number[]): InputSpec {
    return this.#fill(shape, () => (this.#u() < 0.5 ? -1 : 1) * (0.5 + 1.5 * this.#u()));
  }
  /**
   * Distinct values at least 0.1 apart (a shuffled grid with small jitter): no ties, so max, min
   * and maximum are differentiable at every element.
   */
  distinct(shape: readonly number[], offset = 0): InputSpec {
    const n = count(shape);
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.#u() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = offset + (order[i]! - n / 2) * 0.2 + 0.05 * this.#u();
    return { shape, data };
  }
  /** Values kept at least 0.1 away from each of `avoid` (clamp bounds, floor steps). */
  avoiding(shape: readonly number[], avoid: readonly number[], lo = -2, hi = 2): InputSpec {
    return this.#fill(shape, () => {
      for (;;) {
        const v = lo + (hi - lo) * this.#u();
        if (avoid.every((a) => Math.abs(v - a) >= 0.1)) return v;
      }
    });
  }
  /** A constant 0/1 mask. */
  mask(shape: readonly number[]): InputSpec {
    return this.#fill(shape, () => (this.#u() < 0.5 ? 0 : 1), true);
  }
  /** int32 values in [0, hi). */
  ints(shape: readonly number[], hi: number): InputSpec {
    const data = new Int32Array(count(shape));
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(this.#u() * hi);
    return { shape, data };
  }
}

/** Fixed int32 values (for indices that must hit every row, with repeats). */
function ints(shape: readonly number[], values: readonly number[]): InputSpec {
  return { shape, data: Int32Array.from(values) };
}

// ---- the cases --------------------------------------------------------------------------------

type Build = (r: Inputs) => InputSpec[];

function c(
  name: string,
  build: Build,
  apply: (...xs: Tensor[]) => Tensor,
  differentiable = true,
  extra: Pick<OpCase, 'gradcheck' | 'tol'> = {},
): OpCase {
  const op = name.split('/')[0]!;
  return { name, op, inputs: (seed) => build(new Inputs(seed)), apply, differentiable, ...extra };
}

const unaryCases: OpCase[] = [
  c('neg', (r) => [r.uniform([3, 5])], E.neg),
  c('exp', (r) => [r.uniform([1, 7, 3])], E.exp),
  c('log', (r) => [r.positive([3, 5])], E.log),
  c('sqrt', (r) => [r.positive([2, 3, 5])], E.sqrt),
  c('rsqrt', (r) => [r.positive([7])], E.rsqrt),
  c('sin', (r) => [r.uniform([3, 5], -4, 4)], E.sin),
  c('cos', (r) => [r.uniform([3, 5], -4, 4)], E.cos),
  c('tanh', (r) => [r.uniform([1, 11])], E.tanh),
  c('sigmoid', (r) => [r.uniform([5, 3], -6, 6)], E.sigmoid),
  c('abs', (r) => [r.nonzero([3, 5])], E.abs),
  c('sign', (r) => [r.nonzero([3, 5])], E.sign, false),
  c('erf', (r) => [r.uniform([13], -3.5, 3.5)], E.erf),
  c('silu', (r) => [r.uniform([3, 7], -5, 5)], E.silu),
  c('gelu', (r) => [r.uniform([3, 7], -5, 5)], E.gelu),
  c('square', (r) => [r.uniform([1, 3, 5])], E.square),
  c('reciprocal', (r) => [r.nonzero([3, 5])], E.reciprocal),
  c('floor', (r) => [r.avoiding([3, 5], [-2, -1, 0, 1, 2])], E.floor, false),
  c('tanh/0-d', (r) => [r.uniform([])], E.tanh),
  c('exp/empty', () => [{ shape: [0, 3], data: new Float64Array(0) }], E.exp),
];

const binaryCases: OpCase[] = [
  c('add/same-shape', (r) => [r.uniform([3, 5]), r.uniform([3, 5])], E.add),
  c('add/row', (r) => [r.uniform([3, 5]), r.uniform([5])], E.add),
  c('add/both-ways', (r) => [r.uniform([1, 3, 1]), r.uniform([2, 1, 5])], E.add),
  c('add/0-d', (r) => [r.uniform([]), r.uniform([2, 3])], E.add),
  c(
    'add/number',
    (r) => [r.uniform([3, 5])],
    (a) => E.add(a, 2.5),
  ),
  c('add/empty', (r) => [{ shape: [0, 3], data: new Float64Array(0) }, r.uniform([3])], E.add),
  c('sub/broadcast', (r) => [r.uniform([4, 1]), r.uniform([1, 5])], E.sub),
  c(
    'sub/number-first',
    (r) => [r.uniform([3, 5])],
    (a) => E.sub(1, a),
  ),
  c('mul/broadcast', (r) => [r.uniform([2, 3, 5]), r.uniform([3, 1])], E.mul),
  c(
    'mul/same-input',
    (r) => [r.uniform([3, 5])],
    (a) => E.mul(a, a),
  ),
  c('div/broadcast', (r) => [r.uniform([3, 5]), r.nonzero([3, 1])], E.div),
  c(
    'div/number-first',
    (r) => [r.nonzero([7])],
    (a) => E.div(2, a),
  ),
  c('pow/tensor-exponent', (r) => [r.positive([3, 5]), r.uniform([5], -1.5, 1.5)], E.pow),
  c(
    'pow/cube',
    (r) => [r.uniform([3, 5])],
    (a) => E.pow(a, 3),
  ),
  c(
    'pow/number-base',
    (r) => [r.uniform([2, 3])],
    (a) => E.pow(2, a),
  ),
  c('maximum/broadcast', (r) => [r.distinct([3, 5]), r.distinct([5], 0.1)], E.maximum),
  c('minimum/broadcast', (r) => [r.distinct([1, 5]), r.distinct([3, 1], 0.1)], E.minimum),
  c(
    'maximum/number',
    (r) => [r.avoiding([3, 5], [0.3])],
    (a) => E.maximum(a, 0.3),
  ),
  c('lt', (r) => [r.uniform([3, 5]), r.uniform([5])], E.lt, false),
  c('le', (r) => [r.uniform([3, 5]), r.uniform([3, 1])], E.le, false),
  c(
    'gt',
    (r) => [r.uniform([3, 5])],
    (a) => E.gt(a, 0),
    false,
  ),
  c('ge', (r) => [r.uniform([3, 5]), r.uniform([])], E.ge, false),
  c('eq', (r) => [r.ints([3, 5], 3), r.ints([5], 3)], E.eq, false),
  c('ne', (r) => [r.ints([3, 5], 3), r.ints([3, 1], 3)], E.ne, false),
  c(
    'where/broadcast',
    (r) => [r.mask([3, 1]), r.uniform([3, 5]), r.uniform([5])],
    (m, a, b) => E.where(m, a, b),
  ),
  c(
    'where/number-branch',
    (r) => [r.mask([2, 3]), r.uniform([2, 3])],
    (m, a) => E.where(m, a, 0.5),
  ),
  c(
    'clamp/both',
    (r) => [r.avoiding([3, 7], [-0.5, 0.8])],
    (a) => E.clamp(a, -0.5, 0.8),
  ),
  c(
    'clamp/min-only',
    (r) => [r.avoiding([3, 5], [0])],
    (a) => E.clamp(a, 0),
  ),
  c(
    'clamp/max-only',
    (r) => [r.avoiding([5], [0.2])],
    (a) => E.clamp(a, undefined, 0.2),
  ),
  c(
    'cast/same-dtype',
    (r) => [r.uniform([3, 5])],
    (a) => E.cast(a, a.dtype),
  ),
  c(
    'cast/int32',
    (r) => [r.uniform([3, 5], -5, 5)],
    (a) => E.cast(a, 'int32'),
    false,
  ),
];

const reduceCases: OpCase[] = [
  c(
    'sum/all',
    (r) => [r.uniform([3, 5])],
    (a) => E.sum(a),
  ),
  c(
    'sum/axis-keepdims',
    (r) => [r.uniform([3, 5])],
    (a) => E.sum(a, 1, true),
  ),
  c(
    'sum/non-contiguous-axes',
    (r) => [r.uniform([3, 4, 5])],
    (a) => E.sum(a, [0, 2]),
  ),
  c(
    'sum/negative-axis',
    (r) => [r.uniform([1, 3, 5])],
    (a) => E.sum(a, -2),
  ),
  c(
    'sum/0-d',
    (r) => [r.uniform([])],
    (a) => E.sum(a),
  ),
  c(
    'mean/axes-keepdims',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.mean(a, [1, 2], true),
  ),
  c(
    'mean/all',
    (r) => [r.uniform([7])],
    (a) => E.mean(a),
  ),
  c(
    'max/axis',
    (r) => [r.distinct([3, 5])],
    (a) => E.max(a, 0),
  ),
  c(
    'max/all',
    (r) => [r.distinct([2, 3, 5])],
    (a) => E.max(a),
  ),
  c(
    'max/non-contiguous-axes',
    (r) => [r.distinct([3, 2, 5])],
    (a) => E.max(a, [0, 2], true),
  ),
  c(
    'min/negative-axis-keepdims',
    (r) => [r.distinct([3, 5])],
    (a) => E.min(a, -1, true),
  ),
  c(
    'variance/axis',
    (r) => [r.uniform([3, 7])],
    (a) => E.variance(a, 1),
  ),
  c(
    'variance/unbiased-all',
    (r) => [r.uniform([2, 5])],
    (a) => E.variance(a, undefined, false, 1),
  ),
  c(
    'argmax/axis',
    (r) => [r.distinct([3, 5])],
    (a) => E.argmax(a, 1),
    false,
  ),
  c(
    'argmax/negative-axis-keepdims',
    (r) => [r.distinct([2, 3, 5])],
    (a) => E.argmax(a, -2, true),
    false,
  ),
  c(
    'sumTo/leading-and-ones',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.sumTo(a, [3, 1]),
  ),
];

const movementCases: OpCase[] = [
  c(
    'reshape/infer',
    (r) => [r.uniform([2, 6])],
    (a) => E.reshape(a, [3, -1, 2]),
  ),
  c(
    'reshape/to-0-d',
    (r) => [r.uniform([1, 1])],
    (a) => E.reshape(a, []),
  ),
  c(
    'unsqueeze/negative',
    (r) => [r.uniform([3, 5])],
    (a) => E.unsqueeze(a, -1),
  ),
  c(
    'squeeze/all',
    (r) => [r.uniform([1, 3, 1, 5])],
    (a) => E.squeeze(a),
  ),
  c(
    'squeeze/axis',
    (r) => [r.uniform([1, 3, 1])],
    (a) => E.squeeze(a, -1),
  ),
  c(
    'flatten/middle',
    (r) => [r.uniform([2, 3, 5, 1])],
    (a) => E.flatten(a, 1, 2),
  ),
  c(
    'permute',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.permute(a, [2, 0, 1]),
  ),
  c(
    'permute/negative-axes',
    (r) => [r.uniform([1, 3, 5])],
    (a) => E.permute(a, [-1, 0, -2]),
  ),
  c(
    'permuteData',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.permuteData(a, [1, 2, 0]),
    false,
  ),
  c(
    'transpose',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.transpose(a),
  ),
  c(
    'transpose/axes',
    (r) => [r.uniform([2, 3, 5])],
    (a) => E.transpose(a, 0, 2),
  ),
  c(
    'expand',
    (r) => [r.uniform([3, 1])],
    (a) => E.expand(a, [2, 3, 5]),
  ),
  c(
    'slice/negative',
    (r) => [r.uniform([5, 7])],
    (a) => E.slice(a, [1, -5], [-1, 6]),
  ),
  c(
    'slice/leading-only',
    (r) => [r.uniform([5, 3, 2])],
    (a) => E.slice(a, [2]),
  ),
  c(
    'pad',
    (r) => [r.uniform([2, 3, 5])],
    (a) =>
      E.pad(
        a,
        [
          [0, 1],
          [2, 0],
          [1, 3],
        ],
        0.5,
      ),
  ),
  c(
    'concat/axis1',
    (r) => [r.uniform([2, 1, 3]), r.uniform([2, 3, 3]), r.uniform([2, 2, 3])],
    (a, b, d) => E.concat([a, b, d], 1),
  ),
  c(
    'concat/negative-axis',
    (r) => [r.uniform([3, 2]), r.uniform([3, 5])],
    (a, b) => E.concat([a, b], -1),
  ),
  c(
    'concat/axis0-odd',
    (r) => [r.uniform([1, 7, 5]), r.uniform([4, 7, 5])],
    (a, b) => E.concat([a, b], 0),
  ),
  c(
    'concat/last-axis-odd',
    (r) => [r.uniform([5, 3, 1]), r.uniform([5, 3, 6]), r.uniform([5, 3, 2])],
    (a, b, d) => E.concat([a, b, d], 2),
  ),
  c(
    'stack/axis1',
    (r) => [r.uniform([3, 5]), r.uniform([3, 5])],
    (a, b) => E.stack([a, b], 1),
  ),
  c(
    'stack/negative-axis',
    (r) => [r.uniform([2, 3]), r.uniform([2, 3]), r.uniform([2, 3])],
    (a, b, d) => E.stack([a, b, d], -1),
  ),
  c(
    'gather/axis1-repeats',
    (r) => [r.uniform([2, 5, 3]), ints([4], [4, 0, 4, 1])],
    (a, i) => E.gather(a, 1, i),
  ),
  c(
    'gather/2-d-indices',
    (r) => [r.uniform([7, 3]), r.ints([2, 3], 7)],
    (a, i) => E.gather(a, 0, i),
  ),
  c(
    'gather/0-d-index',
    (r) => [r.uniform([3, 5]), ints([], [2])],
    (a, i) => E.gather(a, -1, i),
  ),
  c(
    'oneHot',
    (r) => [r.ints([2, 3], 5)],
    (i) => E.oneHot(i, 5),
    false,
  ),
];

const linalgCases: OpCase[] = [
  c('matmul/2-d', (r) => [r.uniform([3, 5]), r.uniform([5, 2])], E.matmul),
  c('matmul/batch-broadcast', (r) => [r.uniform([2, 1, 3, 4]), r.uniform([3, 4, 5])], E.matmul),
  c('matmul/batch-1', (r) => [r.uniform([1, 3, 4]), r.uniform([4, 2])], E.matmul),
  c('matmul/vector-matrix', (r) => [r.uniform([5]), r.uniform([2, 5, 3])], E.matmul),
  c('matmul/matrix-vector', (r) => [r.uniform([3, 5]), r.uniform([5])], E.matmul),
  c('matmul/vector-vector', (r) => [r.uniform([7]), r.uniform([7])], E.matmul),
  c(
    'matmulT/nn',
    (r) => [r.uniform([2, 3, 5]), r.uniform([5, 4])],
    (a, b) => E.matmulT(a, b, false, false),
  ),
  c(
    'matmulT/nt',
    (r) => [r.uniform([2, 3, 5]), r.uniform([4, 5])],
    (a, b) => E.matmulT(a, b, false, true),
  ),
  c(
    'matmulT/tn',
    (r) => [r.uniform([5, 3]), r.uniform([2, 5, 4])],
    (a, b) => E.matmulT(a, b, true, false),
  ),
  c(
    'matmulT/tt',
    (r) => [r.uniform([1, 5, 3]), r.uniform([3, 4, 5])],
    (a, b) => E.matmulT(a, b, true, true),
  ),
  c(
    'linear/bias',
    (r) => [r.uniform([1, 4, 5]), r.uniform([3, 5]), r.uniform([3])],
    (xx, w, b) => E.linear(xx, w, b),
  ),
  c(
    'linear/no-bias-1-d',
    (r) => [r.uniform([5]), r.uniform([3, 5])],
    (xx, w) => E.linear(xx, w),
  ),
];

const convCases: OpCase[] = [
  c(
    'conv2d/bias',
    (r) => [r.uniform([1, 3, 5, 5]), r.uniform([4, 3, 3, 3]), r.uniform([4])],
    (a, w, b) => E.conv2d(a, w, b),
  ),
  c(
    'conv2d/stride-padding',
    (r) => [r.uniform([2, 2, 7, 5]), r.uniform([3, 2, 3, 3])],
    (a, w) => E.conv2d(a, w, null, { stride: 2, padding: 1 }),
  ),
  c(
    'conv2d/dilation',
    (r) => [r.uniform([1, 2, 7, 7]), r.uniform([2, 2, 3, 3])],
    (a, w) => E.conv2d(a, w, null, { dilation: 2, padding: 1 }),
  ),
  c(
    'conv2d/groups',
    (r) => [r.uniform([1, 4, 5, 5]), r.uniform([6, 2, 3, 3]), r.uniform([6])],
    (a, w, b) => E.conv2d(a, w, b, { groups: 2, padding: 1 }),
  ),
  c(
    'conv2d/rectangular',
    (r) => [r.uniform([1, 3, 6, 5]), r.uniform([2, 3, 2, 3])],
    (a, w) => E.conv2d(a, w, null, { stride: [2, 1], padding: [1, 0], dilation: [1, 2] }),
  ),
  c(
    'avgPool2d/tiling',
    (r) => [r.uniform([1, 2, 4, 6])],
    (a) => E.avgPool2d(a, 2),
  ),
  c(
    'avgPool2d/padded-overlapping',
    (r) => [r.uniform([2, 3, 5, 5])],
    (a) => E.avgPool2d(a, 3, 2, 1),
  ),
  c(
    'upsampleNearest2d',
    (r) => [r.uniform([1, 2, 3, 2])],
    (a) => E.upsampleNearest2d(a),
  ),
  c(
    'upsampleNearest2d/factor-3',
    (r) => [r.uniform([2, 1, 2, 3])],
    (a) => E.upsampleNearest2d(a, 3),
  ),
];

const nnCases: OpCase[] = [
  c(
    'softmax/last',
    (r) => [r.uniform([3, 5], -3, 3)],
    (a) => E.softmax(a),
  ),
  c(
    'softmax/axis0',
    (r) => [r.uniform([3, 1, 5], -3, 3)],
    (a) => E.softmax(a, 0),
  ),
  c(
    'logSoftmax',
    (r) => [r.uniform([2, 7], -3, 3)],
    (a) => E.logSoftmax(a),
  ),
  c(
    'layerNorm/affine',
    (r) => [r.uniform([2, 3, 5]), r.uniform([5]), r.uniform([5])],
    (a, w, b) => E.layerNorm(a, 1, w, b),
  ),
  c(
    'layerNorm/two-dims',
    (r) => [r.uniform([1, 3, 5])],
    (a) => E.layerNorm(a, 2),
  ),
  c(
    'layerNorm/two-dims-affine',
    (r) => [r.uniform([2, 3, 4]), r.uniform([3, 4]), r.uniform([3, 4])],
    (a, w, b) => E.layerNorm(a, 2, w, b),
  ),
  c(
    'groupNorm/affine',
    (r) => [r.uniform([2, 4, 3, 3]), r.uniform([4]), r.uniform([4])],
    (a, w, b) => E.groupNorm(a, 2, w, b),
  ),
  c(
    'groupNorm/one-group',
    (r) => [r.uniform([1, 3, 5])],
    (a) => E.groupNorm(a, 1),
  ),
  c(
    'scaledDotProductAttention',
    (r) => [r.uniform([1, 2, 3, 4]), r.uniform([1, 2, 5, 4]), r.uniform([1, 2, 5, 3])],
    (q, k, v) => E.scaledDotProductAttention(q, k, v),
  ),
  c(
    'groupNormSilu/affine',
    (r) => [r.uniform([2, 4, 3, 3]), r.uniform([4]), r.uniform([4])],
    (a, w, b) => E.groupNormSilu(a, 2, w, b),
  ),
  c(
    'groupNormSilu/plain',
    (r) => [r.uniform([1, 3, 5])],
    (a) => E.groupNormSilu(a, 1),
  ),
  c(
    'groupNormSilu/weight-only',
    (r) => [r.uniform([2, 4, 5]), r.uniform([4])],
    (a, w) => E.groupNormSilu(a, 4, w, null, 1e-3),
  ),
  c(
    'scaledDotProductAttention/lk-1',
    (r) => [r.uniform([2, 3, 5]), r.uniform([2, 1, 5]), r.uniform([2, 1, 2])],
    (q, k, v) => E.scaledDotProductAttention(q, k, v),
  ),
  c(
    'scaledDotProductAttention/primes',
    (r) => [r.uniform([3, 7, 5]), r.uniform([3, 11, 5]), r.uniform([3, 11, 2])],
    (q, k, v) => E.scaledDotProductAttention(q, k, v, { scale: 0.9 }),
  ),
  c(
    'scaledDotProductAttention/rank-2',
    (r) => [r.uniform([5, 3]), r.uniform([2, 3]), r.uniform([2, 6])],
    (q, k, v) => E.scaledDotProductAttention(q, k, v),
  ),
  c(
    'scaledDotProductAttention/mask-scale',
    (r) => [r.uniform([2, 3, 4]), r.uniform([2, 5, 4]), r.uniform([2, 5, 3]), r.uniform([3, 5])],
    (q, k, v, m) => E.scaledDotProductAttention(q, k, v, { mask: m, scale: 0.7 }),
  ),
  c(
    'dropout',
    (r) => [r.uniform([3, 7])],
    (a) => E.dropout(a, 0.3, new Generator(11)),
  ),
];

/** Every case, in a stable order. */
export const opCases: readonly OpCase[] = [
  ...unaryCases,
  ...binaryCases,
  ...reduceCases,
  ...movementCases,
  ...linalgCases,
  ...convCases,
  ...nnCases,
];

/** Tensors for a case's inputs (float64 on the CPU backend unless asked otherwise). */
export function makeInputs(
  oc: OpCase,
  seed: number,
  opts: { dtype?: FloatDType; backend?: Backend } = {},
): Tensor[] {
  const backend = opts.backend ?? cpuBackend();
  const dtype = opts.dtype ?? 'float64';
  return oc
    .inputs(seed)
    .map((s) =>
      tensor(s.data, s.shape, { backend, dtype: s.data instanceof Int32Array ? 'int32' : dtype }),
    );
}

/** Indices of the inputs a gradient check perturbs: float and not constant. */
export function gradInputs(specs: readonly InputSpec[]): number[] {
  return specs.flatMap((s, i) => (s.data instanceof Int32Array || s.constant ? [] : [i]));
}
