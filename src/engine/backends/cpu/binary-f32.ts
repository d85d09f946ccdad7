/**
 * float32 add, sub, mul and div through the module's `binary` kernel (wasm/gemm.wat), four lanes
 * at a time, for the layouts a network makes: operands of the output's shape, a scalar operand,
 * and, after merging axes to [rows, length], one operand of the output's shape with the other a
 * value per row (a bias [B, C, 1, 1] on [B, C, H, W]) or one row for every row (a bias [C] on
 * [N, C]). Chunks of the operands are copied into the module's memory and the result out of it.
 * The bits are those of `binaryKernel`'s loops (float32 rounding of these four operations is
 * exact either way); any other layout is left to them.
 */
import type { BinaryOp, BroadcastSpec } from '../../backend.js';
import { coalesce } from './iterate.js';
import type { SimdRuntime } from './simd-gemm.js';

const OPS: Partial<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, div: 3 };

/** Floats of each operand per chunk copied into the module's memory. */
const CHUNK = 1 << 15;

/** How an operand of [rows, length] is read: the whole block, one float, a float a row, one row. */
type Layout = 'full' | 'scalar' | 'per-row' | 'row';

/** How an operand of size `size` is read over [rows, length] with merged `strides`. */
function layoutOf(size: number, strides: readonly number[], length: number): Layout | null {
  if (size === 1) return 'scalar';
  const [outer, inner] = strides as [number, number];
  if (inner === 1 && outer === length) return 'full';
  if (inner === 1 && outer === 0) return 'row';
  if (inner === 0 && outer === 1) return 'per-row';
  return null;
}

/**
 * out = a ∘ b (a broadcast of both to spec.outShape), or false (nothing written) where the op or
 * the layout is not one this kernel takes.
 */
export function binaryF32Simd(
  rt: SimdRuntime,
  op: BinaryOp,
  a: Float32Array,
  b: Float32Array,
  spec: BroadcastSpec,
  out: Float32Array,
): boolean {
  const code = OPS[op];
  if (code === undefined || out.length === 0) return false;
  const n = out.length;
  if (a.length === n && b.length === n) {
    runFull(rt, code, a, 'full', b, 'full', out);
    return true;
  }
  if ((a.length === 1 || a.length === n) && (b.length === 1 || b.length === n)) {
    runFull(
      rt,
      code,
      a,
      a.length === 1 ? 'scalar' : 'full',
      b,
      b.length === 1 ? 'scalar' : 'full',
      out,
    );
    return true;
  }
  const c = coalesce(spec.outShape, spec.strides);
  if (c.shape.length !== 2) return false;
  const [rows, length] = c.shape as [number, number];
  const la = layoutOf(a.length, c.strides[0]!, length);
  const lb = layoutOf(b.length, c.strides[1]!, length);
  if (la === null || lb === null) return false;
  // One operand the whole block, the other one float a row or one row for all.
  const fits = (x: Float32Array, l: Layout): boolean =>
    x.length === (l === 'per-row' ? rows : length);
  if (la === 'full' && a.length === n && (lb === 'per-row' || lb === 'row') && fits(b, lb)) {
    runRows(rt, code, a, b, lb, false, rows, length, out);
    return true;
  }
  if (lb === 'full' && b.length === n && (la === 'per-row' || la === 'row') && fits(a, la)) {
    runRows(rt, code, b, a, la, true, rows, length, out);
    return true;
  }
  return false;
}

/** Both operands whole (or scalars): chunks of CHUNK floats. */
function runFull(
  rt: SimdRuntime,
  code: number,
  a: Float32Array,
  la: Layout,
  b: Float32Array,
  lb: Layout,
  out: Float32Array,
): void {
  const n = out.length;
  // Memory: a's chunk, b's chunk (a scalar stays in its first float), the result.
  const { mem } = rt.view(3 * CHUNK);
  if (la === 'scalar') mem[0] = a[0]!;
  if (lb === 'scalar') mem[CHUNK] = b[0]!;
  for (let o = 0; o < n; o += CHUNK) {
    const m = Math.min(CHUNK, n - o);
    if (la === 'full') mem.set(a.subarray(o, o + m), 0);
    if (lb === 'full') mem.set(b.subarray(o, o + m), CHUNK);
    rt.binary(code, 0, la === 'full' ? 1 : 0, CHUNK * 4, lb === 'full' ? 1 : 0, 2 * CHUNK * 4, m);
    out.set(mem.subarray(2 * CHUNK, 2 * CHUNK + m), o);
  }
}

/**
 * [rows, length]: `full` the whole block, `other` a float a row ('per-row') or one row ('row');
 * `swapped` when `other` is the left operand.
 */
function runRows(
  rt: SimdRuntime,
  code: number,
  full: Float32Array,
  other: Float32Array,
  layout: 'per-row' | 'row',
  swapped: boolean,
  rows: number,
  length: number,
  out: Float32Array,
): void {
  // Whole rows a chunk (at least one), then the other operand: its row, or a float a row.
  const perChunk = Math.max(1, Math.floor(CHUNK / length));
  const block = perChunk * length;
  const otherAt = block;
  const otherSize = layout === 'row' ? length : perChunk;
  const { mem } = rt.view(block + otherSize);
  if (layout === 'row') mem.set(other.subarray(0, length), otherAt);
  for (let r0 = 0; r0 < rows; r0 += perChunk) {
    const r1 = Math.min(rows, r0 + perChunk);
    mem.set(full.subarray(r0 * length, r1 * length), 0);
    if (layout === 'per-row') mem.set(other.subarray(r0, r1), otherAt);
    for (let r = r0; r < r1; r++) {
      const at = (r - r0) * length * 4;
      const po = (otherAt + (layout === 'row' ? 0 : r - r0)) * 4;
      const so = layout === 'row' ? 1 : 0;
      if (swapped) rt.binary(code, po, so, at, 1, at, length);
      else rt.binary(code, at, 1, po, so, at, length);
    }
    out.set(mem.subarray(0, (r1 - r0) * length), r0 * length);
  }
}
