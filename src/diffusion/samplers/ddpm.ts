/**
 * DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models",
 * Algorithm 2), over any subsequence of timesteps t > t' as diffusers' DDPMScheduler:
 *
 *   x̂_0 from the model output (ε, x_0 or v), clipped or thresholded;
 *   ᾱ_t' = ᾱ[t'] (1 for t' < 0),  α = ᾱ_t/ᾱ_t',  β = 1 − α
 *   μ = √ᾱ_t' β/(1 − ᾱ_t) · x̂_0 + √α (1 − ᾱ_t')/(1 − ᾱ_t) · x_t          (eq. 7)
 *   x_t' = μ + σ z,  z ~ N(0, I) for t > 0, with σ² by `variance_type`:
 *     fixed_small  β̃ = (1 − ᾱ_t')/(1 − ᾱ_t) β  (clamped ≥ 1e-20)
 *     fixed_large  β
 *     learned      the model's second half of channels is σ² itself
 *     learned_range  log σ² = f log β + (1 − f) log β̃, f = (v + 1)/2 (Nichol & Dhariwal 2021, eq. 15)
 */
import { add, exp, mul, slice, sqrt, type Tensor } from '../../engine/index.js';
import { predictedOriginalSample } from '../forward.js';
import { AlphaSchedulerBase } from './base.js';
import {
  BETA_DEFAULTS,
  type BaseOptions,
  checkOneOf,
  type ClipOptions,
  clipOrThreshold,
  drawNoise,
  type StepOptions,
  type StepResult,
  THRESHOLDING_DEFAULTS,
} from './common.js';
import type { SchedulerSpec } from './config.js';

export type DDPMVarianceType =
  'fixed_small' | 'fixed_small_log' | 'fixed_large' | 'learned' | 'learned_range';

export const ddpmVarianceTypes: readonly DDPMVarianceType[] = [
  'fixed_small',
  'fixed_small_log',
  'fixed_large',
  'learned',
  'learned_range',
];

export interface DDPMOptions extends BaseOptions, ClipOptions {
  varianceType: DDPMVarianceType;
  rescaleBetasZeroSnr: boolean;
}

export const ddpmSpec: SchedulerSpec<DDPMOptions> = {
  className: 'DDPMScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    ...THRESHOLDING_DEFAULTS,
    varianceType: 'fixed_small',
    clipSample: true,
    predictionType: 'epsilon',
    clipSampleRange: 1.0,
    timestepSpacing: 'leading',
    stepsOffset: 0,
    rescaleBetasZeroSnr: false,
  },
  // fixed_large_log gives NaN in diffusers (√ of a log variance); not offered here.
  unsupported: {},
};

export interface DDPMStepParams extends ClipOptions {
  predictionType: DDPMOptions['predictionType'];
  varianceType: DDPMVarianceType;
  /** ᾱ_t */
  alphaProdT: number;
  /** ᾱ_t' (1 past the end of the chain) */
  alphaProdTPrev: number;
}

/** One DDPM step; `noise` is null at the last step (t = 0). Pure. */
export function ddpmStep(
  p: DDPMStepParams,
  modelOutput: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): StepResult {
  const C = sample.shape[1]!;
  let out = modelOutput;
  let predictedVariance: Tensor | null = null;
  const learned = p.varianceType === 'learned' || p.varianceType === 'learned_range';
  if (learned && modelOutput.shape[1] === 2 * C) {
    out = slice(modelOutput, [0, 0], [modelOutput.shape[0]!, C]);
    predictedVariance = slice(modelOutput, [0, C]);
  }
  const aT = p.alphaProdT;
  const aPrev = p.alphaProdTPrev;
  const betaProdT = 1 - aT;
  const betaProdTPrev = 1 - aPrev;
  const currentAlphaT = aT / aPrev;
  const currentBetaT = 1 - currentAlphaT;

  const x0 = clipOrThreshold(
    predictedOriginalSample(p.predictionType, out, sample, Math.sqrt(aT), Math.sqrt(betaProdT)),
    p,
  );
  const c0 = (Math.sqrt(aPrev) * currentBetaT) / betaProdT;
  const ct = (Math.sqrt(currentAlphaT) * betaProdTPrev) / betaProdT;
  let prev = add(mul(x0, c0), mul(sample, ct));

  if (noise !== null) {
    const variance = Math.max(((1 - aPrev) / (1 - aT)) * currentBetaT, 1e-20);
    let std: number | Tensor;
    switch (p.varianceType) {
      case 'fixed_small':
        std = Math.sqrt(variance);
        break;
      case 'fixed_small_log':
        std = Math.exp(0.5 * Math.log(variance));
        break;
      case 'fixed_large':
        std = Math.sqrt(currentBetaT);
        break;
      case 'learned':
      case 'learned_range': {
        if (predictedVariance === null) {
          throw new Error(
            `DDPMScheduler: variance_type '${p.varianceType}' needs a model output with 2×${C} channels`,
          );
        }
        if (p.varianceType === 'learned') {
          std = sqrt(predictedVariance);
        } else {
          const frac = mul(add(predictedVariance, 1), 0.5);
          const minLog = Math.log(variance);
          const maxLog = Math.log(currentBetaT);
          const logVar = add(mul(frac, maxLog - minLog), minLog);
          std = exp(mul(logVar, 0.5));
        }
        break;
      }
      default:
        throw new Error(`unknown variance_type '${String(p.varianceType satisfies never)}'`);
    }
    prev = add(prev, mul(noise, std));
  }
  return { prevSample: prev, predOriginalSample: x0 };
}

export class DDPMScheduler extends AlphaSchedulerBase<DDPMOptions> {
  constructor(options: Partial<DDPMOptions> = {}) {
    super(ddpmSpec, options);
    checkOneOf('variance_type', this.config.varianceType, ddpmVarianceTypes, this.className);
  }

  /** A learned variance type samples with Σ_θ from the second half of the model output. */
  get usesLearnedVariance(): boolean {
    const v = this.config.varianceType;
    return v === 'learned' || v === 'learned_range';
  }

  /** The timestep after t in the schedule (−1 past the end). */
  previousTimestep(t: number): number {
    const i = this.timesteps.indexOf(t);
    if (i < 0) {
      const n = this.numInferenceSteps ?? this.config.numTrainTimesteps;
      return t - Math.floor(this.config.numTrainTimesteps / n);
    }
    return i === this.timesteps.length - 1 ? -1 : this.timesteps[i + 1]!;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    const t = this.trainingTimestep(timestep);
    const prevT = this.previousTimestep(t);
    const noise = t > 0 ? drawNoise(sample, opts, this.className) : null;
    return ddpmStep(
      { ...this.config, alphaProdT: this.alphaAt(t), alphaProdTPrev: this.alphaAt(prevT) },
      modelOutput,
      sample,
      noise,
    );
  }
}
