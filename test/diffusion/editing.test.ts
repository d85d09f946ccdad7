/**
 * The editing pipelines (src/diffusion/editing): img2img runs the last ⌊n·strength⌋ steps as
 * diffusers does and is plain sampling at strength 1, close to the input near 0; inpainting keeps
 * the known region exactly, is plain sampling when everything is repainted, and follows RePaint's
 * resampling schedule; DDIM inversion is the exact mirror of DDIM sampling when the model output
 * does not depend on x, converges with fixed-point iterations when it does, and reconstructs a real
 * MNIST digit with the shipped model; images and masks are checked against the model.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadMnist, type RawImage } from '../../src/data/index.js';
import {
  classConditioning,
  ConditionError,
  conditionedModel,
  createSampler,
  ddimInvert,
  type DenoiseModel,
  EditInputError,
  generate,
  guidedDenoiser,
  holdoutSplit,
  ImageNoise,
  img2img,
  img2imgStartIndex,
  imageToSample,
  inpaint,
  inversionSchedulerConfig,
  loadPipeline,
  maskFromImage,
  repaintModelCalls,
  repaintSchedule,
  sample,
} from '../../src/diffusion/index.js';
import {
  cpuBackend,
  Generator,
  noGrad,
  randn,
  setDefaultBackend,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { assertClose, maxAbsDiff } from '../engine/testing.js';
import { createModel, type UNet2DConditionModel } from '../../src/nn/models/index.js';
import { TINY_TEXT_UNET, tinyUNet } from './train-setup.js';

setDefaultBackend(cpuBackend());

const SCHEDULE = { num_train_timesteps: 100 };

const tiny = tinyUNet(3).eval();
const tinyModel: DenoiseModel = (x, t) => tiny.denoise(x, t);

/** Two 8x8 "images" in [−1, 1]. */
function tinyImages(): Tensor {
  return randn([2, 1, 8, 8], { seed: 4 }).tanh();
}

function noiseOf(seed: number, n: number, shape: readonly number[] = [1, 8, 8]): () => Tensor {
  const noise = new ImageNoise(seed, 0, n, shape);
  return () => noise.next();
}

function rmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(se / a.length);
}

/** The first `n` digits the evaluation classifier held out, as [n, 1, 28, 28] in [−1, 1]. */
function realDigits(n: number): Tensor {
  const ds = loadMnist();
  const { heldOut } = holdoutSplit(ds, 0.1, 0);
  const data = new Float32Array(n * 784);
  for (let k = 0; k < n; k++) {
    const s = ds.get(heldOut[k * 97]!);
    for (let i = 0; i < 784; i++) data[k * 784 + i] = s.image[i]! * 2 - 1;
  }
  return tensor(data, [n, 1, 28, 28]);
}

void describe('img2img', () => {
  void test('starts at timesteps[t_start · order] with t_start = n − min(⌊n·strength⌋, n)', () => {
    assert.equal(img2imgStartIndex(50, 0.6), 20);
    assert.equal(img2imgStartIndex(10, 0.75), 3);
    assert.equal(img2imgStartIndex(10, 0.75, 2), 6);
    assert.equal(img2imgStartIndex(20, 1), 0);
    assert.equal(img2imgStartIndex(20, 0.05), 19);
    assert.equal(img2imgStartIndex(20, 0), 20, 'strength 0: past the end, no step');
    for (const s of [-0.5, 1.01, Number.NaN]) {
      assert.throws(() => img2imgStartIndex(20, s), /strength must be in \[0, 1\]/);
    }
    assert.throws(() => img2imgStartIndex(20, 0.04), EditInputError);
    assert.throws(() => img2imgStartIndex(20, 0.04), /runs no step.*at least 1\/20/);
  });

  for (const sampler of ['ddim', 'ddpm', 'euler', 'euler-a', 'heun', 'dpmpp-2m', 'dpmpp-2m-sde']) {
    void test(`${sampler}: strength 0 is the image itself`, () => {
      const image = tinyImages();
      const out = img2img(tinyModel, createSampler(sampler, SCHEDULE), image, {
        strength: 0,
        numInferenceSteps: 10,
        noise: noiseOf(0, 2),
      });
      assert.deepEqual(Array.from(out.dataSync()), Array.from(image.dataSync()));
    });

    void test(`${sampler}: strength 1 is plain sampling from the same noise`, () => {
      const x0 = tinyImages();
      const edited = img2img(tinyModel, createSampler(sampler, SCHEDULE), x0, {
        strength: 1,
        numInferenceSteps: 4,
        noise: noiseOf(7, 2),
      });
      const plain = generate(tiny, createSampler(sampler, SCHEDULE), {
        n: 2,
        seed: 7,
        numInferenceSteps: 4,
      });
      assert.deepEqual(edited.dataSync(), plain.dataSync());
    });
  }

  for (const sampler of ['ddim', 'heun', 'dpmpp-2m']) {
    void test(`${sampler}: runs the model ⌊n·strength⌋ steps from the noised image`, () => {
      const scheduler = createSampler(sampler, SCHEDULE);
      const calls: number[] = [];
      const counting: DenoiseModel = (x, t) => {
        calls.push(t);
        return tinyModel(x, t);
      };
      img2img(counting, scheduler, tinyImages(), {
        strength: 0.6,
        numInferenceSteps: 10,
        noise: noiseOf(1, 2),
      });
      scheduler.setTimesteps(10);
      // t_start = 10 − 6 = 4: the last 6 steps (Heun: 2 · 6 − 1 model calls)
      const expected = Array.from(scheduler.timesteps.subarray(4 * scheduler.order));
      assert.deepEqual(calls, expected);
      assert.equal(calls.length, scheduler.order === 2 ? 11 : 6);
    });
  }

  void test('the shipped model keeps a real digit at strength 1/n and changes it more at 0.5', async () => {
    const p = await loadPipeline(join(REPO_ROOT, 'models', 'mnist-small'));
    const model = guidedDenoiser(p.model, { cond: {} });
    const x0 = realDigits(1);
    const at = (strength: number): number =>
      rmse(
        img2img(model, createSampler('ddim', p.schedulerConfig), x0, {
          strength,
          numInferenceSteps: 20,
          noise: noiseOf(0, 1, [1, 28, 28]),
        }).dataSync(),
        x0.dataSync(),
      );
    const near = at(0.05);
    const half = at(0.5);
    assert.ok(near < 0.02, `strength 0.05 (one step from t = 0): RMSE ${near}`);
    assert.ok(half > 3 * near, `strength 0.5: RMSE ${half}, strength 0.05: ${near}`);
  });
});

void describe('inpainting', () => {
  void test('repaintSchedule is the state sequence of RePaint (diffusers RePaintScheduler)', () => {
    /** diffusers' set_timesteps: t from n−1 down, jumps back j steps r − 1 times at t = 0, j, 2j, … */
    const reference = (n: number, j: number, r: number): number[] => {
      const jumps = new Map<number, number>();
      for (let t = 0; t < n - j; t += j) jumps.set(t, r - 1);
      const ts: number[] = [];
      let t = n;
      while (t >= 1) {
        t -= 1;
        ts.push(t);
        if ((jumps.get(t) ?? 0) > 0) {
          jumps.set(t, jumps.get(t)! - 1);
          for (let k = 0; k < j; k++) ts.push(++t);
        }
      }
      // States s = n − 1 − t, the result n after the last; a jump is one move (its end kept).
      const s = [...ts.map((v) => n - 1 - v), n];
      return s.filter((v, k) => !(k + 1 < s.length && s[k + 1]! < v && k > 0 && v < s[k - 1]!));
    };
    for (const [n, j, r] of [
      [10, 3, 2],
      [20, 5, 3],
      [20, 10, 10],
      [7, 6, 2],
      [12, 1, 4],
    ] as const) {
      const states = repaintSchedule(n, j, r);
      assert.deepEqual(states, reference(n, j, r), `n=${n} j=${j} r=${r}`);
      const points = Math.ceil((n - j) / j);
      assert.equal(repaintModelCalls(states), n + (r - 1) * j * points, `n=${n} j=${j} r=${r}`);
    }
    assert.deepEqual(repaintSchedule(4, 2, 1), [0, 1, 2, 3, 4]);
    assert.throws(() => repaintSchedule(10, 10, 2), /jump length must be an integer from 1 to/);
    assert.throws(() => repaintSchedule(10, 2, 0), /resample must be an integer ≥ 1/);
  });

  const mask = tensor(
    Float32Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)),
    [1, 1, 8, 8],
  );

  for (const [sampler, resample] of [
    ['ddim', 1],
    ['ddpm', 1],
    ['euler', 1],
    ['heun', 1],
    ['dpmpp-2m', 1],
    ['ddpm', 3],
    ['ddim', 2],
  ] as const) {
    void test(`${sampler}${resample > 1 ? ` with resampling r=${resample}` : ''}: the kept region is the input exactly`, () => {
      const x0 = tinyImages();
      const out = inpaint(tinyModel, createSampler(sampler, SCHEDULE), x0, {
        mask,
        numInferenceSteps: 6,
        jumpLength: 2,
        resample,
        noise: noiseOf(2, 2),
      }).dataSync();
      const input = x0.dataSync();
      let changed = 0;
      for (let b = 0; b < 2; b++) {
        for (let i = 0; i < 64; i++) {
          const k = b * 64 + i;
          if (i < 32) assert.equal(out[k], input[k], `kept pixel ${i} of image ${b}`);
          else if (Math.abs(out[k]! - input[k]!) > 1e-3) changed++;
        }
      }
      assert.ok(changed > 32, `${changed} of 64 repainted pixels differ from the input`);
    });
  }

  void test('repainting everything with deterministic DDIM is plain sampling', () => {
    const all = tensor(new Float32Array(64).fill(1), [1, 1, 8, 8]);
    const out = inpaint(tinyModel, createSampler('ddim', SCHEDULE), tinyImages(), {
      mask: all,
      numInferenceSteps: 5,
      noise: noiseOf(9, 2),
    });
    const plain = generate(tiny, createSampler('ddim', SCHEDULE), {
      n: 2,
      seed: 9,
      numInferenceSteps: 5,
    });
    assert.deepEqual(out.dataSync(), plain.dataSync());
  });

  /**
   * Runs DDIM inpainting with a model that records the kept half of every input, and a noise
   * source that records every draw; returns both and the schedule.
   */
  const recordedInpaint = (
    knownNoise: 'fresh' | 'fixed',
    resample: number,
  ): {
    inputs: { t: number; kept: Float32Array }[];
    draws: Float32Array[];
    acp: Float64Array | Float32Array;
  } => {
    const inputs: { t: number; kept: Float32Array }[] = [];
    const draws: Float32Array[] = [];
    const source = noiseOf(5, 2);
    const scheduler = createSampler('ddim', SCHEDULE);
    const model: DenoiseModel = (x, t) => {
      const v = x.dataSync();
      inputs.push({
        t,
        kept: Float32Array.from({ length: 64 }, (_, k) => v[(k >> 5) * 64 + (k & 31)]!),
      });
      return tinyModel(x, t);
    };
    inpaint(model, scheduler, tinyImages(), {
      mask,
      numInferenceSteps: 6,
      jumpLength: 2,
      resample,
      knownNoise,
      noise: () => {
        const d = source();
        draws.push(Float32Array.from(d.dataSync()));
        return d;
      },
    }).dispose();
    return { inputs, draws, acp: scheduler.alphasCumprod };
  };

  /** The kept half (rows 0–3 of both images) of √ᾱ_t x_0 + √(1 − ᾱ_t) ε. */
  const forwardKept = (eps: Float32Array, t: number, acp: ArrayLike<number>): Float32Array => {
    const x0 = tinyImages().dataSync();
    const a = acp[t]!;
    return Float32Array.from({ length: 64 }, (_, k) => {
      const i = (k >> 5) * 64 + (k & 31);
      return Math.sqrt(a) * x0[i]! + Math.sqrt(1 - a) * eps[i]!;
    });
  };

  void test("knownNoise: the kept region is noised with a fresh ε each step, or x_T's ε ('fixed')", () => {
    const fresh = recordedInpaint('fresh', 1);
    const fixed = recordedInpaint('fixed', 1);
    // DDIM with η = 0 draws nothing itself: x_T is draw 0, and with 'fresh' the blend after step
    // i − 1 (which the model sees at step i) is draw i.
    assert.equal(fresh.draws.length, 6, 'x_T and one draw per blend');
    assert.equal(fixed.draws.length, 1, 'x_T only');
    assert.deepEqual(fixed.draws[0], fresh.draws[0]);
    assert.equal(fresh.inputs.length, 6);
    for (let i = 1; i < 6; i++) {
      const { t } = fresh.inputs[i]!;
      assert.equal(fixed.inputs[i]!.t, t);
      const byFresh = forwardKept(fresh.draws[i]!, t, fresh.acp);
      const byFixed = forwardKept(fixed.draws[0]!, t, fixed.acp);
      assert.ok(maxAbsDiff(fresh.inputs[i]!.kept, byFresh) < 1e-5, `fresh, step ${i}`);
      assert.ok(maxAbsDiff(fixed.inputs[i]!.kept, byFixed) < 1e-5, `fixed, step ${i}`);
      assert.ok(maxAbsDiff(byFresh, byFixed) > 1e-3, `the two differ at step ${i}`);
    }
  });

  void test("knownNoise 'fixed' with resampling: every blend uses x_T's ε, the jumps fresh draws", () => {
    const { inputs, draws, acp } = recordedInpaint('fixed', 2);
    const states = repaintSchedule(6, 2, 2);
    // The model runs at state a of each denoising transition a → a + 1; its input was blended when
    // the state before it was reached by a denoising step too.
    let blended = 0;
    let call = 0;
    for (let k = 1; k < states.length; k++) {
      if (states[k]! < states[k - 1]!) continue;
      const input = inputs[call++]!;
      const fromStep = k >= 2 && states[k - 1]! > states[k - 2]!;
      const atFixed = maxAbsDiff(input.kept, forwardKept(draws[0]!, input.t, acp)) < 1e-5;
      assert.equal(atFixed, fromStep, `model call ${call} (state ${states[k - 1]})`);
      if (fromStep) blended++;
    }
    assert.equal(call, inputs.length);
    assert.ok(blended >= 5, `${blended} blended inputs checked`);
    const jumps = states.filter((s, k) => k > 0 && s < states[k - 1]!).length;
    assert.equal(draws.length, 1 + jumps, 'x_T, then one draw per jump back up');
  });

  void test('resampling refuses samplers whose step is not a function of its timestep', () => {
    for (const sampler of ['euler', 'heun', 'dpmpp-2m', 'pndm']) {
      assert.throws(
        () =>
          inpaint(tinyModel, createSampler(sampler, SCHEDULE), tinyImages(), {
            mask,
            numInferenceSteps: 6,
            jumpLength: 2,
            resample: 2,
            noise: noiseOf(2, 2),
          }),
        /RePaint resampling .* ddpm or ddim/,
      );
    }
  });
});

void describe('DDIM inversion', () => {
  const scheduler = (): ReturnType<typeof createSampler> =>
    createSampler('ddim', inversionSchedulerConfig(SCHEDULE));

  void test('is the exact mirror of DDIM sampling when ε̂ does not depend on x', () => {
    const eps = randn([2, 1, 8, 8], { seed: 5 });
    const model: DenoiseModel = (_x, t) => eps.mul(Math.cos(t / 50));
    const x0 = tinyImages();
    const xT = ddimInvert(model, scheduler(), x0, { numInferenceSteps: 10 });
    const back = noGrad(() =>
      sample(scheduler(), model, xT, { numInferenceSteps: 10, stepOptions: { eta: 0 } }),
    );
    const err = rmse(back.dataSync(), x0.dataSync());
    assert.ok(err < 1e-5, `reconstruction RMSE ${err}`);
  });

  void test('fixed-point iterations converge to the inverse when ε̂ depends on x', () => {
    const x0 = tinyImages();
    const errorWith = (k: number): number => {
      const xT = ddimInvert(tinyModel, scheduler(), x0, {
        numInferenceSteps: 10,
        fixedPointIterations: k,
      });
      const back = noGrad(() =>
        sample(scheduler(), tinyModel, xT, { numInferenceSteps: 10, stepOptions: { eta: 0 } }),
      );
      return rmse(back.dataSync(), x0.dataSync());
    };
    const e0 = errorWith(0);
    const e3 = errorWith(3);
    assert.ok(e3 < e0 / 10, `RMSE with 3 iterations ${e3}, plain ${e0}`);
    assert.ok(e3 < 1e-3, `RMSE with 3 iterations ${e3}`);
  });

  void test('only DDIM is inverted', () => {
    for (const sampler of ['ddpm', 'euler', 'dpmpp-2m']) {
      assert.throws(
        () =>
          ddimInvert(tinyModel, createSampler(sampler, SCHEDULE), tinyImages(), {
            numInferenceSteps: 4,
          }),
        /only DDIM \(η = 0\) is invertible/,
      );
    }
  });

  void test('reconstructs a real digit with the shipped model (20 steps, 1 fixed-point iteration)', async () => {
    const p = await loadPipeline(join(REPO_ROOT, 'models', 'mnist-small'));
    const model = guidedDenoiser(p.model, { cond: {} });
    const x0 = realDigits(1);
    const config = inversionSchedulerConfig(p.schedulerConfig);
    const xT = ddimInvert(model, createSampler('ddim', config), x0, {
      numInferenceSteps: 20,
      fixedPointIterations: 1,
    });
    const back = noGrad(() =>
      sample(createSampler('ddim', config), model, xT, {
        numInferenceSteps: 20,
        stepOptions: { eta: 0 },
      }),
    );
    const err = rmse(back.dataSync(), x0.dataSync());
    // docs/editing.md: 0.046 over 100 digits at 20 steps with one iteration
    assert.ok(err < 0.08, `reconstruction RMSE ${err}`);
    const z = xT.dataSync();
    const std = Math.sqrt(Array.from(z).reduce((a, v) => a + v * v, 0) / z.length);
    assert.ok(std > 0.6 && std < 1.2, `x_T looks like noise: std ${std}`);
  });
});

void describe('a text-conditioned denoiser under guidance', () => {
  const unet = (
    createModel(
      {
        ...TINY_TEXT_UNET,
        sample_size: 8,
        in_channels: 1,
        out_channels: 1,
        cross_attention_dim: 6,
      },
      { generator: new Generator(4) },
    ) as UNet2DConditionModel
  ).eval();
  const prompt = (seed: number): DenoiseModel =>
    guidedDenoiser(unet, {
      cond: { encoderHiddenStates: randn([2, 3, 6], { seed }) },
      uncond: { encoderHiddenStates: randn([2, 3, 6], { seed: 99 }) },
      scale: 3,
    });

  void test('img2img, inpainting and inversion take it as any other denoiser', () => {
    const x0 = tinyImages();
    const edit = (model: DenoiseModel): Float32Array =>
      img2img(model, createSampler('dpmpp-2m', SCHEDULE), x0, {
        strength: 0.5,
        numInferenceSteps: 6,
        noise: noiseOf(3, 2),
      }).dataSync() as Float32Array;
    const a = edit(prompt(1));
    assert.equal(a.length, 2 * 64);
    assert.ok(rmse(a, edit(prompt(2))) > 1e-3, 'the prompt changes the edit');
    const mask = tensor(
      Float32Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0)),
      [1, 1, 8, 8],
    );
    const filled = inpaint(prompt(1), createSampler('ddim', SCHEDULE), x0, {
      mask,
      numInferenceSteps: 6,
      jumpLength: 2,
      resample: 2,
      noise: noiseOf(3, 2),
    }).dataSync();
    const input = x0.dataSync();
    for (let k = 0; k < 128; k++) {
      if (k % 8 >= 4) assert.equal(filled[k], input[k], `kept pixel ${k}`);
    }
    const config = inversionSchedulerConfig(SCHEDULE);
    const xT = ddimInvert(prompt(1), createSampler('ddim', config), x0, {
      numInferenceSteps: 10,
      fixedPointIterations: 2,
    });
    const back = noGrad(() =>
      sample(createSampler('ddim', config), prompt(1), xT, {
        numInferenceSteps: 10,
        stepOptions: { eta: 0 },
      }),
    );
    const err = rmse(back.dataSync(), input);
    assert.ok(err < 0.01, `guided inversion, reconstruction RMSE ${err}`);
  });
});

void describe('conditionedModel', () => {
  void test('is guidedDenoiser under the encoded conditions: c per image, ∅ only when w ≠ 1', () => {
    const unet = tinyUNet(6, { num_class_embeds: 3 }).eval();
    const classes = classConditioning({ numClasses: 2, nullClassId: 2 });
    const labels = (ids: number[]) => ({ classLabels: tensor(Int32Array.from(ids), [2]) });
    const x = randn([2, 1, 8, 8], { seed: 8 });
    const guided = conditionedModel(unet, classes, [0, 1], 3);
    const want = guidedDenoiser(unet, { cond: labels([0, 1]), uncond: labels([2, 2]), scale: 3 });
    assertClose(
      noGrad(() => guided.model(x, 30)),
      noGrad(() => want(x, 30)),
      { atol: 0, rtol: 0 },
    );
    guided.dispose();
    const plain = conditionedModel(unet, classes, [1, 0], 1);
    assertClose(
      noGrad(() => plain.model(x, 30)),
      noGrad(() => unet.denoise(x, 30, labels([1, 0]))),
      { atol: 0, rtol: 0 },
    );
    plain.dispose();
    assert.throws(() => conditionedModel(unet, classes, [0, 2], 1), ConditionError);
    const noNull = classConditioning({ numClasses: 2, nullClassId: null });
    assert.throws(() => conditionedModel(unet, noNull, [0, 1], 3), /condition dropout/);
  });
});

void describe('editing inputs', () => {
  const gray = (
    w: number,
    h: number,
    fill: (i: number) => number,
    channels: 1 | 2 | 3 = 1,
  ): RawImage => ({
    width: w,
    height: h,
    channels,
    data: Uint8Array.from({ length: w * h * channels }, (_, i) => fill(i)),
  });

  void test('an image becomes [−1, 1] planes of exactly the model shape', () => {
    const v = imageToSample(
      gray(2, 1, (i) => (i === 0 ? 0 : 255)),
      [1, 1, 2],
    );
    assert.deepEqual(Array.from(v), [-1, 1]);
    assert.throws(
      () =>
        imageToSample(
          gray(4, 4, () => 0),
          [1, 8, 8],
          'a.png',
        ),
      /^EditInputError: a\.png: 4x4 pixels; the model takes 8x8 images$/,
    );
    assert.throws(
      () =>
        imageToSample(
          gray(8, 8, () => 0, 3),
          [1, 8, 8],
          'a.png',
        ),
      /a\.png: a RGB image; the model takes gray \(1-channel\) images/,
    );
    assert.throws(
      () =>
        imageToSample(
          gray(8, 8, (i) => (i === 7 ? 100 : 255), 2),
          [1, 8, 8],
          'a.png',
        ),
      /a\.png: transparent pixel at x=3, y=0/,
    );
  });

  void test('a mask is binary, single-channel, of the image size, and repaints something', () => {
    const m = maskFromImage(
      gray(2, 2, (i) => [0, 255, 20, 240][i]!),
      [2, 2],
    );
    assert.deepEqual(Array.from(m), [0, 1, 0, 1]);
    assert.throws(
      () =>
        maskFromImage(
          gray(3, 2, () => 255),
          [2, 2],
          'm.png',
        ),
      /m\.png: 3x2 pixels; the image is 2x2/,
    );
    assert.throws(
      () =>
        maskFromImage(
          gray(2, 2, () => 255, 3),
          [2, 2],
          'm.png',
        ),
      /m\.png: a RGB image; a mask is single-channel/,
    );
    assert.throws(
      () =>
        maskFromImage(
          gray(2, 2, (i) => [0, 128, 255, 100][i]!),
          [2, 2],
          'm.png',
        ),
      /m\.png: 2 of 4 pixels are neither black nor white \(the first at x=1, y=0: 128 of 255\)/,
    );
    assert.throws(
      () =>
        maskFromImage(
          gray(2, 2, () => 0),
          [2, 2],
          'm.png',
        ),
      /m\.png: no white pixel/,
    );
  });
});
