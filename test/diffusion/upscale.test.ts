/**
 * SR3 upscaling (src/diffusion/editing/upscale.ts): the bicubic matrix has PyTorch's weights
 * (a = −0.75, half-pixel centres, clamped edges) and bicubicUpsample is that matrix applied to
 * both axes; the low resolution is the mean of each block; the condition mixes in the
 * augmentation noise variance-preservingly; a U-Net with in_channels 2C takes the condition
 * through `concatImage` exactly as the concatenated input; `upscale` is plain sampling of that
 * concatenated model, and refuses a low-resolution image or a model of the wrong shape.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  bicubicMatrix,
  bicubicUpsample,
  checkUpscaleSettings,
  createSampler,
  downsampleBox,
  EditInputError,
  ImageNoise,
  sample,
  upscale,
  upscaleCondition,
} from '../../src/diffusion/index.js';
import {
  concat,
  cpuBackend,
  noGrad,
  randn,
  setDefaultBackend,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import { tinyUNet } from './train-setup.js';

setDefaultBackend(cpuBackend());

/** A tiny 8×8 U-Net taking x_t (1 channel) and the condition (1 channel). */
const sr = tinyUNet(5, { in_channels: 2 }).eval();

void describe('bicubic resampling', () => {
  void test("rows are PyTorch's ×2 weights (−0.0352, 0.2617, 0.8789, −0.1055) and sum to 1", () => {
    const m = bicubicMatrix(6, 2); // [12, 6]
    // Output 4 sits at source 1.75: taps at 0..3 with weights W(1.75), W(0.75), W(0.25), W(1.25).
    assertClose(
      m.subarray(4 * 6, 5 * 6),
      [-0.03515625, 0.26171875, 0.87890625, -0.10546875, 0, 0],
      { atol: 1e-7, rtol: 0 },
      'row 4',
    );
    // Output 5 at source 2.25: the mirror image, one pixel on.
    assertClose(
      m.subarray(5 * 6, 6 * 6),
      [0, -0.10546875, 0.87890625, 0.26171875, -0.03515625, 0],
      { atol: 1e-7, rtol: 0 },
      'row 5',
    );
    // Output 0 at source −0.25: the taps at −2 and −1 are clamped onto pixel 0.
    assertClose(
      m.subarray(0, 6),
      [-0.03515625 + 0.26171875 + 0.87890625, -0.10546875, 0, 0, 0, 0],
      { atol: 1e-7, rtol: 0 },
      'row 0',
    );
    for (const f of [2, 4]) {
      const r = bicubicMatrix(5, f);
      for (let o = 0; o < 5 * f; o++) {
        const s = r.subarray(o * 5, (o + 1) * 5).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(s - 1) < 1e-6, `factor ${f}, row ${o} sums to ${s}`);
      }
    }
  });

  void test('bicubicUpsample applies the matrix along height and width', () => {
    const x = randn([2, 3, 4, 5], { seed: 1 });
    const y = bicubicUpsample(x, 2);
    assert.deepEqual(y.shape, [2, 3, 8, 10]);
    const rh = bicubicMatrix(4, 2);
    const rw = bicubicMatrix(5, 2);
    const xv = x.dataSync();
    const want = new Float32Array(2 * 3 * 8 * 10);
    for (let p = 0; p < 6; p++) {
      for (let o = 0; o < 8; o++) {
        for (let q = 0; q < 10; q++) {
          let s = 0;
          for (let i = 0; i < 4; i++) {
            for (let j = 0; j < 5; j++)
              s += rh[o * 4 + i]! * rw[q * 5 + j]! * xv[p * 20 + i * 5 + j]!;
          }
          want[p * 80 + o * 10 + q] = s;
        }
      }
    }
    assertClose(y.dataSync(), want, { atol: 1e-5, rtol: 0 }, 'upsampled');
    // A constant stays constant (edges included).
    assertClose(
      bicubicUpsample(tensor(new Float32Array(9).fill(0.3), [1, 1, 3, 3]), 4).dataSync(),
      new Float32Array(144).fill(0.3),
      { atol: 1e-6, rtol: 0 },
      'constant',
    );
  });

  void test('the low resolution is the mean of each block; a size that does not divide is refused', () => {
    const x = tensor(
      Float32Array.from({ length: 16 }, (_, i) => i),
      [1, 1, 4, 4],
    );
    assertClose(
      downsampleBox(x, 2).dataSync(),
      [2.5, 4.5, 10.5, 12.5],
      { atol: 1e-6, rtol: 0 },
      'box 2',
    );
    assertClose(downsampleBox(x, 4).dataSync(), [7.5], { atol: 1e-6, rtol: 0 }, 'box 4');
    assert.throws(() => downsampleBox(randn([1, 1, 6, 6], { seed: 2 }), 4), EditInputError);
  });
});

void describe('the SR3 condition', () => {
  void test('σ_a = 0 is the bicubic image; σ_a > 0 mixes √(1 − σ_a²)·it with σ_a·ε', () => {
    const low = randn([2, 1, 4, 4], { seed: 3 });
    const eps = randn([2, 1, 8, 8], { seed: 4 });
    const up = bicubicUpsample(low, 2).dataSync();
    assertClose(
      upscaleCondition(low, { factor: 2, noiseAugmentation: 0 }, null).dataSync(),
      up,
      { atol: 0, rtol: 0 },
      'σ 0',
    );
    const a = 0.3;
    const e = eps.dataSync();
    assertClose(
      upscaleCondition(low, { factor: 2, noiseAugmentation: a }, eps).dataSync(),
      up.map((u, i) => Math.sqrt(1 - a * a) * u + a * e[i]!),
      { atol: 1e-6, rtol: 0 },
      'σ 0.3',
    );
    assert.throws(
      () => upscaleCondition(low, { factor: 2, noiseAugmentation: a }, null),
      /needs noise/,
    );
  });

  void test('factors other than 2 and 4, and σ_a outside [0, 1), are refused', () => {
    assert.throws(() => checkUpscaleSettings({ factor: 3, noiseAugmentation: 0 }), /factor 3/);
    assert.throws(() => checkUpscaleSettings({ factor: 2, noiseAugmentation: 1 }), /\[0, 1\)/);
    assert.throws(() => checkUpscaleSettings({ factor: 2, noiseAugmentation: -0.1 }), /\[0, 1\)/);
    checkUpscaleSettings({ factor: 4, noiseAugmentation: 0.5 });
  });
});

void describe('a denoiser with a concatenated image', () => {
  void test('denoise(x, t, {concatImage: c}) is the U-Net on [x; c]; missing or mis-shaped c is refused', () => {
    const x = randn([2, 1, 8, 8], { seed: 6 });
    const c = randn([2, 1, 8, 8], { seed: 7 });
    const got = noGrad(() => sr.denoise(x, [10, 20], { concatImage: c }));
    const want = noGrad(() => sr.forward(concat([x, c], 1), [10, 20]));
    assert.deepEqual(got.shape, [2, 1, 8, 8]);
    assertClose(got.dataSync(), want.dataSync(), { atol: 0, rtol: 0 }, 'output');
    assert.throws(
      () => sr.denoise(x, 10),
      /x_t \[2, 1, 8, 8\] for a model of 2 input channels; the other 1 are an image joined to it/,
    );
    assert.throws(
      () => sr.denoise(x, 10, { concatImage: randn([2, 1, 4, 4], { seed: 8 }) }),
      /must agree in batch, height and width/,
    );
    assert.throws(
      () => sr.denoise(x, 10, { concatImage: randn([2, 2, 8, 8], { seed: 8 }) }),
      /make 3 channels; the model takes 2/,
    );
  });
});

void describe('upscale', () => {
  const SCHEDULE = { num_train_timesteps: 100 };
  const noiseOf = (seed: number, n: number): (() => Tensor) => {
    const draws = new ImageNoise(seed, 0, n, [1, 8, 8]);
    return () => draws.next();
  };

  for (const a of [0, 0.2]) {
    void test(`σ_a = ${a}: DDIM sampling of the U-Net on [x_t; c] from the first draw`, () => {
      const low = randn([2, 1, 4, 4], { seed: 9 }).tanh();
      const got = upscale(sr, createSampler('ddim', SCHEDULE), low, {
        factor: 2,
        noiseAugmentation: a,
        numInferenceSteps: 5,
        noise: noiseOf(0, 2),
      });
      const draws = noiseOf(0, 2);
      const xT = draws();
      const cond = upscaleCondition(
        low,
        { factor: 2, noiseAugmentation: a },
        a > 0 ? draws() : null,
      );
      const want = noGrad(() =>
        sample(createSampler('ddim', SCHEDULE), (x, t) => sr.forward(concat([x, cond], 1), t), xT, {
          numInferenceSteps: 5,
        }),
      );
      assert.deepEqual(got.shape, [2, 1, 8, 8]);
      assertClose(got.dataSync(), want.dataSync(), { atol: 1e-6, rtol: 0 }, 'upscaled');
    });
  }

  void test('a low-resolution image or a model of the wrong shape is refused', () => {
    const run = (low: Tensor, factor = 2) =>
      upscale(sr, createSampler('ddim', SCHEDULE), low, {
        factor,
        noiseAugmentation: 0,
        numInferenceSteps: 2,
        noise: noiseOf(0, 1),
      });
    assert.throws(
      () => run(randn([1, 1, 8, 8], { seed: 1 })),
      (e: unknown) => {
        assert.ok(e instanceof EditInputError, `an EditInputError, got ${String(e)}`);
        assert.match(e.message, /is 8x8 pixels; the upscaler takes 4x4 \(8x8 \/ 2\)/);
        return true;
      },
    );
    assert.throws(() => run(randn([1, 1, 4, 4], { seed: 1 }), 3), /factor 3/);
    assert.throws(
      () => run(randn([1, 3, 4, 4], { seed: 1 })),
      /takes 2 input channels; an SR3 upscaler of 3-channel images takes 6/,
    );
  });
});
