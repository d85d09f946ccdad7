/** Element-wise kernels of the CPU backend: the reference definition of each unary/binary op. */
import type { BinaryOp, BroadcastSpec, UnaryOp } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { forEachRow } from './iterate.js';
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

export function unaryKernel(op: UnaryOp, x: TypedArray, out: TypedArray): void {
  const f = unaryFns[op];
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]!);
}

export function binaryKernel(
  op: BinaryOp,
  a: TypedArray,
  b: TypedArray,
  spec: BroadcastSpec,
  out: TypedArray,
): void {
  const f = binaryFns[op];
  const [sa, sb] = spec.strides as [readonly number[], readonly number[]];
  const rank = spec.outShape.length;
  if (a.length === out.length && b.length === out.length) {
    for (let i = 0; i < out.length; i++) out[i] = f(a[i]!, b[i]!);
    return;
  }
  const rowLen = rank === 0 ? 1 : spec.outShape[rank - 1]!;
  const ia = rank === 0 ? 0 : sa[rank - 1]!;
  const ib = rank === 0 ? 0 : sb[rank - 1]!;
  forEachRow(spec.outShape, [sa, sb], (o, [oa, ob]) => {
    let pa = oa!;
    let pb = ob!;
    for (let i = 0; i < rowLen; i++, pa += ia, pb += ib) out[o + i] = f(a[pa]!, b[pb]!);
  });
}

export function whereKernel(
  cond: TypedArray,
  a: TypedArray,
  b: TypedArray,
  spec: BroadcastSpec,
  out: TypedArray,
): void {
  const [sc, sa, sb] = spec.strides as [readonly number[], readonly number[], readonly number[]];
  const rank = spec.outShape.length;
  const rowLen = rank === 0 ? 1 : spec.outShape[rank - 1]!;
  const ic = rank === 0 ? 0 : sc[rank - 1]!;
  const ia = rank === 0 ? 0 : sa[rank - 1]!;
  const ib = rank === 0 ? 0 : sb[rank - 1]!;
  forEachRow(spec.outShape, [sc, sa, sb], (o, [oc, oa, ob]) => {
    let pc = oc!;
    let pa = oa!;
    let pb = ob!;
    for (let i = 0; i < rowLen; i++, pc += ic, pa += ia, pb += ib) {
      out[o + i] = cond[pc] !== 0 ? a[pa]! : b[pb]!;
    }
  });
}
