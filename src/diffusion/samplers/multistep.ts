/**
 * The common part of the exponential-integrator multistep solvers (DPM-Solver, UniPC): integer
 * timesteps from n + 1 points with the final 0 dropped, σ interpolated at them (or a Karras /
 * uniform-λ schedule with rounded timesteps), the final σ, and the VP forward process
 * x_t = α_t x_0 + σ_t ε written with α_t = 1/√(σ² + 1), σ_t = σ α_t.
 */
import { add, div, mul, sub, type Tensor } from '../../engine/index.js';
import { SchedulerBase } from './base.js';
import { type BaseOptions, indexForTimestep, perBatch, type PredictionType } from './common.js';
import type { SchedulerSpec } from './config.js';
import {
  alphaSigmaOf,
  interpAtTimesteps,
  karrasSigmas,
  sigmasFromAlphasCumprod,
  sigmaToT,
} from './sigmas.js';
import { multistepTimesteps, npLinspace, roundHalfEven } from './spacing.js';
import type { FinalSigmasType } from './sigma-scheduler.js';

export interface MultistepScheduleOptions {
  useKarrasSigmas?: boolean;
  /** Uniform steps in λ = log α − log σ (Lu et al. 2022, DPM-Solver). */
  useLuLambdas?: boolean;
  sigmaMin?: number | null;
  sigmaMax?: number | null;
  finalSigmasType: FinalSigmasType;
  /** Timesteps whose λ is below this are not visited (DPM-Solver, for the cosine schedule). */
  lambdaMinClipped?: number;
}

/**
 * Timesteps and σ (n + 1 values) of an n-step multistep schedule. `karrasSigmaMinLast`: with
 * Karras σ and final_sigmas_type 'sigma_min', the final σ repeats the last Karras σ (UniPC) rather
 * than the training σ_0 (DPM-Solver).
 */
export function multistepSchedule(
  alphasCumprod: Float64Array,
  o: BaseOptions & MultistepScheduleOptions,
  n: number,
  karrasSigmaMinLast = false,
): { timesteps: Float64Array; sigmas: Float64Array } {
  const T = o.numTrainTimesteps;
  let last = T;
  const clip = o.lambdaMinClipped ?? -Infinity;
  if (clip > -Infinity) {
    // searchsorted(flip(λ_t), clip): how many λ (ascending after the flip) lie below it
    let below = 0;
    for (const a of alphasCumprod) {
      if (Math.log(Math.sqrt(a)) - Math.log(Math.sqrt(1 - a)) < clip) below++;
    }
    last = T - below;
  }
  let timesteps = multistepTimesteps(o.timestepSpacing, T, n, o.stepsOffset, last);
  const train = sigmasFromAlphasCumprod(alphasCumprod);
  const logSigmas = train.map(Math.log);
  let sigmas: Float64Array;
  if (o.useKarrasSigmas === true) {
    sigmas = karrasSigmas(o.sigmaMin ?? train[0]!, o.sigmaMax ?? train[T - 1]!, n);
    timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
  } else if (o.useLuLambdas === true) {
    // diffusers' _convert_to_lu (ρ = 1) between λ_max = log σ_max and λ_min = log σ_min
    const hi = logSigmas[T - 1]!;
    const lo = logSigmas[0]!;
    sigmas = npLinspace(0, 1, n).map((r) => Math.exp(hi + r * (lo - hi)));
    timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
  } else {
    sigmas = interpAtTimesteps(timesteps, train);
  }
  const out = new Float64Array(n + 1);
  out.set(sigmas);
  if (o.finalSigmasType === 'sigma_min') {
    out[n] = karrasSigmaMinLast && o.useKarrasSigmas === true ? sigmas[n - 1]! : train[0]!;
  }
  return { timesteps, sigmas: out };
}

/** x̂_0 (data prediction) from a model output at noise level σ. */
export function dataPrediction(
  type: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  sigma: number,
): Tensor {
  const { alphaT, sigmaT } = alphaSigmaOf(sigma);
  switch (type) {
    case 'epsilon':
      return div(sub(sample, mul(modelOutput, sigmaT)), alphaT);
    case 'sample':
      return modelOutput;
    case 'v_prediction':
      return sub(mul(sample, alphaT), mul(modelOutput, sigmaT));
    default:
      throw new Error(`unknown prediction_type '${String(type satisfies never)}'`);
  }
}

/** ε̂ (noise prediction) from a model output at noise level σ. */
export function noisePrediction(
  type: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  sigma: number,
): Tensor {
  const { alphaT, sigmaT } = alphaSigmaOf(sigma);
  switch (type) {
    case 'epsilon':
      return modelOutput;
    case 'sample':
      return div(sub(sample, mul(modelOutput, alphaT)), sigmaT);
    case 'v_prediction':
      return add(mul(modelOutput, alphaT), mul(sample, sigmaT));
    default:
      throw new Error(`unknown prediction_type '${String(type satisfies never)}'`);
  }
}

export abstract class MultistepSchedulerBase<O extends BaseOptions> extends SchedulerBase<O> {
  protected stepIndex: number | null = null;
  declare sigmas: Float64Array;

  protected constructor(spec: SchedulerSpec<O>, options: Partial<O>) {
    super(spec, options, { zeroSnrOverride: true });
    const T = this.config.numTrainTimesteps;
    this.timesteps = npLinspace(0, T - 1, T).reverse();
    this.sigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
  }

  protected currentIndex(timestep: number): number {
    this.stepIndex ??= indexForTimestep(this.timesteps, timestep, 'last');
    return this.stepIndex;
  }

  /** α_t x_0 + σ_t ε with σ at each timestep's position in the schedule. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor {
    const coefs = Array.from(timesteps, (t) =>
      alphaSigmaOf(this.sigmas[indexForTimestep(this.timesteps, t, 'last')]!),
    );
    const a = perBatch(
      coefs.map((c) => c.alphaT),
      originalSamples,
    );
    const s = perBatch(
      coefs.map((c) => c.sigmaT),
      originalSamples,
    );
    return add(mul(a, originalSamples), mul(s, noise));
  }
}
