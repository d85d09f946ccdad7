/**
 * Training objectives: L_simple (Ho et al. 2020, Algorithm 1 and eq. 14) for ε-, x_0- and
 * v-prediction, min-SNR-γ weighting (Hang et al. 2023), and the hybrid objective
 * L_simple + λ L_vlb of improved DDPM (Nichol & Dhariwal 2021) for learned variances.
 * The variational bound itself lives in vlb.ts and is re-exported from here.
 */
import { add, mean, mul, square, sub, Tensor, tensor } from '../engine/index.js';
import { addNoise, getVelocity, type PredictionType } from './forward.js';
import type { NoiseSchedule } from './schedule.js';
import {
  meanFlat,
  modelDistributionFromParts,
  type DecoderType,
  type ModelVarType,
  splitLearnedVariance,
  vbTermBpd,
} from './vlb.js';

export * from './vlb.js';

/** What the model is trained to output: ε, x_0, or v = √ᾱ_t ε − √(1 − ᾱ_t) x_0. */
export function lossTarget(
  s: NoiseSchedule,
  predictionType: PredictionType,
  x0: Tensor,
  noise: Tensor,
  timesteps: ArrayLike<number>,
): Tensor {
  switch (predictionType) {
    case 'epsilon':
      return noise;
    case 'sample':
      return x0;
    case 'v_prediction':
      return getVelocity(s, x0, noise, timesteps);
    default:
      throw new Error(`unknown prediction_type '${String(predictionType satisfies never)}'`);
  }
}

function weightTensor(w: ArrayLike<number> | Tensor, like: Tensor): Tensor {
  const B = like.shape[0]!;
  const n = w instanceof Tensor ? w.size : w.length;
  if (n !== B) throw new Error(`${n} loss weights for a batch of ${B}`);
  if (!(w instanceof Tensor)) {
    return tensor(Float64Array.from(w), [B], { dtype: like.dtype, backend: like.backend });
  }
  return w.rank === 1 ? w : w.reshape([B]);
}

/**
 * Mean squared error per batch element (mean over every other axis): [B]. With no weights,
 * `mean` of this is the MSE over all elements.
 */
export function perSampleMse(output: Tensor, target: Tensor): Tensor {
  return meanFlat(square(sub(output, target)));
}

/**
 * L_simple: mean over all elements of (output − target)², or with per-sample weights w_b,
 * mean_b(w_b · mean over the other axes of (output − target)²) (diffusers' min-SNR reduction).
 */
export function simpleLoss(
  output: Tensor,
  target: Tensor,
  weights?: ArrayLike<number> | Tensor | null,
): Tensor {
  const per = perSampleMse(output, target);
  return mean(
    weights === undefined || weights === null ? per : mul(per, weightTensor(weights, per)),
  );
}

/** SNR_t = ᾱ_t / (1 − ᾱ_t) for each timestep (diffusers' `compute_snr`). */
export function computeSnr(s: NoiseSchedule, timesteps: ArrayLike<number>): Float64Array {
  return Float64Array.from(timesteps, (t) => {
    const a = s.alphasCumprod[t];
    if (a === undefined || !Number.isInteger(t)) throw new Error(`timestep ${t} out of range`);
    return a / (1 - a);
  });
}

/**
 * Min-SNR-γ loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
 * Strategy", arXiv 2303.09556, §3.4): the x_0-space weight is min(SNR_t, γ). Since
 * ‖ε − ε̂‖² = SNR ‖x_0 − x̂_0‖² and ‖v − v̂‖² = (SNR + 1) ‖x_0 − x̂_0‖², the same weighting in the
 * other parameterizations is
 *   ε: min(SNR, γ)/SNR,   x_0 ('sample'): min(SNR, γ),   v: min(SNR, γ)/(SNR + 1)
 * — as in diffusers' examples/text_to_image/train_text_to_image.py (`mse_loss_weights`:
 * stack([snr, γ]).min, then `/ snr` for epsilon and `/ (snr + 1)` for v_prediction, unchanged
 * for sample). At SNR = 0 (zero terminal SNR) the ε weight is its limit, 1.
 */
export function minSnrWeights(
  s: NoiseSchedule,
  timesteps: ArrayLike<number>,
  gamma: number,
  predictionType: PredictionType,
): Float64Array {
  if (!(gamma > 0)) throw new Error(`snr gamma must be positive, got ${gamma}`);
  return computeSnr(s, timesteps).map((snr) => {
    const clipped = Math.min(snr, gamma);
    switch (predictionType) {
      case 'epsilon':
        return snr <= gamma ? 1 : gamma / snr;
      case 'sample':
        return clipped;
      case 'v_prediction':
        return Number.isFinite(snr) ? clipped / (snr + 1) : 0;
      default:
        throw new Error(`unknown prediction_type '${String(predictionType satisfies never)}'`);
    }
  });
}

export interface TrainingLossInput {
  /** Clean data [B, C, ...]. */
  x0: Tensor;
  /** The ε used to make x_t. */
  noise: Tensor;
  /** One integer timestep per batch element, 0..T−1. */
  timesteps: ArrayLike<number>;
  /** The model's output at x_t: C channels, or 2C for learned variances. */
  modelOutput: Tensor;
  /** x_t if the caller has it (needed only for learned variances; recomputed when absent). */
  xt?: Tensor;
}

export interface TrainingLossOptions {
  predictionType?: PredictionType;
  /** Learned variances ('learned', 'learned_range') switch to the hybrid objective. */
  varianceType?: ModelVarType;
  /** Min-SNR-γ weighting of the MSE term (γ = 5 in the paper); off when null/undefined. */
  snrGamma?: number | null;
  /** Per-sample weights (e.g. importance-sampling weights of the timestep sampler). */
  weights?: ArrayLike<number> | Tensor | null;
  /**
   * λ of L_hybrid = L_simple + λ L_vlb (0.001). L_vlb is a sum over T terms estimated by one term
   * at a uniformly drawn t, so the per-sample term (in bits/dim) is scaled by λ T, which is
   * improved DDPM's `vb *= num_timesteps / 1000` for λ = 0.001.
   */
  vlbWeight?: number;
  decoder?: DecoderType;
}

/** The loss (a scalar to back-propagate) and its per-sample parts, for logging and resampling. */
export interface TrainingLossTerms {
  loss: Tensor;
  /** Per-sample MSE of the (mean part of the) output against its target, unweighted: [B]. */
  mse: Tensor;
  /** Per-sample variational-bound term in bits/dim (learned variances only): [B]. */
  vb: Tensor | null;
}

/**
 * DDPM Algorithm 1's loss for a model output at x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: the MSE against
 * ε, x_0 or v, optionally min-SNR weighted; for learned variances, plus λ T times the VLB term of
 * that t computed with the output's mean part detached, so the VLB trains only the variance
 * (improved DDPM §3.1, `training_losses` with `frozen_out`).
 */
export function trainingLossTerms(
  s: NoiseSchedule,
  input: TrainingLossInput,
  opts: TrainingLossOptions = {},
): TrainingLossTerms {
  const predictionType = opts.predictionType ?? 'epsilon';
  const varianceType = opts.varianceType ?? 'fixed_small';
  const { x0, noise, timesteps } = input;
  const learned = varianceType === 'learned' || varianceType === 'learned_range';
  const [meanPart, varPart] = learned
    ? splitLearnedVariance(input.modelOutput, x0.shape[1]!)
    : [input.modelOutput, null];
  if (!meanPart.sameShape(x0)) {
    throw new Error(
      `model output [${meanPart.shape.join(', ')}] does not match x0 [${x0.shape.join(', ')}]`,
    );
  }
  const target = lossTarget(s, predictionType, x0, noise, timesteps);
  const mse = perSampleMse(meanPart, target);
  let perSample = mse;
  if (opts.snrGamma !== undefined && opts.snrGamma !== null) {
    const w = minSnrWeights(s, timesteps, opts.snrGamma, predictionType);
    perSample = mul(perSample, weightTensor(w, mse));
  }
  let vb: Tensor | null = null;
  if (varPart !== null) {
    const xt = input.xt ?? addNoise(s, x0, noise, timesteps);
    const dist = modelDistributionFromParts(s, meanPart.detach(), varPart, xt, timesteps, {
      predictionType,
      varianceType,
    });
    vb = vbTermBpd(s, x0, xt, timesteps, dist, { decoder: opts.decoder ?? 'discretized' });
    const scale = (opts.vlbWeight ?? 0.001) * s.numTrainTimesteps;
    perSample = add(perSample, mul(vb, scale));
  }
  if (opts.weights !== undefined && opts.weights !== null)
    perSample = mul(perSample, weightTensor(opts.weights, mse));
  return { loss: mean(perSample), mse, vb };
}

/** The scalar training loss of `trainingLossTerms`. */
export function trainingLoss(
  s: NoiseSchedule,
  input: TrainingLossInput,
  opts: TrainingLossOptions = {},
): Tensor {
  return trainingLossTerms(s, input, opts).loss;
}
