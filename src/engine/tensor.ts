/**
 * Tensor: a shape, a dtype and a storage on one backend, contiguous row-major. Ops return new
 * tensors. Reshape-like views share storage through a reference count, so `dispose()` on one view
 * never frees memory another view still reads.
 */
import { type GradNode, isGradEnabled, noGrad, runBackward } from './autograd.js';
import type { Backend, Storage } from './backend.js';
import type { DType, TypedArray } from './dtype.js';
import * as ops from './ops/index.js';
import { keep, tidy, tidyIf, track } from './scope.js';
import { fmtShape, type Shape, shapesEqual, sizeOf } from './shape.js';

/** A storage and the number of tensors that own it (a tensor and its views share one). */
class StorageRef {
  refs = 0;
  constructor(readonly storage: Storage) {}
}

export type Scalar = number;
export type TensorLike = Tensor | Scalar;

/** Nested arrays as returned by `toArray()`. */
export type NestedArray = number | NestedArray[];

let nextId = 1;
/** Tensors made and not yet disposed, on every backend (for leak checks). */
let liveTensors = 0;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  #dtype: DType;
  #backend: Backend;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that made this tensor, while gradients can flow through it. */
  node: GradNode | null = null;
  #ref: StorageRef | null;

  /**
   * Wraps a storage the caller owns; the tensor takes that ownership. Given the StorageRef of
   * another tensor (only `Tensor.view` has one), it becomes one more owner of that storage. The
   * owner count changes only once the shape is known to fit, so a throw here leaves it as it was.
   */
  constructor(source: Storage | StorageRef, shape: Shape) {
    const ref = source instanceof StorageRef ? source : new StorageRef(source);
    const storage = ref.storage;
    if (sizeOf(shape) !== storage.size) {
      throw new Error(
        `Tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} elements, storage has ${storage.size}`,
      );
    }
    this.shape = Object.freeze([...shape]);
    this.#dtype = storage.dtype;
    this.#backend = storage.backend;
    ref.refs++;
    this.#ref = ref;
    liveTensors++;
    track(this);
  }

  /** How many tensors exist and are not disposed (storages are counted by each backend). */
  static liveCount(): number {
    return liveTensors;
  }

  /** A new tensor of another shape over the same storage (no copy). */
  static view(src: Tensor, shape: Shape): Tensor {
    return new Tensor(src.#live(), shape);
  }

  get dtype(): DType {
    return this.#dtype;
  }

  get backend(): Backend {
    return this.#backend;
  }

  get storage(): Storage {
    return this.#live().storage;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.#ref === null;
  }

  #live(): StorageRef {
    if (this.#ref === null) {
      throw new Error(`tensor #${this.id} ${fmtShape(this.shape)} was used after dispose()`);
    }
    return this.#ref;
  }

  dispose(): void {
    const ref = this.#ref;
    if (ref === null) return;
    this.#ref = null;
    this.node = null;
    liveTensors--;
    if (--ref.refs === 0) ref.storage.backend.free(ref.storage);
  }

  /** Another tensor over the same storage and shape, owned separately. */
  alias(): Tensor {
    return Tensor.view(this, this.shape);
  }

  sameShape(other: Tensor): boolean {
    return shapesEqual(this.shape, other.shape);
  }

  /**
   * Replaces this tensor's contents with src's (same shape and dtype), keeping its identity:
   * how optimizers update parameters in place.
   */
  assign(src: Tensor): this {
    if (!this.sameShape(src) || this.dtype !== src.dtype || this.backend !== src.backend) {
      throw new Error(
        `assign: expected ${this.dtype} ${fmtShape(this.shape)} on ${this.backend.name}, ` +
          `got ${src.dtype} ${fmtShape(src.shape)} on ${src.backend.name}`,
      );
    }
    return this.setData(src);
  }

  /**
   * Makes this leaf tensor hold src's data (same shape; dtype and backend may change), keeping
   * its identity, its requiresGrad flag and dropping its gradient: how a module moves its
   * parameters to another backend or dtype.
   */
  setData(src: Tensor): this {
    if (!this.sameShape(src)) {
      throw new Error(
        `setData: shape ${fmtShape(src.shape)} for a tensor of shape ${fmtShape(this.shape)}`,
      );
    }
    if (this.node !== null) throw new Error('setData: only leaf tensors can be overwritten');
    const ref = src.#live();
    ref.refs++;
    const old = this.#ref;
    if (old !== null && --old.refs === 0) old.storage.backend.free(old.storage);
    this.#ref = ref;
    this.#dtype = src.dtype;
    this.#backend = src.backend;
    if (
      this.grad !== null &&
      (this.grad.dtype !== src.dtype || this.grad.backend !== src.backend)
    ) {
      this.zeroGrad();
    }
    keep(this);
    return this;
  }

  // ---- data ----------------------------------------------------------------------------------

  /** Copies the values to the host (waits for pending GPU work). */
  async data(): Promise<TypedArray> {
    return this.backend.read(this.storage);
  }

  /** Synchronous read; only backends that hold host memory (cpu) can do it. */
  dataSync(): TypedArray {
    const read = this.backend.readSync;
    if (read === undefined) {
      throw new Error(
        `dataSync() is not available on the ${this.backend.name} backend; use await t.data()`,
      );
    }
    return read.call(this.backend, this.storage);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): tensor has ${this.size} elements, expected 1`);
    return (await this.data())[0]!;
  }

  itemSync(): number {
    if (this.size !== 1)
      throw new Error(`itemSync(): tensor has ${this.size} elements, expected 1`);
    return this.dataSync()[0]!;
  }

  async toArray(): Promise<NestedArray> {
    return nest(await this.data(), this.shape);
  }

  toString(): string {
    return `Tensor(${this.dtype} ${fmtShape(this.shape)} on ${this.backend.name})`;
  }

  // ---- autograd ------------------------------------------------------------------------------

  /** Marks a leaf tensor as a variable whose gradient `backward()` accumulates in `.grad`. */
  requireGrad(flag = true): this {
    if (this.node !== null) throw new Error('requireGrad: only leaf tensors can be marked');
    this.requiresGrad = flag;
    return this;
  }

  /** Same storage, cut from the graph. */
  detach(): Tensor {
    return this.alias();
  }

  /** Back-propagates from this tensor (a scalar, unless `gradient` is given). */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    if (!this.requiresGrad) {
      throw new Error(
        'backward(): this tensor does not require grad (no input was marked requireGrad)',
      );
    }
    let g: Tensor;
    if (gradient === undefined) {
      if (this.size !== 1) {
        throw new Error(
          `backward(): tensor ${fmtShape(this.shape)} is not a scalar; pass a gradient`,
        );
      }
      g = noGrad(() => ops.onesLike(this));
    } else {
      if (!this.sameShape(gradient)) {
        throw new Error(
          `backward(): gradient ${fmtShape(gradient.shape)} for tensor ${fmtShape(this.shape)}`,
        );
      }
      g = gradient.alias();
    }
    noGrad(() => runBackward(this, g, opts));
  }

  /** @internal Adds g into `.grad` (a leaf's gradient), taking ownership of g. */
  accumulateGrad(g: Tensor): void {
    if (this.grad === null) {
      this.grad = keep(g);
    } else {
      const sum = this.grad.add(g);
      this.grad.dispose();
      g.dispose();
      this.grad = keep(sum);
    }
  }

  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  // ---- op sugar (each forwards to the function of the same name in ops/) -----------------------

  add(b: TensorLike): Tensor {
    return ops.add(this, b);
  }
  sub(b: TensorLike): Tensor {
    return ops.sub(this, b);
  }
  mul(b: TensorLike): Tensor {
    return ops.mul(this, b);
  }
  div(b: TensorLike): Tensor {
    return ops.div(this, b);
  }
  pow(b: TensorLike): Tensor {
    return ops.pow(this, b);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  square(): Tensor {
    return ops.square(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  reciprocal(): Tensor {
    return ops.reciprocal(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  clamp(min?: number, max?: number): Tensor {
    return ops.clamp(this, min, max);
  }
  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.sum(this, axes, keepDims);
  }
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.mean(this, axes, keepDims);
  }
  max(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.max(this, axes, keepDims);
  }
  reshape(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  permute(axes: readonly number[]): Tensor {
    return ops.permute(this, axes);
  }
  transpose(a = -2, b = -1): Tensor {
    return ops.transpose(this, a, b);
  }
  matmul(b: Tensor): Tensor {
    return ops.matmul(this, b);
  }
  cast(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
}

function nest(data: TypedArray, shape: Shape): NestedArray {
  if (shape.length === 0) return data[0]!;
  const step = sizeOf(shape.slice(1));
  return Array.from({ length: shape[0]! }, (_, i) =>
    nest(data.subarray(i * step, (i + 1) * step), shape.slice(1)),
  );
}

/**
 * Records a node on `out` when gradients are on and an input needs one. Returns out. The VJP runs
 * in a scope of its own, so its temporaries are freed as soon as it returns (backward's peak
 * memory is one VJP's temporaries, not all of them), and so are the gradients it computed for
 * inputs that need none.
 */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  vjp: GradNode['vjp'],
): Tensor {
  if (isGradEnabled() && inputs.some((x) => x.requiresGrad)) {
    out.requiresGrad = true;
    out.node = {
      name,
      inputs,
      vjp: (g, needs) => tidy(() => vjp(g, needs).map((gi, i) => (needs[i] ? gi : null))),
    };
  }
  return out;
}

/**
 * Runs the body of a composite op (one written with other ops). When the result carries no graph
 * node, every tensor the body made other than the result is disposed at once, so an op called
 * outside any `tidy` leaves only its result; otherwise the graph refers to them until backward,
 * and they stay in the caller's scope.
 */
export function composite(body: () => Tensor): Tensor {
  return tidyIf(body, (y) => y.node === null);
}
