/**
 * Helper of simd.test.ts, run as a child process with SUMI_CPU_THREADS set: waits (up to 30 s)
 * for the gemm workers, runs float32 matmuls and convolutions big enough to be split, and prints
 * the SHA-256 of the results and the number of workers that were ready.
 */
import { createHash } from 'node:crypto';

import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import { conv2dSpec } from '../../../src/engine/ops/conv.js';
import { cpu, randArray } from '../webgpu/setup.js';

const rt = simdRuntime();
if (rt === null) throw new Error('no SIMD runtime');
for (let i = 0; i < 1200 && rt.threads !== null && rt.threads.readyCount < rt.threads.size; i++) {
  await new Promise((resolve) => setTimeout(resolve, 25));
}
const hash = createHash('sha256');
const add = (s: ReturnType<typeof cpu.fromArray>): void => {
  hash.update(new Uint8Array(cpu.readSync!(s).buffer));
};
const a = cpu.fromArray(randArray(96 * 200, 1));
const b = cpu.fromArray(randArray(200 * 120, 2));
add(
  cpu.matmul(a, b, {
    batch: 1,
    m: 96,
    n: 120,
    k: 200,
    transA: false,
    transB: false,
    aBatchStride: 0,
    bBatchStride: 0,
  }),
);
for (const [stride, padding] of [
  [1, 1],
  [2, 1],
]) {
  const spec = conv2dSpec([3, 16, 12, 12], [32, 16, 3, 3], { stride, padding });
  const x = cpu.fromArray(randArray(3 * 16 * 12 * 12, 3));
  const w = cpu.fromArray(randArray(32 * 16 * 9, 4));
  const dy = cpu.fromArray(randArray(3 * 32 * spec.hOut * spec.wOut, 5));
  add(cpu.conv2d(x, w, spec));
  add(cpu.conv2dGradInput(dy, w, spec));
  add(cpu.conv2dGradWeight(x, dy, spec));
}
process.stdout.write(`${hash.digest('hex')} workers ${rt.threads?.readyCount ?? 0}\n`);
process.exit(0);
