/**
 * Classifier-free guidance (Ho & Salimans 2022) as a sampler callback: one batched forward of
 * [x; x] under [c; ∅] gives ε_c and ε_∅, and
 *
 *   ε̃ = ε_∅ + w (ε_c − ε_∅)
 *
 * (on the model output whatever its parameterization, as diffusers' pipelines do). Guidance
 * rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
 * eqs. 15–16) brings the per-sample standard deviation back to that of the conditional output:
 *
 *   ε_r = ε̃ · std(ε_c) / std(ε̃);   ε = φ ε_r + (1 − φ) ε̃
 *
 * (std over all but the batch axis, with Bessel's correction, as diffusers' rescale_noise_cfg).
 * With w = 1 no unconditional pass runs and the result is the conditional output exactly.
 *
 * A learned-variance model outputs [B, 2C, ...] (mean part, then Σ_θ's part): guidance and the
 * rescale act on the mean parts only and the conditional variance part is kept,
 * [ε̃; v_c], as diffusers' DeepFloyd IF pipeline does.
 */
import { add, concat, div, mul, slice, sqrt, sub, type Tensor, variance } from '../engine/index.js';
import type { Conditioning, Denoiser } from '../nn/models/index.js';
import { concatConditioning } from './conditioning.js';
import { type DenoiseModel, mapMeanPart, meanPartOf } from './samplers/index.js';

export interface GuidanceOptions {
  /** The conditioning c of the n images. */
  cond: Conditioning;
  /** The null (or negative) conditioning ∅ of the n images; needed when scale ≠ 1. */
  uncond?: Conditioning | null;
  /** The guidance scale w (1: none, 0: unconditional). */
  scale?: number;
  /** φ of guidance rescale, in [0, 1] (0: off). */
  rescale?: number;
}

/** ε_r = ε̃ · std(ε_c) / std(ε̃), blended with ε̃ by φ (per sample; see the module comment). */
export function rescaleGuidance(guided: Tensor, cond: Tensor, phi: number): Tensor {
  if (phi === 0) return guided;
  const axes = Array.from({ length: guided.rank - 1 }, (_, i) => i + 1);
  const stdCond = sqrt(variance(cond, axes, true, 1));
  const stdGuided = sqrt(variance(guided, axes, true, 1));
  const rescaled = mul(guided, div(stdCond, stdGuided));
  return add(mul(rescaled, phi), mul(guided, 1 - phi));
}

/**
 * The sampler callback of a denoiser under conditioning, with classifier-free guidance. Only its
 * `denoise` is called (a `SamplingReplicas` splitting the calls over two threads will do).
 */
export function guidedDenoiser(
  denoiser: Pick<Denoiser, 'denoise'>,
  opts: GuidanceOptions,
): DenoiseModel {
  const w = opts.scale ?? 1;
  const phi = opts.rescale ?? 0;
  if (!Number.isFinite(w)) throw new Error(`guidance scale must be a finite number, got ${w}`);
  if (!(phi >= 0 && phi <= 1)) throw new Error(`guidance rescale must be in [0, 1], got ${phi}`);
  const cond = opts.cond;
  if (w === 1) return (x, t) => denoiser.denoise(x, t, cond);
  const uncond = opts.uncond ?? null;
  if (uncond === null) {
    throw new Error('classifier-free guidance needs the null conditioning of the images');
  }
  const both = concatConditioning(cond, uncond);
  return (x, t) => {
    const n = x.shape[0]!;
    const out = denoiser.denoise(concat([x, x], 0), t, both);
    const channels = x.shape[1]!;
    const u = meanPartOf(slice(out, [n], [2 * n]), channels);
    return mapMeanPart(slice(out, [0], [n]), channels, (c) =>
      rescaleGuidance(add(u, mul(sub(c, u), w)), c, phi),
    );
  };
}
