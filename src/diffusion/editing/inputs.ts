/**
 * The inputs of the editing pipelines, checked against the denoiser: an image of exactly the
 * model's size and colour channels (no silent resizing or colour conversion), and a binary mask of
 * the same size (white = repaint, black = keep; Lugmayr et al. 2022 and diffusers' inpainting
 * pipelines use the same convention).
 */
import { bitDepthOf, imageToPlanes, type RawImage } from '../../data/image/index.js';
import type { Tensor } from '../../engine/index.js';

/** An image, mask or option the editing pipelines cannot take; the message names it. */
export class EditInputError extends Error {
  override name = 'EditInputError';
}

/**
 * The pipeline's starting noise ε from its `noise` option, which must have the images' shape
 * (an error naming the pipeline `owner` and both shapes otherwise).
 */
export function startNoise(noise: () => Tensor, shape: readonly number[], owner: string): Tensor {
  const eps = noise();
  if (eps.shape.join() !== shape.join()) {
    throw new Error(
      `${owner}: noise of shape [${eps.shape.join(', ')}] for images of [${shape.join(', ')}]`,
    );
  }
  return eps;
}

/** A mask pixel is black (keep) at most this fraction of full scale, white (repaint) at least 1 − it. */
export const MASK_TOLERANCE = 0.1;

function describe(img: RawImage): string {
  return ['gray', 'gray+alpha', 'RGB', 'RGBA'][img.channels - 1]!;
}

function colourChannels(img: RawImage): 1 | 3 {
  return img.channels <= 2 ? 1 : 3;
}

/** Throws unless every alpha sample (when the image has alpha) is fully opaque. */
function checkOpaque(img: RawImage, what: string): void {
  if (img.channels !== 2 && img.channels !== 4) return;
  const max = bitDepthOf(img) === 16 ? 65535 : 255;
  const c = img.channels;
  for (let p = 0; p < img.width * img.height; p++) {
    if (img.data[p * c + c - 1]! !== max) {
      const x = p % img.width;
      const y = Math.floor(p / img.width);
      throw new EditInputError(
        `${what}: transparent pixel at x=${x}, y=${y}; the editing pipelines take opaque images`,
      );
    }
  }
}

/**
 * The planes [C·H·W] in [−1, 1] of an image for a denoiser of shape [C, H, W]: its size must be
 * H×W and its colour channels C (gray for 1, RGB for 3); alpha, if any, must be opaque.
 */
export function imageToSample(
  img: RawImage,
  shape: readonly [number, number, number],
  what = 'image',
): Float32Array {
  const [c, h, w] = shape;
  if (img.width !== w || img.height !== h) {
    throw new EditInputError(
      `${what}: ${img.width}x${img.height} pixels; the model takes ${w}x${h} images`,
    );
  }
  if (colourChannels(img) !== c) {
    throw new EditInputError(
      `${what}: a ${describe(img)} image; the model takes ${c === 1 ? 'gray (1-channel)' : c === 3 ? 'RGB (3-channel)' : `${c}-channel`} images`,
    );
  }
  checkOpaque(img, what);
  const planes = imageToPlanes(img, c);
  for (let i = 0; i < planes.length; i++) planes[i] = planes[i]! * 2 - 1;
  return planes;
}

/**
 * The mask [H·W] of 0 (keep) and 1 (repaint) from a single-channel image of size H×W: white
 * (≥ 1 − MASK_TOLERANCE of full scale) repaints, black (≤ MASK_TOLERANCE) keeps; anything in
 * between, or a mask with nothing to repaint, is an error.
 */
export function maskFromImage(
  img: RawImage,
  size: readonly [number, number],
  what = 'mask',
): Float32Array {
  const [h, w] = size;
  if (img.width !== w || img.height !== h) {
    throw new EditInputError(
      `${what}: ${img.width}x${img.height} pixels; the image is ${w}x${h}, and the mask must match it`,
    );
  }
  if (img.channels > 2) {
    throw new EditInputError(
      `${what}: a ${describe(img)} image; a mask is single-channel (gray: white = repaint, black = keep)`,
    );
  }
  checkOpaque(img, what);
  const max = bitDepthOf(img) === 16 ? 65535 : 255;
  const stride = img.channels;
  const out = new Float32Array(w * h);
  let between = 0;
  let first = -1;
  let white = 0;
  for (let p = 0; p < w * h; p++) {
    const v = img.data[p * stride]! / max;
    if (v >= 1 - MASK_TOLERANCE) {
      out[p] = 1;
      white++;
    } else if (v > MASK_TOLERANCE) {
      between++;
      if (first < 0) first = p;
    }
  }
  if (between > 0) {
    const v = img.data[first * stride]!;
    throw new EditInputError(
      `${what}: ${between} of ${w * h} pixels are neither black nor white (the first at ` +
        `x=${first % w}, y=${Math.floor(first / w)}: ${v} of ${max}); a mask is binary: white = repaint, black = keep`,
    );
  }
  if (white === 0) throw new EditInputError(`${what}: no white pixel: nothing to repaint`);
  return out;
}
