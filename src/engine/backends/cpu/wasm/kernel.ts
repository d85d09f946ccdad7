/** The interface of the gemm module (gemm.wat): its bytes and its argument list. */
import { GEMM_WASM, GEMM_WASM_FMA, GEMM_WASM_FMA_SHARED, GEMM_WASM_SHARED } from './gemm-wasm.js';

/** The gemm's multiply-add: two roundings (`plain`) or relaxed SIMD's fused one (`fma`). */
export type GemmKernel = 'plain' | 'fma';

/** The kernel's arguments, in its order (see gemm.wat); every address in bytes. */
export interface Product {
  /** 4·mp row addresses of A. */
  aTable: number;
  /** Bytes between A[r, p] and A[r, p + 1]: 16 for packed panels, 4 for rows read in place. */
  aStep: number;
  /** k row addresses of B's column panel 0. */
  bTable: number;
  /** Bytes between column panels of B. */
  bPanel: number;
  c: number;
  mp: number;
  np: number;
  k: number;
  ldc: number;
  accumulate: boolean;
  /**
   * Bytes between B's rows when they are evenly spaced (32 for packed panels); the kernel then
   * reads only bTable[0]. 0 or absent: every row's address comes from the table.
   */
  bStride?: number;
}

export type KernelFn = (...args: number[]) => void;

/** The kernel's argument list for column panels [jStart, jEnd). */
export function kernelArgs(p: Product, jStart: number, jEnd: number): number[] {
  return [
    p.aTable,
    p.aStep,
    p.bTable,
    p.bPanel,
    p.c,
    p.mp,
    jStart,
    jEnd,
    p.k,
    p.ldc,
    p.accumulate ? 1 : 0,
    p.bStride ?? 0,
  ];
}

export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The gemm module's bytes: plain or fused, with private or shared memory. */
export function gemmModuleBytes(kernel: GemmKernel, shared: boolean): Uint8Array<ArrayBuffer> {
  const text =
    kernel === 'fma'
      ? shared
        ? GEMM_WASM_FMA_SHARED
        : GEMM_WASM_FMA
      : shared
        ? GEMM_WASM_SHARED
        : GEMM_WASM;
  return decodeBase64(text);
}
