/** Data movement kernels: strided copy (permute/slice/expand), pad, concat, gather and its adjoint. */
import type { ConcatSpec, GatherSpec, PadSpec, StridedCopySpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { stridesOf } from '../../shape.js';
import { coalesce, forEachRow } from './iterate.js';

export function stridedCopyKernel(x: TypedArray, spec: StridedCopySpec, out: TypedArray): void {
  const c = coalesce(spec.outShape, [spec.strides]);
  const shape = c.shape;
  const strides = c.strides[0]!;
  const rank = shape.length;
  if (rank === 0) {
    if (out.length > 0) out[0] = x[spec.offset]!;
    return;
  }
  if (shape.some((d) => d === 0)) return;
  // Output elements per index of each axis.
  const block = stridesOf(shape);
  const last = rank - 1;
  const rowLen = shape[last]!;
  const step = strides[last]!;
  /** Writes out[o ..] for the axes from `ax` on, reading from x at p. */
  const copy = (ax: number, p: number, o: number): void => {
    if (ax === last) {
      if (step === 1) out.set(x.subarray(p, p + rowLen), o);
      else if (step === 0) out.fill(x[p]!, o, o + rowLen);
      else for (let i = 0; i < rowLen; i++, p += step) out[o + i] = x[p]!;
      return;
    }
    const n = shape[ax]!;
    const size = block[ax]!;
    if (strides[ax] === 0) {
      // A broadcast axis: its first block once, then copies of it (expand, nearest upsampling).
      copy(ax + 1, p, o);
      for (let j = 1; j < n; j++) out.copyWithin(o + j * size, o, o + size);
      return;
    }
    if (ax === last - 1 && rowLen <= 8) {
      // Short rows (a broadcast last axis of 2, say): one loop, no call a row.
      const s = strides[ax]!;
      for (let j = 0; j < n; j++, p += s) {
        for (let i = 0, q = p; i < rowLen; i++, q += step) out[o++] = x[q]!;
      }
      return;
    }
    const s = strides[ax]!;
    for (let j = 0; j < n; j++) copy(ax + 1, p + j * s, o + j * size);
  };
  copy(0, spec.offset, 0);
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

export function concatKernel(
  parts: readonly TypedArray[],
  spec: ConcatSpec,
  out: TypedArray,
): void {
  const total = spec.lengths.reduce((a, b) => a + b, 0);
  let at = 0;
  parts.forEach((x, k) => {
    const len = spec.lengths[k]!;
    for (let o = 0; o < spec.outer; o++) {
      out.set(x.subarray(o * len, (o + 1) * len), o * total + at);
    }
    at += len;
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
