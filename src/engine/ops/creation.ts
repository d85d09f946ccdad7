/** Making tensors: from data, constants, ranges and the counter-based RNG. */
import type { Backend } from '../backend.js';
import { defaultBackend } from '../device.js';
import { type DType, makeArray, type TypedArray, dtypeOfArray } from '../dtype.js';
import { blocksFor } from '../rng/philox.js';
import { fmtShape, type Shape, sizeOf } from '../shape.js';
import { Tensor, type NestedArray } from '../tensor.js';
import { cast } from './elementwise.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad === true) t.requireGrad();
  return t;
}

function checkShape(shape: Shape): void {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`invalid shape ${fmtShape(shape)}: dimensions must be non-negative integers`);
  }
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  return shape;
}

function flatten(data: NestedArray, shape: Shape, out: number[], depth = 0): void {
  if (depth === shape.length) {
    if (typeof data !== 'number') throw new Error('tensor(): ragged nested array');
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new Error(
      `tensor(): ragged nested array at depth ${depth}, expected length ${shape[depth]}`,
    );
  }
  for (const d of data) flatten(d, shape, out, depth + 1);
}

/**
 * A tensor from a typed array (with a shape; the dtype follows the array unless given) or from
 * nested arrays of numbers (float32 unless given).
 */
export function tensor(
  data: TypedArray | NestedArray,
  shape?: Shape,
  opts: CreateOptions = {},
): Tensor {
  const backend = opts.backend ?? defaultBackend();
  let arr: TypedArray;
  let shp: Shape;
  if (ArrayBuffer.isView(data)) {
    shp = shape ?? [data.length];
    arr = makeArray(opts.dtype ?? dtypeOfArray(data), data.length);
    arr.set(data);
  } else {
    shp = shape ?? inferShape(data);
    const flat: number[] = [];
    flatten(data, inferShape(data), flat);
    arr = makeArray(opts.dtype ?? 'float32', flat.length);
    arr.set(flat);
  }
  checkShape(shp);
  if (sizeOf(shp) !== arr.length) {
    throw new Error(`tensor(): ${arr.length} values do not fill shape ${fmtShape(shp)}`);
  }
  return finish(new Tensor(backend.fromArray(arr), shp), opts);
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  checkShape(shape);
  const backend = opts.backend ?? defaultBackend();
  const s = backend.fill(sizeOf(shape), value, opts.dtype ?? 'float32');
  return finish(new Tensor(s, shape), opts);
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** A tensor of `like`'s shape, dtype and backend filled with value. */
export function fullLike(like: Tensor, value: number): Tensor {
  return full(like.shape, value, { dtype: like.dtype, backend: like.backend });
}

export function zerosLike(like: Tensor): Tensor {
  return fullLike(like, 0);
}

export function onesLike(like: Tensor): Tensor {
  return fullLike(like, 1);
}

/** A 0-d tensor holding value, on `like`'s backend and dtype (how numbers enter binary ops). */
export function scalarLike(like: Tensor, value: number): Tensor {
  return full([], value, { dtype: like.dtype, backend: like.backend });
}

/** [start, start+step, ...) below stop, like numpy.arange. */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const arr = makeArray(opts.dtype ?? 'float32', n);
  for (let i = 0; i < n; i++) arr[i] = start + i * step;
  return tensor(arr, [n], opts);
}

/** n evenly spaced values from start to stop inclusive, like numpy.linspace. */
export function linspace(start: number, stop: number, n: number, opts: CreateOptions = {}): Tensor {
  const arr = makeArray(opts.dtype ?? 'float32', n);
  const step = n > 1 ? (stop - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) arr[i] = i === n - 1 && n > 1 ? stop : start + i * step;
  return tensor(arr, [n], opts);
}

/**
 * A seeded stream position. Each draw of n numbers consumes ceil(n/4) Philox blocks, so the same
 * sequence of draws gives the same numbers on every backend.
 */
export class Generator {
  constructor(
    readonly seed: number,
    public offset = 0,
  ) {}

  /** Returns the offset for a draw of n numbers and advances past it. */
  take(n: number): number {
    const o = this.offset;
    this.offset += blocksFor(n);
    return o;
  }

  state(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }
}

export interface RandomOptions extends CreateOptions {
  /** Stream to draw from (advanced by the draw). */
  generator?: Generator;
  /** Or an explicit seed and block offset. */
  seed?: number;
  offset?: number;
}

function draw(kind: 'uniform' | 'normal', shape: Shape, opts: RandomOptions): Tensor {
  checkShape(shape);
  const n = sizeOf(shape);
  const backend = opts.backend ?? defaultBackend();
  let seed: number;
  let offset: number;
  if (opts.generator !== undefined) {
    seed = opts.generator.seed;
    offset = opts.generator.take(n);
  } else {
    if (opts.seed === undefined)
      throw new Error(`${kind === 'normal' ? 'randn' : 'rand'}: pass a generator or a seed`);
    seed = opts.seed;
    offset = opts.offset ?? 0;
  }
  const s = backend.random(kind, n, opts.dtype ?? 'float32', seed, offset);
  return finish(new Tensor(s, shape), opts);
}

/** Standard normal numbers from the Philox stream. */
export function randn(shape: Shape, opts: RandomOptions): Tensor {
  return draw('normal', shape, opts);
}

/** Uniform numbers in (0, 1) from the Philox stream. */
export function rand(shape: Shape, opts: RandomOptions): Tensor {
  return draw('uniform', shape, opts);
}

/** A copy of t on another backend and/or dtype (reads back through the host when needed). */
export async function transfer(
  t: Tensor,
  backend: Backend,
  dtype: DType = t.dtype,
): Promise<Tensor> {
  if (backend === t.backend) return t.dtype === dtype ? t.alias() : cast(t, dtype);
  const host = await t.data();
  return tensor(host, t.shape, { dtype, backend });
}
