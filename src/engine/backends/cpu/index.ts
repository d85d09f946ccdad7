/**
 * The CPU backend: plain TypeScript over typed arrays, float32 and float64. It is the reference
 * every other backend is tested against, so clarity comes first, then cache-friendly loops.
 */
import type {
  Backend,
  BinaryOp,
  BroadcastSpec,
  Conv2dSpec,
  GatherSpec,
  MatmulSpec,
  PadSpec,
  ReduceOp,
  Storage,
  StridedCopySpec,
  UnaryOp,
} from '../../backend.js';
import { type DType, makeArray, type TypedArray, dtypeOfArray } from '../../dtype.js';
import { fillNormal, fillUniform } from '../../rng/philox.js';
import { sizeOf } from '../../shape.js';
import { conv2dGradInputKernel, conv2dGradWeightKernel, conv2dKernel } from './conv.js';
import { gatherKernel, padKernel, scatterAddKernel, stridedCopyKernel } from './copy.js';
import { binaryKernel, unaryKernel, whereKernel } from './elementwise.js';
import { matmulKernel } from './matmul.js';
import { argmaxKernel, reduceKernel } from './reduce.js';

export class CpuStorage implements Storage {
  constructor(
    readonly backend: CpuBackend,
    readonly data: TypedArray,
  ) {}
  get dtype(): DType {
    return dtypeOfArray(this.data);
  }
  get size(): number {
    return this.data.length;
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  #live = 0;

  supportsDType(): boolean {
    return true;
  }

  #make(dtype: DType, size: number): CpuStorage {
    this.#live++;
    return new CpuStorage(this, makeArray(dtype, size));
  }

  #data(s: Storage): TypedArray {
    if (!(s instanceof CpuStorage) || s.backend !== this) {
      throw new Error(`cpu backend was given a storage of the ${s.backend.name} backend`);
    }
    return s.data;
  }

  fromArray(data: TypedArray): Storage {
    this.#live++;
    return new CpuStorage(this, data);
  }

  read(s: Storage): Promise<TypedArray> {
    return Promise.resolve(this.readSync(s));
  }

  readSync(s: Storage): TypedArray {
    return this.#data(s).slice();
  }

  free(s: Storage): void {
    this.#data(s);
    this.#live--;
  }

  liveCount(): number {
    return this.#live;
  }

  fill(size: number, value: number, dtype: DType): Storage {
    const s = this.#make(dtype, size);
    if (value !== 0) s.data.fill(value);
    return s;
  }

  random(kind: 'uniform' | 'normal', size: number, dtype: DType, seed: number, offset: number) {
    if (dtype === 'int32') throw new Error('random: int32 is not a floating-point dtype');
    const s = this.#make(dtype, size);
    const out = s.data as Float32Array | Float64Array;
    if (kind === 'normal') fillNormal(out, seed, offset);
    else fillUniform(out, seed, offset);
    return s;
  }

  cast(x: Storage, dtype: DType): Storage {
    const src = this.#data(x);
    const s = this.#make(dtype, src.length);
    if (dtype === 'int32') {
      // Truncation toward zero, as C and PyTorch do.
      for (let i = 0; i < src.length; i++) s.data[i] = Math.trunc(src[i]!);
    } else {
      s.data.set(src);
    }
    return s;
  }

  unary(op: UnaryOp, x: Storage): Storage {
    const s = this.#make(x.dtype, x.size);
    unaryKernel(op, this.#data(x), s.data);
    return s;
  }

  binary(op: BinaryOp, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const s = this.#make(a.dtype, sizeOf(spec.outShape));
    binaryKernel(op, this.#data(a), this.#data(b), spec, s.data);
    return s;
  }

  where(cond: Storage, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const s = this.#make(a.dtype, sizeOf(spec.outShape));
    whereKernel(this.#data(cond), this.#data(a), this.#data(b), spec, s.data);
    return s;
  }

  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage {
    const s = this.#make(x.dtype, outer * inner);
    reduceKernel(op, this.#data(x), outer, size, inner, s.data);
    return s;
  }

  argmax(x: Storage, outer: number, size: number, inner: number): Storage {
    const s = this.#make('int32', outer * inner);
    argmaxKernel(this.#data(x), outer, size, inner, s.data as Int32Array);
    return s;
  }

  stridedCopy(x: Storage, spec: StridedCopySpec): Storage {
    const s = this.#make(x.dtype, sizeOf(spec.outShape));
    stridedCopyKernel(this.#data(x), spec, s.data);
    return s;
  }

  pad(x: Storage, spec: PadSpec): Storage {
    const s = this.#make(x.dtype, sizeOf(spec.outShape));
    padKernel(this.#data(x), spec, s.data);
    return s;
  }

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const s = this.#make(a.dtype, spec.batch * spec.m * spec.n);
    matmulKernel(this.#data(a), this.#data(b), spec, s.data);
    return s;
  }

  conv2d(x: Storage, weight: Storage, spec: Conv2dSpec): Storage {
    const s = this.#make(x.dtype, spec.n * spec.cOut * spec.hOut * spec.wOut);
    conv2dKernel(this.#data(x), this.#data(weight), spec, s.data);
    return s;
  }

  conv2dGradInput(dy: Storage, weight: Storage, spec: Conv2dSpec): Storage {
    const s = this.#make(dy.dtype, spec.n * spec.cIn * spec.h * spec.w);
    conv2dGradInputKernel(this.#data(dy), this.#data(weight), spec, s.data);
    return s;
  }

  conv2dGradWeight(x: Storage, dy: Storage, spec: Conv2dSpec): Storage {
    const size = spec.cOut * (spec.cIn / spec.groups) * spec.kh * spec.kw;
    const s = this.#make(x.dtype, size);
    conv2dGradWeightKernel(this.#data(x), this.#data(dy), spec, s.data);
    return s;
  }

  gather(x: Storage, indices: Storage, spec: GatherSpec): Storage {
    const s = this.#make(x.dtype, spec.outer * spec.numIndices * spec.inner);
    gatherKernel(this.#data(x), this.#data(indices), spec, s.data);
    return s;
  }

  scatterAdd(src: Storage, indices: Storage, spec: GatherSpec): Storage {
    const s = this.#make(src.dtype, spec.outer * spec.axisSize * spec.inner);
    scatterAddKernel(this.#data(src), this.#data(indices), spec, s.data);
    return s;
  }
}
