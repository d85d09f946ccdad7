/**
 * WGSL ports of the element-wise kernels in backends/cpu/elementwise.ts (unaryKernel,
 * binaryKernel with broadcast strides, whereKernel) and of CpuBackend.fill / CpuBackend.cast.
 * float32 ops use the driver-independent scalars of math.wgsl.ts. int32 ops follow what the CPU
 * backend stores into an Int32Array: integer arithmetic wraps, division truncates (x/0 gives 0),
 * and the transcendental ops compute in f32 and truncate.
 */
import type { BinaryOp, UnaryOp } from '../../backend.js';
import type { DType } from '../../dtype.js';
import {
  compiledRank,
  declareBuffers,
  flatMain,
  kernel,
  stridedOffsets,
  wgslType,
} from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { Kernel } from './runtime.js';
import { paramFields } from './params.js';

type Expr1 = (x: string) => string;
type Expr2 = (a: string, b: string) => string;

/** f32 expression of each unary op (port of unaryFns). */
const unaryF32: { [K in UnaryOp]: Expr1 } = {
  neg: (x) => `-${x}`,
  exp: (x) => `m_exp(${x})`,
  log: (x) => `m_log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  rsqrt: (x) => `(1.0 / sqrt(${x}))`,
  sin: (x) => `m_sin(${x})`,
  cos: (x) => `m_cos(${x})`,
  tanh: (x) => `m_tanh(${x})`,
  sigmoid: (x) => `m_sigmoid(${x})`,
  abs: (x) => `abs(${x})`,
  sign: (x) => `select(select(0.0, -1.0, ${x} < 0.0), 1.0, ${x} > 0.0)`,
  erf: (x) => `m_erf(${x})`,
  silu: (x) => `(${x} * m_sigmoid(${x}))`,
  gelu: (x) => `m_gelu(${x})`,
  square: (x) => `(${x} * ${x})`,
  reciprocal: (x) => `(1.0 / ${x})`,
  floor: (x) => `floor(${x})`,
};

/** int32 forms that stay in integers; the rest go through f32 and m_f2i. */
const unaryI32: { [K in UnaryOp]?: Expr1 } = {
  neg: (x) => `-${x}`,
  abs: (x) => `abs(${x})`,
  sign: (x) => `sign(${x})`,
  square: (x) => `(${x} * ${x})`,
  floor: (x) => x,
};

type Comparison = 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne';

/** The comparisons, each select(0, 1, a OP b) with the dtype's literals for 0 and 1. */
function comparisons(zero: string, one: string): { [K in Comparison]: Expr2 } {
  function cmp(op: string): Expr2 {
    return (a, b) => `select(${zero}, ${one}, ${a} ${op} ${b})`;
  }
  return { lt: cmp('<'), le: cmp('<='), gt: cmp('>'), ge: cmp('>='), eq: cmp('=='), ne: cmp('!=') };
}

/** f32 expression of each binary op (port of binaryFns; NaN handling as there). */
const binaryF32: { [K in BinaryOp]: Expr2 } = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `${a} / ${b}`,
  pow: (a, b) => `m_pow(${a}, ${b})`,
  maximum: (a, b) => `select(${b}, ${a}, ${a} >= ${b} || m_isnan(${a}))`,
  minimum: (a, b) => `select(${b}, ${a}, ${a} <= ${b} || m_isnan(${a}))`,
  ...comparisons('0.0', '1.0'),
};

const binaryI32: { [K in BinaryOp]: Expr2 } = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `select(0, ${a} / ${b}, ${b} != 0)`,
  pow: (a, b) => `m_f2i(m_pow(f32(${a}), f32(${b})))`,
  maximum: (a, b) => `max(${a}, ${b})`,
  minimum: (a, b) => `min(${a}, ${b})`,
  ...comparisons('0', '1'),
};

/** Every m_* function an expression calls (for mathWgsl). */
function mathUsed(expr: string): string[] {
  return [...new Set(expr.match(/m_[a-z0-9_]+/g) ?? [])];
}

/** out[i] = bits reinterpreted as the dtype (exact for any f32 or i32 value). */
export function fillKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`fill/${t}`, () => ({
    buffers: [{ name: 'out', type: t, kind: 'write' }],
    params: paramFields({ n: 'u32', bits: 'u32' }),
    body: flatMain(`  out[i] = bitcast<${t}>(p_bits());`),
  }));
}

/** Port of CpuBackend.cast: float to int truncates toward zero; same-type casts copy. */
export function castKernel(from: DType, to: DType): Kernel {
  const a = wgslType(from);
  const b = wgslType(to);
  const expr = a === b ? 'x[i]' : b === 'i32' ? 'm_f2i(x[i])' : 'f32(x[i])';
  return kernel(`cast/${a}/${b}`, () => ({
    buffers: [
      { name: 'x', type: a, kind: 'read' },
      { name: 'out', type: b, kind: 'write' },
    ],
    params: paramFields({ n: 'u32' }),
    body: mathWgsl(mathUsed(expr)) + '\n' + flatMain(`  out[i] = ${expr};`),
  }));
}

export function unaryKernel(op: UnaryOp, dtype: DType): Kernel {
  const t = wgslType(dtype);
  let expr: string;
  if (t === 'f32') expr = unaryF32[op]('v');
  else expr = unaryI32[op]?.('v') ?? `m_f2i(${unaryF32[op]('f32(v)')})`;
  return kernel(`unary/${op}/${t}`, () => ({
    buffers: declareBuffers(t, ['x'], ['out']),
    params: paramFields({ n: 'u32' }),
    body: mathWgsl(mathUsed(expr)) + '\n' + flatMain(`  let v = x[i];\n  out[i] = ${expr};`),
  }));
}

/** Parameters of a strided kernel with `inputs` inputs at collapsed rank `rank`. */
function stridedParams(rank: number, inputs: number) {
  return [
    { name: 'n', type: 'u32' as const },
    { name: 'rank', type: 'u32' as const },
    { name: 'shape', type: 'u32' as const, count: rank },
    ...Array.from({ length: inputs }, (_, j) => ({
      name: `s${j}`,
      type: 'u32' as const,
      count: rank,
    })),
  ];
}

export function binaryKernel(op: BinaryOp, dtype: DType, rank: number): Kernel {
  rank = compiledRank(rank);
  const t = wgslType(dtype);
  const expr = (t === 'f32' ? binaryF32 : binaryI32)[op]('va', 'vb');
  return kernel(`binary/${op}/${t}/${rank}`, () => ({
    buffers: declareBuffers(t, ['a', 'b'], ['out']),
    params: stridedParams(rank, 2),
    body:
      mathWgsl(mathUsed(expr)) +
      '\n' +
      flatMain(
        `${stridedOffsets(rank, 2)}\n  let va = a[off0];\n  let vb = b[off1];\n  out[i] = ${expr};`,
      ),
  }));
}

export function whereKernel(condType: DType, dtype: DType, rank: number): Kernel {
  rank = compiledRank(rank);
  const c = wgslType(condType);
  const t = wgslType(dtype);
  const zero = c === 'f32' ? '0.0' : '0';
  return kernel(`where/${c}/${t}/${rank}`, () => ({
    buffers: [
      { name: 'cond', type: c, kind: 'read' },
      { name: 'a', type: t, kind: 'read' },
      { name: 'b', type: t, kind: 'read' },
      { name: 'out', type: t, kind: 'write' },
    ],
    params: stridedParams(rank, 3),
    body: flatMain(
      `${stridedOffsets(rank, 3)}\n  out[i] = select(b[off2], a[off1], cond[off0] != ${zero});`,
    ),
  }));
}
