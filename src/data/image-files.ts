/**
 * A dataset of image files decoded on first use: each file is read (PNG or JPEG), composited over
 * a background colour when it has alpha, converted to gray or RGB, resized to cover the target
 * size and centre-cropped (see image/resize.ts: area filter to shrink, bilinear to enlarge), then
 * kept in memory as 8 bits per sample, so every `get` of an index returns the same values.
 */
import {
  checkIndex,
  type Dataset,
  imageSampleBytes,
  type Sample,
  sampleOfBytes,
} from './dataset.js';
import { type Rgb, WHITE } from './image/image.js';
import { readImageSync } from './image/read.js';

export interface ImageFileEntry {
  path: string;
  label?: number;
  name?: string;
}

export interface ImageFileOptions {
  name: string;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Colour under transparent pixels, RGB in [0, 1] (default white). */
  background?: Rgb;
  /** With labels on every entry: the class names. */
  classNames?: readonly string[];
}

export class ImageFileDataset implements Dataset {
  readonly name: string;
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly numClasses?: number;
  readonly classNames?: readonly string[];
  readonly entries: readonly ImageFileEntry[];
  readonly background: Rgb;
  #cache: (Uint8Array | undefined)[];

  constructor(entries: readonly ImageFileEntry[], opts: ImageFileOptions) {
    this.name = opts.name;
    this.entries = entries;
    this.channels = opts.channels;
    this.height = opts.height;
    this.width = opts.width;
    this.background = opts.background ?? WHITE;
    if (opts.classNames !== undefined) {
      this.classNames = opts.classNames;
      this.numClasses = opts.classNames.length;
      for (const e of entries) {
        if (e.label === undefined || !(e.label >= 0 && e.label < this.numClasses)) {
          throw new Error(`${this.name}: ${e.path} has no valid label`);
        }
      }
    }
    this.#cache = new Array<Uint8Array | undefined>(entries.length);
  }

  get length(): number {
    return this.entries.length;
  }

  get(i: number): Sample {
    checkIndex(this, i);
    const entry = this.entries[i]!;
    let bytes = this.#cache[i];
    if (bytes === undefined) {
      bytes = this.#load(entry.path);
      this.#cache[i] = bytes;
    }
    const sample: Sample = { image: sampleOfBytes(bytes), name: entry.name ?? entry.path };
    if (entry.label !== undefined) sample.label = entry.label;
    return sample;
  }

  /** Decodes every image now (errors surface here instead of during training). */
  preload(): this {
    for (let i = 0; i < this.length; i++) this.get(i);
    return this;
  }

  #load(path: string): Uint8Array {
    return imageSampleBytes(readImageSync(path), this);
  }
}
