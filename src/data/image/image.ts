/**
 * The pixel container every codec reads and writes, and conversions between it and the planar
 * float layout datasets use.
 *
 * `RawImage` holds interleaved samples, row-major (height, width, channels): 1 gray, 2 gray+alpha,
 * 3 RGB, 4 RGBA. Samples are 8-bit (`Uint8Array`, 0..255) or 16-bit (`Uint16Array`, 0..65535);
 * the array type is the bit depth. Alpha is straight (not premultiplied), as in PNG.
 */

export type Channels = 1 | 2 | 3 | 4;

/** A file that is not a readable image: the message names the file and what is wrong. */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

export interface RawImage {
  width: number;
  height: number;
  channels: Channels;
  data: Uint8Array | Uint16Array;
}

/** RGB in [0, 1]. */
export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [1, 1, 1];

/** 8 or 16, from the sample array's type. */
export function bitDepthOf(img: RawImage): 8 | 16 {
  return img.data instanceof Uint16Array ? 16 : 8;
}

/** Checks that the fields of an image agree; returns it. */
export function checkImage(img: RawImage, what = 'image'): RawImage {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${what}: width and height must be positive integers, got ${width}x${height}`);
  }
  if (![1, 2, 3, 4].includes(channels)) {
    throw new Error(`${what}: channels must be 1, 2, 3 or 4, got ${String(channels)}`);
  }
  if (data.length !== width * height * channels) {
    throw new Error(
      `${what}: ${width}x${height}x${channels} needs ${width * height * channels} samples, ` +
        `data has ${data.length}`,
    );
  }
  return img;
}

/** ITU-R BT.601 luma, the weights PIL and most tools use for RGB -> gray. */
export function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/**
 * Planar floats in [0, 1], shape (channels, height, width), with `channels` 1 (gray) or 3 (RGB).
 * Alpha is composited over `background` (RGB in [0, 1]; its luma for gray output); RGB becomes
 * gray by BT.601 luma, gray becomes RGB by repeating it.
 */
export function imageToPlanes(
  img: RawImage,
  channels: 1 | 3,
  background: Rgb = WHITE,
): Float32Array {
  const { width, height, channels: src, data } = checkImage(img);
  const scale = 1 / (bitDepthOf(img) === 16 ? 65535 : 255);
  const n = width * height;
  const out = new Float32Array(channels * n);
  const bgGray = luma(background[0], background[1], background[2]);
  for (let p = 0; p < n; p++) {
    const s = p * src;
    let r: number;
    let g: number;
    let b: number;
    let a = 1;
    if (src <= 2) {
      r = g = b = data[s]! * scale;
      if (src === 2) a = data[s + 1]! * scale;
    } else {
      r = data[s]! * scale;
      g = data[s + 1]! * scale;
      b = data[s + 2]! * scale;
      if (src === 4) a = data[s + 3]! * scale;
    }
    if (channels === 1) {
      const v = src <= 2 ? r : luma(r, g, b);
      out[p] = a === 1 ? v : v * a + bgGray * (1 - a);
    } else if (a === 1) {
      out[p] = r;
      out[n + p] = g;
      out[2 * n + p] = b;
    } else {
      out[p] = r * a + background[0] * (1 - a);
      out[n + p] = g * a + background[1] * (1 - a);
      out[2 * n + p] = b * a + background[2] * (1 - a);
    }
  }
  return out;
}

/**
 * The inverse direction: planar floats (channels, height, width) with values in [lo, hi] (default
 * [0, 1]) to an 8-bit interleaved image, rounding and clamping (NaN becomes lo).
 */
export function planesToImage(
  planes: ArrayLike<number>,
  channels: Channels,
  height: number,
  width: number,
  range: readonly [number, number] = [0, 1],
): RawImage {
  const n = width * height;
  if (planes.length !== channels * n) {
    throw new Error(
      `planesToImage: ${channels}x${height}x${width} needs ${channels * n} values, got ${planes.length}`,
    );
  }
  const [lo, hi] = range;
  const k = 255 / (hi - lo);
  const data = new Uint8Array(channels * n);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < n; p++) data[p * channels + c] = toByte((planes[c * n + p]! - lo) * k);
  }
  return { width, height, channels, data };
}

/** Rounds and clamps to 0..255; NaN becomes 0. */
export function toByte(v: number): number {
  return v > 0 ? (v < 255 ? Math.round(v) : 255) : 0;
}

/** An 8-bit copy of an image (16-bit samples rounded to the nearest 8-bit value). */
export function to8Bit(img: RawImage): RawImage {
  if (bitDepthOf(img) === 8) return img;
  const data = new Uint8Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(img.data[i]! / 257);
  return { ...img, data };
}
