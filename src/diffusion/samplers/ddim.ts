/**
 * DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), as diffusers'
 * DDIMScheduler. From t to t' = t − T/n:
 *
 *   x̂_0, ε̂ from the model output; x̂_0 clipped or thresholded (ε̂ is not recomputed unless
 *   `useClippedModelOutput`)
 *   σ_t = η √((1 − ᾱ_t')/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_t'))                     (eq. 16)
 *   x_t' = √ᾱ_t' x̂_0 + √(1 − ᾱ_t' − σ_t²) ε̂ + σ_t z
 *
 * η = 0 is the deterministic DDIM sampler; η = 1 matches DDPM's posterior variance.
 * ᾱ past the end of the chain is 1 (`set_alpha_to_one`) or ᾱ_0.
 */
import { add, mul, type Tensor } from '../../engine/index.js';
import { predictedEpsilon, predictedOriginalSample } from '../forward.js';
import { AlphaSchedulerBase } from './base.js';
import {
  BETA_DEFAULTS,
  type BaseOptions,
  type ClipOptions,
  clipOrThreshold,
  drawNoise,
  requireTimesteps,
  type StepOptions,
  type StepResult,
  THRESHOLDING_DEFAULTS,
} from './common.js';
import type { SchedulerSpec } from './config.js';

export interface DDIMOptions extends BaseOptions, ClipOptions {
  setAlphaToOne: boolean;
  rescaleBetasZeroSnr: boolean;
}

export const ddimSpec: SchedulerSpec<DDIMOptions> = {
  className: 'DDIMScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    ...THRESHOLDING_DEFAULTS,
    clipSample: true,
    setAlphaToOne: true,
    stepsOffset: 0,
    predictionType: 'epsilon',
    clipSampleRange: 1.0,
    timestepSpacing: 'leading',
    rescaleBetasZeroSnr: false,
  },
  unsupported: {},
};

export interface DDIMStepParams extends ClipOptions {
  predictionType: DDIMOptions['predictionType'];
  alphaProdT: number;
  alphaProdTPrev: number;
  eta: number;
  useClippedModelOutput: boolean;
}

/** One DDIM step; `noise` is needed when η > 0. Pure. */
export function ddimStep(
  p: DDIMStepParams,
  modelOutput: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): StepResult {
  const aT = p.alphaProdT;
  const aPrev = p.alphaProdTPrev;
  const betaProdT = 1 - aT;
  const sqrtAT = Math.sqrt(aT);
  const sqrtBT = Math.sqrt(betaProdT);
  const x0Raw = predictedOriginalSample(p.predictionType, modelOutput, sample, sqrtAT, sqrtBT);
  let eps = predictedEpsilon(p.predictionType, modelOutput, sample, sqrtAT, sqrtBT);
  const x0 = clipOrThreshold(x0Raw, p);
  const variance = ((1 - aPrev) / betaProdT) * (1 - aT / aPrev);
  const std = p.eta * Math.sqrt(variance);
  if (p.useClippedModelOutput) {
    eps = mul(add(sample, mul(x0, -sqrtAT)), 1 / sqrtBT);
  }
  const direction = mul(eps, Math.sqrt(1 - aPrev - std * std));
  let prev = add(mul(x0, Math.sqrt(aPrev)), direction);
  if (p.eta > 0) {
    if (noise === null) throw new Error('ddimStep: η > 0 needs noise');
    prev = add(prev, mul(noise, std));
  }
  return { prevSample: prev, predOriginalSample: x0 };
}

export class DDIMScheduler extends AlphaSchedulerBase<DDIMOptions> {
  constructor(options: Partial<DDIMOptions> = {}) {
    super(ddimSpec, options);
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    const n = requireTimesteps(this.numInferenceSteps, this.className);
    const t = this.trainingTimestep(timestep);
    // diffusers' DDIM steps back by T/n whatever the spacing
    const prevT = t - Math.floor(this.config.numTrainTimesteps / n);
    const eta = opts?.eta ?? 0;
    const noise = eta > 0 ? drawNoise(sample, opts, this.className) : null;
    return ddimStep(
      {
        ...this.config,
        alphaProdT: this.alphaAt(t),
        alphaProdTPrev: this.alphaAt(prevT),
        eta,
        useClippedModelOutput: opts?.useClippedModelOutput ?? false,
      },
      modelOutput,
      sample,
      noise,
    );
  }
}
