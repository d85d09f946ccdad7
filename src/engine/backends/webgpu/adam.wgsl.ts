/**
 * WGSL port of adamKernel in backends/cpu/fused.ts: one Adam/AdamW step per element in one
 * pass (7 buffers) instead of about a dozen element-wise dispatches. Same operation order as the
 * composite update in nn/optim.ts; the scalar factors are computed on the host in f64.
 */
import type { AdamSpec } from '../../backend.js';
import { declareBuffers, flatMain, kernel, type LaunchContext, WG } from './kernel.js';
import type { GpuBuf } from './pool.js';
import { grid1d, type Kernel } from './runtime.js';
import { paramFields } from './params.js';

export function adamKernel(l2: boolean): Kernel {
  return kernel(`adam/${l2 ? 'l2' : 'decoupled'}`, () => ({
    buffers: declareBuffers('f32', ['p', 'g', 'm', 'v'], ['po', 'mo', 'vo']),
    params: paramFields({
      n: 'u32',
      decay: 'f32',
      wd: 'f32',
      omb1: 'f32',
      b2: 'f32',
      omb2: 'f32',
      step: 'f32',
      bc2: 'f32',
      eps: 'f32',
    }),
    body: flatMain(`  let theta = p[i] * p_decay();
  let gr = ${l2 ? 'g[i] + p[i] * p_wd()' : 'g[i]'};
  let mi = m[i] + (gr - m[i]) * p_omb1();
  let vi = v[i] * p_b2() + gr * gr * p_omb2();
  mo[i] = mi;
  vo[i] = vi;
  po[i] = theta - (mi * p_step()) / (sqrt(vi) / p_bc2() + p_eps());`),
  }));
}

export function launchAdam(
  ctx: LaunchContext,
  inputs: [GpuBuf, GpuBuf, GpuBuf, GpuBuf],
  outputs: [GpuBuf, GpuBuf, GpuBuf],
  n: number,
  s: AdamSpec,
): void {
  if (n === 0) return;
  const l2 = s.weightDecay !== 0 && !s.decoupled;
  ctx.runtime.dispatch(
    adamKernel(l2),
    [...inputs, ...outputs],
    {
      n,
      decay: s.weightDecay !== 0 && s.decoupled ? 1 - s.lr * s.weightDecay : 1,
      wd: s.weightDecay,
      omb1: 1 - s.beta1,
      b2: s.beta2,
      omb2: 1 - s.beta2,
      step: s.lr / s.biasCorrection1,
      bc2: s.biasCorrection2Sqrt,
      eps: s.eps,
    },
    grid1d(Math.ceil(n / WG)),
  );
}
