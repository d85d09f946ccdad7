/**
 * float32 matrix products through a WebAssembly SIMD micro-kernel (`wasm/gemm.wat`): operands are
 * packed into panels inside the module's memory (A in panels of 4 rows, B in panels of 8 columns,
 * both contiguous along k) or read in place through tables of row addresses, the kernel
 * accumulates each 4×8 tile of C in f32x4 registers, and the caller copies C out. Accumulation is in float32, as on the GPU; float64 stays on the JS gemm.
 *
 * When worker threads are available the columns of C are split between this thread and helper
 * workers that share the module's memory (`threads.ts`). The module comes in a plain and a fused
 * multiply-add build (relaxed SIMD); `relaxed-simd.ts` chooses one per process.
 */
import { selectGemmKernel } from './relaxed-simd.js';
import { GemmThreads, nodeProcess } from './threads.js';
import {
  type GemmKernel,
  gemmModuleBytes,
  kernelArgs,
  type KernelFn,
  type Product,
} from './wasm/kernel.js';

export const PANEL_M = 4;
export const PANEL_N = 8;

const PAGE = 65536;
/** 32-bit WebAssembly memory: 65,536 pages. */
const MAX_BYTES = 65536 * PAGE;

/** How a runtime is built: which gemm (see relaxed-simd.ts) and whether with helper threads. */
export interface SimdRuntimeOptions {
  kernel: GemmKernel;
  threads: boolean;
}

/** The module's memory, the kernel, and views that follow the memory when it grows. */
export class SimdRuntime {
  readonly memory: WebAssembly.Memory;
  readonly kernel: KernelFn;
  /** The build of the module in use: plain or fused multiply-add. */
  readonly kernelKind: GemmKernel;
  /** σ in place over the floats at byte addresses [p, end), end − p a multiple of 32. */
  readonly sigmoid: (p: number, end: number) => void;
  /** x σ(x) in place over the floats at byte addresses [p, end), end − p a multiple of 16. */
  readonly silu: (p: number, end: number) => void;
  /** Σ (x − c)^e (e = 1 or 2) over n floats at byte address p, in float64 (`sum_pow`). */
  readonly sumPow: (p: number, n: number, c: number, e: number) => number;
  /** dst = x·a + y·b + c over n floats in float64, rounded once (`lincomb`; py −1: no y). */
  readonly lincomb: (
    px: number,
    py: number,
    dst: number,
    n: number,
    a: number,
    b: number,
    c: number,
  ) => void;
  /** Σ d and Σ d·(x − μ) over n floats, as two float64 at byte address out (`sum_dot`). */
  readonly sumDot: (pd: number, px: number, n: number, mu: number, out: number) => void;
  /** dz = dy·σ(z)·(1 + z·(1 − σ(z))) in float32 over z in place (`silu_grad`; bytes a multiple of 16). */
  readonly siluGrad: (pz: number, pdy: number, bytes: number) => void;
  /** x Φ(x) in place over the floats at byte addresses [p, end), end − p a multiple of 16. */
  readonly gelu: (p: number, end: number) => void;
  /** dy · (Φ(x) + x φ(x)) over dy in place: x at px, dy at pdy, `bytes` a multiple of 16. */
  readonly geluGrad: (px: number, pdy: number, bytes: number) => void;
  /** dst = a ∘ b over n floats (`binary` in gemm.wat; op 0–3 = + − × ÷; steps sa, sb 0 or 1). */
  readonly binary: (
    op: number,
    pa: number,
    sa: number,
    pb: number,
    sb: number,
    dst: number,
    n: number,
  ) => void;
  /** Strided row copy of the module (`copy_rows` in gemm.wat; byte addresses and strides). */
  readonly copyRows: (...args: number[]) => void;
  /** The same copy plus a float32 scalar per (a, b) (`copy_rows_bias`). */
  readonly copyRowsBias: (...args: number[]) => void;
  /** Winograd F(2×2, 3×3) transforms (`winograd_in`, `winograd_out`, `winograd_grad_out`). */
  readonly winogradIn: (...args: number[]) => void;
  readonly winogradOut: (...args: number[]) => void;
  readonly winogradGradOut: (...args: number[]) => void;
  readonly threads: GemmThreads | null;
  #f32: Float32Array;
  #i32: Int32Array;

  constructor(options: SimdRuntimeOptions) {
    this.kernelKind = options.kernel;
    this.threads = options.threads ? GemmThreads.create(options.kernel) : null;
    this.memory = this.threads ? this.threads.memory : new WebAssembly.Memory({ initial: 16 });
    const module = this.threads
      ? this.threads.module
      : new WebAssembly.Module(gemmModuleBytes(options.kernel, false));
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.kernel = instance.exports['gemm'] as KernelFn;
    this.sigmoid = instance.exports['sigmoid'] as (p: number, end: number) => void;
    this.silu = instance.exports['silu'] as (p: number, end: number) => void;
    this.sumPow = instance.exports['sum_pow'] as SimdRuntime['sumPow'];
    this.lincomb = instance.exports['lincomb'] as SimdRuntime['lincomb'];
    this.sumDot = instance.exports['sum_dot'] as SimdRuntime['sumDot'];
    this.siluGrad = instance.exports['silu_grad'] as SimdRuntime['siluGrad'];
    this.gelu = instance.exports['gelu'] as (p: number, end: number) => void;
    this.geluGrad = instance.exports['gelu_grad'] as (px: number, pdy: number, b: number) => void;
    this.binary = instance.exports['binary'] as SimdRuntime['binary'];
    this.copyRows = instance.exports['copy_rows'] as (...args: number[]) => void;
    this.copyRowsBias = instance.exports['copy_rows_bias'] as (...args: number[]) => void;
    this.winogradIn = instance.exports['winograd_in'] as (...args: number[]) => void;
    this.winogradOut = instance.exports['winograd_out'] as (...args: number[]) => void;
    this.winogradGradOut = instance.exports['winograd_grad_out'] as (...args: number[]) => void;
    this.#f32 = new Float32Array(this.memory.buffer);
    this.#i32 = new Int32Array(this.memory.buffer);
  }

  /** Float32 and Int32 views over the whole memory, grown to at least `words` 4-byte words. */
  view(words: number): { mem: Float32Array; ints: Int32Array } {
    const bytes = words * 4;
    if (this.memory.buffer.byteLength < bytes) {
      if (bytes > MAX_BYTES) {
        throw new Error(
          `cpu backend: a float32 product needs ${(bytes / 2 ** 20).toFixed(0)} MiB of ` +
            `WebAssembly memory, over the 4 GiB limit; split the batch, or set SUMI_CPU_SIMD=0`,
        );
      }
      this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE));
    }
    if (this.#f32.buffer !== this.memory.buffer || this.#f32.length * 4 < bytes) {
      this.#f32 = new Float32Array(this.memory.buffer);
      this.#i32 = new Int32Array(this.memory.buffer);
    }
    return { mem: this.#f32, ints: this.#i32 };
  }

  /** Runs one product, its column panels split across the threads when it pays. */
  run(p: Product): void {
    if (this.threads && helperThreads && p.mp * p.np * p.k >= 1 << 16 && p.np >= 2) {
      this.threads.run(this.kernel, p);
    } else {
      this.kernel(...kernelArgs(p, 0, p.np));
    }
  }
}

let runtime: SimdRuntime | null | undefined;
let helperThreads = true;

/**
 * Whether float32 products may use the helper threads (default yes). A caller that keeps the
 * other cores busy itself (data-parallel replicas of a model) turns them off for the time; the
 * results are the same bit for bit either way.
 */
export function setCpuHelperThreads(enabled: boolean): void {
  helperThreads = enabled;
}

/**
 * The SIMD runtime, or null where WebAssembly SIMD is unavailable (then the JS gemm is used). Its
 * gemm is the plain or the fused build as SUMI_CPU_FMA and the runtime decide (relaxed-simd.ts);
 * a bad SUMI_CPU_FMA is an error here.
 */
export function simdRuntime(): SimdRuntime | null {
  if (runtime === undefined) {
    if (nodeProcess()?.env['SUMI_CPU_SIMD'] === '0') {
      runtime = null;
    } else {
      const kernel = selectGemmKernel();
      try {
        runtime = new SimdRuntime({ kernel, threads: true });
      } catch {
        runtime = null;
      }
    }
  }
  return runtime;
}

/** 4-byte words rounded up to 4, so that every v128 access stays 16-byte aligned. */
export const up4 = (words: number): number => Math.ceil(words / 4) * 4;

/** Writes the row addresses of A packed in panels of 4 at aBase (floats): row 4i + r at aBase + 4ik + r. */
export function packedATable(ints: Int32Array, at: number, aBase: number, mp: number, k: number) {
  for (let i = 0; i < mp; i++) {
    for (let r = 0; r < PANEL_M; r++)
      ints[at + i * PANEL_M + r] = (aBase + i * PANEL_M * k + r) * 4;
  }
}

/** Writes the row addresses p0 ≤ p < p0 + len of B packed in panels of 8 at bBase (floats). */
export function packedBTable(ints: Int32Array, at: number, bBase: number, p0: number, len: number) {
  for (let p = 0; p < len; p++) ints[at + p] = (bBase + (p0 + p) * PANEL_N) * 4;
}

/**
 * Where one packed product lives in the module's memory (float offsets): A panels at aBase, B
 * panels at bBase, C (4·mp rows × ldc floats) at cBase, their address tables, and `scratch`
 * floats at scratchBase (im2col columns).
 */
export interface GemmPlan {
  m: number;
  n: number;
  k: number;
  mp: number;
  np: number;
  ldc: number;
  aBase: number;
  bBase: number;
  cBase: number;
  scratchBase: number;
  mem: Float32Array;
  /** The kernel arguments, without `accumulate`. */
  product: Omit<Product, 'accumulate'>;
}

export function planGemm(rt: SimdRuntime, m: number, n: number, k: number, scratch = 0): GemmPlan {
  const mp = Math.ceil(m / PANEL_M);
  const np = Math.ceil(n / PANEL_N);
  const ldc = np * PANEL_N;
  const aBase = 0;
  const bBase = up4(aBase + mp * PANEL_M * k);
  const cBase = up4(bBase + np * PANEL_N * k);
  const aTable = up4(cBase + mp * PANEL_M * ldc);
  const bTable = up4(aTable + mp * PANEL_M);
  const scratchBase = up4(bTable + k);
  const { mem, ints } = rt.view(scratchBase + scratch);
  packedATable(ints, aTable, aBase, mp, k);
  packedBTable(ints, bTable, bBase, 0, k);
  const product = {
    aTable: aTable * 4,
    aStep: PANEL_M * 4,
    bTable: bTable * 4,
    bPanel: k * PANEL_N * 4,
    bStride: PANEL_N * 4,
    c: cBase * 4,
    mp,
    np,
    k,
    ldc,
  };
  return { m, n, k, mp, np, ldc, aBase, bBase, cBase, scratchBase, mem, product };
}

/**
 * Packs a rows×k matrix X, X[r, p] = src[off + r·rs + p·cs], into panels of R rows, zero-padded
 * past the last row: dst[base + q·k·R + p·R + r'] = X[q·R + r', p].
 */
export function packPanels(
  src: ArrayLike<number>,
  off: number,
  rows: number,
  k: number,
  rs: number,
  cs: number,
  R: number,
  dst: Float32Array,
  base: number,
): void {
  const panels = Math.ceil(rows / R);
  let q = 0;
  if (rs === 1) {
    // Rows adjacent in memory: walk k outside so that reads and writes both run in R-long strips
    // (full panels; the last, partial one goes through the general loop).
    for (; q < Math.floor(rows / R); q++) {
      let o = base + q * k * R;
      let s = off + q * R;
      for (let p = 0; p < k; p++, s += cs) {
        for (let r = 0; r < R; r++) dst[o++] = src[s + r]!;
      }
    }
  }
  for (; q < panels; q++) {
    const pBase = base + q * k * R;
    for (let r = 0; r < R; r++) {
      const row = q * R + r;
      let o = pBase + r;
      if (row >= rows) {
        for (let p = 0; p < k; p++, o += R) dst[o] = 0;
      } else if (cs === 1) {
        const s = off + row * rs;
        for (let p = 0; p < k; p++, o += R) dst[o] = src[s + p]!;
      } else {
        let s = off + row * rs;
        for (let p = 0; p < k; p++, o += R, s += cs) dst[o] = src[s]!;
      }
    }
  }
}

/** Copies C (m × n of the plan) to c at cOff, row-major, replacing or adding. */
export function unpackC(
  p: Pick<GemmPlan, 'm' | 'n' | 'ldc' | 'cBase' | 'mem'>,
  c: Float32Array,
  cOff: number,
  accumulate: boolean,
): void {
  const { m, n, ldc, cBase, mem } = p;
  for (let i = 0; i < m; i++) {
    const s = cBase + i * ldc;
    const o = cOff + i * n;
    if (accumulate) {
      for (let j = 0; j < n; j++) c[o + j]! += mem[s + j]!;
    } else {
      c.set(mem.subarray(s, s + n), o);
    }
  }
}

/**
 * C[m×n] (at cOff) = op(A)·op(B) (or += when accumulate), float32, with A at aOff ([m×k], or
 * [k×m] when transA) and B at bOff ([k×n], or [n×k] when transB), row-major and contiguous.
 *
 * An operand whose rows the kernel can walk as they are is copied into the module's memory in one
 * piece and read in place: A untransposed (row i of op(A) is row i of A, aStep 4 bytes) and B
 * untransposed (row q of op(B) is row q of B, evenly spaced n floats apart; the last column panel
 * reads up to 7 floats past a row into the next one, or into the zeros after B, and those columns
 * of C are never copied out). A transposed is packed into panels of 4 by the module's strided copy
 * (4 adjacent floats of a row of A per step along k); B transposed is packed in JavaScript.
 */
export function gemmF32(
  rt: SimdRuntime,
  g: { m: number; n: number; k: number; transA: boolean; transB: boolean; accumulate: boolean },
  a: Float32Array,
  aOff: number,
  b: Float32Array,
  bOff: number,
  c: Float32Array,
  cOff: number,
): void {
  const { m, n, k } = g;
  const mp = Math.ceil(m / PANEL_M);
  const np = Math.ceil(n / PANEL_N);
  const ldc = np * PANEL_N;
  // Memory (floats): A (as it is, or panels), B (as it is plus the last panel's overrun, or
  // panels), C, the tables of row addresses, and where a transposed A is staged (plus the last
  // panel's overrun).
  const aBase = 0;
  const bBase = up4(aBase + (g.transA ? mp * PANEL_M * k : m * k));
  const cBase = up4(bBase + (g.transB ? np * PANEL_N * k : k * n + PANEL_N));
  const aTable = up4(cBase + mp * PANEL_M * ldc);
  const bTable = up4(aTable + mp * PANEL_M);
  const stage = up4(bTable + k);
  const { mem, ints } = rt.view(stage + (g.transA ? m * k + PANEL_M : 0));
  if (g.transA) {
    // op(A)[i, q] = A[q·m + i]: panel i's step q is the 4 floats A[q·m + 4i ..]
    mem.set(a.subarray(aOff, aOff + m * k), stage);
    mem.fill(0, stage + m * k, stage + m * k + PANEL_M);
    rt.copyRows(
      stage * 4,
      aBase * 4,
      PANEL_M,
      mp,
      PANEL_M * 4,
      k * PANEL_M * 4,
      k,
      m * 4,
      PANEL_M * 4,
      1,
      0,
      0,
    );
    packedATable(ints, aTable, aBase, mp, k);
  } else {
    mem.set(a.subarray(aOff, aOff + m * k), aBase);
    // rows past m repeat the last row; their outputs are dropped
    for (let r = 0; r < mp * PANEL_M; r++) ints[aTable + r] = (aBase + Math.min(r, m - 1) * k) * 4;
  }
  let product: Product;
  const common = { aTable: aTable * 4, bTable: bTable * 4, c: cBase * 4, mp, np, k, ldc };
  const aStep = g.transA ? PANEL_M * 4 : 4;
  if (g.transB) {
    // op(B)[q, j] = B[j·k + q]
    packPanels(b, bOff, n, k, k, 1, PANEL_N, mem, bBase);
    packedBTable(ints, bTable, bBase, 0, k);
    product = {
      ...common,
      aStep,
      bPanel: k * PANEL_N * 4,
      bStride: PANEL_N * 4,
      accumulate: false,
    };
  } else {
    mem.set(b.subarray(bOff, bOff + k * n), bBase);
    mem.fill(0, bBase + k * n, bBase + k * n + PANEL_N);
    ints[bTable] = bBase * 4;
    product = { ...common, aStep, bPanel: PANEL_N * 4, bStride: n * 4, accumulate: false };
  }
  rt.run(product);
  unpackC({ m, n, ldc, cBase, mem }, c, cOff, g.accumulate);
}
