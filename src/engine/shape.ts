/** Shape arithmetic shared by the op layer and the backends. Shapes are row-major. */
export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C-contiguous) strides in elements. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** NumPy broadcasting of two shapes; throws naming both shapes when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape, what = 'broadcast'): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${what}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of `shape` as if it had `outShape` (0 on broadcast axes). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const st = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => {
    const j = i - off;
    return j < 0 || shape[j] === 1 ? 0 : st[j]!;
  });
}

/** Normalizes a possibly negative axis; throws naming the axis and rank. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${what} ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function normAxes(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(a, rank)))];
  if (out.length !== list.length) throw new Error(`repeated axis in [${list.join(', ')}]`);
  return out.sort((x, y) => x - y);
}

/** The shape of anything that has one, formatted: `[2, 3]`. */
export function fmtShapeOf(t: { readonly shape: Shape }): string {
  return fmtShape(t.shape);
}

/**
 * An iteration over `shape` (each input stepping by its `strides`) as fewer, longer axes: drops
 * the axes of size 1 and merges axis i into i + 1 wherever every input steps over both as one
 * (strides[i] = strides[i+1]·shape[i+1]). [B, C, H, W] + [B, C, 1, 1] becomes [B·C, H·W] with
 * stride 0 in the second input. With no axis left (every size 1), the result is [1] with
 * stride 0 when `keepOne`, empty otherwise.
 */
export function mergeAxes(
  shape: Shape,
  strides: readonly (readonly number[])[],
  keepOne: boolean,
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let ax = 0; ax < shape.length; ax++) {
    const size = shape[ax]!;
    if (size === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, j) => outStrides[j]![last] === st[ax]! * size)) {
      outShape[last] = outShape[last]! * size;
      strides.forEach((st, j) => (outStrides[j]![last] = st[ax]!));
      continue;
    }
    outShape.push(size);
    strides.forEach((st, j) => outStrides[j]!.push(st[ax]!));
  }
  if (outShape.length === 0 && keepOne) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}
