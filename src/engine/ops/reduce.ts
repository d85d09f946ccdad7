/** Reductions over axes (keepDims or not) and their VJPs. */
import type { ReduceOp } from '../backend.js';
import { fmtShape, normAxes, type Shape, shapesEqual } from '../shape.js';
import { composite, record, Tensor } from '../tensor.js';
import { div, eq, mul, sub, square } from './elementwise.js';
import { expand, reshape } from './movement.js';

export type Axes = number | readonly number[] | undefined;

function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/**
 * Runs a backend reduction. Each run of adjacent reduced axes is read in place as the middle of
 * [outer, size, inner], the innermost run first (sum, max and min are associative, so
 * [N, C, H, W] over (0, 2, 3) is H·W, then N, with no transposed copy).
 */
function reduceRaw(op: ReduceOp, x: Tensor, axes: readonly number[]): Tensor {
  const prod = (s: Shape): number => s.reduce((p, d) => p * d, 1);
  const sorted = [...axes].sort((a, b) => a - b);
  const runs: [number, number][] = [];
  for (const a of sorted) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === a - 1) last[1] = a;
    else runs.push([a, a]);
  }
  if (runs.length === 0) runs.push([0, -1]);
  let src = x;
  let shape: number[] = [...x.shape];
  for (let r = runs.length - 1; r >= 0; r--) {
    const [lo, hi] = runs[r]!;
    const outer = prod(shape.slice(0, lo));
    const size = prod(shape.slice(lo, hi + 1));
    const inner = prod(shape.slice(hi + 1));
    shape = shape.map((d, i) => (i >= lo && i <= hi ? 1 : d));
    const next = new Tensor(x.backend.reduce(op, src.storage, outer, size, inner), [...shape]);
    if (src !== x) src.dispose();
    src = next;
  }
  return src;
}

function finishShape(t: Tensor, x: Tensor, axes: readonly number[], keepDims: boolean): Tensor {
  if (keepDims) return t;
  const shape = x.shape.filter((_, i) => !axes.includes(i));
  return reshape(t, shape);
}

/** Σ over axes (all when undefined). */
export function sum(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  const ax = normAxes(axes, x.rank);
  return composite(() => {
    const out = reduceRaw('sum', x, ax);
    record(out, 'sum', [x], (g) => [expand(g, x.shape)]);
    return finishShape(out, x, ax, keepDims);
  });
}

export function mean(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  const ax = normAxes(axes, x.rank);
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return composite(() => div(sum(x, ax, keepDims), n));
}

function extremum(op: 'max' | 'min', x: Tensor, axes: Axes, keepDims: boolean): Tensor {
  const ax = normAxes(axes, x.rank);
  if (ax.some((a) => x.shape[a] === 0)) throw new Error(`${op}: reduction over an empty axis`);
  return composite(() => {
    const out = reduceRaw(op, x, ax);
    // The gradient goes to the arg-extremum, split evenly among ties.
    record(out, op, [x], (g) => {
      const mask = eq(x, out);
      const count = reduceRaw('sum', mask, ax);
      return [mul(mask, div(g, count))];
    });
    return finishShape(out, x, ax, keepDims);
  });
}

export function max(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  return extremum('max', x, axes, keepDims);
}

export function min(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  return extremum('min', x, axes, keepDims);
}

/** Variance over axes: Σ(x − x̄)² / (n − correction); correction 0 is the biased estimate. */
export function variance(x: Tensor, axes?: Axes, keepDims = false, correction = 0): Tensor {
  const ax = normAxes(axes, x.rank);
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return composite(() => {
    const centered = sub(x, mean(x, ax, true));
    return div(sum(square(centered), ax, keepDims), n - correction);
  });
}

/** Index of the maximum along one axis (int32, no gradient). */
export function argmax(x: Tensor, axis: number, keepDims = false): Tensor {
  const [a] = normAxes(axis, x.rank) as [number];
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  if (x.shape[a] === 0 && outer * inner > 0) {
    throw new Error(`argmax: axis ${axis} of a tensor of shape ${fmtShape(x.shape)} is empty`);
  }
  return composite(() => {
    const s = x.backend.argmax(x.storage, outer, x.shape[a]!, inner);
    return finishShape(new Tensor(s, keptShape(x.shape, [a])), x, [a], keepDims);
  });
}

/** Sums a broadcast gradient back down to `shape` (the adjoint of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return composite(() => reshape(sum(g, axes, true), shape));
}
