/**
 * Labelled 28x28 gray image datasets stored as IDX pairs with an official train/test split
 * (MNIST, Fashion-MNIST): {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped or not. Pixels
 * are bytes, 0 background to 255; stored as bytes and scaled to [0, 1] on `get`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { checkIndex, type Dataset, type Sample } from './dataset.js';
import { readIdx } from './idx.js';

/** 'train' (the default), 'test', or 'all' (train then test). */
export type ImageSplit = 'train' | 'test' | 'all';

export interface IdxSplitSource {
  /** The dataset's name; `loadIdxSplits` names its result `<name>/<split>`. */
  name: string;
  dir: string;
  /** [images, labels] file names of each split, inside `dir`. */
  files: Readonly<Record<'train' | 'test', readonly [string, string]>>;
  classNames: readonly string[];
  /** How to install the files, for the error when one is missing. */
  install: string;
}

/**
 * The four files as MNIST distributes them (and Fashion-MNIST after it):
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte, plus `suffix` ('.gz' when gzipped).
 */
export function lecunFiles(suffix: '' | '.gz'): IdxSplitSource['files'] {
  const pair = (prefix: string): readonly [string, string] => [
    `${prefix}-images-idx3-ubyte${suffix}`,
    `${prefix}-labels-idx1-ubyte${suffix}`,
  ];
  return { train: pair('train'), test: pair('t10k') };
}

/** Whether every file of both splits exists. */
export function idxSplitsAvailable(src: IdxSplitSource): boolean {
  return [...src.files.train, ...src.files.test].every((f) => existsSync(join(src.dir, f)));
}

function readSplit(
  src: IdxSplitSource,
  split: 'train' | 'test',
): { images: Uint8Array; labels: Uint8Array } {
  const [imageFile, labelFile] = src.files[split].map((f) => join(src.dir, f)) as [string, string];
  for (const f of [imageFile, labelFile]) {
    if (!existsSync(f))
      throw new Error(`${src.name} not found: ${f} does not exist. ${src.install}`);
  }
  const images = readIdx(imageFile);
  const labels = readIdx(labelFile);
  const [n, h, w] = images.shape;
  if (images.type !== 'uint8' || images.shape.length !== 3 || h !== 28 || w !== 28) {
    throw new Error(
      `${imageFile}: expected uint8 images [N, 28, 28], got ${images.type} [${images.shape.join(', ')}]`,
    );
  }
  if (labels.type !== 'uint8' || labels.shape.length !== 1 || labels.shape[0] !== n) {
    throw new Error(
      `${labelFile}: expected ${n} uint8 labels, got ${labels.type} [${labels.shape.join(', ')}]`,
    );
  }
  const k = src.classNames.length;
  const bad = (labels.data as Uint8Array).findIndex((l) => l >= k);
  if (bad >= 0) {
    throw new Error(`${labelFile}: label ${labels.data[bad]} at ${bad} is not in 0..${k - 1}`);
  }
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** One split of an IDX dataset; sample names are `<split>/<index>`. */
export function loadIdxSplits(src: IdxSplitSource, split: ImageSplit = 'train'): Dataset {
  let images: Uint8Array;
  let labels: Uint8Array;
  if (split === 'all') {
    const a = readSplit(src, 'train');
    const b = readSplit(src, 'test');
    images = concat(a.images, b.images);
    labels = concat(a.labels, b.labels);
  } else if (split === 'train' || split === 'test') {
    ({ images, labels } = readSplit(src, split));
  } else {
    throw new Error(`${src.name}: unknown split '${String(split)}' (train, test or all)`);
  }
  const pixels = 28 * 28;
  const ds: Dataset = {
    name: `${src.name}/${split}`,
    length: labels.length,
    channels: 1,
    height: 28,
    width: 28,
    numClasses: src.classNames.length,
    classNames: src.classNames,
    get(i: number): Sample {
      checkIndex(ds, i);
      const image = new Float32Array(pixels);
      for (let p = 0; p < pixels; p++) image[p] = images[i * pixels + p]! / 255;
      return { image, label: labels[i]!, name: `${split}/${i}` };
    },
  };
  return ds;
}
