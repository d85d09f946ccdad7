/**
 * A latent run's scheduler does not clip x̂_0: clip_sample (true by default, for pixels in
 * [−1, 1]) would cut most of a latent prediction in the DDPM and DDIM steps, so a latent run
 * resolves it to false, refuses an explicit true, and a pixel run keeps the default.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { subsetDataset } from '../../src/data/index.js';
import { loadVae, resolveTrainConfig, TrainConfigError } from '../../src/diffusion/index.js';
import { TINY_UNET } from '../nn/models/testing.js';
import { TINY_LATENT_UNET, writeTinyKlVae } from './latent-setup.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-latent-scheduler-');

void describe('the scheduler of a latent run', () => {
  void test('clip_sample is false for latents, true by default for pixels, and true is refused for latents', async () => {
    const v = { ...(await loadVae(await writeTinyKlVae(join(fx.dir, 'vae')))), dir: 'vae' };
    const data = subsetDataset(fx.mnist8, 8);
    const latent = resolveTrainConfig(
      { model: TINY_LATENT_UNET, scheduler: {}, train: { data: 'x' } },
      data,
      v,
    );
    assert.equal(latent.scheduler.clip_sample, false);
    const pixel = resolveTrainConfig(
      { model: { ...TINY_UNET, sample_size: 8 }, scheduler: {}, train: { data: 'x' } },
      data,
    );
    assert.equal(pixel.scheduler.clip_sample, true);
    assert.throws(
      () =>
        resolveTrainConfig(
          { model: TINY_LATENT_UNET, scheduler: { clip_sample: true }, train: { data: 'x' } },
          data,
          v,
        ),
      (e: unknown) => e instanceof TrainConfigError && /needs clip_sample false/.test(e.message),
    );
  });
});
