/**
 * `upscale` training (SR3): the config gives the U-Net 2C input channels; every step shows the
 * model x_t joined with the batch's block means, bicubic-upsampled and noised at σ_a from stream
 * (seed, 'augment', s); the loss falls on 8×8 MNIST from 4×4; the checkpoint's sumi.json carries
 * the settings, `loadPipeline` takes the folder only as an upscaler, and `upscale` samples it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  checkTrainValues,
  createSampler,
  downsampleBox,
  ImageNoise,
  loadPipeline,
  resolveTrainConfig,
  streamSeed,
  type TrainConfig,
  Trainer,
  TrainConfigError,
  upscale,
  upscaleCondition,
} from '../../src/diffusion/index.js';
import { noGrad, randn, type Tensor } from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import {
  assertLossHalves,
  firstImages,
  recordConcatImages,
  TINY_UNET,
  trainFixture,
} from './train-setup.js';

const fx = trainFixture('sumi-train-upscale-');

const UP = { factor: 2, noiseAugmentation: 0.2 };

function config(train: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig(
    {
      model: TINY_UNET,
      scheduler: { num_train_timesteps: 100 },
      train: { data: 'mnist', upscale: UP, batchSize: 8, emaDecay: null, ...train },
    },
    fx.mnist8,
  );
}

const digits = (n: number): Tensor => firstImages(fx.mnist8, n);

void describe('upscale training (SR3)', () => {
  void test('the model takes x_t and the upsampled image: in_channels 2C, out_channels C', () => {
    const c = config();
    assert.equal(c.model.in_channels, 2);
    assert.equal(c.model.out_channels, 1);
    assert.deepEqual(c.upscale, UP);
    assert.throws(
      () => checkTrainValues({ upscale: { factor: 3, noiseAugmentation: 0 } }, 'train'),
      (e: unknown) =>
        e instanceof TrainConfigError && /'upscale' must be \{ factor: 2 or 4/.test(e.message),
    );
    assert.throws(
      () => checkTrainValues({ upscale: { factor: 2, noiseAugmentation: 1 } }, 'train'),
      TrainConfigError,
    );
  });

  void test("step s conditions on bicubic(box(x_0)) noised at σ_a with stream (seed, 'augment', s)", async () => {
    // One micro-batch, so that every denoiser call is on this thread.
    const trainer = new Trainer(config({ microBatches: 1 }), fx.mnist8);
    const seen = recordConcatImages(trainer.model);
    await trainer.trainStep();
    await trainer.trainStep();
    assert.equal(seen.length, 2, 'a denoiser call per step');
    for (const s of [0, 1]) {
      const x0 = trainer.loader.batchAt(s).x;
      const eps = randn(x0.shape, { seed: streamSeed(trainer.config.seed, 'augment', s) });
      const want = upscaleCondition(downsampleBox(x0, 2), UP, eps).dataSync();
      assertClose(
        seen[s]!,
        want,
        { atol: 1e-6, rtol: 0 },
        `step ${s}: the condition of each image`,
      );
    }
    trainer.dispose();
  });

  void test('the loss falls, and the checkpoint loads only as an upscaler that upscales', async () => {
    const out = join(fx.dir, 'sr');
    const trainer = new Trainer(config({ steps: 60, lr: 3e-3, warmupSteps: 5 }), fx.mnist8);
    await assertLossHalves(trainer, out);
    const preview = noGrad(() => trainer.previewImages(2, 3, 'ddim'));
    assert.deepEqual(preview.shape, [2, 1, 8, 8]);
    assert.ok(preview.dataSync().every(Number.isFinite), 'the preview upscales to finite pixels');
    trainer.dispose();

    await assert.rejects(
      loadPipeline(out),
      /an SR3 upscaler \(×2, sumi.json "upscale"\).*sumi edit upscale/,
    );
    const p = await loadPipeline(out, { tasks: ['upscale'] });
    assert.deepEqual(p.info?.upscale, UP);
    const noise = new ImageNoise(0, 0, 2, [1, 8, 8]);
    const low = downsampleBox(digits(2), 2);
    const x = upscale(p.model, createSampler('ddim', p.schedulerConfig), low, {
      ...p.info.upscale,
      numInferenceSteps: 5,
      noise: () => noise.next(),
    });
    assert.deepEqual(x.shape, [2, 1, 8, 8]);
    assert.ok(x.dataSync().every(Number.isFinite), 'finite pixels');
  });
});
