/**
 * Helper of relaxed-simd.test.ts, run as a child process with SUMI_CPU_FMA and V8 flags set:
 * prints whether relaxed SIMD compiled before the backend started, then the gemm build the backend
 * chose (`plain`, `fma`, or `none` without the SIMD runtime).
 */
import { runtimeRelaxedSimd } from '../../../src/engine/backends/cpu/relaxed-simd.js';
import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';

const before = runtimeRelaxedSimd.available();
process.stdout.write(
  `${before ? 'relaxed' : 'no-relaxed'} ${simdRuntime()?.kernelKind ?? 'none'}\n`,
);
process.exit(0);
