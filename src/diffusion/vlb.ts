/**
 * The variational bound of DDPM (Ho et al. 2020, eq. 5) in the form of improved DDPM (Nichol &
 * Dhariwal 2021, openai/improved-diffusion `gaussian_diffusion.py`):
 *
 *   L = L_T + Σ_{t≥1} L_{t−1} + L_0
 *   L_T     = KL(q(x_T | x_0) ‖ N(0, I))                                  (prior)
 *   L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))               (Gaussian KLs)
 *   L_0     = −log p_θ(x_0 | x_1)                                         (decoder)
 *
 * Timesteps are indices 0..T−1 as in the schedule: index t is the paper's t+1, index 0 is the
 * decoder term. Every term is in nats per element; `…Bpd` values are bits per dimension: the mean
 * over the non-batch axes divided by ln 2 (improved DDPM's `mean_flat(…) / log(2)`).
 */
import {
  abs,
  add,
  clamp,
  eq,
  erf,
  exp,
  Generator,
  gt,
  log,
  lt,
  mean,
  mul,
  neg,
  noGrad,
  randn,
  reciprocal,
  scalarLike,
  slice,
  square,
  sub,
  type Tensor,
  type TensorLike,
  tensor,
  tidy,
  where,
} from '../engine/index.js';
import {
  addNoise,
  coefAt,
  posteriorMean,
  predictedEpsilon,
  predictedOriginalSample,
  type PredictionType,
} from './forward.js';
import type { NoiseSchedule } from './schedule.js';

/**
 * How p_θ(x_{t−1} | x_t) gets its variance (diffusers' `variance_type` strings):
 * - `fixed_small`: β̃_t, the posterior variance (log clipped at t = 0 to β̃_1);
 * - `fixed_large`: β_t, with β̃_1 at t = 0 (improved DDPM's `append(posterior_variance[1], betas[1:])`);
 * - `learned`: the model's extra C channels are σ² itself, as diffusers' DDPMScheduler reads them
 *   (improved DDPM's LEARNED outputs log σ² instead); prefer `learned_range` for training;
 * - `learned_range`: the extra channels are v ∈ [−1, 1] with
 *   log σ² = ((v+1)/2) log β_t + (1 − (v+1)/2) log β̃_t (clipped) (Nichol & Dhariwal 2021, eq. 15).
 */
export type ModelVarType = 'fixed_small' | 'fixed_large' | 'learned' | 'learned_range';

/** Which decoder L_0 uses: 256-bin discretized Gaussian for data in [−1, 1], or the density. */
export type DecoderType = 'discretized' | 'continuous';

const LN2 = Math.LN2;
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

function lift(like: Tensor, v: TensorLike): Tensor {
  return typeof v === 'number' ? scalarLike(like, v) : v;
}

/** Mean over every axis but the first: [B, ...] -> [B]. */
export function meanFlat(x: Tensor): Tensor {
  if (x.rank <= 1) return x.alias();
  return mean(
    x,
    Array.from({ length: x.rank - 1 }, (_, i) => i + 1),
  );
}

function isLearned(v: ModelVarType): boolean {
  return v === 'learned' || v === 'learned_range';
}

/**
 * KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats:
 * ½ (−1 + logvar2 − logvar1 + e^(logvar1 − logvar2) + (mean1 − mean2)² e^(−logvar2)).
 */
export function normalKl(
  mean1: Tensor,
  logvar1: TensorLike,
  mean2: Tensor,
  logvar2: TensorLike,
): Tensor {
  const lv1 = lift(mean1, logvar1);
  const lv2 = lift(mean1, logvar2);
  // −1 + logvar2 − logvar1 + e^(logvar1 − logvar2) = e^d − 1 − d with d = logvar1 − logvar2
  const d = sub(lv1, lv2);
  const quad = mul(square(sub(mean1, mean2)), exp(neg(lv2)));
  return mul(add(sub(exp(d), add(d, 1)), quad), 0.5);
}

/**
 * erfc(z) for z ≥ 0 (evaluated at |z|): the Chebyshev fit `erfcc` of Numerical Recipes in C
 * (2nd ed., §6.2), fractional error below 1.2e-7 everywhere, so tiny tail values keep their
 * relative accuracy where 1 − erf(z) would cancel to nothing.
 */
function erfcTail(z: Tensor): Tensor {
  const az = abs(z);
  const t = reciprocal(add(mul(az, 0.5), 1));
  const c = [
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
    1.48851587, -0.82215223, 0.17087277,
  ];
  let poly: Tensor = mul(t, c[9]!);
  for (let i = 8; i >= 1; i--) poly = mul(t, add(poly, c[i]!));
  return mul(t, exp(sub(add(poly, c[0]!), square(az))));
}

/** Below this, Φ comes from the erfc fit instead of 1 + erf (Φ(−3) = 1.35e-3). */
const CDF_TAIL = -3;

/**
 * The standard normal CDF Φ(x). For x ≥ −3: ½ (1 + erf(x/√2)) with the engine's erf. For x < −3:
 * ½ erfc(−x/√2) from the Numerical Recipes fit, so log Φ stays accurate far into the lower tail
 * (until e^(−x²/2) underflows). Upper-tail probabilities are taken as Φ(−x), never as 1 − Φ(x).
 * Measured in f64 against mpmath on [−37, 8] (step 0.003): relative error ≤ 1.1e-7 everywhere,
 * ≤ 3.4e-13 for x ≥ −3; absolute error ≤ 4.4e-11 (at the seam x = −3). For comparison, the tanh
 * approximation of improved DDPM, ½(1 + tanh(√(2/π)(x + 0.044715 x³))), is off by up to 1.8e-4
 * absolute, and its relative error grows without bound in the tails.
 */
export function standardNormalCdf(x: Tensor): Tensor {
  const central = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
  const tail = mul(erfcTail(mul(x, -Math.SQRT1_2)), 0.5);
  return where(lt(x, CDF_TAIL), tail, central);
}

/** log N(x; means, e^(2 logScales)) elementwise (the continuous decoder), in nats. */
export function gaussianLogLikelihood(x: Tensor, means: Tensor, logScales: TensorLike): Tensor {
  const ls = lift(x, logScales);
  const z = mul(sub(x, means), exp(neg(ls)));
  return neg(add(add(mul(square(z), 0.5), ls), HALF_LOG_2PI));
}

export interface DiscretizedOptions {
  /** Number of levels of the data in [−1, 1] (256 for 8-bit images). */
  bins?: number;
  /** Probabilities are floored here before the log, as in improved DDPM (1e-12). */
  minProb?: number;
}

/**
 * log P(x) elementwise for data on `bins` levels in [−1, 1] (x_k = −1 + 2k/(bins−1)) under a
 * Gaussian of mean `means` and log standard deviation `logScales`, discretized into bins of width
 * 2/(bins−1) (Ho et al. 2020, eq. 13): the lowest bin takes all mass below its upper edge and the
 * highest all mass above its lower edge, so the bins' probabilities sum to 1. In nats.
 */
export function discretizedGaussianLogLikelihood(
  x: Tensor,
  means: Tensor,
  logScales: TensorLike,
  opts: DiscretizedOptions = {},
): Tensor {
  const bins = opts.bins ?? 256;
  const minProb = opts.minProb ?? 1e-12;
  const half = 1 / (bins - 1);
  const invStd = exp(neg(lift(x, logScales)));
  const centered = sub(x, means);
  const upper = mul(add(centered, half), invStd);
  const lower = mul(sub(centered, half), invStd);
  const cdfUpper = standardNormalCdf(upper); // P(X ≤ upper edge)
  const sfLower = standardNormalCdf(neg(lower)); // P(X > lower edge), without 1 − Φ
  // P(lower < X ≤ upper); above the mean the same difference taken in the mirrored lower tail.
  const inUpperTail = gt(lower, 0);
  const delta = where(
    inUpperTail,
    sub(sfLower, standardNormalCdf(neg(upper))),
    sub(cdfUpper, standardNormalCdf(lower)),
  );
  const logp = (p: Tensor): Tensor => log(clamp(p, minProb));
  return where(
    lt(x, -1 + half),
    logp(cdfUpper),
    where(gt(x, 1 - half), logp(sfLower), logp(delta)),
  );
}

/** Per-timestep log-variance of a fixed-variance model (index t = 0..T−1). */
export function fixedLogVariance(
  s: NoiseSchedule,
  varianceType: 'fixed_small' | 'fixed_large',
): Float64Array {
  if (varianceType === 'fixed_small') return s.posteriorLogVarianceClipped;
  const T = s.numTrainTimesteps;
  return s.betas.map((b, t) => Math.log(t === 0 ? (T > 1 ? s.posteriorVariance[1]! : b) : b));
}

/** Splits a learned-variance model output [B, 2C, ...] into the mean part and the variance part. */
export function splitLearnedVariance(modelOutput: Tensor, channels: number): [Tensor, Tensor] {
  if (modelOutput.rank < 2 || modelOutput.shape[1] !== 2 * channels) {
    throw new Error(
      `a learned-variance model must output ${2 * channels} channels (mean and variance parts) ` +
        `on axis 1, got shape [${modelOutput.shape.join(', ')}]`,
    );
  }
  const starts = modelOutput.shape.map(() => 0);
  const mid = [0, channels];
  return [
    slice(modelOutput, starts, [modelOutput.shape[0]!, channels]),
    slice(modelOutput, mid, [modelOutput.shape[0]!, 2 * channels]),
  ];
}

export interface ModelDistributionOptions {
  predictionType?: PredictionType;
  varianceType?: ModelVarType;
  /** Clamp x̂_0 to [−1, 1] before the posterior mean (improved DDPM's `clip_denoised`). */
  clipDenoised?: boolean;
}

/** p_θ(x_{t−1} | x_t) = N(mean, e^logVariance), and the x̂_0 its mean was built from. */
export interface ModelDistribution {
  mean: Tensor;
  logVariance: Tensor;
  predOriginalSample: Tensor;
}

/**
 * p_θ(x_{t−1} | x_t) from the two parts of a model output: the mean part (ε, x_0 or v, per the
 * prediction type) and, for learned variances, the variance part (null for fixed variances).
 * mean = posterior mean with x̂_0 in place of x_0 (DDPM eq. 7 and 11).
 */
export function modelDistributionFromParts(
  s: NoiseSchedule,
  meanPart: Tensor,
  varPart: Tensor | null,
  xt: Tensor,
  timesteps: ArrayLike<number>,
  opts: ModelDistributionOptions = {},
): ModelDistribution {
  const predictionType = opts.predictionType ?? 'epsilon';
  const varianceType = opts.varianceType ?? 'fixed_small';
  if (predictionType === 'epsilon' && Array.from(timesteps).some((t) => s.alphasCumprod[t] === 0)) {
    throw new Error(
      'ε-prediction cannot recover x̂_0 where ᾱ_t = 0 (zero terminal SNR); use v_prediction',
    );
  }
  const alpha = coefAt(s.sqrtAlphasCumprod, timesteps, xt);
  const sigma = coefAt(s.sqrtOneMinusAlphasCumprod, timesteps, xt);
  let x0 = predictedOriginalSample(predictionType, meanPart, xt, alpha, sigma);
  if (opts.clipDenoised === true) x0 = clamp(x0, -1, 1);
  const mean = posteriorMean(s, x0, xt, timesteps);
  let logVariance: Tensor;
  switch (varianceType) {
    case 'fixed_small':
    case 'fixed_large':
      logVariance = coefAt(fixedLogVariance(s, varianceType), timesteps, xt);
      break;
    case 'learned':
      if (varPart === null) throw new Error("varianceType 'learned' needs a variance part");
      logVariance = log(varPart);
      break;
    case 'learned_range': {
      if (varPart === null) throw new Error("varianceType 'learned_range' needs a variance part");
      const minLog = coefAt(s.posteriorLogVarianceClipped, timesteps, xt);
      const maxLog = coefAt(s.betas.map(Math.log), timesteps, xt);
      const frac = mul(add(varPart, 1), 0.5);
      logVariance = add(mul(frac, maxLog), mul(sub(1, frac), minLog));
      break;
    }
    default:
      throw new Error(`unknown variance type '${String(varianceType satisfies never)}'`);
  }
  return { mean, logVariance, predOriginalSample: x0 };
}

/**
 * p_θ(x_{t−1} | x_t) from a whole model output: C channels for fixed variances, 2C (mean part,
 * then variance part, on axis 1) for learned ones, as diffusers' `learned_range` and improved
 * DDPM's `p_mean_variance` split it.
 */
export function modelDistribution(
  s: NoiseSchedule,
  modelOutput: Tensor,
  xt: Tensor,
  timesteps: ArrayLike<number>,
  opts: ModelDistributionOptions = {},
): ModelDistribution {
  if (isLearned(opts.varianceType ?? 'fixed_small')) {
    const [m, v] = splitLearnedVariance(modelOutput, xt.shape[1]!);
    return modelDistributionFromParts(s, m, v, xt, timesteps, opts);
  }
  return modelDistributionFromParts(s, modelOutput, null, xt, timesteps, opts);
}

/** KL(q(x_T | x_0) ‖ N(0, I)) per batch element, in bits per dimension (improved DDPM `_prior_bpd`). */
export function priorBpd(s: NoiseSchedule, x0: Tensor): Tensor {
  const T = s.numTrainTimesteps;
  const ts = new Array<number>(x0.shape[0]!).fill(T - 1);
  const qMean = mul(coefAt(s.sqrtAlphasCumprod, ts, x0), x0);
  const logVar = Math.log1p(-s.alphasCumprod[T - 1]!);
  return mul(meanFlat(normalKl(qMean, logVar, scalarLike(x0, 0), 0)), 1 / LN2);
}

export interface VbTermOptions extends ModelDistributionOptions {
  decoder?: DecoderType;
  /** Levels of the data for the discretized decoder (256). */
  bins?: number;
}

/**
 * One term of the bound per batch element, in bits per dimension (improved DDPM `_vb_terms_bpd`):
 * KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) where t > 0 and the decoder NLL −log p_θ(x_0 | x_1)
 * where t = 0. The true posterior uses the clipped log-variance. Takes the model's distribution,
 * so a caller can build it with a stop-gradient on the mean (the hybrid loss).
 */
export function vbTermBpd(
  s: NoiseSchedule,
  x0: Tensor,
  xt: Tensor,
  timesteps: ArrayLike<number>,
  model: ModelDistribution,
  opts: Pick<VbTermOptions, 'decoder' | 'bins'> = {},
): Tensor {
  const trueMean = posteriorMean(s, x0, xt, timesteps);
  const trueLogVar = coefAt(s.posteriorLogVarianceClipped, timesteps, x0);
  const kl = mul(meanFlat(normalKl(trueMean, trueLogVar, model.mean, model.logVariance)), 1 / LN2);
  const anyDecoder = Array.from(timesteps).some((t) => t === 0);
  if (!anyDecoder) return kl;
  const logScales = mul(model.logVariance, 0.5);
  const ll =
    (opts.decoder ?? 'discretized') === 'discretized'
      ? discretizedGaussianLogLikelihood(x0, model.mean, logScales, { bins: opts.bins ?? 256 })
      : gaussianLogLikelihood(x0, model.mean, logScales);
  const decoderNll = mul(meanFlat(ll), -1 / LN2);
  const isZero = eq(
    tensor(Float64Array.from(timesteps), [x0.shape[0]!], { dtype: x0.dtype, backend: x0.backend }),
    0,
  );
  return where(isZero, decoderNll, kl);
}

/** A model as the bound sees it: (x_t, per-sample timesteps) -> output (C or 2C channels). */
export type VlbModel = (xt: Tensor, timesteps: readonly number[]) => Tensor;

export interface VlbOptions extends VbTermOptions {
  /** Noise source for q(x_t | x_0) at each timestep; or give `seed`. */
  generator?: Generator;
  seed?: number;
}

/** Every term of the bound for a batch, in bits per dimension (arrays over the batch). */
export interface VlbResult {
  /** terms[t][b]: the KL term L_{t−1} for t > 0 (index), the decoder NLL L_0 for t = 0. */
  terms: Float64Array[];
  /** L_T per batch element. */
  prior: Float64Array;
  /** prior + Σ_t terms[t], per batch element: an upper bound on −log₂ p_θ(x_0) / D. */
  total: Float64Array;
  /** mean-squared error of x̂_0 and of ε̂ at each t (diagnostics, as improved DDPM reports). */
  x0Mse: Float64Array[];
  epsMse: Float64Array[];
}

function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a);
}

/**
 * The full variational bound of x0 under a model (improved DDPM `calc_bpd_loop`): for every
 * t = T−1 … 0, x_t ~ q(x_t | x_0) with noise from the generator, one model call, one term.
 * Runs without gradients; each step's tensors are freed as it goes.
 */
export async function vlbTerms(
  s: NoiseSchedule,
  model: VlbModel,
  x0: Tensor,
  opts: VlbOptions = {},
): Promise<VlbResult> {
  const T = s.numTrainTimesteps;
  const B = x0.shape[0]!;
  const gen = opts.generator ?? new Generator(opts.seed ?? 0);
  const terms = new Array<Float64Array>(T);
  const x0Mse = new Array<Float64Array>(T);
  const epsMse = new Array<Float64Array>(T);
  for (let t = T - 1; t >= 0; t--) {
    const ts = new Array<number>(B).fill(t);
    const step = tidy(() =>
      noGrad(() => {
        const noise = randn(x0.shape, { generator: gen, dtype: x0.dtype, backend: x0.backend });
        const xt = addNoise(s, x0, noise, ts);
        const dist = modelDistribution(s, model(xt, ts), xt, ts, opts);
        const alpha = s.sqrtAlphasCumprod[t]!;
        const sigma = s.sqrtOneMinusAlphasCumprod[t]!;
        const epsHat = predictedEpsilon('sample', dist.predOriginalSample, xt, alpha, sigma);
        return {
          vb: vbTermBpd(s, x0, xt, ts, dist, opts),
          x0Mse: meanFlat(square(sub(dist.predOriginalSample, x0))),
          epsMse: meanFlat(square(sub(epsHat, noise))),
        };
      }),
    );
    terms[t] = toF64(await step.vb.data());
    x0Mse[t] = toF64(await step.x0Mse.data());
    epsMse[t] = toF64(await step.epsMse.data());
    step.vb.dispose();
    step.x0Mse.dispose();
    step.epsMse.dispose();
  }
  const priorT = tidy(() => noGrad(() => priorBpd(s, x0)));
  const prior = toF64(await priorT.data());
  priorT.dispose();
  const total = prior.map((p, b) => terms.reduce((acc, term) => acc + term[b]!, p));
  return { terms, prior, total, x0Mse, epsMse };
}

/** The bound in bits per dimension averaged over the batch: an upper bound on the NLL. */
export async function nllBitsPerDim(
  s: NoiseSchedule,
  model: VlbModel,
  x0: Tensor,
  opts: VlbOptions = {},
): Promise<number> {
  const { total } = await vlbTerms(s, model, x0, opts);
  return total.reduce((a, b) => a + b, 0) / total.length;
}
