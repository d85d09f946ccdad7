/**
 * The editing pipelines on a latent model (a tiny random AutoencoderKL and U-Net in a pipeline
 * folder): img2img at strength 1 is plain latent sampling decoded; the image is encoded as
 * scaling_factor · (z − shift) with z the posterior mean or a sample; DDIM inversion mirrors DDIM
 * sampling on the latents (to the pixel test's tolerances) and its decoded reconstruction is the
 * vae's own round trip; inpainting keeps the known latent cells on the forward process of the
 * encoded image at every step, repaints a cell when any pixel of its block is repainted, and
 * pastes the known pixels back exactly; generateAsync with a decoder is generateBatches with it,
 * bit for bit, and decodes its previews.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  conditionedModel,
  createSampler,
  ddimInvert,
  type DenoiseModel,
  EditInputError,
  encodeImages,
  encodeLatents,
  generateAsync,
  generateBatches,
  ImageNoise,
  img2img,
  inpaint,
  inversionSchedulerConfig,
  latentMask,
  type LoadedPipeline,
  loadPipeline,
  sample,
  stepX0,
} from '../../src/diffusion/index.js';
import { noGrad, randn, type Tensor, tensor } from '../../src/engine/index.js';
import { maxAbsDiff } from '../engine/testing.js';
import { writeLatentPipeline } from './latent-editing-setup.js';
import { firstImages, trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-latent-edit-');
const LATENT: [number, number, number] = [2, 4, 4];

let p: LoadedPipeline;
let model: DenoiseModel;

before(async () => {
  p = await loadPipeline(await writeLatentPipeline(join(fx.dir, 'ldm')), { latent: true });
  model = conditionedModel(p.model, p.condition, [null, null], 1).model;
});

/** Two 8×8 MNIST digits in [−1, 1]. */
const digits = (): Tensor => firstImages(fx.mnist8, 2);

function noiseOf(seed: number, shape: readonly number[] = LATENT): () => Tensor {
  const noise = new ImageNoise(seed, 0, 2, shape);
  return () => noise.next();
}

function rmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(se / a.length);
}

const psnr = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
  20 * Math.log10(2 / rmse(a, b));

/** generateBatches of images 0 and 1 of `seed`, decoded, as one array. */
async function plainDecoded(sampler: string, seed: number, steps: number): Promise<Float32Array> {
  const out: number[] = [];
  await generateBatches(p.model, createSampler(sampler, p.schedulerConfig), {
    seed,
    numInferenceSteps: steps,
    batchSize: 2,
    condition: p.condition,
    request: { values: [null, null] },
    decode: (z) => p.vae!.decode(z),
    onBatch: async (x) => void out.push(...(await x.data())),
  });
  return Float32Array.from(out);
}

void describe('encoding for the denoiser', () => {
  void test('u = scaling_factor · (z − shift), z the posterior mean or μ + σ·ε', () => {
    const x = digits();
    const { mean, logvar } = encodeImages(p.vae!.vae, x);
    const m = mean.dataSync();
    const lv = logvar!.dataSync();
    const eps = randn([2, ...LATENT], { seed: 3 });
    const e = eps.dataSync();
    const { scalingFactor: sf, shiftFactor } = p.vae!.spec;
    assert.equal(shiftFactor, 0.1, 'the fixture has a shift');
    const byMean = encodeLatents(p.vae!, x).dataSync();
    const bySample = encodeLatents(p.vae!, x, () => eps).dataSync();
    const want = (z: number): number => sf * (z - 0.1);
    for (let k = 0; k < m.length; k++) {
      assert.ok(Math.abs(byMean[k]! - want(m[k]!)) < 1e-6, `mean, latent ${k}`);
      const z = m[k]! + Math.exp(0.5 * lv[k]!) * e[k]!;
      assert.ok(Math.abs(bySample[k]! - want(z)) < 1e-5, `sample, latent ${k}`);
    }
  });

  void test('images the vae cannot encode and masks of another size are one error each', () => {
    const wrong = randn([1, 1, 7, 7], { seed: 1 }).tanh();
    assert.throws(
      () => encodeLatents(p.vae!, wrong),
      (e: unknown) =>
        e instanceof EditInputError &&
        /the images are \[1, 1, 7, 7\]; the model's AutoencoderKL encodes \[B, 1, H, W\] with H and W multiples of 2/.test(
          e.message,
        ),
    );
    const small = tensor(new Float32Array(16).fill(1), [1, 1, 4, 4]);
    assert.throws(
      () =>
        inpaint(model, createSampler('ddim', p.schedulerConfig), digits(), {
          mask: small,
          numInferenceSteps: 2,
          noise: noiseOf(0),
          vae: p.vae,
        }),
      /the mask is \[1, 1, 4, 4\]; the images are \[2, 1, 8, 8\], and a mask is \[2 or 1, 1, 8, 8\]/,
    );
  });
});

void describe('img2img on a latent model', () => {
  for (const sampler of ['ddim', 'euler-a', 'dpmpp-2m']) {
    void test(`${sampler}: strength 1 is plain latent sampling decoded, for the same seed`, async () => {
      const edited = img2img(model, createSampler(sampler, p.schedulerConfig), digits(), {
        strength: 1,
        numInferenceSteps: 4,
        noise: noiseOf(7),
        vae: p.vae,
        posteriorNoise: noiseOf(99),
      });
      assert.deepEqual(edited.shape, [2, 1, 8, 8]);
      assert.deepEqual(edited.dataSync(), await plainDecoded(sampler, 7, 4));
    });
  }

  void test('strength 0.5 runs the model on the latents from the noised encoding', () => {
    const seen: number[][] = [];
    const recording: DenoiseModel = (x, t) => {
      seen.push([...x.shape]);
      return model(x, t);
    };
    const scheduler = createSampler('ddim', p.schedulerConfig);
    const x = digits();
    const edited = img2img(recording, scheduler, x, {
      strength: 0.5,
      numInferenceSteps: 6,
      noise: noiseOf(1),
      vae: p.vae,
    });
    assert.deepEqual(seen, [
      [2, ...LATENT],
      [2, ...LATENT],
      [2, ...LATENT],
    ]);
    const [lo, hi] = [Math.min(...edited.dataSync()), Math.max(...edited.dataSync())];
    assert.ok(lo >= -1 && hi <= 1, `decoded and clamped: ${lo}..${hi}`);
    const zero = img2img(model, scheduler, x, {
      strength: 0,
      numInferenceSteps: 6,
      noise: noiseOf(1),
      vae: p.vae,
    });
    assert.deepEqual(zero.dataSync(), x.dataSync(), 'strength 0 is the image itself');
  });
});

void describe('DDIM inversion on a latent model', () => {
  const ddim = (): ReturnType<typeof createSampler> =>
    createSampler('ddim', inversionSchedulerConfig(p.schedulerConfig));
  const sampleBack = (m: DenoiseModel, xT: Tensor, steps: number): Tensor =>
    noGrad(() => sample(ddim(), m, xT, { numInferenceSteps: steps, stepOptions: { eta: 0 } }));

  void test('is the exact mirror of DDIM sampling on the encoded latents when ε̂ does not depend on x', () => {
    const eps = randn([2, ...LATENT], { seed: 5 });
    const flat: DenoiseModel = (_x, t) => eps.mul(Math.cos(t / 50));
    const x = digits();
    const xT = ddimInvert(flat, ddim(), x, { numInferenceSteps: 10, vae: p.vae });
    assert.deepEqual(xT.shape, [2, ...LATENT], 'x_T is a latent');
    const err = rmse(sampleBack(flat, xT, 10).dataSync(), encodeLatents(p.vae!, x).dataSync());
    assert.ok(err < 1e-5, `latent reconstruction RMSE ${err}`);
  });

  void test("with the U-Net, fixed-point iterations reach the encoded latents; the decoded error is the vae's", (t) => {
    const x = digits();
    const u0 = encodeLatents(p.vae!, x);
    const errorWith = (k: number): { latent: number; back: Tensor } => {
      const xT = ddimInvert(model, ddim(), x, {
        numInferenceSteps: 10,
        fixedPointIterations: k,
        vae: p.vae,
      });
      const back = sampleBack(model, xT, 10);
      return { latent: rmse(back.dataSync(), u0.dataSync()), back };
    };
    // The random U-Net bends more over a step than the pixel test's: 4 iterations, not 3.
    const e0 = errorWith(0).latent;
    const { latent: e4, back } = errorWith(4);
    assert.ok(e4 < e0 / 10, `latent RMSE with 4 iterations ${e4}, plain ${e0}`);
    assert.ok(e4 < 1e-3, `latent RMSE with 4 iterations ${e4}`);
    const image = x.dataSync();
    const vaeOnly = psnr(p.vae!.decode(u0).dataSync(), image);
    const inverted = psnr(p.vae!.decode(back).dataSync(), image);
    t.diagnostic(
      `PSNR of the vae alone ${vaeOnly.toFixed(2)} dB, of the inversion ${inverted.toFixed(2)} dB`,
    );
    assert.ok(Math.abs(vaeOnly - inverted) < 0.05, `${inverted} dB vs the vae's ${vaeOnly} dB`);
  });
});

void describe('inpainting on a latent model', () => {
  /** Repaint pixel rows 3–7: the 2×2 blocks of latent rows 1–3 hold a repainted pixel. */
  const pixelMask = (): Tensor =>
    tensor(
      Float32Array.from({ length: 64 }, (_, i) => (i >= 24 ? 1 : 0)),
      [1, 1, 8, 8],
    );

  void test('a latent cell is repainted when any pixel of its block is', () => {
    const cells = latentMask(pixelMask(), 2).dataSync();
    assert.deepEqual(Array.from(cells), [0, 0, 0, 0, ...new Array<number>(12).fill(1)]);
  });

  /** DDIM inpainting whose model records the known row of each input and whose noise records each draw. */
  const recorded = (
    pasteKnown?: boolean,
  ): { out: Tensor; inputs: { t: number; kept: Float32Array }[]; draws: Float32Array[] } => {
    const inputs: { t: number; kept: Float32Array }[] = [];
    const draws: Float32Array[] = [];
    const source = noiseOf(5);
    const recording: DenoiseModel = (x, t) => {
      const v = x.dataSync();
      // Latent row 0 (4 cells) of both channels of both images.
      inputs.push({
        t,
        kept: Float32Array.from({ length: 16 }, (_, k) => v[(k >> 2) * 16 + (k & 3)]!),
      });
      return model(x, t);
    };
    const out = inpaint(recording, createSampler('ddim', p.schedulerConfig), digits(), {
      mask: pixelMask(),
      numInferenceSteps: 5,
      noise: () => {
        const d = source();
        draws.push(Float32Array.from(d.dataSync()));
        return d;
      },
      vae: p.vae,
      posteriorNoise: noiseOf(11),
      ...(pasteKnown !== undefined ? { pasteKnown } : {}),
    });
    return { out, inputs, draws };
  };

  void test('the known latent cells are the forward-noised encoding at every step', () => {
    const { inputs, draws } = recorded();
    const u0 = encodeLatents(p.vae!, digits(), noiseOf(11)).dataSync();
    const acp = createSampler('ddim', p.schedulerConfig).alphasCumprod;
    assert.equal(inputs.length, 5);
    assert.equal(draws.length, 5, 'x_T and one fresh ε per blend');
    for (let i = 1; i < 5; i++) {
      const { t, kept } = inputs[i]!;
      const a = acp[t]!;
      const want = Float32Array.from({ length: 16 }, (_, k) => {
        const j = (k >> 2) * 16 + (k & 3);
        return Math.sqrt(a) * u0[j]! + Math.sqrt(1 - a) * draws[i]![j]!;
      });
      assert.ok(maxAbsDiff(kept, want) < 1e-5, `step ${i}: ${maxAbsDiff(kept, want)}`);
    }
  });

  void test('the known pixels are the input exactly after pasting, and the decoded ones without', () => {
    const x = digits().dataSync();
    const pasted = recorded().out.dataSync();
    const decoded = recorded(false).out.dataSync();
    let differ = 0;
    for (let i = 0; i < 128; i++) {
      const known = i % 64 < 24;
      if (known) {
        assert.equal(pasted[i], x[i], `known pixel ${i}`);
        if (decoded[i] !== x[i]) differ++;
      } else {
        assert.equal(pasted[i], decoded[i], `repainted pixel ${i} is the decoded one`);
      }
    }
    assert.ok(differ > 24, `the vae changes ${differ} of 48 known pixels`);
  });
});

void describe('generateAsync on a latent pipeline', () => {
  void test('is generateBatches with the decoder, bit for bit, and decodes its previews', async () => {
    const scheduler = createSampler('dpmpp-2m', p.schedulerConfig);
    const previews: number[][] = [];
    const x = await generateAsync(p.model, scheduler, {
      n: 2,
      seed: 3,
      numInferenceSteps: 4,
      decode: (z) => p.vae!.decode(z),
      preview: true,
      onStep: (info) => {
        const x0 = stepX0(scheduler, 'epsilon', info);
        previews.push(Array.from(p.vae!.decode(x0).dataSync()));
      },
      onProgress: (pr) => {
        assert.deepEqual(pr.preview!.shape, [2, 1, 8, 8], 'a decoded preview');
        assert.deepEqual(Array.from(pr.preview!.dataSync()), previews[pr.step - 1]);
      },
    });
    assert.deepEqual(x.shape, [2, 1, 8, 8]);
    assert.deepEqual(x.dataSync(), await plainDecoded('dpmpp-2m', 3, 4));
    assert.equal(previews.length, 4);
  });
});
