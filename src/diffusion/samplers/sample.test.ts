import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, type Tensor } from '../../engine/index.js';
import { createScheduler } from './registry.js';
import { sample, type StepInfo } from './sample.js';

void describe('sampling loop', () => {
  void it('runs the pipeline loop and reports every step', () => {
    const s = createScheduler('heun');
    const xT = randn([1, 2, 2, 2], { seed: 1, dtype: 'float64' });
    const seen: Omit<StepInfo, 'sample' | 'predOriginalSample' | 'modelInput' | 'modelOutput'>[] =
      [];
    const ts: number[] = [];
    const out = sample(
      s,
      (x: Tensor, t: number) => {
        ts.push(t);
        return x.mul(0.1);
      },
      xT,
      {
        numInferenceSteps: 5,
        onStep: ({ i, t, sample: x, predOriginalSample }) => {
          assert.deepEqual(x.shape, [1, 2, 2, 2]);
          assert.ok(predOriginalSample !== null, 'predOriginalSample !== null');
          seen.push({ i, t });
        },
      },
    );
    assert.equal(seen.length, 9); // Heun: 2n − 1 model calls
    assert.deepEqual(
      seen.map((x) => x.i),
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(ts, Array.from(s.timesteps));
    assert.deepEqual(out.shape, [1, 2, 2, 2]);
  });

  void it('starts from x_T · initNoiseSigma', () => {
    const s = createScheduler('euler');
    const xT = randn([1, 1, 2, 2], { seed: 2, dtype: 'float64' });
    let first: number[] = [];
    sample(s, (x) => x.mul(0), xT, {
      numInferenceSteps: 3,
      onStep: ({ i, modelInput }) => {
        if (i === 0) first = Array.from(modelInput.dataSync());
      },
    });
    const sigma = s.sigmas![0]!;
    const expected = Array.from(
      xT.dataSync(),
      (v) => (v * s.initNoiseSigma) / Math.sqrt(sigma * sigma + 1),
    );
    first.forEach((v, k) =>
      assert.ok(Math.abs(v - expected[k]!) < 1e-14, 'Math.abs(v - expected[k]!) < 1e-14'),
    );
  });

  void it('passes the generator to stochastic steps', () => {
    const s = createScheduler('euler-a');
    const xT = randn([1, 1, 2, 2], { seed: 3, dtype: 'float64' });
    assert.throws(() => sample(s, (x) => x.mul(0.1), xT, { numInferenceSteps: 3 }), /generator/);
    const a = sample(s, (x) => x.mul(0.1), xT, {
      numInferenceSteps: 3,
      generator: new Generator(9),
    });
    const b = sample(s, (x) => x.mul(0.1), xT, {
      numInferenceSteps: 3,
      generator: new Generator(9),
    });
    assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  });
});
