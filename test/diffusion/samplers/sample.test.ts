import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { concat, Generator, randn, type Tensor } from '../../../src/engine/index.js';
import { mapMeanPart, meanPartOf } from '../../../src/diffusion/samplers/common.js';
import { createScheduler } from '../../../src/diffusion/samplers/registry.js';
import { sample, type StepInfo } from '../../../src/diffusion/samplers/sample.js';

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
          assert.ok(predOriginalSample !== null, `step ${i}: predOriginalSample`);
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
      assert.ok(Math.abs(v - expected[k]!) < 1e-14, `element ${k}: ${v} vs ${expected[k]}`),
    );
  });

  void it('gives a learned-variance output [B, 2C] whole to DDPM with Σ_θ, its mean part to the rest', () => {
    const xT = randn([1, 2, 2, 2], { seed: 4, dtype: 'float64' });
    // Mean part 0.1 x, variance part v = 0.5 (both C = 2 channels).
    const model = (x: Tensor): Tensor => concat([x.mul(0.1), x.mul(0).add(0.5)], 1);
    const seen = (name: string, config: Record<string, unknown>): number[][] => {
      const shapes: number[][] = [];
      sample(createScheduler(name, config), model, xT, {
        numInferenceSteps: 2,
        generator: new Generator(1),
        onStep: ({ modelOutput }) => void shapes.push([...modelOutput.shape]),
      });
      return shapes;
    };
    const learned = { variance_type: 'learned_range' };
    assert.deepEqual(
      seen('ddpm', learned),
      [
        [1, 4, 2, 2],
        [1, 4, 2, 2],
      ],
      'DDPM reads Σ_θ',
    );
    assert.deepEqual(
      seen('ddpm', {}),
      [
        [1, 2, 2, 2],
        [1, 2, 2, 2],
      ],
      'fixed_small: mean part',
    );
    for (const name of ['ddim', 'euler', 'dpmpp-2m', 'pndm']) {
      assert.ok(
        seen(name, learned).every((sh) => sh[1] === 2),
        `${name}: the mean part only`,
      );
    }
    // mapMeanPart applies f to the mean part and keeps the rest; a C-channel output is all mean.
    const out = model(xT);
    const mapped = mapMeanPart(out, 2, (m) => m.mul(-1)).dataSync();
    const o = out.dataSync();
    o.forEach((v, i) => assert.equal(mapped[i], i < 8 ? -v : v, `element ${i}`));
    assert.deepEqual(
      Array.from(mapMeanPart(xT, 2, (m) => m.mul(2)).dataSync()),
      Array.from(xT.dataSync(), (v) => 2 * v),
    );
    assert.equal(meanPartOf(xT, 2), xT, 'C channels: the output itself');
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
