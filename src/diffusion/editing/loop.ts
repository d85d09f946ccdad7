/**
 * What the editing pipelines share: where their Gaussian noise comes from, the sampler callback
 * of a denoiser under one condition per image (guided or not), and the sampling loop run over part
 * of the schedule with a hook between steps (diffusers' img2img and inpainting loops). Each step is `sampleStep`, the body of `sample`, so a run over the whole schedule from
 * the same x_T is plain sampling.
 */
import { type Tensor, tidy } from '../../engine/index.js';
import type { Denoiser } from '../../nn/models/index.js';
import { guidedDenoiser } from '../classifier-free.js';
import { type ConditionSource, type ConditionValue, disposeConditioning } from '../conditioning.js';
import { encodeConditions } from '../generate.js';
import {
  type DenoiseModel,
  pipelineStepOptions,
  type Scheduler,
  sampleStep,
  type StepInfo,
  type StepOptions,
} from '../samplers/index.js';

/**
 * The Gaussian draws of a run, each [B, C, H, W] standard normals, taken in order: the starting
 * noise first, then every draw of the steps (a stochastic sampler's, the forward process's).
 */
export type NoiseDraws = () => Tensor;

/** Options of every editing pipeline's sampling. */
export interface EditSamplingOptions {
  numInferenceSteps: number;
  noise: NoiseDraws;
  /** Step parameters (DDIM's η, ...); the steps' noise comes from `noise`. */
  stepOptions?: Omit<StepOptions, 'noise' | 'generator'>;
  /**
   * The guidance scale w the model callback applies (classifier-free or classifier guidance;
   * default 1, none). Under guidance a clipping DDIM re-derives ε̂ from the clipped x̂_0
   * (`pipelineStepOptions`), as `generate` does, unless `stepOptions` sets
   * `useClippedModelOutput`.
   */
  guidanceScale?: number;
  /** Called after every sampler step, as `sample`'s callback (the tensors are freed after it). */
  onStep?: (info: StepInfo) => void;
}

export interface StepRange {
  /** First index into `scheduler.timesteps`; x is the sample at that timestep. */
  from: number;
  /** One past the last index (default: the end of the schedule). */
  to?: number;
  stepOptions?: StepOptions;
  onStep?: (info: StepInfo) => void;
  /** The sample to carry on with after step i (mask blending); gets the step's output. */
  afterStep?: (sample: Tensor, i: number) => Tensor;
}

/**
 * Runs the steps [from, to) of the schedule set by `setTimesteps` from x, each in its own memory
 * scope, and returns the last sample (x itself stays the caller's).
 */
export function runSteps(
  scheduler: Scheduler,
  model: DenoiseModel,
  x: Tensor,
  range: StepRange,
): Tensor {
  const to = range.to ?? scheduler.timesteps.length;
  let cur = x;
  for (let i = range.from; i < to; i++) {
    const prev = cur;
    cur = tidy(() => {
      const info = sampleStep(scheduler, model, prev, i, range.stepOptions);
      range.onStep?.(info);
      return range.afterStep !== undefined ? range.afterStep(info.sample, i) : info.sample;
    });
    if (prev !== x) prev.dispose();
  }
  return cur === x ? x.alias() : cur;
}

/**
 * The step options of an editing run: the pipeline's defaults under guidance scale w
 * (`pipelineStepOptions`), the caller's `stepOptions`, and the run's noise as the source of the
 * steps' draws.
 */
export function withNoise(
  scheduler: Scheduler,
  opts: EditSamplingOptions,
  w: number = opts.guidanceScale ?? 1,
): StepOptions {
  return { ...pipelineStepOptions(scheduler, w, opts.stepOptions), noise: opts.noise };
}

/**
 * The sampler callback of `denoiser` under one condition per image (null: ∅, or none for an
 * unconditional model) with classifier-free guidance at w (1: none, and ∅ is not encoded), and a
 * function that frees the encoded conditioning. Throws a ConditionError for conditions the model
 * cannot take.
 */
export function conditionedModel(
  denoiser: Denoiser,
  source: ConditionSource,
  values: readonly ConditionValue[],
  guidanceScale: number,
): { model: DenoiseModel; dispose: () => void } {
  const backend = denoiser.parameters()[0]!.backend;
  const { cond, uncond } = encodeConditions(source, { values, guidanceScale }, backend);
  return {
    model: guidedDenoiser(denoiser, { cond, uncond, scale: guidanceScale }),
    dispose: () => {
      disposeConditioning(cond);
      if (uncond !== null) disposeConditioning(uncond);
    },
  };
}
