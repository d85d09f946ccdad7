/**
 * Pseudo numerical methods (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on
 * Manifolds", PNDM), as diffusers' PNDMScheduler. The transfer from t to t' given a noise
 * estimate ε (eq. 11, DDIM's deterministic step):
 *
 *   φ(x_t, ε, t, t') = √(ᾱ_t'/ᾱ_t) x_t − (ᾱ_t' − ᾱ_t) ε / (ᾱ_t √(1 − ᾱ_t') + √(ᾱ_t (1 − ᾱ_t) ᾱ_t'))
 *
 * PLMS (eq. 12) feeds φ the linear-multistep combination of the past ε:
 *   ε' = (55 e_0 − 59 e_1 + 37 e_2 − 9 e_3)/24  (lower orders while the history fills up).
 * PRK (pseudo Runge–Kutta, eq. 13) starts the history with three 4-stage steps; with
 * `skip_prk_steps` the first step is instead a pseudo-Heun step (two model calls at t), which
 * makes the schedule t_0, t_1, t_1, t_2, … (n + 1 calls).
 */
import { add, div, mul, sub, type Tensor } from '../../engine/index.js';
import { predictedEpsilon } from '../forward.js';
import { AlphaSchedulerBase } from './base.js';
import { BETA_DEFAULTS, type BaseOptions, hold, release, requireTimesteps } from './common.js';
import type { PredictionType, StepOptions, StepResult } from './common.js';
import type { SchedulerSpec } from './config.js';
import { discreteTimesteps } from './spacing.js';

export interface PNDMOptions extends BaseOptions {
  skipPrkSteps: boolean;
  setAlphaToOne: boolean;
}

export const pndmSpec: SchedulerSpec<PNDMOptions> = {
  className: 'PNDMScheduler',
  defaults: {
    ...BETA_DEFAULTS,
    skipPrkSteps: false,
    setAlphaToOne: false,
    predictionType: 'epsilon',
    timestepSpacing: 'leading',
    stepsOffset: 0,
  },
  unsupported: {},
};

/**
 * φ(x_t, ε, t, t') of eq. 11, with ᾱ_t and ᾱ_t'. `modelOutput` is converted to ε first
 * (v-prediction as diffusers; x_0-prediction as an extension). Pure.
 */
export function pndmTransfer(
  predictionType: PredictionType,
  alphaProdT: number,
  alphaProdTPrev: number,
  sample: Tensor,
  modelOutput: Tensor,
): Tensor {
  const betaProdT = 1 - alphaProdT;
  const betaProdTPrev = 1 - alphaProdTPrev;
  const eps = predictedEpsilon(
    predictionType,
    modelOutput,
    sample,
    Math.sqrt(alphaProdT),
    Math.sqrt(betaProdT),
  );
  const sampleCoeff = Math.sqrt(alphaProdTPrev / alphaProdT);
  const denom =
    alphaProdT * Math.sqrt(betaProdTPrev) + Math.sqrt(alphaProdT * betaProdT * alphaProdTPrev);
  return sub(mul(sample, sampleCoeff), div(mul(eps, alphaProdTPrev - alphaProdT), denom));
}

/** The PLMS combination of past outputs `ets` (oldest first) of orders 1–4 (eq. 12). Pure. */
export function plmsCombine(ets: readonly Tensor[]): Tensor {
  const e = (k: number): Tensor => ets[ets.length - k]!;
  switch (ets.length) {
    case 1:
      return e(1);
    case 2:
      return div(sub(mul(e(1), 3), e(2)), 2);
    case 3:
      return div(add(sub(mul(e(1), 23), mul(e(2), 16)), mul(e(3), 5)), 12);
    default:
      return mul(sub(add(sub(mul(e(1), 55), mul(e(2), 59)), mul(e(3), 37)), mul(e(4), 9)), 1 / 24);
  }
}

export class PNDMScheduler extends AlphaSchedulerBase<PNDMOptions> {
  /** Timesteps of the PRK phase and of the PLMS phase; `timesteps` is both. */
  prkTimesteps = new Float64Array(0);
  plmsTimesteps = new Float64Array(0);
  // per-run state
  private ets: Tensor[] = [];
  private counter = 0;
  private curSample: Tensor | null = null;
  private curModelOutput: Tensor | null = null;

  constructor(options: Partial<PNDMOptions> = {}) {
    super(pndmSpec, options, { predictionTypes: ['epsilon', 'v_prediction', 'sample'] });
  }

  override setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const T = c.numTrainTimesteps;
    const n = numInferenceSteps;
    const ascending = discreteTimesteps(c.timestepSpacing, T, n, c.stepsOffset).reverse();
    if (c.skipPrkSteps) {
      // [t_0 … t_{n−2}, t_{n−2}, t_{n−1}] reversed: the second call at t_1 is the pseudo-Heun one
      const l = ascending.length;
      const plms = [
        ...ascending.slice(0, l - 1),
        ...ascending.slice(Math.max(0, l - 2), l - 1),
        ...ascending.slice(l - 1),
      ];
      this.prkTimesteps = new Float64Array(0);
      this.plmsTimesteps = Float64Array.from(plms.reverse());
    } else {
      const half = Math.floor(Math.floor(T / n) / 2);
      const last4 = ascending.subarray(Math.max(0, ascending.length - 4));
      const prk: number[] = [];
      for (const t of last4) prk.push(t, t + half);
      // prk[:-1].repeat(2)[1:-1], reversed
      const rep = prk.slice(0, -1).flatMap((t) => [t, t]);
      this.prkTimesteps = Float64Array.from(rep.slice(1, -1).reverse());
      this.plmsTimesteps = ascending.slice(0, Math.max(0, ascending.length - 3)).reverse();
    }
    const all = new Float64Array(this.prkTimesteps.length + this.plmsTimesteps.length);
    all.set(this.prkTimesteps);
    all.set(this.plmsTimesteps, this.prkTimesteps.length);
    this.timesteps = all;
    this.numInferenceSteps = n;
    this.resetRun();
  }

  private resetRun(): void {
    this.ets.forEach(release);
    this.ets = [];
    this.counter = 0;
    release(this.curSample);
    this.curSample = null;
    release(this.curModelOutput);
    this.curModelOutput = null;
  }

  private transfer(sample: Tensor, t: number, tPrev: number, modelOutput: Tensor): Tensor {
    return pndmTransfer(
      this.config.predictionType,
      this.alphaAt(t),
      this.alphaAt(tPrev),
      sample,
      modelOutput,
    );
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, _opts?: StepOptions): StepResult {
    requireTimesteps(this.numInferenceSteps, this.className);
    const prevSample =
      this.counter < this.prkTimesteps.length && !this.config.skipPrkSteps
        ? this.stepPrk(modelOutput, timestep, sample)
        : this.stepPlms(modelOutput, timestep, sample);
    this.counter += 1;
    return { prevSample, predOriginalSample: null };
  }

  /** Pseudo Runge–Kutta: four calls per step, combined 1/6, 1/3, 1/3, 1/6. */
  private stepPrk(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    const n = this.numInferenceSteps!;
    const diffToPrev =
      this.counter % 2 ? 0 : Math.floor(Math.floor(this.config.numTrainTimesteps / n) / 2);
    const prevTimestep = timestep - diffToPrev;
    const t = this.prkTimesteps[Math.floor(this.counter / 4) * 4]!;
    const acc = (w: number): Tensor => {
      const term = mul(modelOutput, w);
      return this.curModelOutput === null ? term : add(this.curModelOutput, term);
    };
    let out = modelOutput;
    const phase = this.counter % 4;
    if (phase === 0) {
      this.setCurModelOutput(acc(1 / 6));
      this.ets.push(hold(modelOutput));
      release(this.curSample);
      this.curSample = hold(sample);
    } else if (phase === 1 || phase === 2) {
      this.setCurModelOutput(acc(1 / 3));
    } else {
      out = acc(1 / 6);
      this.setCurModelOutput(null);
    }
    return this.transfer(this.curSample ?? sample, t, prevTimestep, out);
  }

  private setCurModelOutput(t: Tensor | null): void {
    const next = t === null ? null : hold(t);
    release(this.curModelOutput);
    this.curModelOutput = next;
  }

  /** Pseudo linear multistep; with skipped PRK, the second call is the pseudo-Heun corrector. */
  private stepPlms(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    if (!this.config.skipPrkSteps && this.ets.length < 3) {
      throw new Error(`${this.className}: PLMS needs 3 PRK steps first (counter ${this.counter})`);
    }
    const stride = Math.floor(this.config.numTrainTimesteps / this.numInferenceSteps!);
    let t = timestep;
    let prevTimestep = timestep - stride;
    if (this.counter !== 1) {
      while (this.ets.length > 3) release(this.ets.shift());
      this.ets.push(hold(modelOutput));
    } else {
      prevTimestep = timestep;
      t = timestep + stride;
    }
    if (this.ets.length === 1 && this.counter === 0) {
      release(this.curSample);
      this.curSample = hold(sample);
      return this.transfer(sample, t, prevTimestep, modelOutput);
    }
    if (this.ets.length === 1 && this.counter === 1) {
      // pseudo-Heun: average the two outputs and redo the first step from its start
      const x = this.curSample!;
      this.curSample = null;
      const out = this.transfer(x, t, prevTimestep, div(add(modelOutput, this.ets[0]!), 2));
      release(x);
      return out;
    }
    return this.transfer(sample, t, prevTimestep, plmsCombine(this.ets));
  }
}
