/**
 * The image trainers (diffusion, classifier, autoencoder) refuse a dataset of another shape than
 * their config's one way, checkImageShape, naming both shapes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { checkImageShape, TrainConfigError, VaeTrainer } from '../../src/diffusion/index.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-shape-');

void describe('checkImageShape', () => {
  void test('passes the config shape and names both shapes otherwise', () => {
    const ds = { name: 'dots', channels: 3 as const, height: 16, width: 16 };
    checkImageShape(ds, { imageSize: 16, channels: 3 });
    assert.throws(
      () => checkImageShape(ds, { imageSize: 8, channels: 3 }),
      (e: unknown) =>
        e instanceof TrainConfigError &&
        e.message === 'dots: images are 3x16x16, the config wants 3x8x8',
    );
    assert.throws(
      () => checkImageShape(ds, { imageSize: 16, channels: 1 }),
      /dots: images are 3x16x16, the config wants 1x16x16/,
    );
  });

  void test('the autoencoder trainer refuses images of another size', () => {
    const config = { imageSize: 16, channels: 1 } as ConstructorParameters<typeof VaeTrainer>[0];
    assert.throws(
      () => new VaeTrainer(config, fx.mnist8),
      /images are 1x8x8, the config wants 1x16x16/,
    );
  });
});
