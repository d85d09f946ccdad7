/**
 * The WebGPU backend: the Backend interface over WGSL kernels. Storages are pooled GPU buffers;
 * ops record dispatches into the runtime's open command encoder and return at once; only
 * `read()` waits. float32 and int32 (WGSL has no f64).
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
import type { DType, TypedArray } from '../../dtype.js';
import { sizeOf } from '../../shape.js';
import { launchAdam } from './adam.wgsl.js';
import { launchAttention, launchAttentionBackward } from './attention.wgsl.js';
import { launchConv2d, launchConv2dGradInput, launchConv2dGradWeight } from './conv.wgsl.js';
import {
  launchConcatPart,
  launchGather,
  launchPad,
  launchScatterAdd,
  launchStridedCopy,
} from './copy.wgsl.js';
import {
  binaryKernel,
  castKernel,
  fillKernel,
  unaryKernel,
  whereKernel,
} from './elementwise.wgsl.js';
import { collapseAxes, MAX_RANK, scalarBits, WG } from './kernel.js';
import { launchMatmul } from './matmul.wgsl.js';
import type { GpuBuf, PoolStats } from './pool.js';
import { launchGroupNorm, launchGroupNormBackward } from './group-norm.wgsl.js';
import { launchRandom } from './random.wgsl.js';
import { launchSoftmax, launchSoftmaxBackward } from './softmax.wgsl.js';
import { launchArgmax, launchReduce } from './reduce.wgsl.js';
import { grid1d, type Kernel, Runtime } from './runtime.js';

export class WebGpuStorage implements Storage {
  constructor(
    readonly backend: WebGpuBackend,
    readonly dtype: DType,
    readonly size: number,
    /** null once freed. */
    public buf: GpuBuf | null,
  ) {}
}

export interface WebGpuBackendOptions {
  /** Use subgroup operations in reductions (only honoured when the device has them). */
  subgroups?: boolean;
  /** A name for messages, e.g. the adapter description. */
  adapterName?: string;
  /** Bytes in use plus pooled past which the pool gives pooled buffers back (BufferPool.budget). */
  poolBudget?: number;
}

export interface WebGpuStats extends PoolStats {
  /** Storages allocated and not freed. */
  live: number;
  dispatches: number;
  submits: number;
}

const F64_ERROR =
  'the webgpu backend has no float64 (WGSL has no f64): use float32, or the cpu backend ' +
  'for float64 work';

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly runtime: Runtime;
  readonly device: GPUDevice;
  readonly adapterName: string;
  /** Whether reductions use subgroup operations. */
  readonly subgroups: boolean;
  #live = 0;

  constructor(device: GPUDevice, opts: WebGpuBackendOptions = {}) {
    this.device = device;
    this.runtime = new Runtime(device);
    this.runtime.pool.budget = opts.poolBudget ?? Infinity;
    this.adapterName = opts.adapterName ?? 'WebGPU device';
    this.subgroups = (opts.subgroups ?? false) && device.features.has('subgroups');
  }

  /** True once the device is lost: every call fails and initBackend makes a new backend. */
  get lost(): boolean {
    return this.runtime.lost;
  }

  supportsDType(dtype: DType): boolean {
    return dtype !== 'float64';
  }

  // ---- memory -------------------------------------------------------------------------------

  #checkDType(dtype: DType, what: string): void {
    if (dtype === 'float64') throw new Error(`${what}: ${F64_ERROR}`);
  }

  /** A new storage whose buffer will be written by a dispatch. */
  #out(dtype: DType, size: number): WebGpuStorage {
    this.#checkDType(dtype, 'webgpu');
    this.runtime.check();
    const buf = this.runtime.pool.acquire(Math.max(size, 1) * 4, false);
    this.#live++;
    return new WebGpuStorage(this, dtype, size, buf);
  }

  #buf(s: Storage): GpuBuf {
    if (!(s instanceof WebGpuStorage) || s.backend !== this) {
      throw new Error(`webgpu backend was given a storage of the ${s.backend.name} backend`);
    }
    if (s.buf === null) throw new Error('webgpu: storage used after free');
    return s.buf;
  }

  /** A scratch buffer for multi-pass kernels; give it back with `release` after recording. */
  scratch(elements: number): GpuBuf {
    return this.runtime.pool.acquire(Math.max(elements, 1) * 4, false);
  }

  release(b: GpuBuf): void {
    this.runtime.pool.release(b);
  }

  readonly #constants = new Map<string, GpuBuf>();

  constant(key: string, make: () => Int32Array): GpuBuf {
    let b = this.#constants.get(key);
    if (b === undefined) {
      const data = make();
      b = this.runtime.pool.acquire(Math.max(data.length, 1) * 4, true);
      this.device.queue.writeBuffer(b.buffer, 0, data);
      this.#constants.set(key, b);
    }
    return b;
  }

  fromArray(data: TypedArray): Storage {
    if (data instanceof Float64Array) throw new Error(`fromArray: ${F64_ERROR}`);
    this.runtime.check();
    const buf = this.runtime.pool.acquire(Math.max(data.length, 1) * 4, true);
    if (data.length > 0) this.device.queue.writeBuffer(buf.buffer, 0, data);
    this.#live++;
    const dtype = data instanceof Int32Array ? 'int32' : 'float32';
    return new WebGpuStorage(this, dtype, data.length, buf);
  }

  async read(s: Storage): Promise<TypedArray> {
    const buf = this.#buf(s);
    const bytes = await this.runtime.read(buf, s.size * 4);
    return s.dtype === 'int32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  free(s: Storage): void {
    const buf = this.#buf(s);
    (s as WebGpuStorage).buf = null;
    this.runtime.pool.release(buf);
    this.#live--;
  }

  liveCount(): number {
    return this.#live;
  }

  stats(): WebGpuStats {
    return {
      ...this.runtime.pool.stats(),
      live: this.#live,
      dispatches: this.runtime.dispatches,
      submits: this.runtime.submits,
    };
  }

  /** Waits until the GPU has finished all work recorded so far. */
  sync(): Promise<void> {
    return this.runtime.sync();
  }

  /** Destroys the pooled (free) buffers. */
  trim(): number {
    return this.runtime.pool.trim();
  }

  /** Runs a one-thread-per-element kernel over n elements. */
  #flat(k: Kernel, bufs: GpuBuf[], params: Record<string, number | number[]>, n: number): void {
    if (n === 0) return;
    this.runtime.dispatch(k, bufs, { n, ...params }, grid1d(Math.ceil(n / WG)));
  }

  // ---- element-wise -------------------------------------------------------------------------

  fill(size: number, value: number, dtype: DType): Storage {
    const s = this.#out(dtype, size);
    this.#flat(fillKernel(dtype), [s.buf!], { bits: scalarBits(value, dtype) }, size);
    return s;
  }

  random(kind: 'uniform' | 'normal', size: number, dtype: DType, seed: number, offset: number) {
    if (dtype !== 'float32') {
      throw new Error(`random: ${dtype} is not supported on webgpu (float32 only)`);
    }
    const s = this.#out(dtype, size);
    launchRandom(this.runtime, kind, s.buf!, size, seed, offset);
    return s;
  }

  cast(x: Storage, dtype: DType): Storage {
    const src = this.#buf(x);
    this.#checkDType(dtype, 'cast');
    const s = this.#out(dtype, x.size);
    this.#flat(castKernel(x.dtype, dtype), [src, s.buf!], {}, x.size);
    return s;
  }

  unary(op: UnaryOp, x: Storage): Storage {
    const src = this.#buf(x);
    const s = this.#out(x.dtype, x.size);
    this.#flat(unaryKernel(op, x.dtype), [src, s.buf!], {}, x.size);
    return s;
  }

  /** Collapsed shape and strides of a broadcast spec, checked against MAX_RANK. */
  #collapse(outShape: readonly number[], strides: readonly (readonly number[])[], what: string) {
    const c = collapseAxes(outShape, strides);
    if (c.shape.length > MAX_RANK) {
      throw new Error(
        `webgpu ${what}: ${c.shape.length} axes remain after merging (at most ${MAX_RANK})`,
      );
    }
    const params: Record<string, number | number[]> = { rank: c.shape.length, shape: c.shape };
    c.strides.forEach((s, j) => (params[`s${j}`] = s));
    return { rank: c.shape.length, params };
  }

  binary(op: BinaryOp, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const ba = this.#buf(a);
    const bb = this.#buf(b);
    const n = sizeOf(spec.outShape);
    const s = this.#out(a.dtype, n);
    const c = this.#collapse(spec.outShape, spec.strides, op);
    this.#flat(binaryKernel(op, a.dtype, c.rank), [ba, bb, s.buf!], c.params, n);
    return s;
  }

  where(cond: Storage, a: Storage, b: Storage, spec: BroadcastSpec): Storage {
    const bufs = [this.#buf(cond), this.#buf(a), this.#buf(b)];
    const n = sizeOf(spec.outShape);
    const s = this.#out(a.dtype, n);
    const c = this.#collapse(spec.outShape, spec.strides, 'where');
    this.#flat(whereKernel(cond.dtype, a.dtype, c.rank), [...bufs, s.buf!], c.params, n);
    return s;
  }

  // ---- reductions ---------------------------------------------------------------------------

  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage {
    const src = this.#buf(x);
    const s = this.#out(x.dtype, outer * inner);
    launchReduce(this, op, x.dtype, src, s.buf!, outer, size, inner);
    return s;
  }

  argmax(x: Storage, outer: number, size: number, inner: number): Storage {
    const src = this.#buf(x);
    const s = this.#out('int32', outer * inner);
    launchArgmax(this, x.dtype, src, s.buf!, outer, size, inner);
    return s;
  }

  // ---- data movement ------------------------------------------------------------------------

  stridedCopy(x: Storage, spec: StridedCopySpec): Storage {
    const src = this.#buf(x);
    const s = this.#out(x.dtype, sizeOf(spec.outShape));
    launchStridedCopy(this.runtime, x.dtype, src, s.buf!, spec);
    return s;
  }

  pad(x: Storage, spec: PadSpec): Storage {
    const src = this.#buf(x);
    const s = this.#out(x.dtype, sizeOf(spec.outShape));
    launchPad(this.runtime, x.dtype, src, s.buf!, spec);
    return s;
  }

  concat(parts: readonly Storage[], spec: ConcatSpec): Storage {
    const bufs = parts.map((p) => this.#buf(p));
    const total = spec.lengths.reduce((a, b) => a + b, 0);
    const s = this.#out(parts[0]!.dtype, spec.outer * total);
    // One dispatch a part, each writing its columns of every row: together they write all.
    let at = 0;
    bufs.forEach((src, k) => {
      const length = spec.lengths[k]!;
      launchConcatPart(this.runtime, s.dtype, src, s.buf!, {
        outer: spec.outer,
        length,
        total,
        at,
      });
      at += length;
    });
    return s;
  }

  gather(x: Storage, indices: Storage, spec: GatherSpec): Storage {
    const size = spec.outer * spec.numIndices * spec.inner;
    return this.#indexed('gather', x, indices, size, (src, idx, out) =>
      launchGather(this.runtime, x.dtype, src, idx, out, spec),
    );
  }

  scatterAdd(src: Storage, indices: Storage, spec: GatherSpec): Storage {
    const size = spec.outer * spec.axisSize * spec.inner;
    return this.#indexed('scatterAdd', src, indices, size, (b, idx, out) =>
      launchScatterAdd(this.runtime, src.dtype, b, idx, out, spec),
    );
  }

  /** A kernel of values `x` and int32 `indices` writing `size` elements of x's dtype. */
  #indexed(
    what: string,
    x: Storage,
    indices: Storage,
    size: number,
    launch: (x: GpuBuf, indices: GpuBuf, out: GpuBuf) => void,
  ): Storage {
    const bx = this.#buf(x);
    const idx = this.#buf(indices);
    if (indices.dtype !== 'int32') throw new Error(`${what}: indices must be int32`);
    const s = this.#out(x.dtype, size);
    launch(bx, idx, s.buf!);
    return s;
  }

  // ---- products -----------------------------------------------------------------------------

  #float(dtype: DType, what: string): void {
    if (dtype !== 'float32') throw new Error(`${what}: webgpu supports float32 only, got ${dtype}`);
  }

  /** A float32 kernel of inputs `a` and `b` and one output of `size` elements. */
  #float2(
    what: string,
    a: Storage,
    b: Storage,
    size: number,
    launch: (a: GpuBuf, b: GpuBuf, out: GpuBuf) => void,
  ): Storage {
    this.#float(a.dtype, what);
    const ba = this.#buf(a);
    const bb = this.#buf(b);
    const s = this.#out(a.dtype, size);
    launch(ba, bb, s.buf!);
    return s;
  }

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    return this.#float2('matmul', a, b, spec.batch * spec.m * spec.n, (ba, bb, out) =>
      launchMatmul(this, ba, bb, out, spec),
    );
  }

  conv2d(x: Storage, weight: Storage, spec: Conv2dSpec): Storage {
    const size = spec.n * spec.cOut * spec.hOut * spec.wOut;
    return this.#float2('conv2d', x, weight, size, (bx, bw, out) =>
      launchConv2d(this, bx, bw, out, spec),
    );
  }

  conv2dGradInput(dy: Storage, weight: Storage, spec: Conv2dSpec): Storage {
    const size = spec.n * spec.cIn * spec.h * spec.w;
    return this.#float2('conv2dGradInput', dy, weight, size, (bdy, bw, out) =>
      launchConv2dGradInput(this, bdy, bw, out, spec),
    );
  }

  conv2dGradWeight(x: Storage, dy: Storage, spec: Conv2dSpec): Storage {
    const size = spec.cOut * (spec.cIn / spec.groups) * spec.kh * spec.kw;
    return this.#float2('conv2dGradWeight', x, dy, size, (bx, bdy, out) =>
      launchConv2dGradWeight(this, bx, bdy, out, spec),
    );
  }

  // ---- fused kernels (optional in the Backend interface) ------------------------------------

  softmax(x: Storage, spec: SoftmaxSpec): Storage {
    this.#float(x.dtype, 'softmax');
    const bx = this.#buf(x);
    const s = this.#out('float32', spec.rows * spec.cols);
    launchSoftmax(this, bx, s.buf!, spec);
    return s;
  }

  softmaxBackward(y: Storage, dy: Storage, spec: SoftmaxSpec): Storage {
    return this.#float2('softmaxBackward', y, dy, spec.rows * spec.cols, (by, bdy, out) =>
      launchSoftmaxBackward(this, by, bdy, out, spec),
    );
  }

  groupNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    spec: GroupNormSpec,
  ): GroupNormResult {
    this.#float(x.dtype, 'groupNorm');
    const bx = this.#buf(x);
    const bw = weight === null ? null : this.#buf(weight);
    const bb = bias === null ? null : this.#buf(bias);
    const y = this.#out('float32', spec.n * spec.channels * spec.spatial);
    const mean = this.#out('float32', spec.n * spec.groups);
    const rstd = this.#out('float32', spec.n * spec.groups);
    launchGroupNorm(this, bx, bw, bb, { y: y.buf!, mean: mean.buf!, rstd: rstd.buf! }, spec);
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
    this.#float(x.dtype, 'groupNormBackward');
    const bx = this.#buf(x);
    const bw = weight === null ? null : this.#buf(weight);
    const bb = bias === null || spec.activation === undefined ? null : this.#buf(bias);
    const stats = { mean: this.#buf(mean), rstd: this.#buf(rstd) };
    const bdy = this.#buf(dy);
    const dx = this.#out('float32', x.size);
    const dweight = weight === null ? null : this.#out('float32', spec.channels);
    const dbias = weight === null ? null : this.#out('float32', spec.channels);
    const dwdb = dweight === null ? null : { dw: dweight.buf!, db: dbias!.buf! };
    launchGroupNormBackward(this, bx, { w: bw, b: bb }, stats, bdy, dx.buf!, dwdb, spec);
    return { dx, dweight, dbias };
  }

  adamUpdate(param: Storage, grad: Storage, m: Storage, v: Storage, spec: AdamSpec): AdamResult {
    this.#float(param.dtype, 'adamUpdate');
    const ins = [param, grad, m, v].map((t) => this.#buf(t)) as [GpuBuf, GpuBuf, GpuBuf, GpuBuf];
    const [p2, m2, v2] = [0, 1, 2].map(() => this.#out('float32', param.size));
    launchAdam(this, ins, [p2!.buf!, m2!.buf!, v2!.buf!], param.size, spec);
    return { param: p2!, m: m2!, v: v2! };
  }

  attention(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult {
    this.#float(q.dtype, 'attention');
    const [bq, bk, bv] = [q, k, v].map((t) => this.#buf(t)) as [GpuBuf, GpuBuf, GpuBuf];
    const out = this.#out('float32', spec.batch * spec.lq * spec.dv);
    const lse = this.#out('float32', spec.batch * spec.lq);
    launchAttention(this, bq, bk, bv, { out: out.buf!, lse: lse.buf! }, spec);
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
    this.#float(q.dtype, 'attentionBackward');
    const ins = {
      q: this.#buf(q),
      k: this.#buf(k),
      v: this.#buf(v),
      out: this.#buf(out),
      lse: this.#buf(logsumexp),
      dOut: this.#buf(dOut),
    };
    const dq = this.#out('float32', q.size);
    const dk = this.#out('float32', k.size);
    const dv = this.#out('float32', v.size);
    launchAttentionBackward(this, ins, { dq: dq.buf!, dk: dk.buf!, dv: dv.buf! }, spec);
    return { dq, dk, dv };
  }
}
