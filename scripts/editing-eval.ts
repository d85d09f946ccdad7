/**
 * Measures the editing pipelines on real MNIST digits and draws the figures of docs/editing.md.
 * The digits are the ones `models/mnist-eval` held out of its training (spread over the 999, so
 * every class is there from 10 digits on); the diffusion models were trained on all of MNIST, these
 * digits included. Classes are judged by `models/mnist-eval` through src/eval.
 *
 *   npx tsx scripts/editing-eval.ts invert  [--model models/mnist-small] [--n 20]
 *           [--steps 10,20,50] [--fixed-point 0,1,2]
 *   npx tsx scripts/editing-eval.ts inpaint [--model models/mnist-cond] [--n 100] [--sampler ddim]
 *           [--steps 20] [--guidance 3] [--jumps 5] [--resample 1,2] [--known-noise fresh,fixed]
 *           [--eta 0] [--ddim-eps clipped|model]
 *           (a model trained with --task inpaint: one row, sampled under the mask, no blending)
 *   npx tsx scripts/editing-eval.ts img2img [--model models/mnist-cond] [--n 100] [--steps 20]
 *           [--guidance 3] [--strengths 0.3,0.5,0.7,0.9] [--ddim-eps clipped|model]
 *   npx tsx scripts/editing-eval.ts upscale --model DIR [--n 100] [--steps 50] [--sampler ddim]
 *   npx tsx scripts/editing-eval.ts figures [--out docs/img] [--n 10]
 *   npx tsx scripts/editing-eval.ts trained-figures [--out docs/img] [--n 10] [--upscaler DIR]
 *           [--inpainter DIR]
 *
 * Each measurement prints a Markdown table; --json FILE also writes the numbers. Sampling is DDIM
 * (η = 0; ε recomputed from the clipped x̂_0, see ddimStepOptions) with the noise of seed --seed
 * (default 0), the same for every setting compared.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { encodePng, gridFromValues, loadMnist, planesToImage, savePng } from '../src/data/index.js';
import {
  type ConditionValue,
  createSampler,
  ddimInvert,
  type DenoiseModel,
  conditionedModel,
  holdoutSplit,
  disposeConditioning,
  encodeConditions,
  ImageNoise,
  img2img,
  inpaint,
  inpaintWithModel,
  MASK_DRAWS,
  type MaskKind,
  modelTaskOf,
  randomMask,
  inversionSchedulerConfig,
  type KnownNoise,
  type LoadedPipeline,
  loadClassifier,
  loadPipeline,
  bicubicUpsample,
  downsampleBox,
  upscale,
  repaintModelCalls,
  repaintSchedule,
  sample,
} from '../src/diffusion/index.js';
import {
  cpuBackend,
  noGrad,
  rand,
  setDefaultBackend,
  type Tensor,
  tensor,
} from '../src/engine/index.js';
import {
  type EvalClassifier,
  evalClassifier,
  FeatureCollector,
  psnr as psnrOf,
  spreadIndices,
  ssim,
} from '../src/eval/index.js';

setDefaultBackend(cpuBackend());

const SIZE = 784;
const SHAPE = [1, 28, 28] as const;

// ---- options ----------------------------------------------------------------------------------

/** A bad command line: one line, exit 2. */
class UsageError extends Error {}

function option(argv: readonly string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = argv[i + 1];
  if (v === undefined) throw new UsageError(`--${name} needs a value`);
  return v;
}

/** --name as an integer ≥ 1. */
function count(argv: readonly string[], name: string, fallback: string): number {
  const v = Number(option(argv, name, fallback));
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name}: an integer ≥ 1, got ${v}`);
  return v;
}

function numbers(s: string, what: string): number[] {
  const v = s.split(',').map(Number);
  if (v.some((x) => !Number.isFinite(x)))
    throw new UsageError(`--${what}: not a list of numbers: ${s}`);
  return v;
}

// ---- data, models, judging ---------------------------------------------------------------------

interface Digits {
  x: Tensor;
  values: Float32Array;
  labels: number[];
}

/** n digits spread over the evaluation classifier's held-out set, in [−1, 1]. */
function heldOutDigits(n: number): Digits {
  const ds = loadMnist();
  const { heldOut } = holdoutSplit(ds, 0.1, 0);
  const picked = spreadIndices(heldOut.length, n).map((i) => heldOut[i]!);
  const values = new Float32Array(picked.length * SIZE);
  const labels: number[] = [];
  picked.forEach((idx, k) => {
    const s = ds.get(idx);
    for (let i = 0; i < SIZE; i++) values[k * SIZE + i] = s.image[i]! * 2 - 1;
    labels.push(s.label!);
  });
  return { x: tensor(values, [picked.length, ...SHAPE]), values, labels };
}

async function judge(): Promise<EvalClassifier> {
  return evalClassifier(await loadClassifier('models/mnist-eval'));
}

function predict(c: EvalClassifier, x: Tensor): Int32Array {
  const col = new FeatureCollector(c);
  col.add(x, 'the edited digits');
  return col.finish().predicted;
}

/**
 * DDIM's direction term (--ddim-eps). With clip_sample, the config of these models, diffusers' DDIM
 * clips x̂_0 but keeps the model's ε in the direction √(1 − ᾱ_prev) ε; under classifier-free
 * guidance the two disagree and the samples break up (mnist-cond at guidance 3, 20 steps: 5 of
 * 20 samples show the asked digit, against 20 of 20 with DDPM). 'clipped' (the default here)
 * recomputes ε from the clipped x̂_0 (diffusers' use_clipped_model_output=True); 'model' is
 * diffusers' default.
 */
function ddimStepOptions(
  argv: readonly string[],
  sampler: string,
): { useClippedModelOutput?: true } {
  const v = option(argv, 'ddim-eps', 'clipped');
  if (v !== 'clipped' && v !== 'model')
    throw new UsageError(`--ddim-eps: clipped or model, not ${v}`);
  return sampler === 'ddim' && v === 'clipped' ? { useClippedModelOutput: true } : {};
}

function noise(seed: number, n: number): () => Tensor {
  const draws = new ImageNoise(seed, 0, n, SHAPE);
  return () => draws.next();
}

/** Per-image RMSE of a against b (n images), over the pixels [from, to) of each (default all). */
function rmsePerImage(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  from = 0,
  to = SIZE,
): number[] {
  return Array.from({ length: n }, (_, k) => {
    let se = 0;
    for (let i = k * SIZE + from; i < k * SIZE + to; i++) se += (a[i]! - b[i]!) ** 2;
    return Math.sqrt(se / (to - from));
  });
}

/** Largest |a − b| over the pixels [from, to) of each of n images. */
function maxAbsDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  from: number,
  to: number,
): number {
  let m = 0;
  for (let k = 0; k < n; k++) {
    for (let i = k * SIZE + from; i < k * SIZE + to; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  }
  return m;
}

const mean = (v: readonly number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
/** Standard error of the mean: sample standard deviation / √n. */
const stderr = (v: readonly number[]): number => {
  const m = mean(v);
  return Math.sqrt(v.reduce((s, x) => s + (x - m) ** 2, 0) / (v.length - 1) / v.length);
};
/** PSNR in dB for images in [−1, 1] (peak-to-peak 2). */
const psnr = (rmse: number): number => 20 * Math.log10(2 / rmse);
const pct = (a: number): string => `${(100 * a).toFixed(1)}%`;
const pctSe = (v: readonly number[]): string => `${pct(mean(v))} ± ${pct(stderr(v))}`;
const dbSe = (v: readonly number[]): string => `${mean(v).toFixed(1)} ± ${stderr(v).toFixed(1)}`;
/** 1 where the prediction is the class asked for, else 0. */
const hits = (predicted: ArrayLike<number>, wanted: readonly number[]): number[] =>
  wanted.map((y, i) => (predicted[i] === y ? 1 : 0));

function table(rows: readonly (readonly string[])[]): string {
  const [head, ...body] = rows;
  return [head!, head!.map(() => '---'), ...body].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** A lower-half mask [1, 1, 28, 28]: 1 (repaint) on rows 14–27. */
function lowerHalf(): Tensor {
  return tensor(
    Float32Array.from({ length: SIZE }, (_, i) => (i >= SIZE / 2 ? 1 : 0)),
    [1, 1, 28, 28],
  );
}

function since(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(0)} s`;
}

// ---- measurements ------------------------------------------------------------------------------

async function measureInversion(argv: readonly string[]): Promise<unknown> {
  const model = option(argv, 'model', 'models/mnist-small');
  const n = count(argv, 'n', '20');
  const stepsList = numbers(option(argv, 'steps', '10,20,50'), 'steps');
  const ks = numbers(option(argv, 'fixed-point', '0,1,2'), 'fixed-point');
  const p = await loadPipeline(model);
  const d = heldOutDigits(n);
  const { model: denoise, dispose } = conditionedModel(
    p.model,
    p.condition,
    d.labels.map(() => null),
    1,
  );
  const config = inversionSchedulerConfig(p.schedulerConfig);
  interface Row {
    steps: number;
    fixedPoint: number;
    modelCalls: number;
    rmse: number;
    maxRmse: number;
    psnr: number;
    psnrSe: number;
    xTStd: number;
  }
  const rows: Row[] = [];
  for (const steps of stepsList) {
    for (const k of ks) {
      const t0 = performance.now();
      const xT = ddimInvert(denoise, createSampler('ddim', config), d.x, {
        numInferenceSteps: steps,
        fixedPointIterations: k,
      });
      const back = noGrad(() =>
        sample(createSampler('ddim', config), denoise, xT, {
          numInferenceSteps: steps,
          stepOptions: { eta: 0 },
        }),
      );
      const errs = rmsePerImage(back.dataSync(), d.values, n);
      const z = xT.dataSync();
      const db = errs.map(psnr);
      rows.push({
        steps,
        fixedPoint: k,
        // Inversion: k + 1 calls a step; reconstruction: one.
        modelCalls: steps * (k + 2),
        rmse: mean(errs),
        maxRmse: Math.max(...errs),
        psnr: mean(db),
        psnrSe: stderr(db),
        xTStd: Math.sqrt(Array.from(z).reduce((a, v) => a + v * v, 0) / z.length),
      });
      console.error(
        `invert: ${steps} steps, ${k} fixed-point iterations: RMSE ${mean(errs).toFixed(4)}, ` +
          `${since(t0)}`,
      );
      xT.dispose();
      back.dispose();
    }
  }
  dispose();
  console.log(
    `${model}; ${n} digits inverted with DDIM and sampled back with DDIM (η = 0, no clipping)\n`,
  );
  console.log(
    table([
      [
        'DDIM steps',
        'fixed-point iterations',
        'model calls / image',
        'RMSE (mean)',
        'RMSE (worst)',
        'PSNR (dB, mean ± s.e.)',
        'std of x_T',
      ],
      ...rows.map((r) => [
        String(r.steps),
        String(r.fixedPoint),
        String(r.modelCalls),
        r.rmse.toFixed(4),
        r.maxRmse.toFixed(4),
        `${r.psnr.toFixed(1)} ± ${r.psnrSe.toFixed(1)}`,
        r.xTStd.toFixed(3),
      ]),
    ]),
  );
  return { model, modelStep: p.info?.step ?? null, digits: n, results: rows };
}

async function measureInpainting(argv: readonly string[]): Promise<unknown> {
  const model = option(argv, 'model', 'models/mnist-cond');
  const n = count(argv, 'n', '100');
  const steps = count(argv, 'steps', '20');
  const guidance = Number(option(argv, 'guidance', '3'));
  const jumps = count(argv, 'jumps', '5');
  const resamples = numbers(option(argv, 'resample', '1,2'), 'resample');
  const seed = Number(option(argv, 'seed', '0'));
  const sampler = option(argv, 'sampler', 'ddim');
  // DDIM's η (null: the sampler's default; 1 makes DDIM's steps as noisy as DDPM's).
  const etaArg = option(argv, 'eta', '');
  const eta = etaArg === '' ? null : Number(etaArg);
  const ddimOptions = ddimStepOptions(argv, sampler);
  const knownNoises = option(argv, 'known-noise', 'fresh').split(',');
  for (const k of knownNoises) {
    if (k !== 'fresh' && k !== 'fixed')
      throw new UsageError(`--known-noise: fresh or fixed, not ${k}`);
  }
  const p = await loadPipeline(model, { tasks: ['generate', 'inpaint'] });
  // A model trained to inpaint (sumi train --task inpaint) sees the mask; no blending, no resampling.
  const trained = modelTaskOf(p.info) === 'inpaint';
  const c = await judge();
  const d = heldOutDigits(n);
  const conditional = p.condition.kind === 'class';
  const w = conditional ? guidance : 1;
  const { model: denoise, dispose } = conditionedModel(
    p.model,
    p.condition,
    d.labels.map((y) => (conditional ? y : null)),
    w,
  );
  const mask = lowerHalf();
  const HALF = SIZE / 2;
  // The lower half at the background value (−1), as if erased.
  const erased = tensor(
    d.values.map((v, i) => (i % SIZE >= HALF ? -1 : v)),
    [n, ...SHAPE],
  );
  interface Row {
    setting: string;
    modelCalls: number | null;
    accuracy: number;
    standardError: number;
    /** Accuracy minus mask blending's on the same digits, and its paired standard error. */
    gain: number | null;
    gainSe: number | null;
    rmseRepainted: number;
    maxKeptChange: number;
  }
  const rows: Row[] = [];
  let blending: number[] | null = null;
  const score = (name: string, x: Tensor, calls: number | null, baseline = false): void => {
    const v = x.dataSync();
    const h = hits(predict(c, x), d.labels);
    const diff = blending === null ? null : h.map((y, i) => y - blending![i]!);
    rows.push({
      setting: name,
      modelCalls: calls,
      accuracy: mean(h),
      standardError: stderr(h),
      gain: diff === null ? null : mean(diff),
      gainSe: diff === null ? null : stderr(diff),
      rmseRepainted: mean(rmsePerImage(v, d.values, n, HALF, SIZE)),
      maxKeptChange: maxAbsDiff(v, d.values, n, 0, HALF),
    });
    if (baseline) blending = h;
    const r = rows[rows.length - 1]!;
    console.error(
      `inpaint: ${name}: class kept ${pct(r.accuracy)} ± ${pct(r.standardError)}, ` +
        `RMSE in the repainted half ${r.rmseRepainted.toFixed(3)}`,
    );
  };
  score('the original digits', d.x, null);
  score('lower half erased (no inpainting)', erased, null);
  if (trained) {
    const t0 = performance.now();
    const values = d.labels.map((y) => (conditional ? y : null));
    const { cond, uncond } = encodeConditions(
      p.condition,
      { values, guidanceScale: w },
      cpuBackend(),
    );
    const out = inpaintWithModel(p.model, createSampler(sampler, p.schedulerConfig), d.x, {
      mask,
      numInferenceSteps: steps,
      stepOptions: { ...ddimOptions, ...(eta !== null ? { eta } : {}) },
      noise: noise(seed, n),
      guidance: { cond, uncond, scale: w },
    });
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
    score('inpainting model', out, steps * (w !== 1 ? 2 : 1), true);
    console.error(`inpaint: inpainting model: ${since(t0)}`);
    out.dispose();
  }
  for (const knownNoise of (trained ? [] : knownNoises) as KnownNoise[]) {
    for (const r of resamples) {
      const t0 = performance.now();
      const out = inpaint(denoise, createSampler(sampler, p.schedulerConfig), d.x, {
        mask,
        numInferenceSteps: steps,
        jumpLength: jumps,
        resample: r,
        knownNoise,
        stepOptions: { ...ddimOptions, ...(eta !== null ? { eta } : {}) },
        noise: noise(seed, n),
      });
      const calls = repaintModelCalls(repaintSchedule(steps, jumps, r)) * (w !== 1 ? 2 : 1);
      const name =
        (r === 1 ? 'mask blending' : `RePaint, jumps ${jumps}, resample ${r}`) +
        (knownNoises.length > 1 ? `, ${knownNoise} ε` : '');
      score(name, out, calls, blending === null && r === 1);
      console.error(`inpaint: ${name}: ${since(t0)}`);
      out.dispose();
    }
  }
  dispose();
  console.log(
    `${model}${conditional ? `, the true class, guidance ${w}` : ''}; ${n} digits, lower half ` +
      `repainted, ${sampler}${eta !== null ? ` (η = ${eta})` : ''} ${steps} steps, ` +
      (trained
        ? 'a model trained to inpaint (no blending)\n'
        : `known region noised with ${knownNoises.map((k) => (k === 'fresh' ? 'a fresh ε every step' : 'the ε of x_T')).join(' / ')}\n`),
  );
  console.log(
    table([
      [
        '',
        'model evaluations / image',
        'class kept (± s.e.)',
        'vs mask blending (paired ± s.e.)',
        'RMSE in the repainted half',
        'largest change in the kept half',
      ],
      ...rows.map((r) => [
        r.setting,
        r.modelCalls === null ? '–' : String(r.modelCalls),
        `${pct(r.accuracy)} ± ${pct(r.standardError)}`,
        r.gain === null || r.gainSe === null
          ? '–'
          : `${r.gain >= 0 ? '+' : '−'}${(100 * Math.abs(r.gain)).toFixed(1)} ± ${(100 * r.gainSe).toFixed(1)} pts`,
        r.rmseRepainted.toFixed(3),
        String(r.maxKeptChange),
      ]),
    ]),
  );
  return {
    model,
    // The training step of the weights: a retrained model shows here.
    modelStep: p.info?.step ?? null,
    digits: n,
    sampler,
    eta,
    ddimEps: option(argv, 'ddim-eps', 'clipped'),
    steps,
    knownNoise: knownNoises,
    guidance: w,
    jumps,
    resample: resamples,
    seed,
    results: rows,
  };
}

async function measureImg2img(argv: readonly string[]): Promise<unknown> {
  const model = option(argv, 'model', 'models/mnist-cond');
  const n = count(argv, 'n', '100');
  const steps = count(argv, 'steps', '20');
  const guidance = Number(option(argv, 'guidance', '3'));
  const strengths = numbers(option(argv, 'strengths', '0.3,0.5,0.7,0.9'), 'strengths');
  const seed = Number(option(argv, 'seed', '0'));
  const p = await loadPipeline(model);
  if (p.condition.kind !== 'class')
    throw new UsageError(`${model}: img2img is measured with a class-conditional model`);
  const c = await judge();
  const d = heldOutDigits(n);
  // Every other class in turn as the target.
  const targets = d.labels.map((y, i) => (y + 1 + (i % 9)) % 10);
  const { model: denoise, dispose } = conditionedModel(p.model, p.condition, targets, guidance);
  interface Row {
    strength: number;
    modelCalls: number;
    target: number[];
    source: number[];
    psnr: number[];
  }
  const rows: Row[] = [];
  for (const strength of strengths) {
    const t0 = performance.now();
    const out = img2img(denoise, createSampler('ddim', p.schedulerConfig), d.x, {
      strength,
      stepOptions: ddimStepOptions(argv, 'ddim'),
      numInferenceSteps: steps,
      noise: noise(seed, n),
    });
    const predicted = predict(c, out);
    rows.push({
      strength,
      modelCalls: Math.floor(steps * strength) * (guidance !== 1 ? 2 : 1),
      target: hits(predicted, targets),
      source: hits(predicted, d.labels),
      psnr: rmsePerImage(out.dataSync(), d.values, n).map(psnr),
    });
    const last = rows[rows.length - 1]!;
    console.error(
      `img2img: strength ${strength}: target ${pctSe(last.target)}, source ${pctSe(last.source)}, ` +
        `PSNR ${dbSe(last.psnr)} dB, ${since(t0)}`,
    );
    out.dispose();
  }
  dispose();
  console.log(
    `${model}, guidance ${guidance}; ${n} digits, each towards another class, DDIM ${steps} steps\n`,
  );
  console.log(
    table([
      [
        'strength',
        'model evaluations / image',
        'target class (± s.e.)',
        'still the source class (± s.e.)',
        'PSNR to the input (dB, ± s.e.)',
      ],
      ...rows.map((r) => [
        String(r.strength),
        String(r.modelCalls),
        pctSe(r.target),
        pctSe(r.source),
        dbSe(r.psnr),
      ]),
    ]),
  );
  return {
    model,
    // The training step of the weights: a retrained model shows here.
    modelStep: p.info?.step ?? null,
    digits: n,
    steps,
    guidance,
    ddimEps: option(argv, 'ddim-eps', 'clipped'),
    seed,
    results: rows.map((r) => ({
      strength: r.strength,
      modelCalls: r.modelCalls,
      target: mean(r.target),
      targetSe: stderr(r.target),
      source: mean(r.source),
      sourceSe: stderr(r.source),
      psnr: mean(r.psnr),
      psnrSe: stderr(r.psnr),
    })),
  };
}

/**
 * SR3 against bicubic upsampling: each held-out digit brought down to its block means and back
 * up, by bicubic interpolation and by the upscaler (both clamped to [−1, 1]), scored against the
 * digit by PSNR and SSIM; the gains are paired per digit.
 */
async function measureUpscaling(argv: readonly string[]): Promise<unknown> {
  const model = option(argv, 'model', '');
  if (model === '') throw new UsageError('upscale: --model DIR (an upscaler) is required');
  const n = count(argv, 'n', '100');
  const steps = count(argv, 'steps', '50');
  const sampler = option(argv, 'sampler', 'ddim');
  const seed = Number(option(argv, 'seed', '0'));
  const p = await loadPipeline(model, { tasks: ['upscale'] });
  const settings = p.info!.upscale!;
  if (p.model.sampleShape.join() !== [2, 28, 28].join())
    throw new UsageError(`${model}: not an upscaler of 28x28 gray digits`);
  const d = heldOutDigits(n);
  const clamp = (x: Tensor): Float32Array => {
    const v = Float32Array.from(x.dataSync(), (u) => Math.min(1, Math.max(-1, u)));
    x.dispose();
    return v;
  };
  const low = downsampleBox(d.x, settings.factor);
  const bicubic = clamp(bicubicUpsample(low, settings.factor));
  const t0 = performance.now();
  const sr = clamp(
    upscale(p.model, createSampler(sampler, p.schedulerConfig), low, {
      ...settings,
      numInferenceSteps: steps,
      noise: noise(seed, n),
    }),
  );
  console.error(`upscale: ${n} digits, ${since(t0)}`);
  const per = (v: Float32Array, f: (a: Float32Array, b: Float32Array) => number): number[] =>
    Array.from({ length: n }, (_, k) =>
      f(v.subarray(k * SIZE, (k + 1) * SIZE), d.values.subarray(k * SIZE, (k + 1) * SIZE)),
    );
  const score = {
    psnr: (a: Float32Array, b: Float32Array) => psnrOf(a, b, 2),
    ssim: (a: Float32Array, b: Float32Array) => ssim(a, b, 28, 28, 2),
  };
  const rows = (['psnr', 'ssim'] as const).map((m) => {
    const b = per(bicubic, score[m]);
    const s_ = per(sr, score[m]);
    const gain = s_.map((v, i) => v - b[i]!);
    return {
      metric: m,
      bicubic: mean(b),
      bicubicSe: stderr(b),
      sr3: mean(s_),
      sr3Se: stderr(s_),
      gain: mean(gain),
      gainSe: stderr(gain),
    };
  });
  low.dispose();
  console.log(
    `${model} (×${settings.factor}, σ_a ${settings.noiseAugmentation}); ${n} held-out digits, ` +
      `${sampler} ${steps} steps\n`,
  );
  const f = (v: number, digits: number) => v.toFixed(digits);
  console.log(
    table([
      ['', 'bicubic (± s.e.)', 'SR3 (± s.e.)', 'SR3 − bicubic (paired ± s.e.)'],
      ...rows.map((r) => {
        const k = r.metric === 'psnr' ? 2 : 4;
        return [
          r.metric === 'psnr' ? 'PSNR (dB)' : 'SSIM',
          `${f(r.bicubic, k)} ± ${f(r.bicubicSe, k)}`,
          `${f(r.sr3, k)} ± ${f(r.sr3Se, k)}`,
          `${f(r.gain, k)} ± ${f(r.gainSe, k)}`,
        ];
      }),
    ]),
  );
  return {
    model,
    modelStep: p.info?.step ?? null,
    upscale: settings,
    digits: n,
    sampler,
    steps,
    seed,
    results: rows,
  };
}

// ---- figures -----------------------------------------------------------------------------------

/** Rows of 8 digits each, as a PNG grid scaled 2×. */
async function writeRows(path: string, rows: readonly ArrayLike<number>[]): Promise<void> {
  const cols = rows[0]!.length / SIZE;
  const values = new Float32Array(rows.length * cols * SIZE);
  rows.forEach((r, i) => values.set(r, i * cols * SIZE));
  await savePng(
    path,
    gridFromValues(values, [rows.length * cols, ...SHAPE], { nrow: cols, scale: 2 }),
  );
  console.error(`wrote ${path}`);
}

async function figures(argv: readonly string[]): Promise<void> {
  const out = option(argv, 'out', 'docs/img');
  const n = count(argv, 'n', '10');
  const cond = await loadPipeline('models/mnist-cond');
  const small = await loadPipeline('models/mnist-small');
  const d = heldOutDigits(n);
  const HALF = SIZE / 2;
  const lowerHalfOf = (v: Float32Array, fill: number): Float32Array =>
    v.map((x, i) => (i % SIZE >= HALF ? fill : x));
  /** Runs `f` with a denoiser under one condition per digit, and frees the conditioning. */
  const under = <T>(
    p: LoadedPipeline,
    values: readonly ConditionValue[],
    w: number,
    f: (m: DenoiseModel) => T,
  ): T => {
    const g = conditionedModel(p.model, p.condition, values, w);
    try {
      return f(g.model);
    } finally {
      g.dispose();
    }
  };
  const values = (x: Tensor): Float32Array => {
    const v = Float32Array.from(x.dataSync());
    x.dispose();
    return v;
  };

  // An example input and mask for the commands of docs/editing.md.
  writeFileSync(
    join(out, 'editing-digit.png'),
    encodePng(planesToImage(d.values.subarray(0, SIZE), 1, 28, 28, [-1, 1])),
  );
  const half = Float32Array.from({ length: SIZE }, (_, i) => (i >= HALF ? 1 : 0));
  writeFileSync(join(out, 'editing-mask.png'), encodePng(planesToImage(half, 1, 28, 28)));
  console.error(`wrote ${join(out, 'editing-digit.png')}, ${join(out, 'editing-mask.png')}`);
  console.error(`the digits: ${d.labels.join(' ')}`);

  // img2img: each digit towards the class 5 above its own, guidance 3.
  const targets = d.labels.map((y) => (y + 5) % 10);
  const i2i: ArrayLike<number>[] = [d.values];
  for (const strength of [0.3, 0.5, 0.7, 0.9]) {
    i2i.push(
      under(cond, targets, 3, (m) =>
        values(
          img2img(m, createSampler('ddim', cond.schedulerConfig), d.x, {
            strength,
            stepOptions: { useClippedModelOutput: true },
            numInferenceSteps: 20,
            noise: noise(0, n),
          }),
        ),
      ),
    );
  }
  await writeRows(join(out, 'editing-img2img.png'), i2i);
  console.error(`img2img targets: ${targets.join(' ')}`);

  // Inpainting the lower half: mnist-cond under the true class (guidance 3), then mnist-small;
  // each with mask blending and RePaint (jumps 5, resample 2), DDIM 20 steps.
  const inpainted = (p: LoadedPipeline, values_: readonly ConditionValue[], w: number, r: number) =>
    under(p, values_, w, (m) =>
      values(
        inpaint(m, createSampler('ddim', p.schedulerConfig), d.x, {
          stepOptions: { useClippedModelOutput: true },
          mask: lowerHalf(),
          numInferenceSteps: 20,
          jumpLength: 5,
          resample: r,
          noise: noise(0, n),
        }),
      ),
    );
  const nulls = d.labels.map(() => null);
  const condBlend = inpainted(cond, d.labels, 3, 1);
  const condRepaint = inpainted(cond, d.labels, 3, 2);
  const smallBlend = inpainted(small, nulls, 1, 1);
  const smallRepaint = inpainted(small, nulls, 1, 2);
  // The masked input shows the repainted half gray (0).
  await writeRows(join(out, 'editing-inpaint.png'), [
    d.values,
    lowerHalfOf(d.values, 0),
    condBlend,
    condRepaint,
    smallBlend,
    smallRepaint,
  ]);

  // Consistency: |output − input| × 4 from black (0 → −1): the kept half is black exactly.
  const change = (v: Float32Array): Float32Array =>
    v.map((x, i) => Math.min(1, -1 + 4 * Math.abs(x - d.values[i]!)));
  const changed = (v: Float32Array): number => {
    let k = 0;
    for (let i = 0; i < v.length; i++) if (i % SIZE < HALF && v[i] !== d.values[i]) k++;
    return k;
  };
  await writeRows(join(out, 'editing-inpaint-consistency.png'), [
    d.values,
    condRepaint,
    change(condRepaint),
    smallRepaint,
    change(smallRepaint),
  ]);
  console.error(
    `kept-half pixels that differ from the input: ${changed(condRepaint)} (mnist-cond), ` +
      `${changed(smallRepaint)} (mnist-small), of ${n * HALF}`,
  );

  // Inversion: mnist-small, 50 steps, one fixed-point iteration; x_T shown clamped to [−1, 1].
  const config = inversionSchedulerConfig(small.schedulerConfig);
  const [xT, back] = under(small, nulls, 1, (m) => {
    const z = ddimInvert(m, createSampler('ddim', config), d.x, {
      numInferenceSteps: 50,
      fixedPointIterations: 1,
    });
    const x = noGrad(() =>
      sample(createSampler('ddim', config), m, z, {
        numInferenceSteps: 50,
        stepOptions: { eta: 0 },
      }),
    );
    return [values(z), values(x)];
  });
  // mnist-cond: invert under the true class (no guidance), sample back under the class 5 above.
  const condConfig = inversionSchedulerConfig(cond.schedulerConfig);
  const xTc = under(cond, d.labels, 1, (m) =>
    ddimInvert(m, createSampler('ddim', condConfig), d.x, {
      numInferenceSteps: 50,
      fixedPointIterations: 1,
    }),
  );
  const swapped = under(cond, targets, 1, (m) =>
    values(
      noGrad(() =>
        sample(createSampler('ddim', condConfig), m, xTc, {
          numInferenceSteps: 50,
          stepOptions: { eta: 0 },
        }),
      ),
    ),
  );
  xTc.dispose();
  await writeRows(join(out, 'editing-invert.png'), [d.values, xT, back, swapped]);
  const rmse = rmsePerImage(back, d.values, n);
  console.error(`inversion RMSE per digit: ${rmse.map((e) => e.toFixed(3)).join(' ')}`);
}

/**
 * The figures of the trained editing models: the training masks of `--task inpaint` (no model
 * needed), and with --upscaler DIR / --inpainter DIR their results on held-out digits.
 */
async function trainedFigures(argv: readonly string[]): Promise<void> {
  const out = option(argv, 'out', 'docs/img');
  const n = count(argv, 'n', '10');
  const upscaler = option(argv, 'upscaler', '');
  const inpainter = option(argv, 'inpainter', '');
  const d = heldOutDigits(n);
  const values = (x: Tensor): Float32Array => {
    const v = Float32Array.from(x.dataSync(), (u) => Math.min(1, Math.max(-1, u)));
    x.dispose();
    return v;
  };

  // Training masks: n of each kind from seed 0's uniforms, and the digits as the model sees them.
  const u = rand([2 * n * MASK_DRAWS], { seed: 0, dtype: 'float64' }).dataSync();
  const masks = (kind: MaskKind, from: number): Float32Array => {
    const m = new Float32Array(n * SIZE);
    for (let k = 0; k < n; k++) {
      const at = (from + k) * MASK_DRAWS;
      m.set(randomMask(u.subarray(at, at + MASK_DRAWS), 28, 28, [kind]), k * SIZE);
    }
    return m;
  };
  const rect = masks('rectangle', 0);
  const brush = masks('brush', n);
  // Masks shown white on black ([0, 1] → [−1, 1]); masked digits with the hole at 0 (gray).
  const shown = (m: Float32Array): Float32Array => m.map((v) => 2 * v - 1);
  const masked = (m: Float32Array): Float32Array => d.values.map((v, i) => (m[i] === 1 ? 0 : v));
  await writeRows(join(out, 'editing-training-masks.png'), [
    shown(rect),
    masked(rect),
    shown(brush),
    masked(brush),
  ]);

  if (upscaler !== '') {
    const p = await loadPipeline(upscaler, { tasks: ['upscale'] });
    const settings = p.info!.upscale!;
    const f = settings.factor;
    const low = downsampleBox(d.x, f);
    const lowValues = low.dataSync();
    // The low resolution shown at full size, each pixel an f×f block.
    const blocks = d.values.map((_, i) => {
      const k = Math.floor(i / SIZE);
      const y = Math.floor((i % SIZE) / 28 / f);
      const x = Math.floor((i % 28) / f);
      const side = 28 / f;
      return lowValues[k * side * side + y * side + x]!;
    });
    const bicubic = values(bicubicUpsample(low, f));
    const sr = values(
      upscale(p.model, createSampler('ddim', p.schedulerConfig), low, {
        ...settings,
        numInferenceSteps: 50,
        noise: noise(0, n),
      }),
    );
    low.dispose();
    await writeRows(join(out, 'editing-upscale.png'), [d.values, blocks, bicubic, sr]);
  }

  if (inpainter !== '') {
    const p = await loadPipeline(inpainter, { tasks: ['inpaint'] });
    const completed = (m: Float32Array): Float32Array =>
      values(
        inpaintWithModel(p.model, createSampler('ddim', p.schedulerConfig), d.x, {
          mask: tensor(m, [n, 1, 28, 28]),
          numInferenceSteps: 20,
          noise: noise(0, n),
        }),
      );
    const half = Float32Array.from({ length: n * SIZE }, (_, i) => (i % SIZE >= SIZE / 2 ? 1 : 0));
    await writeRows(join(out, 'editing-inpaint-model.png'), [
      d.values,
      masked(half),
      completed(half),
      masked(brush),
      completed(brush),
    ]);
  }
}

// ---- main --------------------------------------------------------------------------------------

async function main(what: string, argv: readonly string[]): Promise<unknown> {
  switch (what) {
    case 'invert':
      return measureInversion(argv);
    case 'inpaint':
      return measureInpainting(argv);
    case 'img2img':
      return measureImg2img(argv);
    case 'upscale':
      return measureUpscaling(argv);
    case 'figures':
      await figures(argv);
      return null;
    case 'trained-figures':
      await trainedFigures(argv);
      return null;
    default:
      throw new UsageError(
        'usage: npx tsx scripts/editing-eval.ts invert|inpaint|img2img|upscale|figures|trained-figures [options]',
      );
  }
}

const [what, ...argv] = process.argv.slice(2);
const t0 = performance.now();
try {
  const json = option(argv, 'json', '');
  const result = await main(what ?? '', argv);
  console.error(`done in ${since(t0)}`);
  // The command as it would be typed, without the --json destination.
  const recorded = argv.filter((a, i, all) => a !== '--json' && all[i - 1] !== '--json');
  if (json !== '' && result !== null) {
    const threads = process.env.SUMI_CPU_THREADS;
    const command =
      (threads !== undefined ? `SUMI_CPU_THREADS=${threads} ` : '') +
      `npx tsx scripts/editing-eval.ts ${[what, ...recorded].join(' ')}`;
    writeFileSync(json, `${JSON.stringify({ command, ...(result as object) }, null, 2)}\n`);
  }
} catch (e) {
  console.error(`editing-eval: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(e instanceof UsageError ? 2 : 1);
}
