/**
 * The inpainting-trained U-Net: random training masks (rectangles and brush strokes, pure in their
 * draws), the condition [x_0 ⊙ (1 − m); m], `inpaint` training (in_channels 2C + 1; each step
 * shows the model the batch's masked images and masks from stream (seed, 'masks', s); the loss
 * falls on 8×8 MNIST), the checkpoint loading only as an inpainting model, and `inpaintWithModel`
 * sampling under the condition and keeping the known pixels exactly.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  checkTrainValues,
  createSampler,
  ImageNoise,
  inpaintingCondition,
  inpaintWithModel,
  loadPipeline,
  MASK_DRAWS,
  randomMask,
  resolveTrainConfig,
  streamSeed,
  type TrainConfig,
  Trainer,
  TrainConfigError,
} from '../../src/diffusion/index.js';
import { cpuBackend, noGrad, rand, type Tensor, tensor } from '../../src/engine/index.js';
import {
  assertLossHalves,
  firstImages,
  recordConcatImages,
  TINY_UNET,
  trainFixture,
} from './train-setup.js';

const fx = trainFixture('sumi-train-inpaint-');

const BOTH = { masks: ['rectangle', 'brush'] as ('rectangle' | 'brush')[] };

function config(train: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig(
    {
      model: TINY_UNET,
      scheduler: { num_train_timesteps: 100 },
      train: { data: 'mnist', inpaint: BOTH, batchSize: 8, emaDecay: null, ...train },
    },
    fx.mnist8,
  );
}

const digits = (n: number): Tensor => firstImages(fx.mnist8, n);

/** MASK_DRAWS uniforms of seed `seed`. */
function uniforms(seed: number): Float64Array {
  const u = rand([MASK_DRAWS], { seed, dtype: 'float64', backend: cpuBackend() });
  const v = u.dataSync() as Float64Array;
  u.dispose();
  return v;
}

const sum = (v: ArrayLike<number>): number => Array.from(v).reduce((a, b) => a + b, 0);
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

void describe('random training masks', () => {
  void test('rectangles: one solid box with sides from ¼ to all of the image', () => {
    for (let s = 0; s < 200; s++) {
      const m = randomMask(uniforms(s), 28, 28, ['rectangle']);
      const rows = [...Array(28).keys()].filter((y) =>
        m.subarray(y * 28, y * 28 + 28).some(Boolean),
      );
      const cols = [...Array(28).keys()].filter((x) => rows.some((y) => m[y * 28 + x] === 1));
      const [h, w] = [rows.length, cols.length];
      assert.ok(h >= 7 && h <= 28 && w >= 7 && w <= 28, `mask ${s}: ${w}x${h}`);
      assert.equal(rows.at(-1)! - rows[0]! + 1, h, 'contiguous rows');
      assert.equal(cols.at(-1)! - cols[0]! + 1, w, 'contiguous columns');
      assert.equal(sum(m), h * w, 'a solid box');
    }
  });

  void test('brush strokes: binary, never empty, thinner than rectangles, the same for the same draws', () => {
    const areas: number[] = [];
    for (let s = 0; s < 200; s++) {
      const m = randomMask(uniforms(s), 28, 28, ['brush']);
      assert.ok(
        m.every((v) => v === 0 || v === 1),
        'binary',
      );
      assert.ok(sum(m) > 0, `mask ${s} paints something`);
      assert.deepEqual(randomMask(uniforms(s), 28, 28, ['brush']), m, 'pure');
      areas.push(sum(m) / 784);
    }
    const a = mean(areas);
    assert.ok(a > 0.03 && a < 0.4, `mean brush area ${a}`);
    // Both kinds at once: about half of each (rectangles are solid boxes of ≥ 7×7).
    let kinds = 0;
    for (let s = 0; s < 200; s++) {
      const u = uniforms(s);
      const both = randomMask(u, 28, 28, ['rectangle', 'brush']);
      const kind = u[0]! < 0.5 ? 'rectangle' : 'brush';
      assert.deepEqual(both, randomMask(u, 28, 28, [kind]), `mask ${s} is a ${kind}`);
      if (kind === 'rectangle') kinds++;
    }
    assert.ok(kinds > 70 && kinds < 130, `${kinds} of 200 rectangles`);
    assert.throws(() => randomMask(new Float64Array(10), 8, 8), /64 uniform draws needed/);
  });

  void test('the condition is [x ⊙ (1 − m); m], the mask broadcast over the batch', () => {
    const x = digits(2);
    const m = tensor(
      Float32Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)),
      [1, 1, 8, 8],
    );
    const c = inpaintingCondition(x, m);
    assert.deepEqual(c.shape, [2, 2, 8, 8]);
    const v = c.dataSync();
    const xv = x.dataSync();
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < 64; i++) {
        assert.equal(v[b * 128 + i], i >= 32 ? 0 : xv[b * 64 + i], `masked image ${b}, pixel ${i}`);
        assert.equal(v[b * 128 + 64 + i], i >= 32 ? 1 : 0, `mask ${b}, pixel ${i}`);
      }
    }
    assert.throws(
      () => inpaintingCondition(x, tensor(new Float32Array(16), [1, 1, 4, 4])),
      /the mask is \[1, 1, 4, 4\]/,
    );
  });
});

void describe('inpaint training', () => {
  void test('the model takes x_t, the masked image and the mask: in_channels 2C + 1', () => {
    const c = config();
    assert.equal(c.model.in_channels, 3);
    assert.equal(c.model.out_channels, 1);
    assert.throws(
      () => checkTrainValues({ inpaint: { masks: ['circle'] } }, 'train'),
      (e: unknown) =>
        e instanceof TrainConfigError &&
        /'inpaint' must be \{ masks: one or more of rectangle, brush \}/.test(e.message),
    );
    assert.throws(
      () => config({ upscale: { factor: 2, noiseAugmentation: 0 } }),
      /either upscales or inpaints/,
    );
  });

  void test("step s conditions on [x_0 ⊙ (1 − m); m] with masks from stream (seed, 'masks', s)", async () => {
    // One micro-batch, so that every denoiser call is on this thread.
    const trainer = new Trainer(config({ microBatches: 1 }), fx.mnist8);
    const seen = recordConcatImages(trainer.model);
    await trainer.trainStep();
    await trainer.trainStep();
    assert.equal(seen.length, 2, 'a denoiser call per step');
    for (const s of [0, 1]) {
      const x0 = trainer.loader.batchAt(s).x;
      const u = rand([8 * MASK_DRAWS], {
        seed: streamSeed(trainer.config.seed, 'masks', s),
        dtype: 'float64',
        backend: cpuBackend(),
      }).dataSync();
      const m = new Float32Array(8 * 64);
      for (let i = 0; i < 8; i++) {
        m.set(randomMask(u.subarray(i * MASK_DRAWS, (i + 1) * MASK_DRAWS), 8, 8), i * 64);
      }
      const want = inpaintingCondition(x0, tensor(m, [8, 1, 8, 8])).dataSync();
      assert.deepEqual(seen[s], want);
      assert.ok(sum(m) > 0 && sum(m) < 8 * 64, 'some pixels masked, some kept');
    }
    trainer.dispose();
  });

  void test('the loss falls; the checkpoint loads only as an inpainting model, which keeps the known pixels', async () => {
    const out = join(fx.dir, 'inpaint');
    const trainer = new Trainer(config({ steps: 60, lr: 3e-3, warmupSteps: 5 }), fx.mnist8);
    await assertLossHalves(trainer, out);
    const preview = noGrad(() => trainer.previewImages(2, 3, 'ddim'));
    assert.deepEqual(preview.shape, [2, 1, 8, 8]);
    trainer.dispose();

    await assert.rejects(
      loadPipeline(out),
      /an inpainting model \(sumi.json "inpaint"\): it needs an image and a mask; use 'sumi edit inpaint/,
    );
    await assert.rejects(loadPipeline(out, { tasks: ['upscale'] }), /an inpainting model/);
    const p = await loadPipeline(out, { tasks: ['inpaint'] });
    assert.deepEqual(p.info?.inpaint, BOTH);
    const x = digits(2);
    const mask = tensor(
      Float32Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)),
      [1, 1, 8, 8],
    );
    const seenImages = recordConcatImages(p.model);
    const run = (m: Tensor): Float32Array => {
      const noise = new ImageNoise(0, 0, 2, [1, 8, 8]);
      return inpaintWithModel(p.model, createSampler('ddim', p.schedulerConfig), x, {
        mask: m,
        numInferenceSteps: 4,
        noise: () => noise.next(),
      }).dataSync() as Float32Array;
    };
    const y = run(mask);
    assert.equal(seenImages.length, 4, 'one model call a step');
    const want = inpaintingCondition(x, mask).dataSync();
    for (const c of seenImages)
      assert.deepEqual(c, want, 'every step sees the masked image and mask');
    const xv = x.dataSync();
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < 32; i++) assert.equal(y[b * 64 + i], xv[b * 64 + i], 'kept pixel');
    }
    assert.ok(y.every(Number.isFinite), 'finite pixels');
    const other = run(
      tensor(
        Float32Array.from({ length: 64 }, (_, i) => (i < 32 ? 1 : 0)),
        [1, 1, 8, 8],
      ),
    );
    assert.notDeepEqual(other.subarray(32, 64), y.subarray(32, 64), 'the mask changes the result');
    assert.throws(
      () =>
        inpaintWithModel(
          p.model,
          createSampler('ddim', p.schedulerConfig),
          tensor(new Float32Array(192), [1, 3, 8, 8]),
          {
            mask,
            numInferenceSteps: 2,
            noise: () => tensor(new Float32Array(192), [1, 3, 8, 8]),
          },
        ),
      /the model takes 3 input channels; an inpainting model of 3-channel images takes 7/,
    );
  });
});
