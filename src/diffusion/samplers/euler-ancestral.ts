/**
 * Ancestral Euler sampling (k-diffusion's `sample_euler_ancestral`), as diffusers'
 * EulerAncestralDiscreteScheduler. From σ_i to σ_{i+1} the step splits into a deterministic part
 * down to σ_down and fresh noise of size σ_up, with σ_down² + σ_up² = σ_{i+1}²:
 *
 *   σ_up = √(σ_{i+1}² (σ_i² − σ_{i+1}²)/σ_i²),  σ_down = √(σ_{i+1}² − σ_up²)
 *   d = (x − x̂_0)/σ_i;   x_{i+1} = x + (σ_down − σ_i) d + σ_up z
 *
 * Noise is drawn at every step, the last one included (where σ_up = 0).
 */
import { add, div, mul, sub, type Tensor } from '../../engine/index.js';
import { BETA_DEFAULTS, type BaseOptions, drawNoise } from './common.js';
import type { PredictionType, StepOptions, StepResult } from './common.js';
import type { SchedulerSpec } from './config.js';
import { sigmaPredictedOriginal, SigmaSchedulerBase } from './sigma-scheduler.js';

export interface EulerAncestralOptions extends BaseOptions {
  rescaleBetasZeroSnr: boolean;
}

export const eulerAncestralSpec: SchedulerSpec<EulerAncestralOptions> = {
  className: 'EulerAncestralDiscreteScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    predictionType: 'epsilon',
    timestepSpacing: 'linspace',
    stepsOffset: 0,
    rescaleBetasZeroSnr: false,
  },
  unsupported: {},
};

/** σ_up and σ_down of an ancestral step from σ_from to σ_to (η = 1). */
export function ancestralSigmas(
  sigmaFrom: number,
  sigmaTo: number,
): { sigmaUp: number; sigmaDown: number } {
  const sigmaUp = Math.sqrt(
    (sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo)) / (sigmaFrom * sigmaFrom),
  );
  const sigmaDown = Math.sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
  return { sigmaUp, sigmaDown };
}

/** One ancestral Euler step. Pure. */
export function eulerAncestralStep(
  p: { predictionType: PredictionType; sigma: number; sigmaNext: number },
  modelOutput: Tensor,
  sample: Tensor,
  noise: Tensor,
): StepResult {
  const x0 = sigmaPredictedOriginal(p.predictionType, modelOutput, sample, p.sigma);
  const { sigmaUp, sigmaDown } = ancestralSigmas(p.sigma, p.sigmaNext);
  const derivative = div(sub(sample, x0), p.sigma);
  const prev = add(add(sample, mul(derivative, sigmaDown - p.sigma)), mul(noise, sigmaUp));
  return { prevSample: prev, predOriginalSample: x0 };
}

export class EulerAncestralDiscreteScheduler extends SigmaSchedulerBase<EulerAncestralOptions> {
  constructor(options: Partial<EulerAncestralOptions> = {}) {
    super(eulerAncestralSpec, options, { zeroSnrOverride: true });
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    const i = this.currentIndex(timestep);
    const p = {
      predictionType: this.config.predictionType,
      sigma: this.sigmas[i]!,
      sigmaNext: this.sigmas[i + 1]!,
    };
    const r = eulerAncestralStep(p, modelOutput, sample, drawNoise(sample, opts, this.className));
    this.stepIndex = i + 1;
    return r;
  }
}
