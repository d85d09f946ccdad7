/**
 * Inpainting with a U-Net trained for it (the layout of diffusers' inpainting U-Nets, and of
 * Stable Diffusion's inpainting model): the denoiser sees x_t [B, C, H, W] joined on the channels
 * with the masked image and the mask,
 *
 *   input = [x_t; x_0 ⊙ (1 − m); m]      (in_channels = 2C + 1; m = 1 where the image is repainted),
 *
 * so it knows what it keeps and fills in the rest itself, with no mask blending and no resampling.
 * The masked region of x_0 ⊙ (1 − m) is 0, the middle of [−1, 1] (diffusers' `image * (mask <
 * 0.5)`). Training draws a random mask per image (`randomMask`): a rectangle, or brush strokes as
 * in free-form inpainting (Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution",
 * Algorithm 1): a few polylines of random turns and lengths, drawn with a round brush. Sampling
 * (`inpaintWithModel`) is the ordinary reverse process under that condition; the kept region of
 * the result is the input's exactly (m ⊙ x + (1 − m) ⊙ x_0 after the last step).
 */
import { concat, expand, noGrad, type Tensor, tidy, where } from '../../engine/index.js';
import type { Conditioning, Denoiser } from '../../nn/models/index.js';
import { guidedDenoiser, type GuidanceOptions } from '../classifier-free.js';
import type { Scheduler } from '../samplers/index.js';
import { EditInputError, startNoise } from './inputs.js';
import { type EditSamplingOptions, runSteps, withNoise } from './loop.js';

/** The kinds of training mask. */
export const MASK_KINDS = ['rectangle', 'brush'] as const;
export type MaskKind = (typeof MASK_KINDS)[number];

/** What an inpainting model was trained with (sumi.json `inpaint`). */
export interface InpaintSettings {
  /** The training masks, drawn with equal probability. */
  masks: MaskKind[];
}

/** `sumi train --task inpaint`'s settings: rectangles and brush strokes. */
export const DEFAULT_INPAINT_SETTINGS: InpaintSettings = { masks: ['rectangle', 'brush'] };

/** Throws unless the settings name one or more distinct mask kinds of MASK_KINDS. */
export function checkInpaintSettings(s: InpaintSettings): void {
  const ok =
    Array.isArray(s.masks) &&
    s.masks.length > 0 &&
    s.masks.every((k) => (MASK_KINDS as readonly string[]).includes(k)) &&
    new Set(s.masks).size === s.masks.length;
  if (!ok) {
    throw new EditInputError(
      `inpainting masks: one or more of ${MASK_KINDS.join(', ')}, got ${JSON.stringify(s.masks)}`,
    );
  }
}

/** The input channels of an inpainting model of C-channel images: x_t, the masked image, the mask. */
export function inpaintingChannels(c: number): number {
  return 2 * c + 1;
}

/** Uniform draws in [0, 1) one `randomMask` consumes. */
export const MASK_DRAWS = 64;

/**
 * A random training mask [h·w] (1: repaint) from MASK_DRAWS uniforms u in [0, 1): the kind by
 * u_0 among `kinds`, then
 *   rectangle: sides uniform in [¼, 1] of the image's, at a uniform position (a whole-image mask
 *     teaches the model to generate from nothing);
 *   brush: 1–3 strokes, each from a uniform start through 2–5 segments of uniform direction and
 *     length in [0.1, 0.4] of the side, with a round brush of radius in [0.05, 0.12] of the side
 *     (every pixel whose centre lies within the radius of a segment).
 * Pure: the same draws give the same mask.
 */
export function randomMask(
  u: ArrayLike<number>,
  h: number,
  w: number,
  kinds: readonly MaskKind[] = DEFAULT_INPAINT_SETTINGS.masks,
): Float32Array {
  if (u.length < MASK_DRAWS) {
    throw new Error(`randomMask: ${MASK_DRAWS} uniform draws needed, got ${u.length}`);
  }
  let k = 0;
  const next = (): number => u[k++]!;
  const m = new Float32Array(h * w);
  const kind = kinds[Math.min(kinds.length - 1, Math.floor(next() * kinds.length))]!;
  if (kind === 'rectangle') {
    const rh = Math.max(1, Math.round(h * (0.25 + 0.75 * next())));
    const rw = Math.max(1, Math.round(w * (0.25 + 0.75 * next())));
    const top = Math.min(h - rh, Math.floor(next() * (h - rh + 1)));
    const left = Math.min(w - rw, Math.floor(next() * (w - rw + 1)));
    for (let y = top; y < top + rh; y++) m.fill(1, y * w + left, y * w + left + rw);
    return m;
  }
  const side = Math.min(h, w);
  const strokes = 1 + Math.floor(next() * 3);
  for (let s = 0; s < strokes; s++) {
    const radius = side * (0.05 + 0.07 * next());
    let x = next() * w;
    let y = next() * h;
    const segments = 2 + Math.floor(next() * 4);
    for (let g = 0; g < 5; g++) {
      // Every stroke draws 5 (angle, length) pairs so the draws per stroke are fixed.
      const angle = 2 * Math.PI * next();
      const length = side * (0.1 + 0.3 * next());
      if (g >= segments) continue;
      const x1 = Math.min(w, Math.max(0, x + length * Math.cos(angle)));
      const y1 = Math.min(h, Math.max(0, y + length * Math.sin(angle)));
      paintSegment(m, h, w, x, y, x1, y1, radius);
      x = x1;
      y = y1;
    }
  }
  return m;
}

/** Sets to 1 the pixels whose centre (i + ½, j + ½) lies within r of the segment (x0,y0)–(x1,y1). */
function paintSegment(
  m: Float32Array,
  h: number,
  w: number,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  r: number,
): void {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy;
  const yLo = Math.max(0, Math.floor(Math.min(y0, y1) - r));
  const yHi = Math.min(h - 1, Math.ceil(Math.max(y0, y1) + r));
  const xLo = Math.max(0, Math.floor(Math.min(x0, x1) - r));
  const xHi = Math.min(w - 1, Math.ceil(Math.max(x0, x1) + r));
  for (let j = yLo; j <= yHi; j++) {
    for (let i = xLo; i <= xHi; i++) {
      const px = i + 0.5;
      const py = j + 0.5;
      // The closest point of the segment: x0 + t·d with t = clamp(((p − x0)·d) / |d|², 0, 1).
      const t = len2 === 0 ? 0 : Math.min(1, Math.max(0, ((px - x0) * dx + (py - y0) * dy) / len2));
      const ex = px - (x0 + t * dx);
      const ey = py - (y0 + t * dy);
      if (ex * ex + ey * ey <= r * r) m[j * w + i] = 1;
    }
  }
}

/**
 * The image joined to x_t: [x_0 ⊙ (1 − m); m] of `image` [B, C, H, W] and `mask` (1: repaint)
 * [B or 1, 1, H, W], so [B, C + 1, H, W].
 */
export function inpaintingCondition(image: Tensor, mask: Tensor): Tensor {
  const [b, , h, w] = image.shape as [number, number, number, number];
  if (mask.rank !== 4 || mask.shape[1] !== 1 || mask.shape[2] !== h || mask.shape[3] !== w) {
    throw new EditInputError(
      `the mask is [${mask.shape.join(', ')}]; the images are [${image.shape.join(', ')}], ` +
        `and an inpainting model takes a mask of [${b} or 1, 1, ${h}, ${w}]`,
    );
  }
  return tidy(() => {
    const m = expand(mask, [b, 1, h, w]);
    return concat([where(m, 0, image), m], 1);
  });
}

export interface InpaintWithModelOptions extends Omit<EditSamplingOptions, 'guidanceScale'> {
  /** 1 where the image is repainted, 0 where it is kept: [B or 1, 1, H, W]. */
  mask: Tensor;
  /**
   * The denoiser's other conditioning (class labels, a prompt's encoding) and classifier-free
   * guidance; the masked image and mask are added to both c and ∅. Default: none.
   */
  guidance?: GuidanceOptions;
}

/**
 * Inpaints `image` [B, C, H, W] in [−1, 1] where `mask` is 1 with a denoiser trained to inpaint
 * (in_channels = 2C + 1, see the module comment): plain sampling from x_T = the first noise draw
 * under the masked image and mask, then the kept region replaced by the input's.
 */
export function inpaintWithModel(
  denoiser: Denoiser,
  scheduler: Scheduler,
  image: Tensor,
  opts: InpaintWithModelOptions,
): Tensor {
  const c = image.shape[1]!;
  const inCh = denoiser.sampleShape[0];
  if (inCh !== inpaintingChannels(c)) {
    throw new EditInputError(
      `the model takes ${inCh} input channels; an inpainting model of ${c}-channel images takes ` +
        `${inpaintingChannels(c)} (x_t, the masked image and the mask)`,
    );
  }
  return noGrad(() =>
    tidy(() => {
      scheduler.setTimesteps(opts.numInferenceSteps);
      const eps = startNoise(opts.noise, image.shape, 'inpaintWithModel');
      const concatImage = inpaintingCondition(image, opts.mask);
      const g = opts.guidance ?? { cond: {} };
      const withImage = (cond: Conditioning): Conditioning => ({ ...cond, concatImage });
      const model = guidedDenoiser(denoiser, {
        ...g,
        cond: withImage(g.cond),
        uncond: g.uncond === undefined || g.uncond === null ? g.uncond : withImage(g.uncond),
      });
      const x = runSteps(scheduler, model, eps.mul(scheduler.initNoiseSigma), {
        from: 0,
        stepOptions: withNoise(scheduler, opts, opts.guidance?.scale ?? 1),
        onStep: opts.onStep,
      });
      return where(opts.mask, x, image);
    }),
  );
}
