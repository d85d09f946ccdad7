/**
 * The common part of diffusers' k-diffusion-style schedulers (Euler, Euler ancestral, Heun, LMS):
 * they integrate in σ (x_σ = x_0 + σ ε, Karras et al. 2022), so the model input is scaled by
 * 1/√(σ² + 1), x_T has standard deviation σ_max, and `addNoise` is x_0 + σ ε. The schedule is
 * σ at the (fractional) inference timesteps, interpolated in the training table, or a Karras /
 * exponential schedule between its ends, followed by a final σ (0, or σ_min).
 */
import { add, div, mul, type Tensor } from '../../engine/index.js';
import { SchedulerBase } from './base.js';
import { type BaseOptions, indexForTimestep, perBatch, type PredictionType } from './common.js';
import type { SchedulerSpec } from './config.js';
import {
  exponentialSigmas,
  interpAtTimesteps,
  karrasSigmas,
  sigmasFromAlphasCumprod,
  sigmaToT,
} from './sigmas.js';
import { continuousTimesteps, npLinspace } from './spacing.js';

export type FinalSigmasType = 'zero' | 'sigma_min';

export interface SigmaScheduleOptions {
  useKarrasSigmas?: boolean;
  useExponentialSigmas?: boolean;
  /** Ends of a Karras / exponential schedule (default: the ends of the interpolated one). */
  sigmaMin?: number | null;
  sigmaMax?: number | null;
  finalSigmasType?: FinalSigmasType;
}

/**
 * Timesteps and σ (n + 1 values) of an n-step schedule. With Karras or exponential σ, the
 * timesteps are the fractional t whose σ they are (`sigmaToT`).
 */
export function sigmaSchedule(
  alphasCumprod: Float64Array,
  o: BaseOptions & SigmaScheduleOptions,
  n: number,
): { timesteps: Float64Array; sigmas: Float64Array } {
  let timesteps = continuousTimesteps(o.timestepSpacing, o.numTrainTimesteps, n, o.stepsOffset);
  const train = sigmasFromAlphasCumprod(alphasCumprod);
  const logSigmas = train.map(Math.log);
  let sigmas = interpAtTimesteps(timesteps, train);
  if (o.useKarrasSigmas === true || o.useExponentialSigmas === true) {
    const lo = o.sigmaMin ?? sigmas[sigmas.length - 1]!;
    const hi = o.sigmaMax ?? sigmas[0]!;
    sigmas = o.useKarrasSigmas === true ? karrasSigmas(lo, hi, n) : exponentialSigmas(lo, hi, n);
    timesteps = sigmas.map((s) => sigmaToT(s, logSigmas));
  }
  const last = o.finalSigmasType === 'sigma_min' ? train[0]! : 0;
  const out = new Float64Array(n + 1);
  out.set(sigmas);
  out[n] = last;
  return { timesteps, sigmas: out };
}

/** x_0 from a model output at noise level σ, for an input scaled by 1/√(σ² + 1). */
export function sigmaPredictedOriginal(
  type: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  sigma: number,
): Tensor {
  switch (type) {
    case 'epsilon':
      return add(sample, mul(modelOutput, -sigma));
    case 'sample':
      return modelOutput;
    case 'v_prediction':
      // c_out = −σ/√(σ² + 1), c_skip = 1/(σ² + 1)
      return add(
        mul(modelOutput, -sigma / Math.sqrt(sigma * sigma + 1)),
        div(sample, sigma * sigma + 1),
      );
    default:
      throw new Error(`unknown prediction_type '${String(type satisfies never)}'`);
  }
}

export abstract class SigmaSchedulerBase<O extends BaseOptions> extends SchedulerBase<O> {
  /** Position in `timesteps` of the next step; null until the first call finds it. */
  protected stepIndex: number | null = null;
  declare sigmas: Float64Array;

  protected constructor(
    spec: SchedulerSpec<O>,
    options: Partial<O>,
    opts: { zeroSnrOverride?: boolean; predictionTypes?: readonly PredictionType[] } = {},
  ) {
    super(spec, options, opts);
    const T = this.config.numTrainTimesteps;
    this.timesteps = npLinspace(0, T - 1, T).reverse();
    const s = sigmasFromAlphasCumprod(this.alphasCumprod).reverse();
    this.sigmas = new Float64Array(T + 1);
    this.sigmas.set(s);
  }

  /** Sets the schedule of an n-step run (`inferenceSchedule`) and starts the run afresh. */
  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = this.inferenceSchedule(numInferenceSteps);
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.numInferenceSteps = numInferenceSteps;
    this.resetRun();
  }

  /**
   * The timesteps and σ an n-step run visits: those of `sigmaSchedule`, unless a scheduler
   * changes them.
   */
  protected inferenceSchedule(n: number): { timesteps: Float64Array; sigmas: Float64Array } {
    return sigmaSchedule(this.alphasCumprod, this.config, n);
  }

  override get initNoiseSigma(): number {
    const max = this.sigmas.reduce((a, b) => Math.max(a, b), -Infinity);
    const sp = this.config.timestepSpacing;
    return sp === 'linspace' || sp === 'trailing' ? max : Math.sqrt(max * max + 1);
  }

  /** The current step's index, found from the timestep on the first call of a run. */
  protected currentIndex(timestep: number): number {
    this.stepIndex ??= indexForTimestep(this.timesteps, timestep);
    return this.stepIndex;
  }

  /** x / √(σ² + 1): the VP-scaled input the network was trained on. */
  override scaleModelInput(sample: Tensor, timestep: number): Tensor {
    const sigma = this.sigmas[this.currentIndex(timestep)]!;
    return div(sample, Math.sqrt(sigma * sigma + 1));
  }

  /** x_0 + σ ε, σ taken at each timestep's position in the schedule. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor {
    const sig = Array.from(timesteps, (t) => this.sigmas[indexForTimestep(this.timesteps, t)]!);
    return add(originalSamples, mul(noise, perBatch(sig, originalSamples)));
  }

  protected resetRun(): void {
    this.stepIndex = null;
  }
}
