/**
 * Heun's method (Karras et al. 2022, Algorithm 1, second order), as diffusers'
 * HeunDiscreteScheduler: each σ interval takes two model calls, so the schedule repeats every
 * interior σ and timestep (σ_0, σ_1, σ_1, σ_2, σ_2, …, 0; 2n − 1 steps for n).
 *
 *   first call at σ_i:      d_i = (x_i − x̂_0(x_i, σ_i))/σ_i;  x̃ = x_i + (σ_{i+1} − σ_i) d_i
 *   second call at σ_{i+1}: d' = (x̃ − x̂_0(x̃, σ_{i+1}))/σ_{i+1}
 *                           x_{i+1} = x_i + (σ_{i+1} − σ_i) (d_i + d')/2
 *
 * The last interval, to σ = 0, is a plain Euler step. Between the two calls the scheduler holds
 * d_i, Δσ and x_i.
 */
import { add, clamp, div, mul, sub, type Tensor } from '../../engine/index.js';
import { type BaseOptions, hold, release } from './common.js';
import type { PredictionType, StepOptions, StepResult } from './common.js';
import type { SchedulerSpec } from './config.js';
import { sigmaPredictedOriginal, SigmaSchedulerBase } from './sigma-scheduler.js';

export interface HeunOptions extends BaseOptions {
  useKarrasSigmas: boolean;
  useExponentialSigmas: boolean;
  clipSample: boolean;
  clipSampleRange: number;
}

export const heunSpec: SchedulerSpec<HeunOptions> = {
  className: 'HeunDiscreteScheduler',
  defaults: {
    numTrainTimesteps: 1000,
    betaStart: 0.00085,
    betaEnd: 0.012,
    betaSchedule: 'linear',
    trainedBetas: null,
    predictionType: 'epsilon',
    useKarrasSigmas: false,
    useExponentialSigmas: false,
    clipSample: false,
    clipSampleRange: 1.0,
    timestepSpacing: 'linspace',
    stepsOffset: 0,
  },
  unsupported: { use_beta_sigmas: false },
};

/** What Heun carries from its first call of an interval to the second. */
export interface HeunState {
  derivative: Tensor;
  dt: number;
  sample: Tensor;
}

interface HeunParams {
  predictionType: PredictionType;
  clipSample: boolean;
  clipSampleRange: number;
}

function heunX0(p: HeunParams, modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
  const x0 = sigmaPredictedOriginal(p.predictionType, modelOutput, sample, sigma);
  return p.clipSample ? clamp(x0, -p.clipSampleRange, p.clipSampleRange) : x0;
}

/** First call of an interval: the Euler predictor. Pure. */
export function heunFirstStep(
  p: HeunParams & { sigma: number; sigmaNext: number },
  modelOutput: Tensor,
  sample: Tensor,
): StepResult & { state: HeunState } {
  const x0 = heunX0(p, modelOutput, sample, p.sigma);
  const derivative = div(sub(sample, x0), p.sigma);
  const dt = p.sigmaNext - p.sigma;
  const prev = add(sample, mul(derivative, dt));
  return { prevSample: prev, predOriginalSample: x0, state: { derivative, dt, sample } };
}

/** Second call: the trapezoidal corrector, evaluated at σ_{i+1}. Pure. */
export function heunSecondStep(
  p: HeunParams & { sigmaNext: number },
  modelOutput: Tensor,
  sample: Tensor,
  s: HeunState,
): StepResult {
  const x0 = heunX0(p, modelOutput, sample, p.sigmaNext);
  const d = div(sub(sample, x0), p.sigmaNext);
  const derivative = div(add(s.derivative, d), 2);
  const prev = add(s.sample, mul(derivative, s.dt));
  return { prevSample: prev, predOriginalSample: x0 };
}

export class HeunDiscreteScheduler extends SigmaSchedulerBase<HeunOptions> {
  override readonly order = 2;
  private state: HeunState | null = null;

  constructor(options: Partial<HeunOptions> = {}) {
    super(heunSpec, options);
  }

  /** True when the next call is the first of an interval. */
  get stateInFirstOrder(): boolean {
    return this.state === null;
  }

  /** Every interval visited twice (the Euler and the correction call). */
  protected override inferenceSchedule(n: number): {
    timesteps: Float64Array;
    sigmas: Float64Array;
  } {
    const { timesteps, sigmas } = super.inferenceSchedule(n);
    // σ_0, σ_1, σ_1, …, σ_{n−1}, σ_{n−1}, σ_n  and  t_0, t_1, t_1, …, t_{n−1}, t_{n−1}
    const s = new Float64Array(2 * n);
    const t = new Float64Array(2 * n - 1);
    s[0] = sigmas[0]!;
    t[0] = timesteps[0]!;
    for (let i = 1; i < n; i++) {
      s[2 * i - 1] = s[2 * i] = sigmas[i]!;
      t[2 * i - 1] = t[2 * i] = timesteps[i]!;
    }
    s[2 * n - 1] = sigmas[n]!;
    return { timesteps: t, sigmas: s };
  }

  protected override resetRun(): void {
    super.resetRun();
    this.dropState();
  }

  private dropState(): void {
    if (this.state !== null) {
      release(this.state.derivative);
      release(this.state.sample);
    }
    this.state = null;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, _opts?: StepOptions): StepResult {
    const i = this.currentIndex(timestep);
    const p = { ...this.config };
    let r: StepResult;
    if (this.state === null) {
      const first = heunFirstStep(
        { ...p, sigma: this.sigmas[i]!, sigmaNext: this.sigmas[i + 1]! },
        modelOutput,
        sample,
      );
      const s = first.state;
      this.state = { derivative: hold(s.derivative), dt: s.dt, sample: hold(s.sample) };
      r = { prevSample: first.prevSample, predOriginalSample: first.predOriginalSample };
    } else {
      r = heunSecondStep({ ...p, sigmaNext: this.sigmas[i]! }, modelOutput, sample, this.state);
      this.dropState();
    }
    this.stepIndex = i + 1;
    return r;
  }
}
