/**
 * The SR3 upscaler shipped in models/mnist-sr/ (14×14 → 28×28 MNIST digits): it loads only as an
 * upscaler, records its training command and settings, and its upscaled digits are the digits it
 * was given: each lies much closer to its own held-out digit than to the other digits, and closer
 * to it than bicubic upsampling's, by PSNR (8 digits, 10 DDIM steps; docs/editing.md measures
 * 100 digits).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadMnist } from '../../src/data/index.js';
import {
  bicubicUpsample,
  createSampler,
  downsampleBox,
  holdoutSplit,
  ImageNoise,
  loadPipeline,
  upscale,
} from '../../src/diffusion/index.js';
import { tensor } from '../../src/engine/index.js';
import { psnr } from '../../src/eval/index.js';

const DIR = join(REPO_ROOT, 'models', 'mnist-sr');
const N = 8;

/** N digits the evaluation classifier held out, spread over them, as [N, 1, 28, 28] in [−1, 1]. */
function heldOut(): Float32Array {
  const ds = loadMnist();
  const { heldOut: idx } = holdoutSplit(ds, 0.1, 0);
  const v = new Float32Array(N * 784);
  for (let k = 0; k < N; k++) {
    const img = ds.get(idx[Math.floor((k * idx.length) / N)]!).image;
    for (let i = 0; i < 784; i++) v[k * 784 + i] = img[i]! * 2 - 1;
  }
  return v;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const clamp = (v: ArrayLike<number>): Float32Array =>
  Float32Array.from(v, (u) => Math.min(1, Math.max(-1, u)));

void describe('models/mnist-sr', () => {
  void test('is an upscaler folder with its training command', async () => {
    for (const f of ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'sumi.json']) {
      assert.ok(existsSync(join(DIR, f)), `models/mnist-sr/${f} is missing`);
    }
    const info = JSON.parse(readFileSync(join(DIR, 'sumi.json'), 'utf8')) as {
      command?: string;
      upscale?: unknown;
    };
    assert.match(info.command ?? '', /^sumi train .*--task upscale --factor 2 --noise-aug 0\.05/);
    assert.deepEqual(info.upscale, { factor: 2, noiseAugmentation: 0.05 });
    await assert.rejects(loadPipeline(DIR), /an SR3 upscaler \(×2, sumi\.json "upscale"\)/);
  });

  void test('upscales held-out digits to themselves, closer than bicubic', async () => {
    const p = await loadPipeline(DIR, { tasks: ['upscale'] });
    const digits = heldOut();
    const low = downsampleBox(tensor(digits, [N, 1, 28, 28]), 2);
    const noise = new ImageNoise(0, 0, N, [1, 28, 28]);
    const sr = clamp(
      upscale(p.model, createSampler('ddim', p.schedulerConfig), low, {
        ...p.info!.upscale!,
        numInferenceSteps: 10,
        noise: () => noise.next(),
      }).dataSync(),
    );
    const bicubic = clamp(bicubicUpsample(low, 2).dataSync());
    const img = (v: Float32Array, k: number): Float32Array => v.subarray(k * 784, (k + 1) * 784);
    const own = Array.from({ length: N }, (_, k) => psnr(img(sr, k), img(digits, k), 2));
    const other = Array.from({ length: N }, (_, k) =>
      psnr(img(sr, k), img(digits, (k + 1) % N), 2),
    );
    const bic = Array.from({ length: N }, (_, k) => psnr(img(bicubic, k), img(digits, k), 2));
    assert.ok(
      mean(own) > mean(other) + 6,
      `PSNR to its digit ${mean(own)}, to another ${mean(other)}`,
    );
    // 21.3 against 20.8 dB at these settings; docs/editing.md: +2.9 dB on 100 digits, 20 steps.
    assert.ok(mean(own) > mean(bic), `PSNR: SR3 ${mean(own)}, bicubic ${mean(bic)}`);
  });
});
