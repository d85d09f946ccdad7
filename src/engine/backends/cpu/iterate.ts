import { mergeAxes } from '../../shape.js';

/**
 * Strided iteration over an output shape, row by row: calls fn with the offset of each row in
 * every input (through its strides) and the output offset. The last axis is the row, so the
 * caller's inner loop is a plain strided loop with no index arithmetic.
 */
export function forEachRow(
  outShape: readonly number[],
  strides: readonly (readonly number[])[],
  fn: (outOffset: number, inOffsets: readonly number[]) => void,
): void {
  const rank = outShape.length;
  const nIn = strides.length;
  const offsets = new Array<number>(nIn).fill(0);
  if (rank === 0) {
    fn(0, offsets);
    return;
  }
  const rowLen = outShape[rank - 1]!;
  let rows = 1;
  for (let i = 0; i < rank - 1; i++) rows *= outShape[i]!;
  if (rows === 0 || rowLen === 0) return;
  const counter = new Array<number>(rank - 1).fill(0);
  for (let r = 0; r < rows; r++) {
    fn(r * rowLen, offsets);
    // Odometer increment of the outer index, updating each input offset incrementally.
    for (let ax = rank - 2; ax >= 0; ax--) {
      counter[ax]!++;
      for (let j = 0; j < nIn; j++) offsets[j]! += strides[j]![ax]!;
      if (counter[ax]! < outShape[ax]!) break;
      for (let j = 0; j < nIn; j++) offsets[j]! -= strides[j]![ax]! * outShape[ax]!;
      counter[ax] = 0;
    }
  }
}

/**
 * The same iteration over fewer, longer rows (mergeAxes); the output is contiguous, so its axes
 * always merge. Keeps one axis when the input had any.
 */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  // One axis stays as it is, size 1 included.
  if (shape.length === 1) return { shape: [shape[0]!], strides: strides.map((st) => [st[0]!]) };
  return mergeAxes(shape, strides, shape.length > 0);
}
