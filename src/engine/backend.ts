/**
 * The narrow interface every backend implements: memory, readback and a closed set of primitive
 * kernels. Everything else (autograd, composites, nn) is written above it and runs unchanged on
 * every backend. Kernels take and return contiguous row-major storages; the op layer computes all
 * shapes and strides, so a backend never re-derives them.
 */
import type { DType, TypedArray } from './dtype.js';

/** A block of device memory holding `size` elements of `dtype`. Opaque above the backend. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly size: number;
}

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'sin'
  | 'cos'
  | 'tanh'
  | 'sigmoid'
  | 'abs'
  | 'sign'
  | 'erf'
  | 'silu'
  | 'gelu'
  | 'square'
  | 'reciprocal'
  | 'floor';

export type BinaryOp =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge'
  | 'eq'
  | 'ne';

export type ReduceOp = 'sum' | 'max' | 'min';

/** Element-wise op over `outShape`; each input is read through its own (broadcast) strides. */
export interface BroadcastSpec {
  outShape: readonly number[];
  strides: readonly (readonly number[])[];
}

/** out[o] = x[offset + Σ_k idx_k · strides[k]] over outShape: permute, slice, expand. */
export interface StridedCopySpec {
  outShape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/** Batched C[b] = op(A[b]) · op(B[b]); op transposes when the flag is set. */
export interface MatmulSpec {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** Elements between consecutive batch matrices of A and B (0 broadcasts one matrix). */
  aBatchStride: number;
  bBatchStride: number;
}

/** 2-D convolution geometry, NCHW input, OIHW weight (O = cOut, I = cIn / groups). */
export interface Conv2dSpec {
  n: number;
  cIn: number;
  h: number;
  w: number;
  cOut: number;
  kh: number;
  kw: number;
  hOut: number;
  wOut: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  groups: number;
}

/** x viewed as [outer, axisSize, inner]; indices select along the middle axis. */
export interface GatherSpec {
  outer: number;
  axisSize: number;
  inner: number;
  numIndices: number;
}

export interface PadSpec {
  inShape: readonly number[];
  outShape: readonly number[];
  /** Elements inserted before each axis (output index = input index + before). */
  before: readonly number[];
  value: number;
}

/**
 * Parts joined along an axis, each viewed as [outer, lengths[k]] (lengths[k] = the part's extent
 * on the axis × the elements after it): out[o, Σ_{j<k} lengths[j] + r] = part_k[o, r].
 */
export interface ConcatSpec {
  outer: number;
  lengths: readonly number[];
}

/** y = softmax(scale · x) along each row of x viewed as [rows, cols]. */
export interface SoftmaxSpec {
  rows: number;
  cols: number;
  scale: number;
}

/**
 * Group normalization of x viewed as [n, channels, spatial]: channels split into `groups`
 * consecutive groups, each (sample, group) normalized with its mean and biased variance, then
 * y = x̂ · weight[c] + bias[c].
 */
export interface GroupNormSpec {
  n: number;
  channels: number;
  groups: number;
  spatial: number;
  eps: number;
  /**
   * An activation applied to the affine output in the same kernel: y = silu(x̂·w + b). Absent:
   * y = x̂·w + b. The backward then recomputes x̂·w + b, so it needs the bias too.
   */
  activation?: 'silu';
}

export interface GroupNormResult {
  y: Storage;
  /** [n, groups] statistics kept for the backward pass. */
  mean: Storage;
  rstd: Storage;
}

export interface GroupNormGrads {
  dx: Storage;
  /**
   * dweight = Σ_{n,s} dz ⊙ x̂ and dbias = Σ_{n,s} dz per channel, with dz the gradient at the
   * affine output (dy, or dy·silu′ with the activation), computed when a weight is given; null
   * without one (a bias alone then takes its gradient from the op layer's sum of dy, which is
   * why the op layer fuses the activation only when weight and bias are both given or both not).
   */
  dweight: Storage | null;
  dbias: Storage | null;
}

/**
 * Scaled dot-product attention without a mask over `batch` independent (batch · heads) slices:
 * q [batch, lq, d], k [batch, lk, d], v [batch, lk, dv]; out = softmax(scale · q kᵀ) v.
 */
export interface AttentionSpec {
  batch: number;
  lq: number;
  lk: number;
  d: number;
  dv: number;
  scale: number;
}

export interface AttentionResult {
  /** [batch, lq, dv] */
  out: Storage;
  /** [batch, lq]: log Σ_j e^{s_ij} of the scaled scores s = scale · q kᵀ, kept for the backward. */
  logsumexp: Storage;
}

export interface AttentionGrads {
  dq: Storage;
  dk: Storage;
  dv: Storage;
}

/**
 * One Adam/AdamW step (no amsgrad) as torch.optim.Adam evaluates it, element-wise:
 *   θ₀ = θ·(1 − lr·wd) if decoupled, g₀ = g + wd·θ if not (each only when wd ≠ 0)
 *   m ← m + (g₀ − m)(1 − β₁),  v ← v·β₂ + g₀²(1 − β₂)
 *   θ ← θ₀ − (m·lr/bc1) / (√v / bc2Sqrt + eps)
 * with bc1 = 1 − β₁ᵗ and bc2Sqrt = √(1 − β₂ᵗ) for the step t being taken.
 */
export interface AdamSpec {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  biasCorrection1: number;
  biasCorrection2Sqrt: number;
}

export interface AdamResult {
  param: Storage;
  m: Storage;
  v: Storage;
}

/**
 * Fused kernels a backend may offer; the op layer uses them when present and falls back to the
 * composite ops otherwise. The reference definitions are in backends/cpu/fused.ts.
 */
export interface FusedKernels {
  softmax?(x: Storage, spec: SoftmaxSpec): Storage;
  /** dx = scale · y ⊙ (dy − Σ_row dy ⊙ y), with y the softmax output. */
  softmaxBackward?(y: Storage, dy: Storage, spec: SoftmaxSpec): Storage;
  groupNorm?(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    spec: GroupNormSpec,
  ): GroupNormResult;
  /** The bias is read only with spec.activation (to recompute the activation's input). */
  groupNormBackward?(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    mean: Storage,
    rstd: Storage,
    dy: Storage,
    spec: GroupNormSpec,
  ): GroupNormGrads;
  /** dx = dy · (Φ(x) + x φ(x)), the gradient of gelu(x) = x Φ(x). */
  geluBackward?(x: Storage, dy: Storage): Storage;
  /** New parameter and moments after one Adam/AdamW step (inputs are not modified). */
  adamUpdate?(param: Storage, grad: Storage, m: Storage, v: Storage, spec: AdamSpec): AdamResult;
  /** conv2d(x, weight) + bias[c] over every output pixel, the bias added as the output is written. */
  conv2dBias?(x: Storage, weight: Storage, bias: Storage, spec: Conv2dSpec): Storage;
  /** softmax(scale · q kᵀ) v without materializing the scores, and the per-row logsumexp. */
  attention?(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult;
  /**
   * The gradients from the forward's inputs, output and logsumexp (FlashAttention-2's backward:
   * P = e^{s − lse} recomputed, D = rowsum(dOut ⊙ out), dS = P ⊙ (dOut vᵀ − D),
   * dq = scale · dS k, dk = scale · dSᵀ q, dv = Pᵀ dOut).
   */
  attentionBackward?(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    logsumexp: Storage,
    dOut: Storage,
    spec: AttentionSpec,
  ): AttentionGrads;
}

export interface Backend extends FusedKernels {
  readonly name: string;
  supportsDType(dtype: DType): boolean;

  fromArray(data: TypedArray): Storage;
  /** Copies the storage back to the host. */
  read(s: Storage): Promise<TypedArray>;
  /** Synchronous read where the backend can do it (the CPU backend); undefined otherwise. */
  readSync?: (s: Storage) => TypedArray;
  free(s: Storage): void;
  /** Storages currently allocated and not freed (for leak checks). */
  liveCount(): number;

  fill(size: number, value: number, dtype: DType): Storage;
  /** Philox 4x32-10 stream (see rng/philox.ts): same seed and offset, same numbers everywhere. */
  random(
    kind: 'uniform' | 'normal',
    size: number,
    dtype: DType,
    seed: number,
    offset: number,
  ): Storage;
  cast(x: Storage, dtype: DType): Storage;
  unary(op: UnaryOp, x: Storage): Storage;
  binary(op: BinaryOp, a: Storage, b: Storage, spec: BroadcastSpec): Storage;
  /** where(cond ≠ 0, a, b), all three broadcast to spec.outShape. */
  where(cond: Storage, a: Storage, b: Storage, spec: BroadcastSpec): Storage;
  /** x viewed as [outer, size, inner] reduced over the middle axis -> [outer, inner]. */
  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage;
  /** Index (int32) of the maximum over the middle axis of [outer, size, inner]. */
  argmax(x: Storage, outer: number, size: number, inner: number): Storage;
  stridedCopy(x: Storage, spec: StridedCopySpec): Storage;
  pad(x: Storage, spec: PadSpec): Storage;
  /** The parts (one dtype) joined along an axis, as ConcatSpec says. */
  concat(parts: readonly Storage[], spec: ConcatSpec): Storage;
  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage;
  conv2d(x: Storage, weight: Storage, spec: Conv2dSpec): Storage;
  /** dL/dx from dL/dy [n, cOut, hOut, wOut]. */
  conv2dGradInput(dy: Storage, weight: Storage, spec: Conv2dSpec): Storage;
  /** dL/dweight from x and dL/dy. */
  conv2dGradWeight(x: Storage, dy: Storage, spec: Conv2dSpec): Storage;
  /** out[o, i, r] = x[o, indices[i], r]. */
  gather(x: Storage, indices: Storage, spec: GatherSpec): Storage;
  /** out[o, v, r] = Σ_{i: indices[i] = v} src[o, i, r] (the adjoint of gather). */
  scatterAdd(src: Storage, indices: Storage, spec: GatherSpec): Storage;
}
