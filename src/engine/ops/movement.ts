/** Shape and data movement: reshape, permute, expand, slice, pad, concat, gather, one-hot. */
import {
  broadcastShapes,
  broadcastStrides,
  fmtShape,
  normAxis,
  type Shape,
  shapesEqual,
  sizeOf,
  stridesOf,
} from '../shape.js';
import { composite, record, Tensor } from '../tensor.js';
import { arange } from './creation.js';
import { cast, eq } from './elementwise.js';
import { sumTo } from './reduce.js';

/** Same data, new shape (one −1 is inferred). Shares storage: no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.filter((d) => d !== -1);
  const inferred = shape.length - known.length;
  if (inferred > 1) throw new Error(`reshape: more than one -1 in ${fmtShape(shape)}`);
  const knownSize = sizeOf(known);
  const full = shape.map((d) => (d === -1 ? (knownSize === 0 ? 0 : x.size / knownSize) : d));
  if (sizeOf(full) !== x.size || !full.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(
      `reshape: cannot view ${fmtShape(x.shape)} (${x.size} elements) as ${fmtShape(shape)}`,
    );
  }
  const out = Tensor.view(x, full);
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

/** Inserts a size-1 axis at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Removes size-1 axes (the given ones, or all). */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  const list =
    axes === undefined
      ? undefined
      : (typeof axes === 'number' ? [axes] : axes).map((a) => normAxis(a, x.rank));
  for (const a of list ?? []) {
    if (x.shape[a] !== 1)
      throw new Error(`squeeze: axis ${a} of ${fmtShape(x.shape)} has size ${x.shape[a]}`);
  }
  return reshape(
    x,
    x.shape.filter((d, i) => (list === undefined ? d !== 1 : !list.includes(i))),
  );
}

/** Flattens axes start..end (inclusive) into one. */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis(start, x.rank);
  const e = normAxis(end, x.rank);
  const mid = sizeOf(x.shape.slice(s, e + 1));
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

/** Copy with permuted axes, no autograd (shared by reductions and permute). */
export function permuteData(x: Tensor, axes: readonly number[]): Tensor {
  const st = stridesOf(x.shape);
  const outShape = axes.map((a) => x.shape[a]!);
  const strides = axes.map((a) => st[a]!);
  return new Tensor(x.backend.stridedCopy(x.storage, { outShape, strides, offset: 0 }), outShape);
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const ax = axes.map((a) => normAxis(a, x.rank));
  if (ax.length !== x.rank || new Set(ax).size !== ax.length) {
    throw new Error(`permute: [${axes.join(', ')}] is not a permutation of ${x.rank} axes`);
  }
  if (ax.every((a, i) => a === i)) return reshape(x, x.shape);
  const out = permuteData(x, ax);
  const inverse = new Array<number>(ax.length);
  ax.forEach((a, i) => (inverse[a] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const axes = x.shape.map((_, i) => i);
  const ia = normAxis(a, x.rank);
  const ib = normAxis(b, x.rank);
  [axes[ia], axes[ib]] = [axes[ib]!, axes[ia]!];
  return permute(x, axes);
}

/** Materializes x broadcast to shape (NumPy rules). Gradient: sum back to x's shape. */
export function expand(x: Tensor, shape: Shape): Tensor {
  const outShape = broadcastShapes(x.shape, shape, 'expand');
  if (!shapesEqual(outShape, shape)) {
    throw new Error(`expand: cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (shapesEqual(x.shape, shape)) return reshape(x, shape);
  const strides = broadcastStrides(x.shape, outShape);
  const out = new Tensor(
    x.backend.stridedCopy(x.storage, { outShape, strides, offset: 0 }),
    outShape,
  );
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/**
 * x[start_0:end_0, start_1:end_1, ...] (step 1; missing trailing axes are taken whole; negative
 * indices count from the end, as in Python).
 */
export function slice(x: Tensor, starts: readonly number[], ends?: readonly number[]): Tensor {
  if (starts.length > x.rank) throw new Error(`slice: ${starts.length} starts for rank ${x.rank}`);
  const st = stridesOf(x.shape);
  const lo: number[] = [];
  const outShape: number[] = [];
  let offset = 0;
  x.shape.forEach((d, i) => {
    const clampIdx = (v: number): number => Math.min(d, Math.max(0, v < 0 ? v + d : v));
    const s = clampIdx(starts[i] ?? 0);
    const e = Math.max(s, clampIdx(ends?.[i] ?? d));
    lo.push(s);
    outShape.push(e - s);
    offset += s * st[i]!;
  });
  const out = new Tensor(
    x.backend.stridedCopy(x.storage, { outShape, strides: st, offset }),
    outShape,
  );
  return record(out, 'slice', [x], (g) => [
    pad(
      g,
      lo.map((s, i) => [s, x.shape[i]! - s - outShape[i]!] as const),
    ),
  ]);
}

/** Pads with a constant: widths[i] = [before, after] for axis i (missing axes: none). */
export function pad(x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor {
  if (widths.length > x.rank)
    throw new Error(`pad: ${widths.length} pad widths for rank ${x.rank}`);
  const before = x.shape.map((_, i) => widths[i]?.[0] ?? 0);
  const after = x.shape.map((_, i) => widths[i]?.[1] ?? 0);
  if ([...before, ...after].some((w) => !Number.isInteger(w) || w < 0)) {
    throw new Error(`pad: widths must be non-negative integers, got ${JSON.stringify(widths)}`);
  }
  const outShape = x.shape.map((d, i) => d + before[i]! + after[i]!);
  const s = x.backend.pad(x.storage, { inShape: x.shape, outShape, before, value });
  const out = new Tensor(s, outShape);
  return record(out, 'pad', [x], (g) => [
    slice(
      g,
      before,
      before.map((b, i) => b + x.shape[i]!),
    ),
  ]);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors');
  const first = xs[0]!;
  const a = normAxis(axis, first.rank);
  for (const t of xs) {
    const ok = t.rank === first.rank && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!ok)
      throw new Error(
        `concat: shapes ${fmtShape(first.shape)} and ${fmtShape(t.shape)} differ off axis ${a}`,
      );
  }
  for (const t of xs) {
    if (t.dtype !== first.dtype || t.backend !== first.backend) {
      throw new Error(
        `concat: ${t.dtype} ${fmtShape(t.shape)} on ${t.backend.name} joined to ` +
          `${first.dtype} ${fmtShape(first.shape)} on ${first.backend.name}`,
      );
    }
  }
  if (xs.length === 1) return reshape(first, first.shape);
  // Each part is [outer, its extent on the axis × inner], placed side by side in the rows.
  const outer = sizeOf(first.shape.slice(0, a));
  const inner = sizeOf(first.shape.slice(a + 1));
  const lengths = xs.map((t) => t.shape[a]! * inner);
  const outShape = first.shape.map((d, i) =>
    i === a ? xs.reduce((n, t) => n + t.shape[a]!, 0) : d,
  );
  const out = new Tensor(
    first.backend.concat(
      xs.map((t) => t.storage),
      { outer, lengths },
    ),
    outShape,
  );
  // The gradient of each part is its slice of g along the axis.
  return record(out, 'concat', xs, (g, needs) => {
    let at = 0;
    return xs.map((t, k) => {
      const lo = at;
      at += t.shape[a]!;
      if (!needs[k]) return null;
      const starts = t.shape.map((_, i) => (i === a ? lo : 0));
      return slice(
        g,
        starts,
        t.shape.map((d, i) => (i === a ? at : d)),
      );
    });
  });
}

/** Joins tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('stack: no tensors');
  return composite(() =>
    concat(
      xs.map((t) => unsqueeze(t, axis)),
      axis,
    ),
  );
}

/** Selects entries along `axis` by int32 indices (1-D): embeddings and index_select. */
export function gather(x: Tensor, axis: number, indices: Tensor): Tensor {
  if (indices.dtype !== 'int32')
    throw new Error(`gather: indices must be int32, got ${indices.dtype}`);
  const a = normAxis(axis, x.rank);
  const spec = {
    outer: sizeOf(x.shape.slice(0, a)),
    axisSize: x.shape[a]!,
    inner: sizeOf(x.shape.slice(a + 1)),
    numIndices: indices.size,
  };
  const outShape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  return composite(() => {
    // The 1-D view of the indices that the backward reads (it holds the storage until then).
    const idx = indices.rank === 1 ? indices : reshape(indices, [indices.size]);
    const out = new Tensor(x.backend.gather(x.storage, idx.storage, spec), outShape);
    return record(out, 'gather', [x], (g) => [
      new Tensor(x.backend.scatterAdd(g.storage, idx.storage, spec), x.shape),
    ]);
  });
}

/** One-hot rows for int32 class indices: [...shape, numClasses] in the given float dtype. */
export function oneHot(
  indices: Tensor,
  numClasses: number,
  dtype: 'float32' | 'float64' = 'float32',
): Tensor {
  return composite(() => {
    const classes = arange(0, numClasses, 1, { dtype, backend: indices.backend });
    return eq(unsqueeze(cast(indices, dtype), -1), classes);
  });
}
