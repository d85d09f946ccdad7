// The editing pipelines take the step options of guided sampling from the same place as
// generate (pipelineStepOptions, through withNoise): given the guidance scale w ≠ 1 of their model
// callback, a clipping DDIM re-derives ε̂ from the clipped x̂_0; unguided (w = 1, the default) they
// keep diffusers' unclipped ε̂; an explicit useClippedModelOutput wins.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  classConditioning,
  conditionedModel,
  createSampler,
  type EditSamplingOptions,
  ImageNoise,
  img2img,
  inpaint,
  inpaintAsync,
} from '../../src/diffusion/index.js';
import {
  cpuBackend,
  randn,
  setDefaultBackend,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { maxAbsDiff } from '../engine/testing.js';
import { tinyUNet } from './train-setup.js';

setDefaultBackend(cpuBackend());

const W = 8;
const denoiser = tinyUNet(5, { num_class_embeds: 4 }).eval();
// Strong guidance pushes x̂_0 out of [−1, 1], where the clip acts.
const { model } = conditionedModel(
  denoiser,
  classConditioning({ numClasses: 3, nullClassId: 3 }),
  [0, 1],
  W,
);
const image = randn([2, 1, 8, 8], { seed: 4 }).tanh();
const mask = tensor(
  Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0)),
  [1, 1, 8, 8],
);

type Run = (opts: EditSamplingOptions) => Tensor | Promise<Tensor>;
const ddim = () => createSampler('ddim', { num_train_timesteps: 100, clip_sample: true });
const runs: Record<string, Run> = {
  img2img: (o) => img2img(model, ddim(), image, { ...o, strength: 0.8 }),
  inpaint: (o) => inpaint(model, ddim(), image, { ...o, mask }),
  inpaintAsync: (o) => inpaintAsync(model, ddim(), image, { ...o, mask }),
};

async function pixels(run: Run, extra: Partial<EditSamplingOptions>): Promise<Float32Array> {
  const noise = new ImageNoise(11, 0, 2, [1, 8, 8]);
  const x = await run({ numInferenceSteps: 6, noise: () => noise.next(), ...extra });
  const data = x.dataSync() as Float32Array;
  x.dispose();
  return data;
}

void describe('editing pipelines: step options under guidance', () => {
  for (const [name, run] of Object.entries(runs)) {
    void test(`${name}: guided DDIM under clip_sample uses the clipped ε̂ unless told not to`, async () => {
      const byDefault = await pixels(run, { guidanceScale: W });
      const clipped = await pixels(run, {
        guidanceScale: W,
        stepOptions: { useClippedModelOutput: true },
      });
      const unclipped = await pixels(run, { stepOptions: { useClippedModelOutput: false } });
      assert.deepEqual(byDefault, clipped);
      const diff = maxAbsDiff(byDefault, unclipped);
      assert.ok(diff > 1e-3, `the unclipped ε̂ gives other images (max difference ${diff})`);
      // Without a guidance scale the run is taken as unguided: diffusers' unclipped ε̂.
      assert.deepEqual(await pixels(run, {}), unclipped);
      // An explicit choice wins over the guided default.
      assert.deepEqual(
        await pixels(run, { guidanceScale: W, stepOptions: { useClippedModelOutput: false } }),
        unclipped,
      );
    });
  }
});
