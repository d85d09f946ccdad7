import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, tensor } from '../../../src/engine/index.js';
import {
  drawNoise,
  indexForTimestep,
  quantile,
  thresholdSample,
} from '../../../src/diffusion/samplers/common.js';

void describe('scheduler helpers', () => {
  void it('quantile interpolates linearly like torch.quantile', () => {
    assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
    const v = Array.from({ length: 100 }, (_, i) => i);
    assert.ok(
      Math.abs(quantile(v, 0.995) - 98.505) < 1e-12,
      `quantile 0.995: ${quantile(v, 0.995)}`,
    );
    assert.equal(quantile([7], 0.3), 7);
  });

  void it('dynamic thresholding clamps each sample to its quantile s ∈ [1, max] and divides by s', () => {
    const small = Array.from({ length: 8 }, (_, i) => (i - 4) / 10); // |x| ≤ 0.4: s = 1
    const big = Array.from({ length: 8 }, (_, i) => (i - 4) * 3); // |x| up to 12: s = max = 5
    const x = tensor(Float64Array.from([...small, ...big]), [2, 2, 2, 2]);
    const out = Array.from(thresholdSample(x, 0.9, 5).dataSync());
    assert.deepEqual(out.slice(0, 8), small);
    assert.deepEqual(
      out.slice(8),
      big.map((v) => Math.min(5, Math.max(-5, v)) / 5),
    );
  });

  void it('finds a timestep, taking the second of two occurrences', () => {
    const ts = Float64Array.from([999, 500, 500, 0]);
    assert.equal(indexForTimestep(ts, 999), 0);
    assert.equal(indexForTimestep(ts, 500), 2);
    assert.throws(() => indexForTimestep(ts, 3), /not in the schedule/);
    assert.equal(indexForTimestep(ts, 3, 'last'), 3);
  });

  void it('draws noise from explicit noise, then the generator, else explains what is missing', () => {
    const like = tensor(new Float64Array(6), [2, 3]);
    const n = tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.equal(drawNoise(like, { noise: n }, 'X'), n);
    assert.equal(drawNoise(like, { noise: () => n }, 'X'), n);
    const g = drawNoise(like, { generator: new Generator(1) }, 'X');
    assert.deepEqual(g.shape, [2, 3]);
    assert.equal(g.dtype, 'float64');
    assert.throws(() => drawNoise(like, {}, 'X'), /pass \{ generator \} or \{ noise \}/);
    assert.throws(() => drawNoise(like, { noise: tensor([1, 2]) }, 'X'), /noise of shape \[2\]/);
  });
});
