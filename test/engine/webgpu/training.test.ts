/**
 * A small training loop through the public ops on webgpu, compared step by step with the CPU
 * backend (both float32): conv2d → groupNorm → silu → linear → mean squared error, backward, SGD.
 * Every forward and backward primitive of a diffusion U-Net block runs (conv and both conv
 * gradients, reductions, broadcasting, strided copies, matmul with transposes).
 *
 * Tolerance: float32 on both sides, but different summation orders (the CPU accumulates dot
 * products and sums in f64), so losses agree to ~1e-6 relative and gradients, which pass through
 * groupNorm's 1/σ and several reductions, to rtol 1e-4 with a 1e-6 absolute floor; three SGD
 * steps keep the divergence at that level.
 */
import { describe, test } from 'node:test';

import {
  type Backend,
  conv2d,
  cpuBackend,
  groupNorm,
  linear,
  mean,
  noGrad,
  reshape,
  silu,
  square,
  sub,
  type Tensor,
  tensor,
  tidy,
} from '../../../src/engine/index.js';
import { assertNear, randArray, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;

interface Params {
  w1: Tensor;
  b1: Tensor;
  gamma: Tensor;
  beta: Tensor;
  w2: Tensor;
  b2: Tensor;
}

function makeParams(backend: Backend): Params {
  const t = (n: number, shape: number[], seed: number, scale: number) =>
    tensor(
      randArray(n, seed).map((v) => v * scale),
      shape,
      { backend, requiresGrad: true },
    );
  return {
    w1: t(8 * 3 * 9, [8, 3, 3, 3], 1, 0.3),
    b1: t(8, [8], 2, 0.1),
    gamma: tensor(new Float32Array(8).fill(1), [8], { backend, requiresGrad: true }),
    beta: t(8, [8], 3, 0.1),
    w2: t(5 * 8 * 25, [5, 8 * 25], 4, 0.05),
    b2: t(5, [5], 5, 0.1),
  };
}

/** Runs `steps` SGD steps; returns the losses and the final gradients. */
async function train(backend: Backend, steps: number) {
  const p = makeParams(backend);
  const x = tensor(randArray(3 * 3 * 10 * 10, 6), [3, 3, 10, 10], { backend });
  const target = tensor(randArray(3 * 5, 7), [3, 5], { backend });
  const losses: number[] = [];
  let grads: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const loss = tidy(() => {
      const h = conv2d(x, p.w1, p.b1, { padding: 1, stride: 2 }); // [3, 8, 5, 5]
      const n = silu(groupNorm(h, 4, p.gamma, p.beta));
      const y = linear(reshape(n, [3, 8 * 25]), p.w2, p.b2);
      const l = mean(square(sub(y, target)));
      l.backward();
      return l;
    });
    losses.push((await loss.data())[0]!);
    loss.dispose();
    const list = Object.values(p) as Tensor[];
    grads = await Promise.all(list.map(async (t) => (await t.grad!.data()) as Float32Array));
    noGrad(() => {
      for (const t of list) {
        tidy(() => t.assign(sub(t, t.grad!.mul(0.5))));
        t.zeroGrad();
      }
    });
  }
  return { losses, grads };
}

void describe('webgpu training loop', { skip }, () => {
  void test('conv + groupNorm + silu + linear: losses and gradients match the CPU', async () => {
    const g = await train(gpu!, 3);
    const c = await train(cpuBackend(), 3);
    assertNear(Float32Array.from(g.losses), Float32Array.from(c.losses), { rtol: 1e-5 }, 'loss');
    const names = ['w1', 'b1', 'gamma', 'beta', 'w2', 'b2'];
    g.grads.forEach((gr, i) =>
      assertNear(gr, c.grads[i]!, { rtol: 1e-4, atol: 1e-6 }, `grad ${names[i]}`),
    );
  });
});
