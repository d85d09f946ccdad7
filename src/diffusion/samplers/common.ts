/**
 * What every scheduler shares: the Scheduler contract (diffusers' vocabulary: `setTimesteps`,
 * `timesteps`, `initNoiseSigma`, `scaleModelInput`, `step`, `addNoise`), step options, noise
 * drawing, x̂_0 clipping and dynamic thresholding, and the training schedule every scheduler is
 * built on.
 */
import {
  clamp,
  concat,
  div,
  type Generator,
  keep,
  maximum,
  minimum,
  mul,
  randn,
  slice,
  type Tensor,
  tensor,
} from '../../engine/index.js';
import type { PredictionType } from '../forward.js';
import { type BetaSchedule, makeBetas, makeSchedule, type NoiseSchedule } from '../schedule.js';
import type { TimestepSpacing } from './spacing.js';

export type { PredictionType } from '../forward.js';

/** Where a stochastic step gets its Gaussian noise. */
export type NoiseSource = Tensor | (() => Tensor);

export interface StepOptions {
  /** Draws `randn(sample.shape, { generator, dtype, backend })` when the step needs noise. */
  generator?: Generator;
  /**
   * Explicit noise for the step (diffusers' `variance_noise`): a tensor, or a function called once
   * each time the step draws (how recorded noise is replayed). Takes precedence over `generator`.
   */
  noise?: NoiseSource;
  /** DDIM: η (0 = deterministic DDIM, 1 = DDPM-like ancestral sampling). Default 0. */
  eta?: number;
  /** DDIM: recompute ε̂ from the clipped x̂_0. Default false. */
  useClippedModelOutput?: boolean;
  /** LMS: order of the linear multistep method. Default 4. */
  order?: number;
  /** Euler: stochastic churn (Karras et al. 2022, Algorithm 2). Defaults 0, 0, ∞, 1. */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
}

export interface StepResult {
  /** x_{t−1}: the next sample of the chain. */
  prevSample: Tensor;
  /** x̂_0 predicted at this step, where the method forms one (null for PNDM and UniPC). */
  predOriginalSample: Tensor | null;
}

/** A diffusers-compatible noise scheduler. Per-run history lives in state that `setTimesteps` resets. */
export interface Scheduler {
  /** diffusers' class name, e.g. 'DDIMScheduler'. */
  readonly className: string;
  /** Resolved options (camelCase). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Model evaluations per solver step (2 for Heun, as diffusers' `order`). */
  readonly order: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** The inference timesteps, in the order the model is called; set by `setTimesteps`. */
  readonly timesteps: Float64Array;
  /** σ per timestep plus the final σ (schedulers that work with sigmas), else null. */
  readonly sigmas: Float64Array | null;
  /** Standard deviation of x_T: sample x_T ~ N(0, I) · initNoiseSigma. */
  readonly initNoiseSigma: number;
  readonly numInferenceSteps: number | null;
  setTimesteps(numInferenceSteps: number): void;
  scaleModelInput(sample: Tensor, timestep: number): Tensor;
  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult;
  /** The forward process at the given timesteps, one per batch element. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor;
  /** v = √ᾱ ε − √(1−ᾱ) x_0 (DDPM, DDIM and Euler, as diffusers). */
  getVelocity?(sample: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor;
  /** The diffusers `config.json` object of this scheduler (snake_case, `_class_name`). */
  toDiffusersConfig(): Record<string, unknown>;
  /**
   * Whether `step` reads the variance half of a learned-variance model output [B, 2C, ...]
   * (DDPM with variance_type learned / learned_range). `sample` gives every other scheduler the
   * mean half only. Absent: false.
   */
  readonly usesLearnedVariance?: boolean;
}

/**
 * The mean part (ε, x_0 or v) of a model output for a sample of `channels` channels: the first C
 * channels of a learned-variance output [B, 2C, ...] (improved DDPM's split of Σ_θ; diffusers'
 * `model_output.split(C, dim=1)`), the output itself when it has C channels.
 */
export function meanPartOf(modelOutput: Tensor, channels: number): Tensor {
  if (modelOutput.rank < 2 || modelOutput.shape[1] !== 2 * channels) return modelOutput;
  return slice(modelOutput, [0, 0], [modelOutput.shape[0]!, channels]);
}

/**
 * f applied to the mean part of a model output, the variance part kept: for [B, 2C, ...],
 * concat([f(out[:, :C]), out[:, C:]], 1); for [B, C, ...], f(out). How guidance changes only
 * the mean prediction of a learned-variance model (as diffusers' IF and DiT pipelines do).
 */
export function mapMeanPart(
  modelOutput: Tensor,
  channels: number,
  f: (meanPart: Tensor) => Tensor,
): Tensor {
  if (modelOutput.rank < 2 || modelOutput.shape[1] !== 2 * channels) return f(modelOutput);
  const variancePart = slice(modelOutput, [0, channels], [modelOutput.shape[0]!, 2 * channels]);
  return concat([f(meanPartOf(modelOutput, channels)), variancePart], 1);
}

/** Options every scheduler has: the training noise schedule and the parameterization. */
export interface BaseOptions {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: readonly number[] | null;
  predictionType: PredictionType;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
}

/**
 * The β schedule every diffusers scheduler defaults to (DDPM's linear 1e-4 to 0.02 over 1,000
 * steps); a scheduler with other defaults (Heun's) writes its own.
 */
export const BETA_DEFAULTS: Pick<
  BaseOptions,
  'numTrainTimesteps' | 'betaStart' | 'betaEnd' | 'betaSchedule' | 'trainedBetas'
> = {
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: 'linear',
  trainedBetas: null,
};

export const predictionTypes: readonly PredictionType[] = ['epsilon', 'sample', 'v_prediction'];

export function checkOneOf<T extends string>(
  what: string,
  value: T,
  allowed: readonly T[],
  owner: string,
): void {
  if (!allowed.includes(value)) {
    throw new Error(
      `${owner}: ${what} '${String(value)}' is not supported (choose one of ${allowed.join(', ')})`,
    );
  }
}

/**
 * The training schedule (β, ᾱ) of a scheduler. `zeroSnrOverride`: with zero-terminal-SNR betas,
 * diffusers' sigma schedulers set ᾱ_{T−1} = 2⁻²⁴ so that the first σ stays finite.
 */
export function trainSchedule(
  o: BaseOptions & { rescaleBetasZeroSnr?: boolean },
  zeroSnrOverride = false,
): NoiseSchedule {
  const betas = makeBetas({
    numTrainTimesteps: o.numTrainTimesteps,
    betaSchedule: o.betaSchedule,
    betaStart: o.betaStart,
    betaEnd: o.betaEnd,
    trainedBetas: o.trainedBetas,
    rescaleBetasZeroSnr: o.rescaleBetasZeroSnr ?? false,
  });
  const s = makeSchedule(betas);
  if (zeroSnrOverride && o.rescaleBetasZeroSnr === true) {
    s.alphasCumprod[s.alphasCumprod.length - 1] = 2 ** -24;
  }
  return s;
}

/** Draws the step's noise: explicit noise first, then the generator; an error if neither. */
export function drawNoise(like: Tensor, opts: StepOptions | undefined, owner: string): Tensor {
  const src = opts?.noise;
  let n: Tensor;
  if (src !== undefined) {
    n = typeof src === 'function' ? src() : src;
  } else if (opts?.generator !== undefined) {
    n = randn(like.shape, { generator: opts.generator, dtype: like.dtype, backend: like.backend });
  } else {
    throw new Error(`${owner}.step draws noise: pass { generator } or { noise } in step options`);
  }
  if (!like.sameShape(n)) {
    throw new Error(
      `${owner}.step: noise of shape [${n.shape.join(', ')}] for a sample of [${like.shape.join(', ')}]`,
    );
  }
  return n.dtype === like.dtype ? n : n.cast(like.dtype);
}

/** A per-batch column [B, 1, 1, …] of numbers, broadcastable against `like`. */
export function perBatch(values: ArrayLike<number>, like: Tensor): Tensor {
  const B = like.shape[0]!;
  if (values.length !== B) throw new Error(`${values.length} values for a batch of ${B}`);
  return tensor(Float64Array.from(values), [B, ...like.shape.slice(1).map(() => 1)], {
    dtype: like.dtype,
    backend: like.backend,
  });
}

/** torch.quantile(values, q) with linear interpolation (sorts a copy). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const v = Float64Array.from(values).sort();
  const rank = q * (v.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const w = rank - lo;
  const a = v[lo]!;
  const b = v[hi]!;
  // torch.lerp
  return w < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w);
}

/**
 * Dynamic thresholding (Saharia et al. 2022, Imagen, §2.3): per sample, s = the `ratio` quantile of
 * |x̂_0|, clamped to [1, maxValue]; x̂_0 ← clamp(x̂_0, −s, s)/s. Reads the values back (CPU, or any
 * backend with synchronous reads).
 */
export function thresholdSample(x0: Tensor, ratio: number, maxValue: number): Tensor {
  const data = x0.dataSync();
  const B = x0.shape[0]!;
  const per = x0.size / B;
  const s = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const abs = Float64Array.from(data.subarray(b * per, (b + 1) * per), Math.abs);
    s[b] = Math.min(maxValue, Math.max(1, quantile(abs, ratio)));
  }
  const sT = perBatch(s, x0);
  return div(minimum(maximum(x0, mul(sT, -1)), sT), sT);
}

/** Clipping / dynamic thresholding of x̂_0. */
export interface ClipOptions {
  clipSample: boolean;
  clipSampleRange: number;
  thresholding: boolean;
  dynamicThresholdingRatio: number;
  sampleMaxValue: number;
}

/**
 * diffusers' thresholding options of the schedulers that offer it (DDPM, DDIM, DPM-Solver, UniPC):
 * off; when on, s is the 99.5th percentile of |x̂_0|, at most 1.
 */
export const THRESHOLDING_DEFAULTS: Pick<
  ClipOptions,
  'thresholding' | 'dynamicThresholdingRatio' | 'sampleMaxValue'
> = {
  thresholding: false,
  dynamicThresholdingRatio: 0.995,
  sampleMaxValue: 1.0,
};

/** Clips or thresholds x̂_0 as the config asks (thresholding wins, as in diffusers). */
export function clipOrThreshold(x0: Tensor, o: Partial<ClipOptions>): Tensor {
  if (o.thresholding === true) {
    const d = THRESHOLDING_DEFAULTS;
    const ratio = o.dynamicThresholdingRatio ?? d.dynamicThresholdingRatio;
    return thresholdSample(x0, ratio, o.sampleMaxValue ?? d.sampleMaxValue);
  }
  if (o.clipSample === true) {
    const r = o.clipSampleRange ?? 1;
    return clamp(x0, -r, r);
  }
  return x0;
}

/**
 * Position of a timestep in the schedule, as diffusers' sigma schedulers find it: the second
 * occurrence when it appears twice (Heun), so that a run started mid-schedule does not skip a σ.
 * `missing`: 'throw' (Euler family) or 'last' (DPM-Solver, UniPC: the last index).
 */
export function indexForTimestep(
  timesteps: Float64Array,
  t: number,
  missing: 'throw' | 'last' = 'throw',
): number {
  const hits: number[] = [];
  timesteps.forEach((v, i) => {
    if (v === t) hits.push(i);
  });
  if (hits.length === 0) {
    if (missing === 'last') return timesteps.length - 1;
    throw new Error(`timestep ${t} is not in the schedule`);
  }
  return hits.length > 1 ? hits[1]! : hits[0]!;
}

/**
 * An owned handle on a tensor kept across steps (history of a multistep method): an alias that
 * survives the caller's `tidy` and that the scheduler disposes when it drops the entry.
 */
export function hold(t: Tensor): Tensor {
  return keep(t.alias());
}

export function release(t: Tensor | null | undefined): void {
  t?.dispose();
}

export function requireTimesteps(n: number | null, owner: string): number {
  if (n === null) {
    throw new Error(`${owner}: call setTimesteps(numInferenceSteps) before stepping`);
  }
  return n;
}
