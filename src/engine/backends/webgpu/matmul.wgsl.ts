/**
 * WGSL port of matmulKernel in backends/cpu/matmul.ts: batched C[b] = op(A[b])·op(B[b]) with
 * either operand transposed and batch strides (0 broadcasts one matrix), on the GEMM template.
 * Split-K slices, when used, are summed by the reduce kernel (fixed order, deterministic).
 */
import type { MatmulSpec } from '../../backend.js';
import {
  dispatchGemm,
  gemmKernel,
  type GemmTile,
  isAligned,
  pickSplits,
  pickTile,
} from './gemm.wgsl.js';
import { declareBuffers, type LaunchContext } from './kernel.js';
import type { GpuBuf } from './pool.js';
import { launchReduce } from './reduce.wgsl.js';
import { MAX_GROUPS } from './runtime.js';
import { paramFields } from './params.js';

export function matmulKernel(tile: GemmTile, transA: boolean, transB: boolean, checked: boolean) {
  return gemmKernel({
    name: `matmul/${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`,
    tile,
    checked,
    buffers: declareBuffers('f32', ['A', 'B'], ['C']),
    params: paramFields({ astride: 'u32', bstride: 'u32', cslice: 'u32', b0: 'u32' }),
    aMajor: transA ? 'm' : 'k',
    bMajor: transB ? 'k' : 'n',
    prelude: `  let K = p_K();
  let zg = zb + p_b0();
  let aBase = zg * p_astride();
  let bBase = zg * p_bstride();
  let cBase = zs * p_cslice() + zg * M * N;`,
    loadA: (m, k) => (transA ? `A[aBase + ${k} * M + ${m}]` : `A[aBase + ${m} * K + ${k}]`),
    loadB: (k, n) => (transB ? `B[bBase + ${n} * K + ${k}]` : `B[bBase + ${k} * N + ${n}]`),
    rowOffset: (m) => `cBase + ${m} * N`,
    colOffset: (n) => n,
  });
}

export function launchMatmul(
  ctx: LaunchContext,
  a: GpuBuf,
  b: GpuBuf,
  out: GpuBuf,
  spec: MatmulSpec,
): void {
  const { batch, m, n, k } = spec;
  const total = batch * m * n;
  if (total === 0) return;
  const tile = pickTile(m, n, batch, ctx.runtime.device.limits.maxComputeWorkgroupStorageSize);
  const { splits, kchunk } = pickSplits(tile, m, n, batch, k);
  const kern = matmulKernel(tile, spec.transA, spec.transB, !isAligned(tile, m, n, k));
  const target = splits === 1 ? out : ctx.scratch(splits * total);
  const chunk = Math.floor(MAX_GROUPS / splits);
  for (let b0 = 0; b0 < batch; b0 += chunk) {
    const nb = Math.min(chunk, batch - b0);
    const params = {
      M: m,
      N: n,
      K: k,
      kchunk,
      splits,
      astride: spec.aBatchStride,
      bstride: spec.bBatchStride,
      cslice: total,
      b0,
    };
    dispatchGemm(ctx.runtime, kern, [a, b, target], params, tile, nb * splits);
  }
  if (splits > 1) {
    launchReduce(ctx, 'sum', 'float32', target, out, 1, splits, total);
    ctx.release(target);
  }
}
