/**
 * Condition images a ControlNet is trained and sampled with, computed from an image (its grey
 * level is the mean of its channels):
 *
 * - 'edges': the Sobel edge map of the grey level thresholded at EDGE_THRESHOLD
 *   (data/image/edges.ts), 2–3 pixels wide;
 * - 'canny': the Canny edge map of the grey level with CANNY_DEFAULTS (data/image/canny.ts),
 *   1 pixel wide;
 * - 'mask': the foreground mask, pixels farther than MASK_THRESHOLD from the background colour
 *   of the image's border (data/image/mask.ts): for MNIST, the digit's silhouette.
 *
 * Values are in {0, 1}, one channel, the image's size.
 */
import { imageSampleBytes, sampleOfBytes } from '../data/dataset.js';
import { CANNY_DEFAULTS, cannyEdges } from '../data/image/canny.js';
import { EDGE_THRESHOLD, sobelEdges } from '../data/image/edges.js';
import type { RawImage } from '../data/image/image.js';
import { foregroundMask, MASK_THRESHOLD } from '../data/image/mask.js';
import { tensor, type Tensor } from '../engine/index.js';

export const CONTROL_KINDS = ['edges', 'canny', 'mask'] as const;
export type ControlKind = (typeof CONTROL_KINDS)[number];

/** The kinds whose condition is an edge map (scored by edge agreement). */
export const EDGE_CONTROL_KINDS: readonly ControlKind[] = ['edges', 'canny'];

/** A control kind read from a config or a command line: one of CONTROL_KINDS, else one clear error. */
export function parseControlKind(v: unknown, source: string): ControlKind {
  if (typeof v === 'string' && (CONTROL_KINDS as readonly string[]).includes(v)) {
    return v as ControlKind;
  }
  throw new Error(
    `${source}: unknown control kind ${JSON.stringify(v)} (expected ${CONTROL_KINDS.join(', ')})`,
  );
}

/** The condition image [h, w] of one image given as planes [c, h, w] with values in [0, 1]. */
export function controlOfPlanes(
  kind: ControlKind,
  planes: ArrayLike<number>,
  c: number,
  h: number,
  w: number,
): Float32Array {
  if (planes.length !== c * h * w) {
    throw new Error(`controlOfPlanes: ${planes.length} values for a ${c}x${h}x${w} image`);
  }
  if (kind === 'mask') return foregroundMask(planes, c, h, w, MASK_THRESHOLD);
  const grey = new Float32Array(h * w);
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < h * w; i++) grey[i] = grey[i]! + planes[k * h * w + i]! / c;
  }
  switch (kind) {
    case 'edges':
      return sobelEdges(grey, h, w, EDGE_THRESHOLD);
    case 'canny':
      return cannyEdges(grey, h, w, CANNY_DEFAULTS);
    default:
      throw new Error(`unknown control kind '${String(kind satisfies never)}'`);
  }
}

/**
 * The condition images [b, h, w] of a batch x_0 [b, c, h, w] given as values in [−1, 1]: each
 * image brought back to [0, 1] in float32, as the trainer computes them (controlImages).
 */
export function controlOfBatch(
  kind: ControlKind,
  x: ArrayLike<number>,
  b: number,
  c: number,
  h: number,
  w: number,
): Float32Array {
  if (x.length !== b * c * h * w) {
    throw new Error(`controlOfBatch: ${x.length} values for a ${b}x${c}x${h}x${w} batch`);
  }
  const out = new Float32Array(b * h * w);
  const planes = new Float32Array(c * h * w);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < planes.length; j++) planes[j] = (x[i * planes.length + j]! + 1) / 2;
    out.set(controlOfPlanes(kind, planes, c, h, w), i * h * w);
  }
  return out;
}

/**
 * The condition images [B, 1, H, W] of a batch x_0 [B, C, H, W] with values in [−1, 1] (the
 * trainer's), on x_0's backend and dtype.
 */
export async function controlImages(kind: ControlKind, x0: Tensor): Promise<Tensor> {
  const [b, c, h, w] = x0.shape as [number, number, number, number];
  const out = controlOfBatch(kind, await x0.data(), b, c, h, w);
  const dtype = x0.dtype === 'float64' ? 'float64' : 'float32';
  return tensor(dtype === 'float64' ? Float64Array.from(out) : out, [b, 1, h, w], {
    dtype,
    backend: x0.backend,
  });
}

export interface ControlMapOptions {
  /** The training run's image channels, 1 (gray: RGB by BT.601 luma) or 3; default the image's. */
  channels?: 1 | 3;
  /** The training run's image size (resized to cover and centre-cropped); default the image's. */
  size?: number;
}

/**
 * The condition image of an image file's pixels, as a `sumi train --controlnet` run computes it
 * from that file as a training image: the pixels as a folder dataset keeps them
 * (imageSampleBytes: alpha over white, gray or RGB, resized, 8 bits), in [−1, 1] in float32 as
 * the data loader batches them (without the random flip), then controlOfBatch. An 8-bit gray
 * image of the run's size, 255 on the map and 0 elsewhere.
 */
export function controlMap(
  kind: ControlKind,
  img: RawImage,
  opts: ControlMapOptions = {},
): RawImage & { data: Uint8Array } {
  const c = opts.channels ?? (img.channels >= 3 ? 3 : 1);
  const [h, w] = opts.size === undefined ? [img.height, img.width] : [opts.size, opts.size];
  if (![h, w].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(`controlMap: the size must be a positive integer, got ${String(opts.size)}`);
  }
  const unit = sampleOfBytes(imageSampleBytes(img, { channels: c, height: h, width: w }));
  const x = new Float32Array(unit.length);
  for (let j = 0; j < unit.length; j++) x[j] = unit[j]! * 2 - 1;
  const map = controlOfBatch(kind, x, 1, c, h, w);
  return { width: w, height: h, channels: 1, data: Uint8Array.from(map, (v) => 255 * v) };
}
