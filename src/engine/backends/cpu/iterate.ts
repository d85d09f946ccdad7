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
 * The same iteration over fewer, longer rows: drops axes of size 1 and merges axis i into i + 1
 * wherever every input steps over both as one (strides[i] = strides[i+1]·shape[i+1]); the output
 * is contiguous, so it always merges. [B, C, H, W] + [B, C, 1, 1] becomes [B·C, H·W] rows with
 * stride 0 in the second input. Keeps at least one axis when the input had any.
 */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let ax = 0; ax < shape.length; ax++) {
    const size = shape[ax]!;
    if (size === 1 && shape.length > 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, j) => outStrides[j]![last] === st[ax]! * size)) {
      outShape[last] = outShape[last]! * size;
      strides.forEach((st, j) => (outStrides[j]![last] = st[ax]!));
      continue;
    }
    outShape.push(size);
    strides.forEach((st, j) => outStrides[j]!.push(st[ax]!));
  }
  if (outShape.length === 0 && shape.length > 0) {
    outShape.push(1);
    strides.forEach((_, j) => outStrides[j]!.push(0));
  }
  return { shape: outShape, strides: outStrides };
}
