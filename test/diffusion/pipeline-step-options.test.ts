// Guided pipelines' DDIM re-derives ε̂ from the clipped x̂_0 when the scheduler clips
// (pipelineStepOptions): generate's default under guidance is the explicit useClippedModelOutput:
// true under clip_sample, and differs from diffusers' unclipped ε̂ there; unguided or without
// clipping it is the plain step.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  classConditioning,
  createSampler,
  encodeConditions,
  generate,
  type GenerateOptions,
  pipelineStepOptions,
} from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend } from '../../src/engine/index.js';
import { tinyUNet } from './train-setup.js';

const cpu = cpuBackend();
setDefaultBackend(cpu);

const model = tinyUNet(5, { num_class_embeds: 4 }).eval();
// Strong guidance pushes x̂_0 out of [−1, 1], where the clip acts.
const { cond, uncond } = encodeConditions(
  classConditioning({ numClasses: 3, nullClassId: 3 }),
  { values: [0, 1, 2], guidanceScale: 8 },
  cpu,
);
const base: GenerateOptions = {
  n: 3,
  seed: 7,
  numInferenceSteps: 5,
  cond,
  uncond,
  guidanceScale: 8,
};
const images = (clip: boolean, useClippedModelOutput?: boolean, w = 8): Float32Array => {
  const ddim = createSampler('ddim', { num_train_timesteps: 100, clip_sample: clip });
  const x = generate(model, ddim, { ...base, guidanceScale: w, useClippedModelOutput });
  const data = x.dataSync() as Float32Array;
  x.dispose();
  return data;
};

void describe('pipelineStepOptions', () => {
  void test('turns the clipped ε̂ on under guidance where the scheduler clips or thresholds', () => {
    const ddim = (o: Record<string, unknown>) =>
      createSampler('ddim', { num_train_timesteps: 100, ...o });
    const clipped = (o: Record<string, unknown>, w: number) =>
      pipelineStepOptions(ddim(o), w).useClippedModelOutput;
    assert.equal(clipped({}, 3), true);
    assert.equal(clipped({}, 0), true);
    assert.equal(clipped({}, 1), false, "unguided: diffusers' choice");
    assert.equal(clipped({ clip_sample: false }, 3), false);
    assert.equal(clipped({ clip_sample: false, thresholding: true }, 3), true);
    const given = pipelineStepOptions(ddim({}), 3, { eta: 0.5, useClippedModelOutput: false });
    assert.deepEqual(given, { eta: 0.5, useClippedModelOutput: false });
  });

  void test('generate: guided DDIM under clip_sample samples with the clipped ε̂ unless told not to', () => {
    const byDefault = images(true);
    assert.deepEqual(byDefault, images(true, true));
    const unclipped = images(true, false);
    let diff = 0;
    for (let i = 0; i < unclipped.length; i++) {
      diff = Math.max(diff, Math.abs(unclipped[i]! - byDefault[i]!));
    }
    assert.ok(diff > 1e-3, `diffusers' unclipped ε̂ gives other images (max difference ${diff})`);
    assert.deepEqual(images(false), images(false, false));
    // Unguided, the default is diffusers' unclipped ε̂.
    assert.deepEqual(images(true, undefined, 1), images(true, false, 1));
  });
});
