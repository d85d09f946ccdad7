/**
 * Linear multistep (Adams–Bashforth in σ; k-diffusion's `sample_lms`), as diffusers'
 * LMSDiscreteScheduler. With d_j = (x_j − x̂_0(x_j))/σ_j the ODE derivative at step j, step i of
 * order q = min(i + 1, order) is
 *
 *   x_{i+1} = x_i + Σ_{j<q} c_j d_{i−j},   c_j = ∫_{σ_i}^{σ_{i+1}} ℓ_j(τ) dτ,
 *   ℓ_j(τ) = Π_{k<q, k≠j} (τ − σ_{i−k})/(σ_{i−j} − σ_{i−k})     (Lagrange basis on the past σ)
 *
 * diffusers integrates ℓ_j with `scipy.integrate.quad`; ℓ_j is a polynomial, so here it is
 * expanded around σ_i and integrated exactly. The scheduler keeps the last `order` derivatives.
 */
import { add, div, mul, sub, type Tensor } from '../../engine/index.js';
import { BETA_DEFAULTS, type BaseOptions, hold, release } from './common.js';
import type { PredictionType, StepOptions, StepResult } from './common.js';
import type { SchedulerSpec } from './config.js';
import { sigmaPredictedOriginal, SigmaSchedulerBase } from './sigma-scheduler.js';

export interface LMSOptions extends BaseOptions {
  useKarrasSigmas: boolean;
  useExponentialSigmas: boolean;
}

export const lmsSpec: SchedulerSpec<LMSOptions> = {
  className: 'LMSDiscreteScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    useKarrasSigmas: false,
    useExponentialSigmas: false,
    predictionType: 'epsilon',
    timestepSpacing: 'linspace',
    stepsOffset: 0,
  },
  unsupported: { use_beta_sigmas: false },
};

/**
 * c_j = ∫_{σ_i}^{σ_{i+1}} ℓ_j(τ) dτ for the Lagrange basis polynomial ℓ_j of order q on
 * σ_i, σ_{i−1}, …, σ_{i−q+1}, in closed form: with u = τ − σ_i the numerator is
 * Π_{k≠j} (u + σ_i − σ_{i−k}) = Σ_m a_m u^m, and ∫_0^h u^m du = h^{m+1}/(m+1), h = σ_{i+1} − σ_i.
 */
export function lmsCoefficient(
  sigmas: ArrayLike<number>,
  order: number,
  i: number,
  j: number,
): number {
  const si = sigmas[i]!;
  let poly = [1]; // coefficients a_m of u^m
  let denom = 1;
  for (let k = 0; k < order; k++) {
    if (k === j) continue;
    const c = si - sigmas[i - k]!;
    const next = new Array<number>(poly.length + 1).fill(0);
    for (let m = 0; m < poly.length; m++) {
      next[m]! += poly[m]! * c;
      next[m + 1]! += poly[m]!;
    }
    poly = next;
    denom *= sigmas[i - j]! - sigmas[i - k]!;
  }
  const h = sigmas[i + 1]! - si;
  let integral = 0;
  let hPow = h;
  for (let m = 0; m < poly.length; m++) {
    integral += (poly[m]! * hPow) / (m + 1);
    hPow *= h;
  }
  return integral / denom;
}

/**
 * One LMS step: x + Σ_j c_j d_{i−j}, with `derivatives` newest first. Like diffusers' `zip`, it
 * uses as many terms as both lists have (fewer derivatives when a run starts mid-schedule). Pure.
 */
export function lmsStep(
  coefficients: readonly number[],
  derivatives: readonly Tensor[],
  sample: Tensor,
): Tensor {
  let prev = sample;
  const n = Math.min(coefficients.length, derivatives.length);
  for (let j = 0; j < n; j++) prev = add(prev, mul(derivatives[j]!, coefficients[j]!));
  return prev;
}

export class LMSDiscreteScheduler extends SigmaSchedulerBase<LMSOptions> {
  /** Past derivatives d_j, oldest first (diffusers' `self.derivatives`). */
  private derivatives: Tensor[] = [];

  constructor(options: Partial<LMSOptions> = {}) {
    super(lmsSpec, options);
  }

  protected override resetRun(): void {
    super.resetRun();
    this.derivatives.forEach(release);
    this.derivatives = [];
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    const maxOrder = opts?.order ?? 4;
    if (!Number.isInteger(maxOrder) || maxOrder < 1) {
      throw new Error(
        `LMSDiscreteScheduler.step: order must be a positive integer, got ${maxOrder}`,
      );
    }
    const i = this.currentIndex(timestep);
    const sigma = this.sigmas[i]!;
    const type: PredictionType = this.config.predictionType;
    const x0 = sigmaPredictedOriginal(type, modelOutput, sample, sigma);
    this.derivatives.push(hold(div(sub(sample, x0), sigma)));
    while (this.derivatives.length > maxOrder) release(this.derivatives.shift());
    const order = Math.min(i + 1, maxOrder);
    const coeffs = Array.from({ length: order }, (_, j) =>
      lmsCoefficient(this.sigmas, order, i, j),
    );
    const newestFirst = [...this.derivatives].reverse();
    const prev = lmsStep(coeffs, newestFirst, sample);
    this.stepIndex = i + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
