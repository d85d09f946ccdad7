import { createWebGpuBackend } from './src/engine/backends/webgpu/index.js';
import { TILE_L, TILE_S } from './src/engine/backends/webgpu/gemm.wgsl.js';
import { matmulKernel } from './src/engine/backends/webgpu/matmul.wgsl.js';
const gpu = (await createWebGpuBackend())!;
const rt = gpu.runtime;
const a = rt.pool.acquire(1 << 20, true), b = rt.pool.acquire(1 << 20, true), c = rt.pool.acquire(1 << 20, true);
await rt.sync();
async function time(name: string, f: () => void) { const t0 = performance.now(); f(); await rt.sync(); console.log(name, (performance.now() - t0).toFixed(0), 'ms'); }
for (const [name, t] of [['S', TILE_S], ['L', TILE_L]] as const) for (const ck of [false, true])
  await time(`mm ${name} ${ck}`, () => rt.dispatch(matmulKernel(t, false, false, ck), [a, b, c], { M: 32, N: 32, K: 8, kchunk: 8, splits: 1, astride: 0, bstride: 0, cslice: 0, b0: 0 }, [1, 1, 1]));
