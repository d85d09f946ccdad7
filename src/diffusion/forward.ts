/**
 * The forward process on tensors: q(x_t | x_0), the posterior q(x_{t−1} | x_t, x_0), and the
 * conversions between the ε-, x_0- and v-parameterizations. Timesteps are integers per batch
 * element; coefficients come from a NoiseSchedule.
 */
import { add, mul, sub, type Tensor, tensor } from '../engine/index.js';
import type { NoiseSchedule } from './schedule.js';

export type PredictionType = 'epsilon' | 'sample' | 'v_prediction';

/** c[t_b] for each batch element b, shaped [B, 1, 1, ...] to broadcast against `like`. */
export function coefAt(coef: Float64Array, timesteps: ArrayLike<number>, like: Tensor): Tensor {
  const B = like.shape[0]!;
  if (timesteps.length !== B) {
    throw new Error(`${timesteps.length} timesteps for a batch of ${B}`);
  }
  const vals = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const t = timesteps[b]!;
    if (!Number.isInteger(t) || t < 0 || t >= coef.length) {
      throw new Error(`timestep ${t} is outside [0, ${coef.length - 1}]`);
    }
    vals[b] = coef[t]!;
  }
  const shape = [B, ...like.shape.slice(1).map(() => 1)];
  return tensor(vals, shape, { dtype: like.dtype, backend: like.backend });
}

/** A map of (x_0, ε) through the forward process at integer timesteps, one per batch element. */
export type ForwardMap = (
  s: NoiseSchedule,
  x0: Tensor,
  noise: Tensor,
  timesteps: ArrayLike<number>,
) => Tensor;

/** (√ᾱ_t, √(1 − ᾱ_t)) for each batch element, shaped as coefAt shapes them. */
function alphaSigmaAt(
  s: NoiseSchedule,
  timesteps: ArrayLike<number>,
  like: Tensor,
): [Tensor, Tensor] {
  return [
    coefAt(s.sqrtAlphasCumprod, timesteps, like),
    coefAt(s.sqrtOneMinusAlphasCumprod, timesteps, like),
  ];
}

/** x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (DDPM eq. 4). */
export const addNoise: ForwardMap = (s, x0, noise, timesteps) => {
  const [a, b] = alphaSigmaAt(s, timesteps, x0);
  return add(mul(a, x0), mul(b, noise));
};

/** v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022). */
export const getVelocity: ForwardMap = (s, x0, noise, timesteps) => {
  const [a, b] = alphaSigmaAt(s, timesteps, x0);
  return sub(mul(a, noise), mul(b, x0));
};

/**
 * A conversion of a model output at x_t, with α = √ᾱ_t and σ = √(1 − ᾱ_t) (numbers or per-sample
 * tensors), to another parameterization.
 */
export type OutputConversion = (
  type: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  alpha: number | Tensor,
  sigma: number | Tensor,
) => Tensor;

/** z from x_t = c y + d z: (x_t − c y)/d. */
function solveFor(sample: Tensor, y: Tensor, c: number | Tensor, d: number | Tensor): Tensor {
  return mul(sub(sample, mul(y, c)), typeof d === 'number' ? 1 / d : d.reciprocal());
}

/** x̂_0 from a model output: ε: (x_t − σ ε̂)/α;  sample: the output itself;  v: α x_t − σ v̂. */
export const predictedOriginalSample: OutputConversion = (
  type,
  modelOutput,
  sample,
  alpha,
  sigma,
) => {
  switch (type) {
    case 'epsilon':
      return solveFor(sample, modelOutput, sigma, alpha);
    case 'sample':
      return modelOutput;
    case 'v_prediction':
      return sub(mul(sample, alpha), mul(modelOutput, sigma));
    default:
      throw new Error(`unknown prediction_type '${String(type satisfies never)}'`);
  }
};

/** ε̂ from a model output: ε: itself;  sample: (x_t − α x̂_0)/σ;  v: α v̂ + σ x_t. */
export const predictedEpsilon: OutputConversion = (type, modelOutput, sample, alpha, sigma) => {
  switch (type) {
    case 'epsilon':
      return modelOutput;
    case 'sample':
      return solveFor(sample, modelOutput, alpha, sigma);
    case 'v_prediction':
      return add(mul(modelOutput, alpha), mul(sample, sigma));
    default:
      throw new Error(`unknown prediction_type '${String(type satisfies never)}'`);
  }
};

/** Mean of q(x_{t−1} | x_t, x_0) = coef1_t x_0 + coef2_t x_t (DDPM eq. 7). */
export function posteriorMean(
  s: NoiseSchedule,
  x0: Tensor,
  xt: Tensor,
  timesteps: ArrayLike<number>,
): Tensor {
  return add(
    mul(coefAt(s.posteriorMeanCoef1, timesteps, x0), x0),
    mul(coefAt(s.posteriorMeanCoef2, timesteps, xt), xt),
  );
}
