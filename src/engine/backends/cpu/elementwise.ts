/** Element-wise kernels of the CPU backend: the reference definition of each unary/binary op. */
import type { BinaryOp, BroadcastSpec, UnaryOp } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { coalesce, forEachRow } from './iterate.js';
import { erf, gelu, sigmoid } from './math.js';

type Fn1 = (x: number) => number;
type Fn2 = (a: number, b: number) => number;

export const unaryFns: { [K in UnaryOp]: Fn1 } = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  erf,
  silu: (x) => x * sigmoid(x),
  gelu,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  floor: Math.floor,
};

export const binaryFns: { [K in BinaryOp]: Fn2 } = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a >= b || Number.isNaN(a) ? a : b),
  minimum: (a, b) => (a <= b || Number.isNaN(a) ? a : b),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
};

/**
 * Hot ops get a loop literal of their own so V8 sees one operation per loop (a shared loop that
 * calls through the table is megamorphic and several times slower); the rest use the table.
 */
type UnaryLoop = (x: TypedArray, out: TypedArray) => void;
const unaryLoops: Partial<Record<UnaryOp, UnaryLoop>> = {
  neg: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = -x[i]!;
  },
  exp: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.exp(x[i]!);
  },
  square: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = x[i]! * x[i]!;
  },
  sqrt: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.sqrt(x[i]!);
  },
  rsqrt: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = 1 / Math.sqrt(x[i]!);
  },
  reciprocal: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = 1 / x[i]!;
  },
  silu: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = x[i]! * sigmoid(x[i]!);
  },
  sigmoid: (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = sigmoid(x[i]!);
  },
};

export function unaryKernel(op: UnaryOp, x: TypedArray, out: TypedArray): void {
  const loop = unaryLoops[op];
  if (loop !== undefined) {
    loop(x, out);
    return;
  }
  const f = unaryFns[op];
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]!);
}

/** out[o + i] = a[pa + i·ia] ∘ b[pb + i·ib] for i < n. */
type BinaryRow = (
  a: TypedArray,
  pa: number,
  ia: number,
  b: TypedArray,
  pb: number,
  ib: number,
  out: TypedArray,
  o: number,
  n: number,
) => void;

const hotRows: Partial<Record<BinaryOp, BinaryRow>> = {
  add: (a, pa, ia, b, pb, ib, out, o, n) => {
    for (let i = 0; i < n; i++, pa += ia, pb += ib) out[o + i] = a[pa]! + b[pb]!;
  },
  sub: (a, pa, ia, b, pb, ib, out, o, n) => {
    for (let i = 0; i < n; i++, pa += ia, pb += ib) out[o + i] = a[pa]! - b[pb]!;
  },
  mul: (a, pa, ia, b, pb, ib, out, o, n) => {
    for (let i = 0; i < n; i++, pa += ia, pb += ib) out[o + i] = a[pa]! * b[pb]!;
  },
  div: (a, pa, ia, b, pb, ib, out, o, n) => {
    for (let i = 0; i < n; i++, pa += ia, pb += ib) out[o + i] = a[pa]! / b[pb]!;
  },
};

function genericRow(f: Fn2): BinaryRow {
  return (a, pa, ia, b, pb, ib, out, o, n) => {
    for (let i = 0; i < n; i++, pa += ia, pb += ib) out[o + i] = f(a[pa]!, b[pb]!);
  };
}

/** Every op's row loop, built once: the hot ones above, the rest through the table. */
const binaryRows = Object.fromEntries(
  (Object.keys(binaryFns) as BinaryOp[]).map((op) => [
    op,
    hotRows[op] ?? genericRow(binaryFns[op]),
  ]),
) as Record<BinaryOp, BinaryRow>;

export function binaryKernel(
  op: BinaryOp,
  a: TypedArray,
  b: TypedArray,
  spec: BroadcastSpec,
  out: TypedArray,
): void {
  const row = binaryRows[op];
  const [sa, sb] = spec.strides as [readonly number[], readonly number[]];
  if (a.length === out.length && b.length === out.length) {
    row(a, 0, 1, b, 0, 1, out, 0, out.length);
    return;
  }
  if (b.length === 1 && a.length === out.length) {
    row(a, 0, 1, b, 0, 0, out, 0, out.length);
    return;
  }
  if (a.length === 1 && b.length === out.length) {
    row(a, 0, 0, b, 0, 1, out, 0, out.length);
    return;
  }
  const c = coalesce(spec.outShape, [sa, sb]);
  const r = c.shape.length;
  const rowLen = r === 0 ? 1 : c.shape[r - 1]!;
  const [ca, cb] = c.strides as [number[], number[]];
  const ia = r === 0 ? 0 : ca[r - 1]!;
  const ib = r === 0 ? 0 : cb[r - 1]!;
  forEachRow(c.shape, c.strides, (o, offs) =>
    row(a, offs[0]!, ia, b, offs[1]!, ib, out, o, rowLen),
  );
}

export function whereKernel(
  cond: TypedArray,
  a: TypedArray,
  b: TypedArray,
  spec: BroadcastSpec,
  out: TypedArray,
): void {
  const c = coalesce(spec.outShape, spec.strides);
  const [sc, sa, sb] = c.strides as [number[], number[], number[]];
  const rank = c.shape.length;
  const rowLen = rank === 0 ? 1 : c.shape[rank - 1]!;
  const ic = rank === 0 ? 0 : sc[rank - 1]!;
  const ia = rank === 0 ? 0 : sa[rank - 1]!;
  const ib = rank === 0 ? 0 : sb[rank - 1]!;
  forEachRow(c.shape, c.strides, (o, offs) => {
    let pc = offs[0]!;
    let pa = offs[1]!;
    let pb = offs[2]!;
    for (let i = 0; i < rowLen; i++, pc += ic, pa += ia, pb += ib) {
      out[o + i] = cond[pc] !== 0 ? a[pa]! : b[pb]!;
    }
  });
}
