/**
 * The bound in bits/dim measures training: the same tiny model trained longer has a lower bound on
 * the same images with the same noise (all T terms, no stratified sampling).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadPipeline } from '../../src/diffusion/index.js';
import { modelNll, spreadIndices } from '../../src/eval/evaluate.js';
import { TINY_UNET, trainBase, trainFixture } from '../diffusion/train-setup.js';

const fx = trainFixture('sumi-nll-training-');

/** bits/dim of the run in `dir` on 8 spread-out 8×8 digits, every one of the T = 100 terms. */
async function bitsPerDim(dir: string): Promise<number> {
  const p = await loadPipeline(dir);
  try {
    const indices = spreadIndices(fx.mnist8.length, 8);
    const r = await modelNll({
      model: p.model,
      condition: p.condition,
      schedulerConfig: p.schedulerConfig,
      dataset: fx.mnist8,
      indices,
      values: indices.map(() => null),
      batchSize: 8,
      stride: 1,
      seed: 0,
    });
    assert.equal(r.estimator, 'exact');
    return r.bitsPerDim;
  } finally {
    for (const t of p.model.parameters()) t.dispose();
  }
}

void describe('bits/dim against training length', () => {
  void test('a model trained 150 steps has a lower bound than the same run at 5 steps', async () => {
    const train = { lr: 2e-3, batchSize: 8, emaDecay: 0 };
    await trainBase(fx, join(fx.dir, 'short'), TINY_UNET, { ...train, steps: 5 });
    await trainBase(fx, join(fx.dir, 'long'), TINY_UNET, { ...train, steps: 150 });
    const short = await bitsPerDim(join(fx.dir, 'short'));
    const long = await bitsPerDim(join(fx.dir, 'long'));
    assert.ok(Number.isFinite(short) && Number.isFinite(long), `${short} ${long}`);
    assert.ok(long < short - 0.1, `150 steps: ${long} bits/dim, 5 steps: ${short}`);
  });
});
