/**
 * Which build of the gemm module (`wasm/gemm.wat`) a process uses. The plain build updates each
 * accumulator as c + a·b with f32x4.mul then f32x4.add (two roundings per step); the fused build
 * uses relaxed SIMD's f32x4.relaxed_madd, which V8 lowers to vfmadd231ps where the CPU has FMA3
 * (one rounding per step) and to the same mul + add where it has not.
 *
 * `SUMI_CPU_FMA`: 0 forces the plain build; 1 asks for the fused one, in Node 20 by turning on
 * V8's `--experimental-wasm-relaxed-simd` flag; unset (auto) takes the fused build only where the
 * runtime compiles relaxed SIMD without being asked (browsers with Chrome ≥ 114's V8, newer Node),
 * and the plain one otherwise. The choice is made once per thread from the environment, so every
 * thread of a process (gemm helpers, training replicas) makes the same one and computes the same
 * bits; the variable is read at start-up and must not change while the process runs.
 */
import { nodeProcess } from './threads.js';
import { type GemmKernel, gemmModuleBytes } from './wasm/kernel.js';

export type { GemmKernel };

/** SUMI_CPU_FMA: unset `auto`, 0 `off`, 1 `on`. */
export type FmaMode = 'auto' | 'on' | 'off';

/** The mode named by a value of SUMI_CPU_FMA; anything but unset, '', 0 and 1 is an error. */
export function parseFmaMode(value: string | undefined): FmaMode {
  if (value === undefined || value === '') return 'auto';
  if (value === '0') return 'off';
  if (value === '1') return 'on';
  throw new Error(
    `SUMI_CPU_FMA must be 0 (plain multiply-add) or 1 (fused, relaxed SIMD), not '${value}'`,
  );
}

/** What the selection needs to know of the runtime. */
export interface RelaxedSimdSupport {
  /** Whether the runtime compiles relaxed SIMD now. */
  available(): boolean;
  /** Asks the runtime to turn relaxed SIMD on (Node: V8's flag); may do nothing. */
  enable(): void;
}

/**
 * The kernel for a mode: `off` plain; `auto` fused where relaxed SIMD is already there; `on`
 * fused after turning relaxed SIMD on where that is possible. Plain whenever it is unavailable.
 */
export function chooseGemmKernel(mode: FmaMode, support: RelaxedSimdSupport): GemmKernel {
  if (mode === 'off') return 'plain';
  if (support.available()) return 'fma';
  if (mode === 'auto') return 'plain';
  support.enable();
  return support.available() ? 'fma' : 'plain';
}

/**
 * This runtime's relaxed SIMD: available when the fused module itself validates (feature
 * detection, never the user agent); enabled in Node through `v8.setFlagsFromString`, which holds
 * for the whole process (every isolate, the worker threads' too).
 */
export const runtimeRelaxedSimd: RelaxedSimdSupport = {
  available(): boolean {
    try {
      return WebAssembly.validate(gemmModuleBytes('fma', false));
    } catch {
      return false;
    }
  },
  enable(): void {
    const v8 = nodeProcess()?.getBuiltinModule?.('node:v8') as
      { setFlagsFromString(flags: string): void } | undefined;
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  },
};

/** The kernel this thread's environment asks for (SUMI_CPU_FMA) and the runtime allows. */
export function selectGemmKernel(support: RelaxedSimdSupport = runtimeRelaxedSimd): GemmKernel {
  return chooseGemmKernel(parseFmaMode(nodeProcess()?.env['SUMI_CPU_FMA']), support);
}
