/**
 * The common part of the exponential-integrator multistep solvers (DPM-Solver, UniPC): integer
 * timesteps from n + 1 points with the final 0 dropped, σ interpolated at them (or a Karras /
 * uniform-λ schedule with rounded timesteps), the final σ, and the VP forward process
 * x_t = α_t x_0 + σ_t ε written with α_t = 1/√(σ² + 1), σ_t = σ α_t; and the history of past
 * converted model outputs both keep.
 */
import { add, mul, type Tensor } from '../../engine/index.js';
import { predictedEpsilon, predictedOriginalSample } from '../forward.js';
import { SchedulerBase } from './base.js';
import {
  BETA_DEFAULTS,
  type BaseOptions,
  checkOneOf,
  type ClipOptions,
  hold,
  indexForTimestep,
  perBatch,
  type PredictionType,
  release,
  requireTimesteps,
  THRESHOLDING_DEFAULTS,
} from './common.js';
import type { JsonValue, SchedulerSpec } from './config.js';
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

/** x̂_0 (`target` 'data') or ε̂ ('noise') from a model output at noise level σ. */
export function predictionAt(
  target: 'data' | 'noise',
  type: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  sigma: number,
): Tensor {
  const { alphaT, sigmaT } = alphaSigmaOf(sigma);
  const convert = target === 'data' ? predictedOriginalSample : predictedEpsilon;
  return convert(type, modelOutput, sample, alphaT, sigmaT);
}

/**
 * The diffusers arguments of both multistep solvers that Sumi does not implement (exponential, β
 * and flow-matching σ schedules, dynamic shifting), each with the only value accepted: the one
 * that leaves it off.
 */
export const MULTISTEP_UNSUPPORTED: Readonly<Record<string, JsonValue>> = {
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_flow_sigmas: false,
  flow_shift: 1.0,
  use_dynamic_shifting: false,
  time_shift_type: 'exponential',
};

/** The options every multistep solver has. */
export interface MultistepOptions extends BaseOptions, MultistepScheduleOptions {
  solverOrder: number;
}

/**
 * The options DPM-Solver and UniPC both declare (MULTISTEP_DEFAULTS holds their defaults):
 * the order, dynamic thresholding of x̂_0, and the σ schedule's end and Karras spacing.
 */
export interface MultistepSolverOptions
  extends
    MultistepOptions,
    Pick<ClipOptions, 'thresholding' | 'dynamicThresholdingRatio' | 'sampleMaxValue'> {
  lowerOrderFinal: boolean;
  useKarrasSigmas: boolean;
  finalSigmasType: FinalSigmasType;
  rescaleBetasZeroSnr: boolean;
}

/**
 * The defaults diffusers' DPMSolverMultistepScheduler and UniPCMultistepScheduler share: DDPM's β
 * schedule, second order with a first-order final step, ε-prediction, thresholding off, linspace
 * timesteps and a final σ of 0.
 */
export const MULTISTEP_DEFAULTS = {
  ...BETA_DEFAULTS,
  ...THRESHOLDING_DEFAULTS,
  solverOrder: 2,
  predictionType: 'epsilon',
  lowerOrderFinal: true,
  useKarrasSigmas: false,
  timestepSpacing: 'linspace',
  stepsOffset: 0,
  finalSigmasType: 'zero',
  rescaleBetasZeroSnr: false,
} as const satisfies Partial<MultistepSolverOptions>;

/**
 * The spec of a multistep solver: diffusers' class name, the solver's own defaults over
 * MULTISTEP_DEFAULTS, and its own unsupported arguments besides MULTISTEP_UNSUPPORTED.
 */
export function multistepSpec<O extends MultistepSolverOptions>(
  className: string,
  defaults: Omit<O, keyof typeof MULTISTEP_DEFAULTS>,
  unsupported: Readonly<Record<string, JsonValue>> = {},
): SchedulerSpec<O> {
  return {
    className,
    // O is MultistepSolverOptions (all of it in MULTISTEP_DEFAULTS) and the solver's own options.
    defaults: { ...MULTISTEP_DEFAULTS, ...defaults } as Readonly<O>,
    unsupported: { ...MULTISTEP_UNSUPPORTED, ...unsupported },
  };
}

export abstract class MultistepSchedulerBase<O extends MultistepOptions> extends SchedulerBase<O> {
  protected stepIndex: number | null = null;
  declare sigmas: Float64Array;
  /** Converted outputs of the last `solverOrder` steps, oldest first (null until filled). */
  protected modelOutputs: (Tensor | null)[];
  /** Steps taken so far, up to solverOrder: the highest order the history allows is this + 1. */
  protected lowerOrderNums = 0;

  /** `karrasSigmaMinLast`: see multistepSchedule. */
  protected constructor(
    spec: SchedulerSpec<O>,
    options: Partial<O>,
    private readonly karrasSigmaMinLast = false,
  ) {
    super(spec, options, { zeroSnrOverride: true });
    const c = this.config;
    checkOneOf('final_sigmas_type', c.finalSigmasType, ['zero', 'sigma_min'], this.className);
    const T = c.numTrainTimesteps;
    this.timesteps = npLinspace(0, T - 1, T).reverse();
    this.sigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.modelOutputs = new Array<Tensor | null>(c.solverOrder).fill(null);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = multistepSchedule(
      this.alphasCumprod,
      this.config,
      numInferenceSteps,
      this.karrasSigmaMinLast,
    );
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.numInferenceSteps = timesteps.length;
    this.modelOutputs.forEach(release);
    this.modelOutputs = new Array<Tensor | null>(this.config.solverOrder).fill(null);
    this.lowerOrderNums = 0;
    this.stepIndex = null;
  }

  /** Keeps `m` as the newest output and drops the oldest. */
  protected pushOutput(m: Tensor): void {
    release(this.modelOutputs.shift());
    this.modelOutputs.push(hold(m));
  }

  /** Ends step i: one more output counts towards the order, and the next step is i + 1. */
  protected endStep(i: number): void {
    if (this.lowerOrderNums < this.config.solverOrder) this.lowerOrderNums += 1;
    this.stepIndex = i + 1;
  }

  /** The current step's index (after setTimesteps), found from the timestep on a run's first step. */
  protected currentIndex(timestep: number): number {
    requireTimesteps(this.numInferenceSteps, this.className);
    this.stepIndex ??= indexForTimestep(this.timesteps, timestep, 'last');
    return this.stepIndex;
  }

  /** x̂_0 ('data') or ε̂ ('noise') from a model output at σ, for the configured prediction type. */
  protected predicted(
    target: 'data' | 'noise',
    modelOutput: Tensor,
    sample: Tensor,
    sigma: number,
  ): Tensor {
    return predictionAt(target, this.config.predictionType, modelOutput, sample, sigma);
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
