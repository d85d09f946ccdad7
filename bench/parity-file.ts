/**
 * The file through which a benchmark hands Sumi's numbers to the PyTorch side, which must match
 * them before its timings count (torch_unet.check_parity in bench/torch_unet.py).
 */
import { mean, randn, square, sub, tidy, type Tensor } from '../src/engine/index.js';
import { type TensorToWrite, writeSafetensors } from '../src/nn/index.js';
import type { UNet2DModel } from '../src/nn/models/index.js';

/** The timesteps of the parity batch: both ends of the schedule and two between. */
const TIMESTEPS = [0, 250, 500, 999];

/**
 * Writes, as float32 safetensors: sample [4, C, H, W] and target (seeded normal draws),
 * timesteps, output = model(sample, timesteps), and grad.<name> of mean((output − target)²)
 * for every parameter. The model is left in eval mode with its gradients cleared.
 */
export async function writeParityFile(model: UNet2DModel, path: string): Promise<void> {
  model.eval();
  model.zeroGrad();
  const [c, h, w] = model.sampleShape;
  const backend = model.parameters()[0]!.backend;
  const named = model.namedParameters();
  const [sample, target, output] = tidy(() => {
    const x = randn([TIMESTEPS.length, c, h, w], { seed: 1, backend });
    const y = randn([TIMESTEPS.length, c, h, w], { seed: 2, backend });
    const out = model.forward(x, TIMESTEPS);
    mean(square(sub(out, y))).backward();
    return [x, y, out];
  });
  const f32 = async (name: string, t: Tensor): Promise<TensorToWrite> => ({
    name,
    shape: t.shape,
    data: Float32Array.from((await t.data()) as Float32Array),
  });
  try {
    const tensors: TensorToWrite[] = [
      await f32('sample', sample),
      { name: 'timesteps', shape: [TIMESTEPS.length], data: Float32Array.from(TIMESTEPS) },
      await f32('target', target),
      await f32('output', output),
    ];
    for (const [name, p] of named) {
      if (p.grad === null || p.grad === undefined)
        throw new Error(`parity: no gradient for ${name}`);
      tensors.push(await f32(`grad.${name}`, p.grad));
    }
    await writeSafetensors(path, tensors);
  } finally {
    for (const t of [sample, target, output]) t.dispose();
    model.zeroGrad();
  }
}
