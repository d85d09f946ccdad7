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
  type StepOptions,
  type StepResult,
} from './common.js';
import type { SchedulerSpec } from './config.js';
import { MultistepSchedulerBase, type MultistepSolverOptions, multistepSpec } from './multistep.js';
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

export const dpmSolverSpec: SchedulerSpec<DPMSolverOptions> = multistepSpec(
  'DPMSolverMultistepScheduler',
  {
    algorithmType: 'dpmsolver++',
    solverType: 'midpoint',
    eulerAtFinal: false,
    useLuLambdas: false,
    lambdaMinClipped: -Infinity,
    varianceType: null,
  },
);

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

type Term = readonly [number, Tensor | null];

/**
 * The weights (of x_s, m_0 and, for the SDE variants, z) of the first-order update from σ_s to
 * σ_t, h = λ_t − λ_s:
 *   dpmsolver++:      x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) m_0
 *   dpmsolver:        x_t = (α_t/α_s) x_s − σ_t (e^{h} − 1) m_0
 *   sde-dpmsolver++:  x_t = (σ_t/σ_s) e^{−h} x_s + α_t (1 − e^{−2h}) m_0 + σ_t √(1 − e^{−2h}) z
 *   sde-dpmsolver:    x_t = (α_t/α_s) x_s − 2 σ_t (e^{h} − 1) m_0 + σ_t √(e^{2h} − 1) z
 */
function firstOrderWeights(
  algorithm: DPMAlgorithmType,
  [aT, aS]: readonly number[],
  [sT, sS]: readonly number[],
  h: number,
): [number, number, number | null] {
  switch (algorithm) {
    case 'dpmsolver++':
      return [sT! / sS!, -(aT! * (Math.exp(-h) - 1)), null];
    case 'dpmsolver':
      return [aT! / aS!, -(sT! * (Math.exp(h) - 1)), null];
    case 'sde-dpmsolver++': {
      const e2h = Math.exp(-2 * h);
      return [(sT! / sS!) * Math.exp(-h), aT! * (1 - e2h), sT! * Math.sqrt(1 - e2h)];
    }
    case 'sde-dpmsolver':
      return [aT! / aS!, -2 * (sT! * (Math.exp(h) - 1)), sT! * Math.sqrt(Math.exp(2 * h) - 1)];
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
}

/**
 * What every order of the update from σ_s0 to σ_t (sigmas: t, s0, s1, …) shares: α_t, σ_t,
 * h = λ_t − λ_s0, the ratios r_k = (λ_{s_k} − λ_{s_{k+1}})/h of the past steps to it, and the
 * terms of the first-order update, which the higher orders extend with their D_k terms between
 * `head` (x_s0, m_0) and `tail` (z).
 */
function firstOrderTerms(
  algorithm: DPMAlgorithmType,
  sigmas: readonly number[],
  m0: Tensor,
  sample: Tensor,
  noise: Tensor | null,
): { aT: number; sT: number; h: number; r: number[]; head: Term[]; tail: Term[] } {
  const { alpha, sigma, lambda } = points(sigmas);
  const h = lambda[0]! - lambda[1]!;
  const r = lambda.slice(1, -1).map((l, k) => (l - lambda[k + 2]!) / h);
  const [cx, c0, cz] = firstOrderWeights(algorithm, alpha, sigma, h);
  const head: Term[] = [
    [cx, sample],
    [c0, m0],
  ];
  return { aT: alpha[0]!, sT: sigma[0]!, h, r, head, tail: cz === null ? [] : [[cz, noise]] };
}

/**
 * The weight of D_1 = (m_0 − m_1)/r_0 in the 2M update: midpoint, half the m_0 weight
 * (dpmsolver++: −½ α_t (e^{−h} − 1)), or Heun (dpmsolver++: α_t ((e^{−h} − 1)/h + 1)). The 3M
 * update weights its D_1 as Heun does.
 */
function secondOrderWeight(
  algorithm: DPMAlgorithmType,
  solverType: DPMSolverType,
  aT: number,
  sT: number,
  h: number,
): number {
  const mid = solverType === 'midpoint';
  switch (algorithm) {
    case 'dpmsolver++':
      return mid ? -0.5 * (aT * (Math.exp(-h) - 1)) : aT * ((Math.exp(-h) - 1) / h + 1);
    case 'dpmsolver':
      return mid ? -0.5 * (sT * (Math.exp(h) - 1)) : -(sT * ((Math.exp(h) - 1) / h - 1));
    case 'sde-dpmsolver++': {
      const e2h = Math.exp(-2 * h);
      return mid ? 0.5 * (aT * (1 - e2h)) : aT * ((1 - e2h) / (-2 * h) + 1);
    }
    case 'sde-dpmsolver':
      return mid ? -(sT * (Math.exp(h) - 1)) : -2 * (sT * ((Math.exp(h) - 1) / h - 1));
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
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
  const { head, tail } = firstOrderTerms(algorithm, [sigmaT, sigmaS], m0, sample, noise);
  return combine([...head, ...tail]);
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
    aT,
    sT,
    h,
    r: [r0],
    head,
    tail,
  } = firstOrderTerms(algorithm, sigmas, m0, sample, noise);
  const D1 = mul(add(m0, mul(m1, -1)), 1 / r0!);
  const w1 = secondOrderWeight(algorithm, solverType, aT, sT, h);
  return combine([...head, [w1, D1], ...tail]);
}

/**
 * Third-order multistep update (3M) with outputs m0, m1, m2 at s0, s1, s2: D_1 and D_2 of the
 * quadratic through them, D_1 weighted as the Heun 2M update, D_2 (dpmsolver++) by
 * −α_t ((e^{−h} − 1 + h)/h² − ½). The SDE-DPM-Solver++ D_2 weight,
 * α_t ((1 − e^{−2h} − 2h)/(2h)² + ½), is the SDE integral of the same quadratic extrapolation;
 * 'sde-dpmsolver' has no third order. Pure.
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
  const first = firstOrderTerms(algorithm, sigmas, m0, sample, noise);
  const { aT, sT, h } = first;
  const r0 = first.r[0]!;
  const r1 = first.r[1]!;
  const D10 = mul(add(m0, mul(m1, -1)), 1 / r0);
  const D11 = mul(add(m1, mul(m2, -1)), 1 / r1);
  const diff = add(D10, mul(D11, -1));
  const D1 = add(D10, mul(diff, r0 / (r0 + r1)));
  const D2 = mul(diff, 1 / (r0 + r1));
  let w2: number;
  switch (algorithm) {
    case 'dpmsolver++':
      w2 = -(aT * ((Math.exp(-h) - 1 + h) / (h * h) - 0.5));
      break;
    case 'dpmsolver':
      w2 = -(sT * ((Math.exp(h) - 1 - h) / (h * h) - 0.5));
      break;
    case 'sde-dpmsolver++':
      w2 = aT * ((1 - Math.exp(-2 * h) - 2 * h) / (2 * h) ** 2 + 0.5);
      break;
    case 'sde-dpmsolver':
      throw new Error("algorithm_type 'sde-dpmsolver' has no third-order update");
    default:
      throw new Error(`unknown algorithm_type '${String(algorithm satisfies never)}'`);
  }
  const w1 = secondOrderWeight(algorithm, 'heun', aT, sT, h);
  return combine([...first.head, [w1, D1], [w2, D2], ...first.tail]);
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
      return clipOrThreshold(this.predicted('data', out, sample, sigma), thr);
    }
    const eps = this.predicted('noise', out, sample, sigma);
    if (!c.thresholding) return eps;
    const { alphaT, sigmaT } = alphaSigmaOf(sigma);
    const x0 = clipOrThreshold(mul(add(sample, mul(eps, -sigmaT)), 1 / alphaT), thr);
    return mul(add(sample, mul(x0, -alphaT)), 1 / sigmaT);
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, opts?: StepOptions): StepResult {
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
