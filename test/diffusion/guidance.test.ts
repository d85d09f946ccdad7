import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  concat,
  cpuBackend,
  Generator,
  logSoftmax,
  noGrad,
  randn,
  slice,
  type Tensor,
  tensor,
  tidy,
} from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import { EncoderClassifierModel, UNet2DModel } from '../../src/nn/models/index.js';
import { predictedEpsilon, type PredictionType } from '../../src/diffusion/forward.js';
import {
  alphaCumprodAt,
  checkClassifierFits,
  classifierGuidance,
  classifierLogProbGrad,
} from '../../src/diffusion/guidance.js';
import { createScheduler, sample } from '../../src/diffusion/samplers/index.js';
import { sigmasFromAlphasCumprod, sigmaToT } from '../../src/diffusion/samplers/sigmas.js';

const CLASSIFIER = {
  sample_size: 4,
  in_channels: 1,
  num_classes: 3,
  block_out_channels: [4, 8],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'] as const,
  layers_per_block: 1,
  norm_num_groups: 2,
  attention_head_dim: 4,
  num_train_timesteps: 1000,
};

async function tinyClassifier(dtype: 'float32' | 'float64'): Promise<EncoderClassifierModel> {
  const m = new EncoderClassifierModel(
    { ...CLASSIFIER, down_block_types: [...CLASSIFIER.down_block_types] },
    { generator: new Generator(3) },
  );
  if (dtype === 'float64') await m.to({ dtype });
  return m.eval();
}

const acp = createScheduler('ddpm').alphasCumprod;

/** Σ_b log p(y_b | x_b, t) in float64. */
function logProb(c: EncoderClassifierModel, x: Tensor, t: number, labels: number[]): number {
  return noGrad(() =>
    tidy(() => {
      const lp = logSoftmax(c.forward(x, t), -1).dataSync();
      const k = c.numClasses;
      return labels.reduce((s, y, b) => s + lp[b * k + y]!, 0);
    }),
  );
}

void describe('classifier guidance', () => {
  void it('∇ log p_φ(y | x, t) matches float64 central differences', async () => {
    const c = await tinyClassifier('float64');
    const labels = [2, 0];
    const x = randn([2, 1, 4, 4], { seed: 1, dtype: 'float64' });
    const t = 321.5;
    const grad = noGrad(() => classifierLogProbGrad(c, x, t, labels));
    assert.deepEqual(grad.shape, x.shape);
    const base = Float64Array.from(x.dataSync());
    const h = 1e-5;
    const fd = base.map((_, i) => {
      const at = (d: number): number => {
        const v = Float64Array.from(base);
        v[i]! += d;
        return logProb(c, tensor(v, x.shape, { dtype: 'float64' }), t, labels);
      };
      return (at(h) - at(-h)) / (2 * h);
    });
    assertClose(grad.dataSync(), fd, { rtol: 1e-6, atol: 1e-9 });
    for (const [n, p] of c.namedParameters()) {
      assert.equal(p.grad, null, `${n} accumulated no gradient`);
      assert.equal(p.requiresGrad, true, `${n} requires grad again afterwards`);
    }
  });

  void it('ᾱ at fractional t inverts diffusers’ σ → t map, and is exact at integer t', () => {
    assert.equal(alphaCumprodAt(acp, 250), acp[250]);
    assert.equal(alphaCumprodAt(acp, -3), acp[0]);
    assert.equal(alphaCumprodAt(acp, 5000), acp[999]);
    const logSigmas = sigmasFromAlphasCumprod(acp).map(Math.log);
    for (const t of [0.25, 17.5, 499.9, 998.01]) {
      const a = alphaCumprodAt(acp, t);
      assert.ok(a < acp[Math.floor(t)]! && a > acp[Math.ceil(t)]!, `ᾱ(${t}) lies between`);
      const sigma = Math.sqrt((1 - a) / a);
      assert.ok(Math.abs(sigmaToT(sigma, logSigmas) - t) < 1e-9, `σ → t gives back ${t}`);
    }
  });

  void it('scale 0 returns the model output itself', async () => {
    const c = await tinyClassifier('float32');
    const x = randn([2, 1, 4, 4], { seed: 2 });
    const out = randn([2, 1, 4, 4], { seed: 3 });
    const guided = classifierGuidance(() => out, {
      classifier: c,
      labels: [0, 1],
      scale: 0,
      alphasCumprod: acp,
      predictionType: 'epsilon',
    });
    assert.equal(guided(x, 10), out);
  });

  void it('shifts ε̂ by −s √(1−ᾱ_t) ∇ log p for every prediction type', async () => {
    const c = await tinyClassifier('float64');
    const labels = [1, 2];
    const s = 3.5;
    const x = randn([2, 1, 4, 4], { seed: 4, dtype: 'float64' });
    const model = (xt: Tensor, t: number): Tensor => xt.mul(0.3).add(t / 1000);
    for (const type of ['epsilon', 'sample', 'v_prediction'] as PredictionType[]) {
      for (const t of [0, 480, 733.25, 999]) {
        tidy(() =>
          noGrad(() => {
            const guided = classifierGuidance(model, {
              classifier: c,
              labels,
              scale: s,
              alphasCumprod: acp,
              predictionType: type,
            });
            const a = alphaCumprodAt(acp, t);
            const [alpha, sigma] = [Math.sqrt(a), Math.sqrt(1 - a)];
            const eps = (o: Tensor): Tensor => predictedEpsilon(type, o, x, alpha, sigma);
            const change = eps(guided(x, t)).sub(eps(model(x, t)));
            const want = classifierLogProbGrad(c, x, t, labels).mul(-s * sigma);
            assertClose(change, want, { rtol: 1e-9, atol: 1e-12 });
          }),
        );
      }
    }
  });

  void it('changes only the mean part of a learned-variance output [B, 2C, ...]', async () => {
    const c = await tinyClassifier('float64');
    const x = randn([2, 1, 4, 4], { seed: 5, dtype: 'float64' });
    const meanPart = (xt: Tensor): Tensor => xt.mul(0.3).add(0.1);
    const varPart = randn([2, 1, 4, 4], { seed: 6, dtype: 'float64' });
    const opts = {
      classifier: c,
      labels: [2, 0],
      scale: 2,
      alphasCumprod: acp,
      predictionType: 'epsilon' as const,
    };
    noGrad(() => {
      const both = classifierGuidance((xt) => concat([meanPart(xt), varPart], 1), opts)(x, 300);
      const alone = classifierGuidance(meanPart, opts)(x, 300);
      assert.deepEqual(both.shape, [2, 2, 4, 4]);
      assertClose(slice(both, [0, 0], [2, 1]), alone, { rtol: 0, atol: 0 }, 'the mean part');
      assertClose(slice(both, [0, 1], [2, 2]), varPart, { rtol: 0, atol: 0 }, 'Σ_θ part kept');
    });
  });

  void it('refuses classifiers for other images, bad labels and other schedules', async () => {
    const c = await tinyClassifier('float32');
    assert.throws(
      () => checkClassifierFits(c, [3, 4, 4]),
      /the classifier takes 1x4x4 images, the diffusion model makes 3x4x4/,
    );
    assert.throws(() => checkClassifierFits(c, [1, 8, 8]), /makes 1x8x8/);
    const opts = {
      classifier: c,
      labels: [0, 1],
      scale: 1,
      alphasCumprod: acp,
      predictionType: 'epsilon' as const,
    };
    const id = (x: Tensor): Tensor => x;
    assert.throws(
      () => noGrad(() => classifierGuidance(id, opts)(randn([2, 1, 8, 8], { seed: 1 }), 5)),
      /takes 1x4x4 images/,
    );
    assert.throws(
      () => classifierGuidance(id, { ...opts, labels: [0, 3] }),
      /class 3 is outside the classifier's 0\.\.2/,
    );
    assert.throws(
      () => noGrad(() => classifierGuidance(id, opts)(randn([3, 1, 4, 4], { seed: 1 }), 5)),
      /2 labels for a batch of 3/,
    );
    assert.throws(
      () => classifierGuidance(id, { ...opts, alphasCumprod: acp.subarray(0, 500) }),
      /trained on a 1000-step schedule, the diffusion model has 500 steps/,
    );
  });

  void it('runs inside the sampling loop of ddim, euler, dpmpp-2m, heun and unipc', async () => {
    const unet = new UNet2DModel(
      {
        sample_size: 4,
        in_channels: 1,
        out_channels: 1,
        block_out_channels: [4, 8],
        down_block_types: ['DownBlock2D', 'DownBlock2D'],
        up_block_types: ['UpBlock2D', 'UpBlock2D'],
        layers_per_block: 1,
        norm_num_groups: 2,
      },
      { generator: new Generator(5) },
    ).eval();
    const c = await tinyClassifier('float32');
    const labels = [0, 2];
    const denoise = (x: Tensor, t: number): Tensor => unet.forward(x, t);
    const live = (): number => cpuBackend().liveCount();
    for (const name of ['ddim', 'euler', 'dpmpp-2m', 'heun', 'unipc']) {
      const run = (scale: number): Float32Array =>
        noGrad(() => {
          const s = createScheduler(name);
          const xT = randn([2, 1, 4, 4], { seed: 7 });
          const guided = classifierGuidance(denoise, {
            classifier: c,
            labels,
            scale,
            alphasCumprod: s.alphasCumprod,
            predictionType: 'epsilon',
          });
          const out = sample(s, guided, xT, { numInferenceSteps: 3 });
          const v = Float32Array.from(out.dataSync());
          out.dispose();
          xT.dispose();
          return v;
        });
      // Multistep schedulers keep their last outputs after the loop: compare with no guidance.
      let before = live();
      const plain = run(0);
      const leftPlain = live() - before;
      before = live();
      const guided = run(10);
      assert.equal(live() - before, leftPlain, `${name}: guidance leaves no tensors behind`);
      assert.ok(guided.every(Number.isFinite), `${name}: finite samples`);
      assert.ok(
        guided.some((v, i) => v !== plain[i]),
        `${name}: the guided samples differ from the unguided ones`,
      );
      for (const [n, p] of c.namedParameters()) assert.equal(p.grad, null, `${name}: ${n}`);
    }
  });
});
