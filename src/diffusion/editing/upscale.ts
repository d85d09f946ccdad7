/**
 * Super-resolution by iterative refinement (SR3; Saharia et al. 2021, "Image Super-Resolution via
 * Iterative Refinement", §2): the denoiser sees x_t [B, C, H, W] with the low-resolution image y
 * [B, C, H/f, W/f], bicubic-upsampled to H×W, joined on the channels (in_channels = 2C), and
 * samples p(x | y) by the ordinary reverse process. Training pairs come from the high-resolution
 * images themselves: y = box_f(x_0), the mean of each f×f block. The condition may be noised
 * (Gaussian conditioning augmentation, Ho et al. 2022, "Cascaded Diffusion Models", §3.2) at a
 * fixed level σ_a, in training and in sampling alike:
 *
 *   c = √(1 − σ_a²) · bicubic_f(y) + σ_a · ε_c,   ε_c ~ N(0, I)          (σ_a = 0: c = bicubic_f(y))
 *
 * Bicubic is PyTorch's `interpolate(mode='bicubic', align_corners=False)`: Keys' cubic
 * convolution with a = −0.75 at the source position (o + ½)/f − ½, indices clamped at the edges.
 */
import { avgPool2d, matmul, noGrad, type Tensor, tensor, tidy } from '../../engine/index.js';
import type { Conditioning, Denoiser } from '../../nn/models/index.js';
import type { Scheduler } from '../samplers/index.js';
import { EditInputError, startNoise } from './inputs.js';
import { type EditSamplingOptions, runSteps, withNoise } from './loop.js';

/** The upscaling factors `sumi train --task upscale` offers. */
export const UPSCALE_FACTORS: readonly number[] = [2, 4];

/** What an SR3 model was trained with, and samples with. */
export interface UpscaleSettings {
  /** High- over low-resolution side (2 or 4). */
  factor: number;
  /** σ_a of the conditioning augmentation, in [0, 1) (0: none). */
  noiseAugmentation: number;
}

/** Throws unless the factor is one of UPSCALE_FACTORS and σ_a is in [0, 1). */
export function checkUpscaleSettings(s: UpscaleSettings): void {
  if (!UPSCALE_FACTORS.includes(s.factor)) {
    throw new EditInputError(
      `upscaling factor ${s.factor}: one of ${UPSCALE_FACTORS.join(', ')} is supported`,
    );
  }
  if (!(s.noiseAugmentation >= 0 && s.noiseAugmentation < 1)) {
    throw new EditInputError(
      `noise augmentation σ_a must be in [0, 1) (0: none), got ${s.noiseAugmentation}`,
    );
  }
}

/** Keys' cubic convolution kernel W(x) with a = −0.75 (PyTorch's bicubic). */
function cubic(x: number, a = -0.75): number {
  const d = Math.abs(x);
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

/**
 * The [out, in] matrix of bicubic resampling along one axis (out = in · factor): row o holds the
 * weights W(s − i) of the source pixels i around s = (o + ½)/factor − ½, edges clamped.
 */
export function bicubicMatrix(inSize: number, factor: number): Float32Array {
  const outSize = inSize * factor;
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const s = (o + 0.5) / factor - 0.5;
    const i0 = Math.floor(s);
    const t = s - i0;
    for (let k = -1; k <= 2; k++) {
      const i = Math.min(inSize - 1, Math.max(0, i0 + k));
      m[o * inSize + i]! += cubic(t - k);
    }
  }
  return m;
}

/** Bicubic upsampling of [B, C, h, w] by an integer factor: R_h · x · R_wᵀ. */
export function bicubicUpsample(x: Tensor, factor: number): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  const opts = { dtype: x.dtype, backend: x.backend };
  return tidy(() => {
    const rows = tensor(bicubicMatrix(h, factor), [h * factor, h], opts);
    const cols = tensor(bicubicMatrix(w, factor), [w * factor, w], opts);
    return matmul(matmul(rows, x), cols.transpose());
  });
}

/** The low-resolution image of a training pair: the mean of each factor×factor block. */
export function downsampleBox(x: Tensor, factor: number): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  if (h % factor !== 0 || w % factor !== 0) {
    throw new EditInputError(
      `a ${w}x${h} image does not divide into ${factor}x${factor} blocks for the low resolution`,
    );
  }
  return avgPool2d(x, factor);
}

/**
 * The condition c of the module comment from the low-resolution images [B, C, h, w]: bicubic
 * to [B, C, h·f, w·f], mixed with `eps` (the same shape; needed when σ_a > 0).
 */
export function upscaleCondition(low: Tensor, s: UpscaleSettings, eps: Tensor | null): Tensor {
  return tidy(() => {
    const up = bicubicUpsample(low, s.factor);
    const a = s.noiseAugmentation;
    if (a === 0) return up;
    if (eps === null || !eps.sameShape(up)) {
      throw new Error(
        `upscaleCondition: σ_a = ${a} needs noise of shape [${up.shape.join(', ')}]` +
          (eps === null ? '' : `, got [${eps.shape.join(', ')}]`),
      );
    }
    return up.mul(Math.sqrt(1 - a * a)).add(eps.mul(a));
  });
}

export interface UpscaleOptions
  extends Omit<EditSamplingOptions, 'guidanceScale'>, UpscaleSettings {
  /** Any other conditioning of the denoiser (class labels, ...). */
  cond?: Conditioning;
}

/**
 * SR3 sampling: high-resolution images [B, C, h·f, w·f] for the low-resolution `low` [B, C, h, w]
 * in [−1, 1]. The noise draws are of the high-resolution shape, in order: x_T, ε_c (when σ_a > 0),
 * then the sampler's.
 */
export function upscale(
  denoiser: Denoiser,
  scheduler: Scheduler,
  low: Tensor,
  opts: UpscaleOptions,
): Tensor {
  checkUpscaleSettings(opts);
  const [b, c, h, w] = low.shape as [number, number, number, number];
  const [inCh, H, W] = denoiser.sampleShape;
  if (inCh !== 2 * c) {
    throw new EditInputError(
      `the model takes ${inCh} input channels; an SR3 upscaler of ${c}-channel images takes ` +
        `${2 * c} (x_t and the upsampled image)`,
    );
  }
  if (h * opts.factor !== H || w * opts.factor !== W) {
    throw new EditInputError(
      `the low-resolution image is ${w}x${h} pixels; the upscaler takes ${W / opts.factor}x` +
        `${H / opts.factor} (${W}x${H} / ${opts.factor})`,
    );
  }
  return noGrad(() =>
    tidy(() => {
      scheduler.setTimesteps(opts.numInferenceSteps);
      const eps = startNoise(opts.noise, [b, c, H, W], 'upscale');
      const cond: Conditioning = {
        ...opts.cond,
        concatImage: upscaleCondition(low, opts, opts.noiseAugmentation > 0 ? opts.noise() : null),
      };
      const model = (x: Tensor, t: number): Tensor => denoiser.denoise(x, t, cond);
      return runSteps(scheduler, model, eps.mul(scheduler.initNoiseSigma), {
        from: 0,
        stepOptions: withNoise(scheduler, opts, 1),
        onStep: opts.onStep,
      });
    }),
  );
}
