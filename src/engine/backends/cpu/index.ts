/**
 * The CPU backend: plain TypeScript over typed arrays, float32 and float64. It is the reference
 * every other backend is tested against, so clarity comes first, then cache-friendly loops.
 */
import type {
  AdamResult,
  AdamSpec,
  AttentionGrads,
  AttentionResult,
  AttentionSpec,
  Backend,
  BinaryOp,
  BroadcastSpec,
  ConcatSpec,
  Conv2dSpec,
  GatherSpec,
  GroupNormGrads,
  GroupNormResult,
  GroupNormSpec,
  MatmulSpec,
  PadSpec,
  ReduceOp,
  SoftmaxSpec,
  Storage,
  StridedCopySpec,
  UnaryOp,
} from '../../backend.js';
import { type DType, makeArray, type TypedArray, dtypeOfArray } from '../../dtype.js';
import { fillNormal, fillUniform } from '../../rng/philox.js';
import { sizeOf } from '../../shape.js';
import { conv2dGradInputKernel, conv2dGradWeightKernel, conv2dKernel } from './conv.js';
import {
  concatKernel,
  gatherKernel,
  padKernel,
  scatterAddKernel,
  stridedCopyKernel,
} from './copy.js';
import { binaryF32Simd } from './binary-f32.js';
import { binaryKernel, unaryKernel, whereKernel } from './elementwise.js';
import {
  adamKernel,
  attentionBackwardKernel,
  attentionKernel,
  geluBackwardKernel,
  groupNormBackwardKernel,
  groupNormKernel,
  softmaxBackwardKernel,
  softmaxKernel,
} from './fused.js';
import { matmulKernel } from './matmul.js';
import { geluBackwardF32, geluBackwardF32Simd, geluF32, geluF32Simd } from './gelu-f32.js';
import { groupNormBackwardF32, groupNormF32 } from './norm-f32.js';
import { simdRuntime } from './simd-gemm.js';
import { nodeProcess } from './threads.js';
import { argmaxKernel, reduceKernel } from './reduce.js';

export class CpuStorage implements Storage {
  /** Set by free(); a second free is an error (it would hand one array to two storages). */
  freed = false;
  constructor(
    readonly backend: CpuBackend,
    readonly data: TypedArray,
    /** Allocated by the backend (not a caller's array), so it may be recycled when freed. */
    readonly owned = false,
  ) {}
  get dtype(): DType {
    return dtypeOfArray(this.data);
  }
  get size(): number {
    return this.data.length;
  }
}

/** Arrays shorter than this are not recycled: allocating them is cheap. */
const POOL_MIN_LENGTH = 1024;
/** Upper bound on the bytes held by the pool of freed arrays: SUMI_CPU_POOL_MB, default 2048. */
function poolLimit(mb: string | undefined): number {
  const v = Number(mb ?? 2048);
  return (Number.isFinite(v) && v >= 0 ? v : 2048) * 2 ** 20;
}
const POOL_MAX_BYTES = poolLimit(nodeProcess()?.env['SUMI_CPU_POOL_MB']);

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  #live = 0;
  /**
   * Freed arrays by dtype and length, handed out again by #make. Writing into a new typed array
   * first faults its pages in, which costs more than the op itself on many machines (measured
   * here: ~11 ns per float32 element, against ~3 ns for a strided copy into a reused array),
   * and a training step allocates the same shapes every time.
   */
  readonly #pool = new Map<string, TypedArray[]>();
  #pooledBytes = 0;

  supportsDType(): boolean {
    return true;
  }

  /** A new storage of `size` elements, zeroed unless `clear` is false (its kernel writes all). */
  #make(dtype: DType, size: number, clear = true): CpuStorage {
    this.#live++;
    if (size >= POOL_MIN_LENGTH) {
      const reused = this.#pool.get(`${dtype}:${size}`)?.pop();
      if (reused !== undefined) {
        this.#pooledBytes -= reused.byteLength;
        if (clear) reused.fill(0);
        return new CpuStorage(this, reused, true);
      }
    }
    return new CpuStorage(this, makeArray(dtype, size), true);
  }

  /** Bytes held by freed arrays waiting to be reused. */
  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /** Drops the pool of freed arrays (the garbage collector takes them). */
  trimPool(): void {
    this.#pool.clear();
    this.#pooledBytes = 0;
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
    const data = this.#data(s);
    const st = s as CpuStorage;
    if (st.freed) throw new Error('cpu backend: a storage was freed twice');
    st.freed = true;
    this.#live--;
    if (!st.owned || data.length < POOL_MIN_LENGTH) return;
    if (this.#pooledBytes + data.byteLength > POOL_MAX_BYTES) return;
    const key = `${dtypeOfArray(data)}:${data.length}`;
    let list = this.#pool.get(key);
    if (list === undefined) this.#pool.set(key, (list = []));
    list.push(data);
    this.#pooledBytes += data.byteLength;
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
    const s = this.#make(dtype, size, false);
    const out = s.data as Float32Array | Float64Array;
    if (kind === 'normal') fillNormal(out, seed, offset);
    else fillUniform(out, seed, offset);
    return s;
  }

  cast(x: Storage, dtype: DType): Storage {
    const src = this.#data(x);
    const s = this.#make(dtype, src.length, false);
    if (dtype === 'int32') {
      // Truncation toward zero, as C and PyTorch do.
      for (let i = 0; i < src.length; i++) s.data[i] = Math.trunc(src[i]!);
    } else {
      s.data.set(src);
    }
    return s;
  }

  unary(op: UnaryOp, x: Storage): Storage {
    const s = this.#make(x.dtype, x.size, false);
    const xd = this.#data(x);
    if (op === 'gelu' && xd instanceof Float32Array) {
      const rt = simdRuntime();
      if (rt !== null) geluF32Simd(rt, xd, s.data as Float32Array);
      else geluF32(xd, s.data as Float32Array);
    } else {
      unaryKernel(op, xd, s.data);
    }
    return s;
  }

  geluBackward(x: Storage, dy: Storage): Storage {
    const s = this.#make(x.dtype, x.size, false);
    const xd = this.#data(x);
    const dyd = this.#data(dy);
    if (xd instanceof Float32Array && dyd instanceof Float32Array) {
      const rt = simdRuntime();
      if (rt !== null) geluBackwardF32Simd(rt, xd, dyd, s.data as Float32Array);
      else geluBackwardF32(xd, dyd, s.data as Float32Array);
    } else {
      geluBackwardKernel(xd, dyd, s.data);
    }
    return s;
  }

  binary(op: BinaryOp, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const s = this.#make(a.dtype, sizeOf(spec.outShape), false);
    const [ad, bd] = [this.#data(a), this.#data(b)];
    const rt = ad instanceof Float32Array ? simdRuntime() : null;
    const simd =
      rt !== null &&
      binaryF32Simd(rt, op, ad as Float32Array, bd as Float32Array, spec, s.data as Float32Array);
    if (!simd) binaryKernel(op, ad, bd, spec, s.data);
    return s;
  }

  where(cond: Storage, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const s = this.#make(a.dtype, sizeOf(spec.outShape), false);
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
    const s = this.#make(x.dtype, sizeOf(spec.outShape), false);
    stridedCopyKernel(this.#data(x), spec, s.data);
    return s;
  }

  pad(x: Storage, spec: PadSpec): Storage {
    const s = this.#make(x.dtype, sizeOf(spec.outShape), false);
    padKernel(this.#data(x), spec, s.data);
    return s;
  }

  concat(parts: readonly Storage[], spec: ConcatSpec): Storage {
    const data = parts.map((p) => this.#data(p));
    const size = spec.outer * spec.lengths.reduce((a, b) => a + b, 0);
    // Every element is written, so a recycled array need not be cleared first.
    const s = this.#make(parts[0]!.dtype, size, false);
    concatKernel(data, spec, s.data);
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

  conv2dBias(x: Storage, weight: Storage, bias: Storage, spec: Conv2dSpec): Storage {
    const s = this.#make(x.dtype, spec.n * spec.cOut * spec.hOut * spec.wOut);
    conv2dKernel(this.#data(x), this.#data(weight), spec, s.data, this.#data(bias));
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

  // ---- fused kernels (the reference definitions live in fused.ts) ----

  softmax(x: Storage, spec: SoftmaxSpec): Storage {
    const s = this.#make(x.dtype, x.size);
    softmaxKernel(this.#data(x), spec, s.data);
    return s;
  }

  softmaxBackward(y: Storage, dy: Storage, spec: SoftmaxSpec): Storage {
    const s = this.#make(y.dtype, y.size);
    softmaxBackwardKernel(this.#data(y), this.#data(dy), spec, s.data);
    return s;
  }

  groupNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    spec: GroupNormSpec,
  ): GroupNormResult {
    const y = this.#make(x.dtype, x.size);
    const mean = this.#make(x.dtype, spec.n * spec.groups);
    const rstd = this.#make(x.dtype, spec.n * spec.groups);
    const w = weight === null ? null : this.#data(weight);
    const b = bias === null ? null : this.#data(bias);
    const xd = this.#data(x);
    const rt = simdRuntime();
    if (rt !== null && xd instanceof Float32Array) {
      groupNormF32(
        rt,
        xd,
        w as Float32Array | null,
        b as Float32Array | null,
        spec,
        y.data as Float32Array,
        mean.data as Float32Array,
        rstd.data as Float32Array,
      );
    } else {
      groupNormKernel(xd, w, b, spec, y.data, mean.data, rstd.data);
    }
    return { y, mean, rstd };
  }

  groupNormBackward(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    mean: Storage,
    rstd: Storage,
    dy: Storage,
    spec: GroupNormSpec,
  ): GroupNormGrads {
    const dx = this.#make(x.dtype, x.size);
    const dweight = weight === null ? null : this.#make(x.dtype, spec.channels);
    const dbias = weight === null ? null : this.#make(x.dtype, spec.channels);
    const rt = simdRuntime();
    const xd = this.#data(x);
    if (rt !== null && xd instanceof Float32Array) {
      const f32 = (st: Storage | null): Float32Array | null =>
        st === null ? null : (this.#data(st) as Float32Array);
      groupNormBackwardF32(
        rt,
        xd,
        f32(weight),
        f32(bias),
        f32(mean)!,
        f32(rstd)!,
        f32(dy)!,
        spec,
        dx.data as Float32Array,
        (dweight?.data as Float32Array | undefined) ?? null,
        (dbias?.data as Float32Array | undefined) ?? null,
      );
      return { dx, dweight, dbias };
    }
    groupNormBackwardKernel(
      this.#data(x),
      weight === null ? null : this.#data(weight),
      bias === null ? null : this.#data(bias),
      this.#data(mean),
      this.#data(rstd),
      this.#data(dy),
      spec,
      dx.data,
      dweight?.data ?? null,
      dbias?.data ?? null,
    );
    return { dx, dweight, dbias };
  }

  adamUpdate(param: Storage, grad: Storage, m: Storage, v: Storage, spec: AdamSpec): AdamResult {
    const p2 = this.#make(param.dtype, param.size);
    const m2 = this.#make(m.dtype, m.size);
    const v2 = this.#make(v.dtype, v.size);
    adamKernel(
      this.#data(param),
      this.#data(grad),
      this.#data(m),
      this.#data(v),
      spec,
      p2.data,
      m2.data,
      v2.data,
    );
    return { param: p2, m: m2, v: v2 };
  }

  attention(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult {
    const out = this.#make(q.dtype, spec.batch * spec.lq * spec.dv);
    const lse = this.#make(q.dtype, spec.batch * spec.lq);
    attentionKernel(this.#data(q), this.#data(k), this.#data(v), spec, out.data, lse.data);
    return { out, logsumexp: lse };
  }

  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    logsumexp: Storage,
    dOut: Storage,
    spec: AttentionSpec,
  ): AttentionGrads {
    const dq = this.#make(q.dtype, q.size);
    const dk = this.#make(k.dtype, k.size);
    const dv = this.#make(v.dtype, v.size);
    attentionBackwardKernel(
      this.#data(q),
      this.#data(k),
      this.#data(v),
      this.#data(out),
      this.#data(logsumexp),
      this.#data(dOut),
      spec,
      dq.data,
      dk.data,
      dv.data,
    );
    return { dq, dk, dv };
  }
}
