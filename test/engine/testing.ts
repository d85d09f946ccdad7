/**
 * Test utilities for the engine and the layers above it. One set of numeric comparisons:
 * `assertClose` compares numbers element-wise with a message that names the worst element,
 * `assertRelClose` compares two scalars relative to max(1, |expected|), and `maxAbs`,
 * `maxAbsDiff` and `relL2` measure a difference for tests that bound it themselves. `gradcheck`
 * compares autograd with central finite differences computed in float64 on the CPU backend.
 */
import { isGradEnabled, noGrad } from '../../src/engine/autograd.js';
import { cpuBackend } from '../../src/engine/device.js';
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
  /** Allowed error in float32 ulps of the expected value, added to the others (default 0). */
  ulps?: number;
  /** Per-element absolute bound; when given, rtol, atol and ulps are not used. */
  bound?: (i: number) => number;
}

export type Numbers = Tensor | ArrayLike<number> | number;

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

/** Unit in the last place of v as a float32. */
export function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 1.1754943508222875e-38) return 1.401298464324817e-45;
  if (!Number.isFinite(a)) return Infinity;
  const e = Math.floor(Math.log2(a));
  return 2 ** (e - 23);
}

/** The tolerance's terms, for a failure message: "atol 1e-9, rtol 1e-6". */
function fmtTolerance(tol: Tolerance, rtol: number, atol: number): string {
  if (tol.bound) return 'per-element bound';
  return `atol ${atol}, rtol ${rtol}` + (tol.ulps ? `, ulps ${tol.ulps}` : '');
}

/**
 * The failure message for `actual` vs `expected` (same length), or null when they are close.
 * Names the worst element: its index in `shape`, both values, the error and the tolerance there.
 */
function mismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  shape: Shape | null,
  tol: Tolerance,
  scalar: boolean,
): string | null {
  const rtol = tol.rtol ?? 1e-6;
  const atol = tol.atol ?? 1e-9;
  const ulps = tol.ulps ?? 0;
  const allowed = (i: number, y: number): number =>
    tol.bound?.(i) ?? ulps * ulp(y) + rtol * Math.abs(y) + atol;
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    let excess: number;
    if (Number.isNaN(y) || Number.isNaN(x)) excess = Number.isNaN(x) === Number.isNaN(y) ? 0 : 1;
    else if (!Number.isFinite(y) || !Number.isFinite(x)) excess = x === y ? 0 : 1;
    else excess = Math.abs(x - y) - allowed(i, y);
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
  const where = scalar
    ? ''
    : `${bad} of ${expected.length} values differ; worst at ${fmtIndex(worst, shape)}: `;
  return (
    `${where}actual ${x}, expected ${y}, |error| ${Math.abs(x - y)} > tolerance ` +
    `${allowed(worst, y)} (${fmtTolerance(tol, rtol, atol)})`
  );
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| (+ ulps float32 ulps of expected, or
 * bound(i) alone when given) element-wise. NaN matches only NaN and an infinity only the same
 * infinity. Tensors (read with dataSync, so CPU) must have equal shapes. The error names the
 * worst element: index, both values, the error and the tolerance there.
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
  const scalar = typeof actual === 'number' && typeof expected === 'number';
  const m = mismatch(a.values, e.values, a.shape ?? e.shape, tol, scalar);
  if (m !== null) throw new Error(`${message}: ${m}`);
}

/**
 * Asserts |actual − expected| ≤ rel·max(1, |expected|): a relative tolerance for values above 1
 * and an absolute one below, for scalars whose size a test does not fix in advance.
 */
export function assertRelClose(
  actual: number,
  expected: number,
  rel: number,
  message = 'assertRelClose',
): void {
  const bound = rel * Math.max(1, Math.abs(expected));
  if (!(Math.abs(actual - expected) <= bound)) {
    throw new Error(
      `${message}: actual ${actual}, expected ${expected}, |error| ` +
        `${Math.abs(actual - expected)} > ${rel}·max(1, |expected|) = ${bound}`,
    );
  }
}

function pairOf(a: Numbers, b: Numbers, what: string): [ArrayLike<number>, ArrayLike<number>] {
  const x = toValues(a).values;
  const y = toValues(b).values;
  if (x.length !== y.length) throw new Error(`${what}: ${x.length} values against ${y.length}`);
  return [x, y];
}

/** max_i |a_i| (0 for no values). */
export function maxAbs(a: Numbers): number {
  const x = toValues(a).values;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** max_i |a_i − b_i|; a and b must have as many values. */
export function maxAbsDiff(a: Numbers, b: Numbers): number {
  const [x, y] = pairOf(a, b, 'maxAbsDiff');
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** ‖a − b‖₂ / ‖b‖₂: the error of a relative to the reference b. */
export function relL2(a: Numbers, b: Numbers): number {
  const [x, y] = pairOf(a, b, 'relL2');
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i]! - y[i]!) ** 2;
    den += y[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

export interface GradcheckOptions extends Pick<Tolerance, 'rtol' | 'atol'> {
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
      const m = mismatch(analytic[k]!, numeric, shape, tol, false);
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
