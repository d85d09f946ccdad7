/**
 * Test utilities for the engine and the layers above it: `assertClose` compares numbers with a
 * message that names the worst element, and `gradcheck` compares autograd with central finite
 * differences computed in float64 on the CPU backend.
 */
import { isGradEnabled, noGrad } from '../../src/engine/autograd.js';
import { cpuBackend } from '../../src/engine/device.js';
import type { TypedArray } from '../../src/engine/dtype.js';
import { tensor } from '../../src/engine/ops/creation.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { tidy } from '../../src/engine/scope.js';
import { fmtShape, type Shape, stridesOf } from '../../src/engine/shape.js';
import { Tensor } from '../../src/engine/tensor.js';

export interface Tolerance {
  /** Relative tolerance (default 1e-6). */
  rtol?: number;
  /** Absolute tolerance (default 1e-9). */
  atol?: number;
}

export type Numbers = Tensor | TypedArray | readonly number[] | number;

function toValues(v: Numbers): { values: ArrayLike<number>; shape: Shape | null } {
  if (v instanceof Tensor) return { values: v.dataSync(), shape: v.shape };
  if (typeof v === 'number') return { values: [v], shape: null };
  return { values: v, shape: null };
}

function fmtIndex(i: number, shape: Shape | null): string {
  if (shape === null || shape.length <= 1) return `[${i}]`;
  const st = stridesOf(shape);
  return `[${st.map((s, k) => Math.floor(i / s) % shape[k]!).join(', ')}]`;
}

/**
 * The failure message for `actual` vs `expected` (same length), or null when they are close.
 * Names the worst element: its index in `shape`, both values, the error and the tolerance there.
 */
function mismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  shape: Shape | null,
  rtol: number,
  atol: number,
): string | null {
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    let excess: number;
    if (Number.isNaN(y) || Number.isNaN(x)) excess = Number.isNaN(x) === Number.isNaN(y) ? 0 : 1;
    else if (!Number.isFinite(y) || !Number.isFinite(x)) excess = x === y ? 0 : 1;
    else excess = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (excess > 0) {
      bad++;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst < 0) return null;
  const x = actual[worst]!;
  const y = expected[worst]!;
  return (
    `${bad} of ${expected.length} values differ; worst at ${fmtIndex(worst, shape)}: ` +
    `actual ${x}, expected ${y}, |error| ${Math.abs(x - y)} > tolerance ` +
    `${atol + rtol * Math.abs(y)} (atol ${atol}, rtol ${rtol})`
  );
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise. NaN matches only NaN and an
 * infinity only the same infinity. Tensors (read with dataSync, so CPU) must have equal shapes.
 * The error names the worst element: index, both values, the error and the tolerance there.
 */
export function assertClose(
  actual: Numbers,
  expected: Numbers,
  tol: Tolerance = {},
  message = 'assertClose',
): void {
  const a = toValues(actual);
  const e = toValues(expected);
  if (a.shape !== null && e.shape !== null && fmtShape(a.shape) !== fmtShape(e.shape)) {
    throw new Error(`${message}: shape ${fmtShape(a.shape)}, expected ${fmtShape(e.shape)}`);
  }
  if (a.values.length !== e.values.length) {
    throw new Error(
      `${message}: ${a.values.length} values, expected ${e.values.length}` +
        (a.shape ? ` (actual shape ${fmtShape(a.shape)})` : ''),
    );
  }
  const m = mismatch(a.values, e.values, a.shape ?? e.shape, tol.rtol ?? 1e-6, tol.atol ?? 1e-9);
  if (m !== null) throw new Error(`${message}: ${m}`);
}

export interface GradcheckOptions extends Tolerance {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Indices of the inputs to check (default: every floating-point input). */
  wrt?: readonly number[];
  /** Seed of the fixed random weights that project a non-scalar output to a scalar. */
  seed?: number;
  /** Prefix for error messages. */
  name?: string;
}

export interface GradcheckResult {
  /** Largest |autograd − numeric| over every checked element. */
  maxAbsError: number;
  /** Number of input elements checked. */
  checked: number;
}

/** Deterministic weights in [0.5, 1.5) with random signs, so no element's gradient is hidden. */
function projection(n: number, seed: number): Float64Array {
  let s = (seed ^ 0x9e3779b9) >>> 0 || 1;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const u = s / 4294967296;
    out[i] = (u < 0.5 ? -1 : 1) * (0.5 + 2 * Math.abs(u - 0.5));
  }
  return out;
}

/**
 * Checks the gradients of fn at `inputs`: the output y is projected to L = Σ w ⊙ y with fixed
 * random weights w; autograd's dL/dx is compared with the central difference
 * (L(x + eps) − L(x − eps)) / (2 eps) for every element of every checked input. The inputs are
 * copied to float64 tensors on the CPU backend (int32 inputs are passed as constants). Throws,
 * naming the input and element, when |autograd − numeric| > atol + rtol·|numeric| anywhere.
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  opts: GradcheckOptions = {},
): GradcheckResult {
  if (!isGradEnabled()) throw new Error('gradcheck: gradients are disabled (inside noGrad)');
  const eps = opts.eps ?? 1e-6;
  const tol = { rtol: opts.rtol ?? 1e-5, atol: opts.atol ?? 1e-7 };
  const name = opts.name ?? 'gradcheck';
  const backend = cpuBackend();
  const host = inputs.map((t) => ({
    shape: t.shape,
    int: t.dtype === 'int32',
    data: t.dtype === 'int32' ? Int32Array.from(t.dataSync()) : Float64Array.from(t.dataSync()),
  }));
  const wrt = opts.wrt ?? host.flatMap((h, i) => (h.int ? [] : [i]));
  for (const i of wrt) {
    if (host[i] === undefined || host[i].int) {
      throw new Error(`${name}: input ${i} is not a floating-point input`);
    }
  }
  const make = (i: number, requiresGrad: boolean): Tensor => {
    const h = host[i]!;
    const dtype = h.int ? 'int32' : 'float64';
    return tensor(h.data, h.shape, { dtype, backend, requiresGrad: requiresGrad && !h.int });
  };

  // Autograd: dL/dx_i = backward of y with the weights as the output gradient.
  let weights: Float64Array = new Float64Array(0);
  const analytic = tidy(() => {
    const xs = host.map((_, i) => make(i, wrt.includes(i)));
    const y = fn(...xs);
    if (y.dtype !== 'float64') {
      throw new Error(`${name}: fn returned ${y.dtype}; float64 inputs must give a float64 output`);
    }
    weights = projection(y.size, opts.seed ?? 1234);
    if (y.requiresGrad) y.backward(tensor(weights, y.shape, { backend }));
    const grads = wrt.map((i) => {
      const g = xs[i]!.grad;
      return g === null ? new Float64Array(host[i]!.data.length) : Float64Array.from(g.dataSync());
    });
    for (const x of xs) x.zeroGrad();
    return grads;
  });

  // Numeric: central differences of L, one input element at a time.
  const w = tensor(weights, [weights.length], { backend });
  const loss = (): number =>
    noGrad(() =>
      tidy(() => {
        const y = fn(...host.map((_, i) => make(i, false)));
        return sum(mul(y.reshape([y.size]), w)).itemSync();
      }),
    );
  let maxAbsError = 0;
  let checked = 0;
  try {
    wrt.forEach((inputIndex, k) => {
      const data = host[inputIndex]!.data;
      const numeric = new Float64Array(data.length);
      for (let j = 0; j < data.length; j++) {
        const x0 = data[j]!;
        data[j] = x0 + eps;
        const lp = loss();
        data[j] = x0 - eps;
        const lm = loss();
        data[j] = x0;
        const d = (lp - lm) / (2 * eps);
        numeric[j] = d;
        maxAbsError = Math.max(maxAbsError, Math.abs(d - analytic[k]![j]!));
      }
      checked += data.length;
      const shape = host[inputIndex]!.shape;
      const m = mismatch(analytic[k]!, numeric, shape, tol.rtol, tol.atol);
      if (m !== null) {
        throw new Error(
          `${name}: gradient of input ${inputIndex} ${fmtShape(shape)} (autograd vs central ` +
            `differences, eps ${eps}): ${m}`,
        );
      }
    });
  } finally {
    w.dispose();
  }
  return { maxAbsError, checked };
}
