/**
 * Training and sampling on the WebGPU backend: a few steps of the tiny U-Net on 8×8 MNIST give
 * the same losses as the CPU backend (float32 both, to float32 tolerance), and DDIM sampling of
 * the trained model on the GPU matches the CPU.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  createScheduler,
  generate,
  resolveTrainConfig,
  Trainer,
} from '../../src/diffusion/index.js';
import { type Backend, cpuBackend, setDefaultBackend } from '../../src/engine/index.js';
import { setupGpu } from '../engine/webgpu/setup.js';
import { TINY_UNET, trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-train-webgpu-');

async function trainAndSample(
  backend: Backend,
): Promise<{ losses: number[]; pixels: Float32Array }> {
  setDefaultBackend(backend);
  try {
    const config = resolveTrainConfig(
      {
        model: TINY_UNET,
        scheduler: {},
        train: { data: 'mnist', steps: 4, batchSize: 4, lr: 1e-3, warmupSteps: 1, emaDecay: null },
      },
      fx.mnist8,
    );
    const trainer = new Trainer(config, fx.mnist8);
    const losses: number[] = [];
    while (trainer.step < 4) losses.push((await trainer.trainStep()).loss);
    const scheduler = createScheduler('DDIMScheduler', {});
    const x = generate(trainer.model, scheduler, { n: 2, seed: 5, numInferenceSteps: 4 });
    const pixels = Float32Array.from(await x.data());
    x.dispose();
    trainer.dispose();
    return { losses, pixels };
  } finally {
    setDefaultBackend(cpuBackend());
  }
}

void describe('training on webgpu', async () => {
  const gpu = await setupGpu();
  void test(
    '4 steps and DDIM sampling agree with the CPU backend',
    { skip: gpu === null },
    async () => {
      const cpu = await trainAndSample(cpuBackend());
      const webgpu = await trainAndSample(gpu!);
      cpu.losses.forEach((l, i) => {
        const g = webgpu.losses[i]!;
        assert.ok(Math.abs(g - l) <= 1e-3 * Math.abs(l) + 1e-5, `step ${i}: webgpu ${g}, cpu ${l}`);
      });
      let worst = 0;
      cpu.pixels.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - webgpu.pixels[i]!))));
      assert.ok(worst < 1e-2, `largest sample difference ${worst}`);
    },
  );
});
