/**
 * Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis",
 * Algorithm 2 and §4.2): sampling from p(x_t | y) ∝ p(x_t) p_φ(y | x_t) replaces the score
 * ∇ log p(x_t) = −ε̂/√(1−ᾱ_t) with ∇ log p(x_t) + s ∇ log p_φ(y | x_t), i.e.
 *
 *   ε̂ ← ε̂ − s · √(1−ᾱ_t) · ∇_{x_t} log p_φ(y | x_t, t).
 *
 * The correction is made on the sampler callback, so every sampler uses it unchanged: each one
 * calls the model with the VP input x_t (the sigma samplers scale x_σ by 1/√(σ²+1) first) at a
 * timestep t that may be fractional (Karras sigmas, linspace spacing). ᾱ at such a t comes from
 * σ(t) interpolated linearly in log σ between the neighbouring training timesteps, the inverse of
 * the σ → t map of diffusers' `_sigma_to_t`. Models that predict x̂_0 or v get the same change
 * expressed in their parameterization (x̂_0 = (x_t − σ ε̂)/α, v̂ = (ε̂ − σ x_t)/α, α = √ᾱ, σ = √(1−ᾱ)).
 * A learned-variance output [B, 2C, ...] changes in its mean part only; Σ_θ's part is kept.
 */
import {
  cast,
  enableGrad,
  logSoftmax,
  mul,
  noGrad,
  oneHot,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  add,
} from '../engine/index.js';
import type { EncoderClassifierModel } from '../nn/models/index.js';
import type { PredictionType } from './forward.js';
import { type DenoiseModel, mapMeanPart } from './samplers/index.js';

export interface ClassifierGuidanceOptions {
  classifier: EncoderClassifierModel;
  /** The class to steer each image of the batch towards. */
  labels: readonly number[];
  /** Guidance scale s (0: the model's output unchanged). */
  scale: number;
  /** ᾱ of the diffusion model's training schedule (`scheduler.alphasCumprod`). */
  alphasCumprod: Float64Array;
  /** What the diffusion model predicts. */
  predictionType: PredictionType;
}

/**
 * ᾱ at a (possibly fractional) training timestep t: σ_i = √((1−ᾱ_i)/ᾱ_i), log σ interpolated
 * linearly between ⌊t⌋ and ⌈t⌉ (t clamped to [0, T−1]), ᾱ = 1/(1 + σ²). Exactly ᾱ_t at integer t.
 */
export function alphaCumprodAt(alphasCumprod: Float64Array, t: number): number {
  const last = alphasCumprod.length - 1;
  if (!Number.isFinite(t)) throw new Error(`classifier guidance: timestep ${t} is not finite`);
  const u = Math.min(last, Math.max(0, t));
  const lo = Math.floor(u);
  if (lo === u) return alphasCumprod[lo]!;
  const logSigma = (a: number): number => 0.5 * Math.log((1 - a) / a);
  const w = u - lo;
  const l = (1 - w) * logSigma(alphasCumprod[lo]!) + w * logSigma(alphasCumprod[lo + 1]!);
  return 1 / (1 + Math.exp(2 * l));
}

/**
 * Throws a one-line error when the classifier cannot judge samples of shape [C, H, W] (another
 * channel count, or another image size than the one it was trained at).
 */
export function checkClassifierFits(
  classifier: EncoderClassifierModel,
  sampleShape: readonly [number, number, number],
): void {
  const c = classifier.config;
  const [ch, h, w] = sampleShape;
  const size = c.sample_size;
  const [ch2, h2, w2] =
    size === null
      ? [c.in_channels, h, w]
      : typeof size === 'number'
        ? [c.in_channels, size, size]
        : [c.in_channels, ...size];
  if (ch !== ch2 || h !== h2 || w !== w2) {
    throw new Error(
      `classifier guidance: the classifier takes ${ch2}x${h2}x${w2} images, the diffusion ` +
        `model makes ${ch}x${h}x${w}`,
    );
  }
}

function checkLabels(labels: readonly number[], numClasses: number, batch: number): void {
  if (labels.length !== batch) {
    throw new Error(`classifier guidance: ${labels.length} labels for a batch of ${batch}`);
  }
  const bad = labels.find((y) => !Number.isInteger(y) || y < 0 || y >= numClasses);
  if (bad !== undefined) {
    throw new Error(
      `classifier guidance: class ${bad} is outside the classifier's 0..${numClasses - 1}`,
    );
  }
}

/**
 * ∇_x Σ_b log p_φ(y_b | x_b, t) [B, C, H, W] (in x's dtype): the per-image gradients, since the
 * classifier treats every image of the batch on its own. Runs under enableGrad, so it works
 * inside sampling's noGrad; the classifier's parameters are excluded from the graph for the call
 * and get no gradient.
 */
export function classifierLogProbGrad(
  classifier: EncoderClassifierModel,
  x: Tensor,
  t: number,
  labels: readonly number[],
): Tensor {
  const k = classifier.numClasses;
  checkLabels(labels, k, x.shape[0]!);
  const params = classifier.parameters();
  const flags = params.map((p) => p.requiresGrad);
  const dtype = classifier.convIn.weight.dtype;
  for (const p of params) p.requireGrad(false);
  try {
    return enableGrad(() =>
      tidy(() => {
        const leaf = noGrad(() => (x.dtype === dtype ? x.detach() : cast(x, dtype)));
        leaf.requireGrad();
        const ids = tensor(Int32Array.from(labels), [labels.length], {
          dtype: 'int32',
          backend: x.backend,
        });
        const logp = logSoftmax(classifier.forward(leaf, t), -1);
        sum(mul(logp, oneHot(ids, k, dtype === 'float64' ? 'float64' : 'float32'))).backward();
        const g = leaf.grad;
        if (g === null) throw new Error('classifier guidance: no gradient reached the input');
        const out = noGrad(() => (g.dtype === x.dtype ? g.alias() : cast(g, x.dtype)));
        leaf.zeroGrad();
        return out;
      }),
    );
  } finally {
    params.forEach((p, i) => p.requireGrad(flags[i]));
  }
}

/**
 * Wraps a sampler callback (x_t, t) -> model output with classifier guidance (see the module
 * comment). The classifier should be in eval mode (as loadModel returns it).
 */
export function classifierGuidance(
  denoise: DenoiseModel,
  opts: ClassifierGuidanceOptions,
): DenoiseModel {
  const { classifier, labels, scale, alphasCumprod, predictionType } = opts;
  if (!Number.isFinite(scale)) throw new Error(`classifier guidance: scale ${scale} is not finite`);
  const T = classifier.config.num_train_timesteps;
  if (classifier.config.time_conditioned && typeof T === 'number' && T !== alphasCumprod.length) {
    throw new Error(
      `classifier guidance: the classifier was trained on a ${T}-step schedule, the diffusion ` +
        `model has ${alphasCumprod.length} steps`,
    );
  }
  checkLabels(labels, classifier.numClasses, labels.length);
  return (x: Tensor, t: number): Tensor => {
    const out = denoise(x, t);
    if (scale === 0) return out;
    const [, c, h, w] = x.shape as [number, number, number, number];
    checkClassifierFits(classifier, [c, h, w]);
    const abar = alphaCumprodAt(alphasCumprod, t);
    const alpha = Math.sqrt(abar);
    const sigma = Math.sqrt(1 - abar);
    const grad = classifierLogProbGrad(classifier, x, t, labels);
    // Δε̂ = −s σ ∇ log p;  Δx̂_0 = −(σ/α) Δε̂;  Δv̂ = Δε̂/α.
    return mapMeanPart(out, c, (m) => {
      switch (predictionType) {
        case 'epsilon':
          return sub(m, mul(grad, scale * sigma));
        case 'sample':
          return add(m, mul(grad, (scale * sigma * sigma) / alpha));
        case 'v_prediction':
          return sub(m, mul(grad, (scale * sigma) / alpha));
        default:
          throw new Error(`unknown prediction_type '${String(predictionType satisfies never)}'`);
      }
    });
  };
}
