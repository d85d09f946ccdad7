/**
 * float32 matrix products through a WebAssembly SIMD micro-kernel (`wasm/gemm.wat`): operands are
 * packed into panels inside the module's memory (A in panels of 4 rows, B in panels of 8 columns,
 * both contiguous along k), the kernel accumulates each 4×8 tile of C in f32x4 registers, and the
 * caller copies C out. Accumulation is in float32, as on the GPU; float64 stays on the JS gemm.
 *
 * When worker threads are available the columns of C are split between this thread and helper
 * workers that share the module's memory (`threads.ts`).
 */
import { GEMM_WASM } from './wasm/gemm-wasm.js';
import { decodeBase64, GemmThreads, nodeProcess } from './threads.js';

export const PANEL_M = 4;
export const PANEL_N = 8;

/** (ap, bp, cp, mp, jStart, jEnd, k, ldc, accumulate[, table]) with byte addresses. */
type KernelFn = (...args: number[]) => void;

const PAGE = 65536;
/** 32-bit WebAssembly memory: 65,536 pages. */
const MAX_BYTES = 65536 * PAGE;

/** The module's memory, the kernel, and float views that follow the memory when it grows. */
export class SimdRuntime {
  readonly memory: WebAssembly.Memory;
  readonly kernel: KernelFn;
  readonly kernelRows: KernelFn;
  readonly kernelARows: KernelFn;
  readonly threads: GemmThreads | null;
  #f32: Float32Array;

  constructor() {
    this.threads = GemmThreads.create();
    this.memory = this.threads ? this.threads.memory : new WebAssembly.Memory({ initial: 16 });
    const module = this.threads
      ? this.threads.module
      : new WebAssembly.Module(decodeBase64(GEMM_WASM));
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.kernel = instance.exports['gemm'] as KernelFn;
    this.kernelRows = instance.exports['gemm_rows'] as KernelFn;
    this.kernelARows = instance.exports['gemm_arows'] as KernelFn;
    this.#f32 = new Float32Array(this.memory.buffer);
  }

  /** A Float32Array over the whole memory, grown to at least `floats` elements. */
  view(floats: number): Float32Array {
    const bytes = floats * 4;
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
    }
    return this.#f32;
  }

  /** Runs the packed kernel over column panels [0, np), split across the threads when it pays. */
  run(p: GemmPlan, accumulate: boolean): void {
    const args = [
      p.aBase * 4,
      p.bBase * 4,
      p.cBase * 4,
      p.mp,
      0,
      0,
      p.k,
      p.ldc,
      accumulate ? 1 : 0,
    ];
    this.#dispatch(0, this.kernel, args, p.mp * p.np * p.k, p.np);
  }

  /**
   * gemm_rows: C (+)= A·B with A packed at aBase and row q of B at bBase + table[q] (float
   * offsets here; the table of k int32 at tableBase holds byte offsets from bBase).
   */
  runRows(
    aBase: number,
    bBase: number,
    tableBase: number,
    cBase: number,
    mp: number,
    np: number,
    k: number,
    ldc: number,
    accumulate: boolean,
  ): void {
    const args = [aBase * 4, bBase * 4, cBase * 4, mp, 0, 0, k, ldc, accumulate ? 1 : 0];
    args.push(tableBase * 4);
    this.#dispatch(1, this.kernelRows, args, mp * np * k, np);
  }

  /**
   * gemm_arows: C (+)= A·B with row r of A at aBase + table[r] (the table of 4·mp int32 byte
   * offsets at tableBase), contiguous along k, and B packed with panel j at bBase + j·bStride
   * floats. Float offsets here, as in runRows.
   */
  runARows(
    aBase: number,
    tableBase: number,
    bBase: number,
    bStride: number,
    cBase: number,
    mp: number,
    np: number,
    k: number,
    ldc: number,
    accumulate: boolean,
  ): void {
    const args = [aBase * 4, bBase * 4, cBase * 4, mp, 0, 0, k, ldc, accumulate ? 1 : 0];
    args.push(tableBase * 4, bStride * 4);
    this.#dispatch(2, this.kernelARows, args, mp * np * k, np);
  }

  #dispatch(id: 0 | 1 | 2, kernel: KernelFn, args: number[], work: number, np: number): void {
    if (this.threads && work >= 1 << 16 && np >= 2) {
      this.threads.run(id, kernel, args, np);
    } else {
      args[5] = np;
      kernel(...args);
    }
  }
}

let runtime: SimdRuntime | null | undefined;

/** The SIMD runtime, or null where WebAssembly SIMD is unavailable (then the JS gemm is used). */
export function simdRuntime(): SimdRuntime | null {
  if (runtime === undefined) {
    try {
      runtime = nodeProcess()?.env['SUMI_CPU_SIMD'] === '0' ? null : new SimdRuntime();
    } catch {
      runtime = null;
    }
  }
  return runtime;
}

/**
 * Where one product's operands live in the module's memory: A panels at aBase, B panels at bBase,
 * C (4·mp rows × ldc floats) at cBase, all in float offsets.
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
  /** Extra scratch of `scratchSize` floats at scratchBase (im2col columns). */
  scratchBase: number;
  mem: Float32Array;
}

export function planGemm(rt: SimdRuntime, m: number, n: number, k: number, scratch = 0): GemmPlan {
  const mp = Math.ceil(m / PANEL_M);
  const np = Math.ceil(n / PANEL_N);
  const ldc = np * PANEL_N;
  // Offsets rounded to 4 floats keep every v128 access 16-byte aligned.
  const up = (x: number): number => Math.ceil(x / 4) * 4;
  const aBase = 0;
  const bBase = up(aBase + mp * PANEL_M * k);
  const cBase = up(bBase + np * PANEL_N * k);
  const scratchBase = up(cBase + mp * PANEL_M * ldc);
  const mem = rt.view(scratchBase + scratch);
  return { m, n, k, mp, np, ldc, aBase, bBase, cBase, scratchBase, mem };
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
  generic = false,
): void {
  const panels = Math.ceil(rows / R);
  if (rs === 1 && !generic) {
    // Rows adjacent in memory: walk k outside so that reads and writes both run in R-long strips.
    const full = Math.floor(rows / R);
    for (let q = 0; q < full; q++) {
      let o = base + q * k * R;
      let s = off + q * R;
      for (let p = 0; p < k; p++, s += cs) {
        for (let r = 0; r < R; r++) dst[o++] = src[s + r]!;
      }
    }
    if (full === panels) return;
    return packPanels(
      src,
      off + full * R,
      rows - full * R,
      k,
      rs,
      cs,
      R,
      dst,
      base + full * k * R,
      true,
    );
  }
  for (let q = 0; q < panels; q++) {
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
export function unpackC(p: GemmPlan, c: Float32Array, cOff: number, accumulate: boolean): void {
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
  const p = planGemm(rt, m, n, k);
  // op(A)[i, q] = A[i·k + q] or A[q·m + i];  op(B)[q, j] = B[q·n + j] or B[j·k + q].
  packPanels(a, aOff, m, k, g.transA ? 1 : k, g.transA ? m : 1, PANEL_M, p.mem, p.aBase);
  packPanels(b, bOff, n, k, g.transB ? k : 1, g.transB ? 1 : n, PANEL_N, p.mem, p.bBase);
  rt.run(p, false);
  unpackC(p, c, cOff, g.accumulate);
}
