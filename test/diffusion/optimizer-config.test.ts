/**
 * The optimizer keys every trainer's config shares are checked one way (optimizerProblems): the
 * autoencoder and classifier configs refuse the same bad values with the same words.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  defaultClassifierTrainConfig,
  optimizerProblems,
  resolveClassifierConfig,
  resolveVaeConfig,
} from '../../src/diffusion/index.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-optim-config-');

void describe('optimizerProblems', () => {
  void test('names every bad shared key, and none of a good config', () => {
    assert.deepEqual(optimizerProblems(defaultClassifierTrainConfig), []);
    assert.deepEqual(
      optimizerProblems({
        ...defaultClassifierTrainConfig,
        steps: 0,
        batchSize: 1.5,
        warmupSteps: -1,
        seed: -2,
        lr: -1,
        minLr: -1e-5,
        weightDecay: NaN,
        maxGradNorm: 0,
      }),
      [
        "'steps' must be an integer >= 1, got 0",
        "'batchSize' must be an integer >= 1, got 1.5",
        "'lr' must be a number >= 0, got -1",
        "'warmupSteps' must be an integer >= 0, got -1",
        "'minLr' must be a number >= 0, got -0.00001",
        "'weightDecay' must be a number >= 0, got NaN",
        "'maxGradNorm' must be a positive number or null, got 0",
        "'seed' must be an integer in [0, 2^53), got -2",
      ],
    );
  });

  void test('the classifier config refuses a negative minLr, as the autoencoder config does', () => {
    assert.throws(
      () => resolveClassifierConfig({ train: { data: 'mnist', minLr: -1 } }, fx.mnist8),
      /'minLr' must be a number >= 0, got -1/,
    );
    assert.throws(
      () =>
        resolveVaeConfig(
          { model: { norm_num_groups: 4 }, train: { data: 'mnist', minLr: -1 } },
          fx.mnist8,
        ),
      /'minLr' must be a number >= 0, got -1/,
    );
  });
});
