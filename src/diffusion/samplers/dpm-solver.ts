/**
 * Multistep DPM-Solver (Lu et al. 2022, "DPM-Solver", arXiv 2206.00927) and DPM-Solver++
 * (Lu et al. 2022, arXiv 2211.01095, Algorithm 2: "DPM-Solver++(2M)"), with the SDE variant
 * (SDE-DPM-Solver++, §3.3 / appendix), as diffusers' DPMSolverMultistepScheduler.
 *
 * With λ = log α_t − log σ_t, h = λ_t − λ_s and the data prediction D_0 = x̂_0 at s, the
 * DPM-Solver++ first-order step (= DDIM) is
 *   x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D_0
 * and 2M adds D_1 = (D_0 − D_prev)/r, r = h_prev/h (midpoint: −½ α_t (e^{−h} − 1) D_1).
 * SDE-DPM-Solver++: x_t = (σ_t/σ_s) e^{−h} x_s + α_t (1 − e^{−2h}) D_0 + … + σ_t √(1 − e^{−2h}) z.
 * The noise-prediction variants ('dpmsolver', 'sde-dpmsolver') integrate ε̂ instead. Each update
 * below is a pure function of σ's, past outputs and the sample; the scheduler keeps the last
 * `solver_order` converted outputs.
 */
import { add, mul, slice, type Tensor } from '../../engine/index.js';
import {
  checkOneOf,
  clipOrThreshold,
  drawNoise,
  requireTimesteps,
  type StepOptions,
  type StepResult,
} from './common.js';
import type { SchedulerSpec } from './config.js';
import {
  MULTISTEP_DEFAULTS,
  MULTISTEP_UNSUPPORTED,
  MultistepSchedulerBase,
  type MultistepSolverOptions,
  predictionAt,
} from './multistep.js';
import { alphaSigmaOf, lambdaOf } from './sigmas.js';

export type DPMAlgorithmType = 'dpmsolver++' | 'sde-dpmsolver++' | 'dpmsolver' | 'sde-dpmsolver';
export type DPMSolverType = 'midpoint' | 'heun';

export interface DPMSolverOptions extends MultistepSolverOptions {
  algorithmType: DPMAlgorithmType;
  solverType: DPMSolverType;
  eulerAtFinal: boolean;
  useLuLambdas: boolean;
  lambdaMinClipped: number;
  varianceType: 'learned' | 'learned_range' | null;
}

export const dpmSolverSpec: SchedulerSpec<DPMSolverOptions> = {
  className: 'DPMSolverMultistepScheduler',
  defaults: {
    ...MULTISTEP_DEFAULTS,
    algorithmType: 'dpmsolver++',
    solverType: 'midpoint',
    eulerAtFinal: false,
    useLuLambdas: false,
    lambdaMinClipped: -Infinity,
    varianceType: null,
  },
  unsupported: MULTISTEP_UNSUPPORTED,
};

const isSde = (a: DPMAlgorithmType): boolean => a === 'sde-dpmsolver++' || a === 'sde-dpmsolver';
const isDataPrediction = (a: DPMAlgorithmType): boolean =>
  a === 'dpmsolver++' || a === 'sde-dpmsolver++';

/** α, σ and λ at the target t and the current and past points s0, s1, s2. */
function points(sigmas: readonly number[]): { alpha: number[]; sigma: number[]; lambda: number[] } {
  const as = sigmas.map(alphaSigmaOf);
  return {
    alpha: as.map((x) => x.alphaT),
    sigma: as.map((x) => x.sigmaT),
    lambda: sigmas.map(lambdaOf),
  };
}

/** Σ c_k x_k over the nonzero terms. */
function combine(terms: readonly (readonly [number, Tensor | null])[]): Tensor {
  let out: Tensor | null = null;
  for (const [c, x] of terms) {
    if (x === null) continue;
    const term = mul(x, c);
    out = out === null ? term : add(out, term);
  }
  if (out === null) throw new Error('combine: no terms');
  return out;
}

/** First-order update from σ_s to σ_t (DDIM for DPM-Solver++). Pure. */
export function dpmSolverFirstOrderUpdate(
  algorithm: DPMAlgorithmType,
  sigmaT: number,
  sigmaS: number,
  m0: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): Tensor {
  const {
    alpha: [aT, aS],
    sigma: [sT, sS],
    lambda: [lT, lS],
  } = points([sigmaT, sigmaS]);
  const h = lT! - lS!;
  switch (algorithm) {
    case 'dpmsolver++':
      return combine([
        [sT! / sS!, sample],
        [-(aT! * (Math.exp(-h) - 1)), m0],
      ]);
    case 'dpmsolver':
      return combine([
        [aT! / aS!, sample],
        [-(sT! * (Math.exp(h) - 1)), m0],
      ]);
    case 'sde-dpmsolver++':
      return combine([
        [(sT! / sS!) * Math.exp(-h), sample],
        [aT! * (1 - Math.exp(-2 * h)), m0],
        [sT! * Math.sqrt(1 - Math.exp(-2 * h)), noise],
      ]);
    case 'sde-dpmsolver':
      return combine([
        [aT! / aS!, sample],
        [-2 * (sT! * (Math.exp(h) - 1)), m0],
        [sT! * Math.sqrt(Math.exp(2 * h) - 1), noise],
      ]);
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
}

/** Second-order multistep update (2M) from σ_s0 to σ_t with outputs m0 (at s0), m1 (at s1). Pure. */
export function dpmSolverSecondOrderUpdate(
  algorithm: DPMAlgorithmType,
  solverType: DPMSolverType,
  sigmas: readonly [number, number, number],
  m0: Tensor,
  m1: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): Tensor {
  const {
    alpha: [aT, aS0],
    sigma: [sT, sS0],
    lambda: [lT, lS0, lS1],
  } = points(sigmas);
  const h = lT! - lS0!;
  const h0 = lS0! - lS1!;
  const r0 = h0 / h;
  const D1 = mul(add(m0, mul(m1, -1)), 1 / r0);
  const mid = solverType === 'midpoint';
  const eh = Math.exp(-h);
  const e2h = Math.exp(-2 * h);
  switch (algorithm) {
    case 'dpmsolver++':
      return combine([
        [sT! / sS0!, sample],
        [-(aT! * (eh - 1)), m0],
        [mid ? -0.5 * (aT! * (eh - 1)) : aT! * ((eh - 1) / h + 1), D1],
      ]);
    case 'dpmsolver':
      return combine([
        [aT! / aS0!, sample],
        [-(sT! * (Math.exp(h) - 1)), m0],
        [mid ? -0.5 * (sT! * (Math.exp(h) - 1)) : -(sT! * ((Math.exp(h) - 1) / h - 1)), D1],
      ]);
    case 'sde-dpmsolver++':
      return combine([
        [(sT! / sS0!) * eh, sample],
        [aT! * (1 - e2h), m0],
        [mid ? 0.5 * (aT! * (1 - e2h)) : aT! * ((1 - e2h) / (-2 * h) + 1), D1],
        [sT! * Math.sqrt(1 - e2h), noise],
      ]);
    case 'sde-dpmsolver':
      return combine([
        [aT! / aS0!, sample],
        [-2 * (sT! * (Math.exp(h) - 1)), m0],
        [mid ? -(sT! * (Math.exp(h) - 1)) : -2 * (sT! * ((Math.exp(h) - 1) / h - 1)), D1],
        [sT! * Math.sqrt(Math.exp(2 * h) - 1), noise],
      ]);
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
}

/**
 * Third-order multistep update (3M) with outputs m0, m1, m2 at s0, s1, s2. The SDE-DPM-Solver++
 * D_2 weight, α_t ((1 − e^{−2h} − 2h)/(2h)² + ½), is the SDE integral of the same quadratic
 * extrapolation; 'sde-dpmsolver' has no third order. Pure.
 */
export function dpmSolverThirdOrderUpdate(
  algorithm: DPMAlgorithmType,
  sigmas: readonly [number, number, number, number],
  m0: Tensor,
  m1: Tensor,
  m2: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): Tensor {
  const {
    alpha: [aT, aS0],
    sigma: [sT, sS0],
    lambda: [lT, lS0, lS1, lS2],
  } = points(sigmas);
  const h = lT! - lS0!;
  const h0 = lS0! - lS1!;
  const h1 = lS1! - lS2!;
  const r0 = h0 / h;
  const r1 = h1 / h;
  const D10 = mul(add(m0, mul(m1, -1)), 1 / r0);
  const D11 = mul(add(m1, mul(m2, -1)), 1 / r1);
  const diff = add(D10, mul(D11, -1));
  const D1 = add(D10, mul(diff, r0 / (r0 + r1)));
  const D2 = mul(diff, 1 / (r0 + r1));
  const eh = Math.exp(-h);
  switch (algorithm) {
    case 'dpmsolver++':
      return combine([
        [sT! / sS0!, sample],
        [-(aT! * (eh - 1)), m0],
        [aT! * ((eh - 1) / h + 1), D1],
        [-(aT! * ((eh - 1 + h) / (h * h) - 0.5)), D2],
      ]);
    case 'dpmsolver':
      return combine([
        [aT! / aS0!, sample],
        [-(sT! * (Math.exp(h) - 1)), m0],
        [-(sT! * ((Math.exp(h) - 1) / h - 1)), D1],
        [-(sT! * ((Math.exp(h) - 1 - h) / (h * h) - 0.5)), D2],
      ]);
    case 'sde-dpmsolver++': {
      const e2h = Math.exp(-2 * h);
      return combine([
        [(sT! / sS0!) * eh, sample],
        [aT! * (1 - e2h), m0],
        [aT! * ((1 - e2h) / (-2 * h) + 1), D1],
        [aT! * ((1 - e2h - 2 * h) / (2 * h) ** 2 + 0.5), D2],
        [sT! * Math.sqrt(1 - e2h), noise],
      ]);
    }
    case 'sde-dpmsolver':
      throw new Error("algorithm_type 'sde-dpmsolver' has no third-order update");
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
}

export class DPMSolverMultistepScheduler extends MultistepSchedulerBase<DPMSolverOptions> {
  constructor(options: Partial<DPMSolverOptions> = {}) {
    super(dpmSolverSpec, options);
    const c = this.config;
    const algorithms: DPMAlgorithmType[] = [
      'dpmsolver++',
      'sde-dpmsolver++',
      'dpmsolver',
      'sde-dpmsolver',
    ];
    checkOneOf('algorithm_type', c.algorithmType, algorithms, this.className);
    checkOneOf('solver_type', c.solverType, ['midpoint', 'heun'], this.className);
    if (![1, 2, 3].includes(c.solverOrder)) {
      throw new Error(`${this.className}: solver_order must be 1, 2 or 3, got ${c.solverOrder}`);
    }
    if (c.useKarrasSigmas && c.useLuLambdas) {
      throw new Error(`${this.className}: use_karras_sigmas and use_lu_lambdas exclude each other`);
    }
    if (!isDataPrediction(c.algorithmType) && c.finalSigmasType === 'zero') {
      throw new Error(
        `${this.className}: final_sigmas_type 'zero' is not supported for algorithm_type '${c.algorithmType}'; use 'sigma_min'`,
      );
    }
    if (c.algorithmType === 'sde-dpmsolver' && c.solverOrder === 3) {
      throw new Error(`${this.className}: 'sde-dpmsolver' supports solver_order 1 and 2`);
    }
  }

  /** x̂_0 (DPM-Solver++) or ε̂ (DPM-Solver) at the current σ, thresholded if asked. */
  convertModelOutput(modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
    const c = this.config;
    let out = modelOutput;
    const C = sample.shape[1]!;
    if (c.varianceType !== null && c.predictionType === 'epsilon' && out.shape[1] === 2 * C) {
      out = slice(out, [0, 0], [out.shape[0]!, C]); // the mean half; the variance half is unused
    }
    const thr = { ...c, clipSample: false };
    if (isDataPrediction(c.algorithmType)) {
      return clipOrThreshold(predictionAt('data', c.predictionType, out, sample, sigma), thr);
    }
    const eps = predictionAt('noise', c.predictionType, out, sample, sigma);
    if (!c.thresholding) return eps;
    const { alphaT, sigmaT } = alphaSigmaOf(sigma);
    const x0 = clipOrThreshold(mul(add(sample, mul(eps, -sigmaT)), 1 / alphaT), thr);
    return mul(add(sample, mul(x0, -alphaT)), 1 / sigmaT);
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
    requireTimesteps(this.numInferenceSteps, this.className);
    const c = this.config;
    const i = this.currentIndex(timestep);
    const L = this.timesteps.length;
    const lowerOrderFinal =
      i === L - 1 &&
      (c.eulerAtFinal || (c.lowerOrderFinal && L < 15) || c.finalSigmasType === 'zero');
    const lowerOrderSecond = i === L - 2 && c.lowerOrderFinal && L < 15;

    const m = this.convertModelOutput(modelOutput, sample, this.sigmas[i]!);
    this.pushOutput(m);
    const noise = isSde(c.algorithmType) ? drawNoise(sample, opts, this.className) : null;

    const s = this.sigmas;
    const hist = this.modelOutputs;
    const K = hist.length;
    let prev: Tensor;
    if (c.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = dpmSolverFirstOrderUpdate(c.algorithmType, s[i + 1]!, s[i]!, m, sample, noise);
    } else if (c.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = dpmSolverSecondOrderUpdate(
        c.algorithmType,
        c.solverType,
        [s[i + 1]!, s[i]!, s[i - 1]!],
        hist[K - 1]!,
        hist[K - 2]!,
        sample,
        noise,
      );
    } else {
      prev = dpmSolverThirdOrderUpdate(
        c.algorithmType,
        [s[i + 1]!, s[i]!, s[i - 1]!, s[i - 2]!],
        hist[K - 1]!,
        hist[K - 2]!,
        hist[K - 3]!,
        sample,
        noise,
      );
    }
    this.endStep(i);
    return { prevSample: prev, predOriginalSample: isDataPrediction(c.algorithmType) ? m : null };
  }
}
