import { createWebGpuBackend } from './src/engine/backends/webgpu/index.js';
import { TILE_L, TILE_M, TILE_S } from './src/engine/backends/webgpu/gemm.wgsl.js';
import { launchMatmul } from './src/engine/backends/webgpu/matmul.wgsl.js';
const gpu = (await createWebGpuBackend())!;
const a = gpu.fromArray(new Float32Array(256 * 256)), b = gpu.fromArray(new Float32Array(256 * 256));
await gpu.read(a);
for (const [m, n, k, batch] of [[128, 128, 16, 96], [250, 200, 9, 24], [64, 64, 8, 96], [33, 40, 5, 1]]) {
  for (const trial of [0, 1]) {
    const t0 = performance.now();
    const o = gpu.matmul(a, b, { batch, m, n, k, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
    await gpu.read(o);
    console.log(m, n, k, batch, trial, (performance.now() - t0).toFixed(0), 'ms');
  }
}
