/** Data movement kernels: strided copy (permute/slice/expand), pad, gather and its adjoint. */
import type { GatherSpec, PadSpec, StridedCopySpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { stridesOf } from '../../shape.js';
import { coalesce, forEachRow } from './iterate.js';

export function stridedCopyKernel(x: TypedArray, spec: StridedCopySpec, out: TypedArray): void {
  const c = coalesce(spec.outShape, [spec.strides]);
  const rank = c.shape.length;
  const rowLen = rank === 0 ? 1 : c.shape[rank - 1]!;
  const step = rank === 0 ? 0 : c.strides[0]![rank - 1]!;
  forEachRow(c.shape, c.strides, (o, offs) => {
    let p = spec.offset + offs[0]!;
    for (let i = 0; i < rowLen; i++, p += step) out[o + i] = x[p]!;
  });
}

export function padKernel(x: TypedArray, spec: PadSpec, out: TypedArray): void {
  out.fill(spec.value);
  const rank = spec.inShape.length;
  if (x.length === 0) return;
  if (rank === 0) {
    out[0] = x[0]!;
    return;
  }
  const outStrides = stridesOf(spec.outShape);
  let base = 0;
  for (let i = 0; i < rank; i++) base += spec.before[i]! * outStrides[i]!;
  const rowLen = spec.inShape[rank - 1]!;
  // Iterate input rows; the output offset of each row follows the output strides.
  forEachRow(spec.inShape, [outStrides], (inOff, offs) => {
    out.set(x.subarray(inOff, inOff + rowLen), base + offs[0]!);
  });
}

function checkIndex(v: number, axisSize: number): void {
  if (v < 0 || v >= axisSize) {
    throw new Error(`index ${v} is out of range for an axis of size ${axisSize}`);
  }
}

export function gatherKernel(
  x: TypedArray,
  indices: TypedArray,
  spec: GatherSpec,
  out: TypedArray,
): void {
  const { outer, axisSize, inner, numIndices } = spec;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < numIndices; i++) {
      const v = indices[i]!;
      checkIndex(v, axisSize);
      const src = (o * axisSize + v) * inner;
      out.set(x.subarray(src, src + inner), (o * numIndices + i) * inner);
    }
  }
}

export function scatterAddKernel(
  src: TypedArray,
  indices: TypedArray,
  spec: GatherSpec,
  out: TypedArray,
): void {
  const { outer, axisSize, inner, numIndices } = spec;
  out.fill(0);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < numIndices; i++) {
      const v = indices[i]!;
      checkIndex(v, axisSize);
      const dst = (o * axisSize + v) * inner;
      const s = (o * numIndices + i) * inner;
      for (let r = 0; r < inner; r++) out[dst + r]! += src[s + r]!;
    }
  }
}
