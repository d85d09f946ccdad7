/**
 * The autoencoder trainer's checkpoint refuses non-finite weights, the discriminator's as well as
 * the autoencoder's: a NaN weight stops the save with a NonFiniteError naming it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { subsetDataset } from '../../src/data/index.js';
import { NonFiniteError, resolveVaeConfig, VaeTrainer } from '../../src/diffusion/index.js';
import { full, noGrad } from '../../src/engine/index.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-vae-ckpt-');

const CODER = {
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
  latent_channels: 2,
};

function trainer(): VaeTrainer {
  const images = subsetDataset(
    fx.mnist8,
    Array.from({ length: 16 }, (_, i) => i),
  );
  const config = resolveVaeConfig(
    {
      model: CODER,
      train: {
        kind: 'kl',
        data: 'mnist',
        steps: 2,
        batchSize: 8,
        holdout: 0,
        scalingBatches: 1,
        discStart: 0,
        discriminator: { numLayers: 1 } as never,
      },
    },
    images,
  );
  return new VaeTrainer(config, images);
}

void describe('VaeTrainer.checkpointFiles', () => {
  void test('a NaN weight of the discriminator stops the save, named with the step that made it', async () => {
    const t = trainer();
    try {
      await t.trainStep();
      const files = await t.checkpointFiles();
      assert.ok(
        files.some((f) => f.path === 'discriminator.safetensors'),
        'a finite discriminator is saved',
      );
      const [name, w] = t.discriminator!.namedParameters().at(-1)!;
      w.assign(noGrad(() => full(w.shape, NaN)));
      await assert.rejects(t.checkpointFiles(), (e: unknown) => {
        assert.ok(e instanceof NonFiniteError, String(e));
        assert.equal(e.step, 0);
        assert.match(e.message, new RegExp(`the weight 'discriminator\\.${name}' is NaN`));
        return true;
      });
    } finally {
      t.dispose();
    }
  });
});
