/**
 * UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 * Diffusion Models", Algorithms 1–3, B(h) variants), as diffusers' UniPCMultistepScheduler.
 *
 * With data prediction (`predict_x0`), hh = −h, h = λ_t − λ_s0, m_k the past outputs and
 * r_k = (λ_{s_k} − λ_s0)/h, D_k = (m_k − m_0)/r_k:
 *   UniP (predictor, order p):  x_t = (σ_t/σ_s0) x − α_t (e^{hh} − 1) m_0 − α_t B(h) Σ_k ρ_k D_k
 *   UniC (corrector, order p):  the same from the previous x with one more point, the model output
 *                               m_t at the predicted x_t:  … − α_t B(h) (Σ_k ρ_k D_k + ρ_p (m_t − m_0))
 * ρ solves R ρ = b with R_{ik} = r_k^{i}, b_i = i! φ_{i+1}(hh) / B(h) (bh1: B = hh, bh2: B = e^{hh} − 1);
 * order 2 predictor and order 1 corrector use ρ = ½. Each step first corrects the incoming sample
 * with the new model output, then predicts the next one; the scheduler keeps the past outputs and
 * the last sample.
 */
import { add, mul, sub, type Tensor } from '../../engine/index.js';
import {
  checkOneOf,
  clipOrThreshold,
  hold,
  release,
  type StepOptions,
  type StepResult,
} from './common.js';
import type { SchedulerSpec } from './config.js';
import { MultistepSchedulerBase, type MultistepSolverOptions, multistepSpec } from './multistep.js';
import { alphaSigmaOf, lambdaOf } from './sigmas.js';

export type UniPCSolverType = 'bh1' | 'bh2';

export interface UniPCOptions extends MultistepSolverOptions {
  predictX0: boolean;
  solverType: UniPCSolverType;
  /** Steps (indices) after which the corrector is skipped. */
  disableCorrector: number[];
  sigmaMin: number | null;
  sigmaMax: number | null;
}

export const unipcSpec: SchedulerSpec<UniPCOptions> = multistepSpec(
  'UniPCMultistepScheduler',
  { predictX0: true, solverType: 'bh2', disableCorrector: [], sigmaMin: null, sigmaMax: null },
  { solver_p: null, shift_terminal: null },
);

/** Solves A x = b (small, dense) by Gaussian elimination with partial pivoting. */
export function solveLinear(A: readonly (readonly number[])[], b: readonly number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * x[k]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

/** The B(h) coefficients: h φ_1 = e^{hh} − 1, B(h), R (rows r^0 … r^{p−1}) and b. Pure. */
export function unipcCoefficients(
  hh: number,
  rks: readonly number[],
  order: number,
  solverType: UniPCSolverType,
): { hPhi1: number; Bh: number; R: number[][]; b: number[] } {
  const hPhi1 = Math.expm1(hh);
  let hPhiK = hPhi1 / hh - 1;
  let factorial = 1;
  const Bh = solverType === 'bh1' ? hh : Math.expm1(hh);
  const R: number[][] = [];
  const b: number[] = [];
  for (let i = 1; i <= order; i++) {
    R.push(rks.map((r) => r ** (i - 1)));
    b.push((hPhiK * factorial) / Bh);
    factorial *= i + 1;
    hPhiK = hPhiK / hh - 1 / factorial;
  }
  return { hPhi1, Bh, R, b };
}

interface UniPCParams {
  predictX0: boolean;
  solverType: UniPCSolverType;
}

/**
 * What UniP and UniC share for a step from σ_s0 to σ_t: r_k of the past points, the B(h)
 * coefficients, and the x_t = cx · x − scale · (…) factors of data or noise prediction.
 */
function unipcPoints(
  p: UniPCParams,
  sigmaT: number,
  sigmaS0: number,
  pastSigmas: readonly number[],
  order: number,
): ReturnType<typeof unipcCoefficients> & { rks: number[]; cx: number; scale: number } {
  const { alphaT, sigmaT: sT } = alphaSigmaOf(sigmaT);
  const { alphaT: aS0, sigmaT: sS0 } = alphaSigmaOf(sigmaS0);
  const lS0 = lambdaOf(sigmaS0);
  const h = lambdaOf(sigmaT) - lS0;
  const rks = pastSigmas.slice(0, order - 1).map((s) => (lambdaOf(s) - lS0) / h);
  const hh = p.predictX0 ? -h : h;
  const [cx, scale] = p.predictX0 ? [sT / sS0, alphaT] : [alphaT / aS0, sT];
  return { rks, cx, scale, ...unipcCoefficients(hh, [...rks, 1], order, p.solverType) };
}

/** Σ_k ρ_k D_k, D_k = (m_k − m_0)/r_k. */
function weightedDiffs(
  rhos: readonly number[],
  ms: readonly Tensor[],
  m0: Tensor,
  rks: readonly number[],
): Tensor | null {
  let out: Tensor | null = null;
  for (let k = 0; k < ms.length; k++) {
    const D = mul(sub(ms[k]!, m0), 1 / rks[k]!);
    const term = mul(D, rhos[k]!);
    out = out === null ? term : add(out, term);
  }
  return out;
}

/**
 * One UniPC update from σ_s0 to σ_t, with m0 the output at s0 and `past` / `pastSigmas` the
 * earlier ones, newest first:
 *   UniP-p (mT null): predicts x_t from x at σ_s0; ρ solves R ρ = b without its last row and
 *     column (½ at order 2);
 *   UniC-p: corrects x_t, predicted from x (the last sample) at σ_s0, with the model output mT
 *     at x_t; ρ solves the whole system (½ at order 1), its last entry weighting mT − m0.
 * Both are x_t = cx · x − scale · hPhi1 · m0 − scale · B(h) · Σ. Pure.
 */
export function unipcUpdate(
  p: UniPCParams,
  sigmaT: number,
  sigmaS0: number,
  mT: Tensor | null,
  m0: Tensor,
  past: readonly Tensor[],
  pastSigmas: readonly number[],
  x: Tensor,
  order: number,
): Tensor {
  const ms = past.slice(0, order - 1);
  const { rks, cx, scale, hPhi1, Bh, R, b } = unipcPoints(p, sigmaT, sigmaS0, pastSigmas, order);
  let sum: Tensor | null;
  if (mT === null) {
    let rhos: number[] = [];
    if (ms.length > 0) {
      rhos =
        order === 2
          ? [0.5]
          : solveLinear(
              R.slice(0, -1).map((row) => row.slice(0, -1)),
              b.slice(0, -1),
            );
    }
    sum = weightedDiffs(rhos, ms, m0, rks);
  } else {
    const rhos = order === 1 ? [0.5] : solveLinear(R, b);
    const corr = weightedDiffs(rhos.slice(0, -1), ms, m0, rks);
    const last = mul(sub(mT, m0), rhos[rhos.length - 1]!);
    sum = corr === null ? last : add(corr, last);
  }
  const xt = sub(mul(x, cx), mul(m0, scale * hPhi1));
  return sum === null ? xt : sub(xt, mul(sum, scale * Bh));
}

export class UniPCMultistepScheduler extends MultistepSchedulerBase<UniPCOptions> {
  private lastSample: Tensor | null = null;
  private thisOrder = 1;

  constructor(options: Partial<UniPCOptions> = {}) {
    super(unipcSpec, options, true);
    const c = this.config;
    checkOneOf('solver_type', c.solverType, ['bh1', 'bh2'], this.className);
    if (!c.predictX0 && c.finalSigmasType === 'zero') {
      // e^{h} − 1 is infinite at σ = 0: diffusers returns NaN there
      throw new Error(
        `${this.className}: predict_x0 = false needs final_sigmas_type 'sigma_min' (σ = 0 gives NaN)`,
      );
    }
    if (!Number.isInteger(c.solverOrder) || c.solverOrder < 1) {
      throw new Error(`${this.className}: solver_order must be a positive integer`);
    }
  }

  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    release(this.lastSample);
    this.lastSample = null;
    this.thisOrder = 1;
  }

  convertModelOutput(modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
    const c = this.config;
    if (!c.predictX0) return this.predicted('noise', modelOutput, sample, sigma);
    const x0 = this.predicted('data', modelOutput, sample, sigma);
    return clipOrThreshold(x0, { ...c, clipSample: false });
  }

  /** The past outputs before the newest, newest first, with their σ (σ at step index − k). */
  private history(from: number, skip: number): { ms: Tensor[]; sigmas: number[] } {
    const ms: Tensor[] = [];
    const sigmas: number[] = [];
    const K = this.modelOutputs.length;
    for (let k = 1; k < K; k++) {
      const m = this.modelOutputs[K - 1 - k];
      if (m === null || m === undefined) break;
      ms.push(m);
      sigmas.push(this.sigmas[from - k - skip] ?? NaN);
    }
    return { ms, sigmas };
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, _opts?: StepOptions): StepResult {
    const c = this.config;
    const i = this.currentIndex(timestep);
    const p = { predictX0: c.predictX0, solverType: c.solverType };
    const useCorrector = i > 0 && !c.disableCorrector.includes(i - 1) && this.lastSample !== null;
    const m = this.convertModelOutput(modelOutput, sample, this.sigmas[i]!);
    let x = sample;
    if (useCorrector) {
      const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
      const { ms, sigmas } = this.history(i, 1);
      x = unipcUpdate(
        p,
        this.sigmas[i]!,
        this.sigmas[i - 1]!,
        m,
        m0,
        ms,
        sigmas,
        this.lastSample!,
        this.thisOrder,
      );
    }
    this.pushOutput(m);

    const L = this.timesteps.length;
    const order = c.lowerOrderFinal ? Math.min(c.solverOrder, L - i) : c.solverOrder;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1);
    release(this.lastSample);
    this.lastSample = hold(x);

    const { ms, sigmas } = this.history(i, 0);
    const prev = unipcUpdate(
      p,
      this.sigmas[i + 1]!,
      this.sigmas[i]!,
      null,
      m,
      ms,
      sigmas,
      x,
      this.thisOrder,
    );
    this.endStep(i);
    return { prevSample: prev, predOriginalSample: c.predictX0 ? m : null };
  }
}
