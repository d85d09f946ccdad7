/**
 * Euler's method on the probability-flow ODE dx/dσ = (x − x̂_0)/σ (Karras et al. 2022,
 * Algorithm 2 with optional churn), as diffusers' EulerDiscreteScheduler / k-diffusion's
 * `sample_euler`:
 *
 *   γ = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0;  σ̂ = σ_i (1 + γ)
 *   x̂ = x + S_noise √(σ̂² − σ_i²) z                                   (only when γ > 0)
 *   d = (x̂ − x̂_0)/σ̂;   x_{i+1} = x̂ + (σ_{i+1} − σ̂) d
 */
import { add, div, mul, sub, type Tensor } from '../../engine/index.js';
import {
  BETA_DEFAULTS,
  type BaseOptions,
  checkOneOf,
  drawNoise,
  indexForTimestep,
  perBatch,
} from './common.js';
import type { PredictionType, StepOptions, StepResult } from './common.js';
import type { SchedulerSpec } from './config.js';
import {
  type FinalSigmasType,
  sigmaPredictedOriginal,
  SigmaSchedulerBase,
} from './sigma-scheduler.js';

export type EulerTimestepType = 'discrete' | 'continuous';

export interface EulerOptions extends BaseOptions {
  useKarrasSigmas: boolean;
  useExponentialSigmas: boolean;
  sigmaMin: number | null;
  sigmaMax: number | null;
  /** 'continuous' with v-prediction: timesteps are 0.25 log σ (EDM's c_noise). */
  timestepType: EulerTimestepType;
  rescaleBetasZeroSnr: boolean;
  finalSigmasType: FinalSigmasType;
}

export const eulerSpec: SchedulerSpec<EulerOptions> = {
  className: 'EulerDiscreteScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    predictionType: 'epsilon',
    useKarrasSigmas: false,
    useExponentialSigmas: false,
    sigmaMin: null,
    sigmaMax: null,
    timestepSpacing: 'linspace',
    timestepType: 'discrete',
    stepsOffset: 0,
    rescaleBetasZeroSnr: false,
    finalSigmasType: 'zero',
  },
  unsupported: { interpolation_type: 'linear', use_beta_sigmas: false },
};

export interface EulerStepParams {
  predictionType: PredictionType;
  /** σ_i (used by the v-prediction conversion, as diffusers) */
  sigma: number;
  /** σ̂ = σ_i (1 + γ) */
  sigmaHat: number;
  /** σ_{i+1} */
  sigmaNext: number;
}

/** One Euler step from σ̂ to σ_{i+1}; `sample` is x̂ (churn noise already added). Pure. */
export function eulerStep(p: EulerStepParams, modelOutput: Tensor, sample: Tensor): StepResult {
  const sigmaForX0 = p.predictionType === 'v_prediction' ? p.sigma : p.sigmaHat;
  const x0 = sigmaPredictedOriginal(p.predictionType, modelOutput, sample, sigmaForX0);
  const derivative = div(sub(sample, x0), p.sigmaHat);
  const prev = add(sample, mul(derivative, p.sigmaNext - p.sigmaHat));
  return { prevSample: prev, predOriginalSample: x0 };
}

export class EulerDiscreteScheduler extends SigmaSchedulerBase<EulerOptions> {
  constructor(options: Partial<EulerOptions> = {}) {
    super(eulerSpec, options, { zeroSnrOverride: true });
    const c = this.config;
    checkOneOf('final_sigmas_type', c.finalSigmasType, ['zero', 'sigma_min'], this.className);
    checkOneOf('timestep_type', c.timestepType, ['discrete', 'continuous'], this.className);
    if (c.useKarrasSigmas && c.useExponentialSigmas) {
      throw new Error(
        `${this.className}: use_karras_sigmas and use_exponential_sigmas exclude each other`,
      );
    }
  }

  /** With continuous timesteps and v-prediction, the timesteps are c_noise(σ) = ¼ log σ. */
  protected override inferenceSchedule(n: number): {
    timesteps: Float64Array;
    sigmas: Float64Array;
  } {
    const { timesteps, sigmas } = super.inferenceSchedule(n);
    const c = this.config;
    return {
      timesteps:
        c.timestepType === 'continuous' && c.predictionType === 'v_prediction'
          ? sigmas.subarray(0, n).map((s) => 0.25 * Math.log(s))
          : timesteps,
      sigmas,
    };
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    const i = this.currentIndex(timestep);
    const sigma = this.sigmas[i]!;
    const sChurn = opts?.sChurn ?? 0;
    const sTmin = opts?.sTmin ?? 0;
    const sTmax = opts?.sTmax ?? Infinity;
    const sNoise = opts?.sNoise ?? 1;
    const gamma =
      sTmin <= sigma && sigma <= sTmax
        ? Math.min(sChurn / (this.sigmas.length - 1), Math.SQRT2 - 1)
        : 0;
    const sigmaHat = sigma * (gamma + 1);
    let x = sample;
    if (gamma > 0) {
      const eps = drawNoise(sample, opts, this.className);
      x = add(x, mul(eps, sNoise * Math.sqrt(sigmaHat * sigmaHat - sigma * sigma)));
    }
    const r = eulerStep(
      {
        predictionType: this.config.predictionType,
        sigma,
        sigmaHat,
        sigmaNext: this.sigmas[i + 1]!,
      },
      modelOutput,
      x,
    );
    this.stepIndex = i + 1;
    return r;
  }

  /**
   * v = √ᾱ ε − √(1−ᾱ) x_0 with diffusers' quirk: ᾱ is indexed by each timestep's *position* in
   * the inference schedule, not by the timestep itself.
   */
  getVelocity(sample: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor {
    const acp = Array.from(
      timesteps,
      (t) => this.alphasCumprod[indexForTimestep(this.timesteps, t)]!,
    );
    const a = perBatch(acp.map(Math.sqrt), sample);
    const b = perBatch(
      acp.map((v) => Math.sqrt(1 - v)),
      sample,
    );
    return sub(mul(a, noise), mul(b, sample));
  }
}
