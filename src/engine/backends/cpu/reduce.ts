/** Reductions over the middle axis of [outer, size, inner]. */
import type { ReduceOp } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';

export function reduceKernel(
  op: ReduceOp,
  x: TypedArray,
  outer: number,
  size: number,
  inner: number,
  out: TypedArray,
): void {
  const init = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
  if (inner === 1 && op === 'sum') {
    // Rows reduced whole (a scalar accumulator instead of a one-element array).
    for (let o = 0, k = 0; o < outer; o++) {
      let a = 0;
      for (const end = k + size; k < end; k++) a += x[k]!;
      out[o] = a;
    }
    return;
  }
  // Accumulate in f64 whatever the storage type.
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(init);
    const base = o * size * inner;
    for (let r = 0; r < size; r++) {
      const row = base + r * inner;
      if (op === 'sum') {
        for (let i = 0; i < inner; i++) acc[i]! += x[row + i]!;
      } else if (op === 'max') {
        for (let i = 0; i < inner; i++) {
          const v = x[row + i]!;
          if (v > acc[i]! || Number.isNaN(v)) acc[i] = v;
        }
      } else {
        for (let i = 0; i < inner; i++) {
          const v = x[row + i]!;
          if (v < acc[i]! || Number.isNaN(v)) acc[i] = v;
        }
      }
    }
    for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i]!;
  }
}

/** First index of the maximum (NaN counts as maximal). */
export function argmaxKernel(
  x: TypedArray,
  outer: number,
  size: number,
  inner: number,
  out: Int32Array,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = -Infinity;
      let arg = 0;
      for (let r = 0; r < size; r++) {
        const v = x[(o * size + r) * inner + i]!;
        if (v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
          best = v;
          arg = r;
        }
      }
      out[o * inner + i] = arg;
    }
  }
}
