/** Element-wise ops with NumPy broadcasting, and their vector-Jacobian products. */
import type { BinaryOp, UnaryOp } from '../backend.js';
import type { DType } from '../dtype.js';
import { broadcastShapes, broadcastStrides, fmtShape } from '../shape.js';
import { composite, record, Tensor, type TensorLike } from '../tensor.js';
import { scalarLike } from './creation.js';
import { sumTo } from './reduce.js';

function check(a: Tensor, b: Tensor, what: string): void {
  if (a.dtype !== b.dtype) {
    throw new Error(
      `${what}: dtype mismatch ${a.dtype} ${fmtShape(a.shape)} vs ${b.dtype} ${fmtShape(b.shape)}`,
    );
  }
  if (a.backend !== b.backend) {
    throw new Error(
      `${what}: tensors on different backends (${a.backend.name}, ${b.backend.name})`,
    );
  }
}

/** Numbers become 0-d tensors of the other operand's dtype and backend. */
function lift(a: TensorLike, b: TensorLike, what: string): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') {
    throw new Error(`${what}: at least one operand must be a tensor`);
  }
  const ta = typeof a === 'number' ? scalarLike(b as Tensor, a) : a;
  const tb = typeof b === 'number' ? scalarLike(ta, b) : b;
  check(ta, tb, what);
  return [ta, tb];
}

function unaryRaw(op: UnaryOp, x: Tensor): Tensor {
  return new Tensor(x.backend.unary(op, x.storage), x.shape);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const strides = [broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape)];
  return new Tensor(a.backend.binary(op, a.storage, b.storage, { outShape, strides }), outShape);
}

type UnaryVjp = (g: Tensor, x: Tensor, out: Tensor) => Tensor;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** d/dx of each unary op, as ops on (g, x, out). Comments give the derivative. */
const unaryVjps: { [K in UnaryOp]: UnaryVjp | null } = {
  neg: (g) => neg(g),
  exp: (g, _x, y) => mul(g, y), // e^x
  log: (g, x) => div(g, x), // 1/x
  sqrt: (g, _x, y) => div(g, mul(y, 2)), // 1/(2√x)
  rsqrt: (g, _x, y) => mul(g, mul(pow(y, 3), -0.5)), // −x^(−3/2)/2
  sin: (g, x) => mul(g, cos(x)),
  cos: (g, x) => mul(g, neg(sin(x))),
  tanh: (g, _x, y) => mul(g, sub(1, square(y))), // 1 − tanh²
  sigmoid: (g, _x, y) => mul(g, mul(y, sub(1, y))), // σ(1 − σ)
  abs: (g, x) => mul(g, sign(x)),
  sign: null,
  erf: (g, x) => mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))), // 2/√π e^(−x²)
  // silu = x σ(x); d/dx = σ (1 + x (1 − σ))
  silu: (g, x) => {
    const s = sigmoid(x);
    return mul(g, mul(s, add(1, mul(x, sub(1, s)))));
  },
  // gelu = x Φ(x); d/dx = Φ(x) + x φ(x), φ(x) = e^(−x²/2)/√(2π)
  gelu: (g, x) => {
    const be = x.backend;
    if (be.geluBackward !== undefined && g.dtype === x.dtype && g.backend === be) {
      return new Tensor(be.geluBackward(x.storage, g.storage), x.shape);
    }
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(square(x), -0.5)), SQRT_2_OVER_PI / 2);
    return mul(g, add(cdf, mul(x, pdf)));
  },
  square: (g, x) => mul(g, mul(x, 2)),
  reciprocal: (g, _x, y) => mul(g, neg(square(y))), // −1/x²
  floor: null,
};

export function unary(op: UnaryOp, x: Tensor): Tensor {
  const out = unaryRaw(op, x);
  const vjp = unaryVjps[op];
  if (vjp === null) return out;
  return record(out, op, [x], (g) => [vjp(g, x, out)]);
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const erf = (x: Tensor): Tensor => unary('erf', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x);
export const floor = (x: Tensor): Tensor => unary('floor', x);

type BinaryVjp = (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor, Tensor];

/** Ties of maximum/minimum split the gradient evenly, as PyTorch does. */
function tieMask(a: Tensor, b: Tensor, win: 'gt' | 'lt'): [Tensor, Tensor] {
  const half = mul(binaryRaw('eq', a, b), 0.5);
  return [add(binaryRaw(win, a, b), half), add(binaryRaw(win, b, a), half)];
}

const binaryVjps: { [K in BinaryOp]: BinaryVjp | null } = {
  add: (g) => [g, g],
  sub: (g) => [g, neg(g)],
  mul: (g, a, b) => [mul(g, b), mul(g, a)],
  // d(a/b) = da/b − a db/b² = da/b − out db/b
  div: (g, _a, b, out) => {
    const ga = div(g, b);
    return [ga, neg(mul(ga, out))];
  },
  // d(a^b) = b a^(b−1) da + a^b ln a db (ln a taken as 0 where a ≤ 0, as PyTorch does at a = 0)
  pow: (g, a, b, out) => {
    const ga = mul(g, mul(b, pow(a, sub(b, 1))));
    const pos = binaryRaw('gt', a, scalarLike(a, 0));
    const lna = where(pos, log(where(pos, a, scalarLike(a, 1))), scalarLike(a, 0));
    return [ga, mul(g, mul(out, lna))];
  },
  maximum: (g, a, b) => {
    const [ma, mb] = tieMask(a, b, 'gt');
    return [mul(g, ma), mul(g, mb)];
  },
  minimum: (g, a, b) => {
    const [ma, mb] = tieMask(a, b, 'lt');
    return [mul(g, ma), mul(g, mb)];
  },
  lt: null,
  le: null,
  gt: null,
  ge: null,
  eq: null,
  ne: null,
};

/** Frees the 0-d tensors made for number operands once no graph node refers to them. */
function releaseLifted(out: Tensor, a: TensorLike, ta: Tensor, b: TensorLike, tb: Tensor): Tensor {
  if (out.node === null) {
    if (typeof a === 'number') ta.dispose();
    if (typeof b === 'number') tb.dispose();
  }
  return out;
}

export function binary(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = lift(a, b, op);
  const out = binaryRaw(op, ta, tb);
  const vjp = binaryVjps[op];
  if (vjp !== null) {
    record(out, op, [ta, tb], (g, needs) => {
      const [ga, gb] = vjp(g, ta, tb, out);
      return [needs[0] ? sumTo(ga, ta.shape) : null, needs[1] ? sumTo(gb, tb.shape) : null];
    });
  }
  return releaseLifted(out, a, ta, b, tb);
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b);
export const pow = (a: TensorLike, b: TensorLike): Tensor => binary('pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b);
/** Comparisons give 1 or 0 in the operands' dtype; they carry no gradient. */
export const lt = (a: TensorLike, b: TensorLike): Tensor => binary('lt', a, b);
export const le = (a: TensorLike, b: TensorLike): Tensor => binary('le', a, b);
export const gt = (a: TensorLike, b: TensorLike): Tensor => binary('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike): Tensor => binary('ge', a, b);
export const eq = (a: TensorLike, b: TensorLike): Tensor => binary('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike): Tensor => binary('ne', a, b);

/** where(cond ≠ 0, a, b) with broadcasting; the gradient flows to the chosen branch. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = lift(a, b, 'where');
  if (cond.backend !== ta.backend) throw new Error('where: condition is on another backend');
  const outShape = broadcastShapes(
    broadcastShapes(cond.shape, ta.shape, 'where'),
    tb.shape,
    'where',
  );
  const strides = [cond, ta, tb].map((t) => broadcastStrides(t.shape, outShape));
  const s = ta.backend.where(cond.storage, ta.storage, tb.storage, { outShape, strides });
  const out = new Tensor(s, outShape);
  record(out, 'where', [ta, tb], (g, needs) => [
    needs[0] ? sumTo(where(cond, g, 0), ta.shape) : null,
    needs[1] ? sumTo(where(cond, 0, g), tb.shape) : null,
  ]);
  return releaseLifted(out, a, ta, b, tb);
}

/** Clamps to [min, max] (either bound optional); gradient 1 inside, 0 outside. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  return composite(() => {
    let y = x;
    if (min !== undefined) y = where(compareRaw('lt', x, min), min, y);
    // Compare y, not x: with min > max every element becomes max, as in PyTorch.
    if (max !== undefined) y = where(compareRaw('gt', y, max), max, y);
    return y;
  });
}

/** x op v as a 0/1 mask, freeing the 0-d tensor made for v (no graph needs it). */
function compareRaw(op: 'lt' | 'gt', x: Tensor, v: number): Tensor {
  const s = scalarLike(x, v);
  const mask = binaryRaw(op, x, s);
  s.dispose();
  return mask;
}

/** Converts dtype; float-to-float casts pass gradients through. */
export function cast(x: Tensor, dtype: DType): Tensor {
  // Same dtype: a new view that stays in the graph (alias alone would cut it, like detach).
  if (dtype === x.dtype) return record(x.alias(), 'cast', [x], (g) => [g]);
  const out = new Tensor(x.backend.cast(x.storage, dtype), x.shape);
  if (dtype === 'int32' || x.dtype === 'int32') return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}
