/**
 * The dataset contract: random access to images of one size, with optional class labels.
 *
 * `get(i).image` is planar float32 (channels, height, width) with values in [0, 1]: 0 black,
 * 1 white, whatever the source format. Scaling to the [-1, 1] range models train on is the
 * loader's job (see loader.ts), so datasets stay plain pixel data. Random augmentation (the
 * horizontal flip) is also the loader's, so `get` is a pure function of `i`.
 */
import { imageToPlanes, luma, type RawImage, type Rgb, toByte, WHITE } from './image/image.js';
import { resizeCoverPlanes } from './image/resize.js';

export interface Sample {
  /** (channels, height, width) float32 in [0, 1]. Callers may modify it: each get returns a new array. */
  image: Float32Array;
  /** Class index in [0, numClasses). */
  label?: number;
  /** What the sample is: a file path, an emoji short name, ... */
  name?: string;
}

export interface Dataset {
  /** What this is ('mnist', 'fashion-mnist/train', a folder path, ...). */
  readonly name: string;
  readonly length: number;
  /** 1 (gray) or 3 (RGB). */
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  /** Present when samples carry labels. */
  readonly numClasses?: number;
  /** Names of classes 0..numClasses-1. */
  readonly classNames?: readonly string[];
  get(i: number): Sample;
}

/** Throws unless i is an integer index into a dataset of `length`. */
export function checkIndex(ds: { name: string; length: number }, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.length) {
    throw new Error(`${ds.name}: index ${i} out of range [0, ${ds.length})`);
  }
}

/** Changes channel count (gray <-> RGB; RGB to gray by BT.601 luma) of planar images. */
export function convertChannels(
  planes: Float32Array,
  from: 1 | 3,
  to: 1 | 3,
  pixels: number,
): Float32Array {
  if (from === to) return planes;
  if (to === 3) {
    const out = new Float32Array(3 * pixels);
    out.set(planes, 0);
    out.set(planes, pixels);
    out.set(planes, 2 * pixels);
    return out;
  }
  const out = new Float32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    out[p] = luma(planes[p]!, planes[pixels + p]!, planes[2 * pixels + p]!);
  }
  return out;
}

export interface ReshapeOptions {
  /** Output height and width (square), or [height, width]. */
  size?: number | readonly [number, number];
  channels?: 1 | 3;
}

/** Size as [height, width]; checks it. */
export function sizePair(size: number | readonly [number, number]): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new Error(
      `bad image size ${String(size)}: expected a positive integer or [height, width]`,
    );
  }
  return [h, w];
}

/**
 * A view of `ds` at another size (resize to cover, then centre crop; see resize.ts for the
 * filters) and/or channel count. Returns `ds` itself when nothing changes.
 */
export function reshapeDataset(ds: Dataset, opts: ReshapeOptions): Dataset {
  const [h, w] = opts.size === undefined ? [ds.height, ds.width] : sizePair(opts.size);
  const channels = opts.channels ?? ds.channels;
  if (h === ds.height && w === ds.width && channels === ds.channels) return ds;
  return {
    name: ds.name,
    length: ds.length,
    channels,
    height: h,
    width: w,
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    get(i: number): Sample {
      const s = ds.get(i);
      let img = convertChannels(s.image, ds.channels, channels, ds.height * ds.width);
      if (h !== ds.height || w !== ds.width) {
        img = resizeCoverPlanes(img, channels, ds.height, ds.width, h, w);
      }
      return { ...s, image: img };
    },
  };
}

export interface ImageSampleOptions {
  channels: 1 | 3;
  height: number;
  width: number;
  /** Colour under transparent pixels, RGB in [0, 1] (default white). */
  background?: Rgb;
}

/**
 * An image as a dataset of image files keeps it (image-files.ts): composited over the background
 * where it has alpha, converted to gray (BT.601 luma) or RGB, resized to cover height × width and
 * centre-cropped, then rounded to 8 bits. Planar (channels, height, width).
 */
export function imageSampleBytes(img: RawImage, o: ImageSampleOptions): Uint8Array {
  let planes = imageToPlanes(img, o.channels, o.background ?? WHITE);
  if (img.height !== o.height || img.width !== o.width) {
    planes = resizeCoverPlanes(planes, o.channels, img.height, img.width, o.height, o.width);
  }
  const out = new Uint8Array(planes.length);
  for (let k = 0; k < planes.length; k++) out[k] = toByte(planes[k]! * 255);
  return out;
}

/** The image of a sample from 8-bit planes: values k / 255. */
export function sampleOfBytes(bytes: Uint8Array): Float32Array {
  const image = new Float32Array(bytes.length);
  for (let k = 0; k < bytes.length; k++) image[k] = bytes[k]! / 255;
  return image;
}

/** The samples of `ds` at `indices` (or its first `n`), in that order. */
export function subsetDataset(ds: Dataset, indices: number | readonly number[]): Dataset {
  const idx =
    typeof indices === 'number'
      ? Array.from({ length: Math.min(indices, ds.length) }, (_, i) => i)
      : [...indices];
  for (const i of idx) checkIndex(ds, i);
  const sub: Dataset = {
    name: ds.name,
    length: idx.length,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    get(i: number): Sample {
      checkIndex(sub, i);
      return ds.get(idx[i]!);
    },
  };
  return sub;
}
