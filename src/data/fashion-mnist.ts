/**
 * Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; github.com/zalandoresearch/fashion-mnist): 70,000
 * gray 28x28 images of clothing in 10 classes, 60,000 for training and 10,000 for testing. Read
 * from the Debian package `dataset-fashion-mnist`, which installs the original gzipped IDX files
 * into /usr/share/datasets/fashion-mnist/: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
 * Pixels are bytes, 0 background to 255; stored as bytes and scaled to [0, 1] on `get`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { checkIndex, type Dataset, type Sample } from './dataset.js';
import { readIdx } from './idx.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export type FashionMnistSplit = 'train' | 'test' | 'all';

export interface FashionMnistOptions {
  /** 'train' (60,000; default), 'test' (10,000) or 'all' (train then test). */
  split?: FashionMnistSplit;
  /** Folder with the four .gz files (default FASHION_MNIST_DIR). */
  dir?: string;
}

const FILES = {
  train: ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
  test: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
} as const;

/** Whether the Fashion-MNIST files are installed in `dir`. */
export function fashionMnistAvailable(dir = FASHION_MNIST_DIR): boolean {
  return [...FILES.train, ...FILES.test].every((f) => existsSync(join(dir, f)));
}

function readSplit(
  dir: string,
  split: 'train' | 'test',
): { images: Uint8Array; labels: Uint8Array } {
  const [imageFile, labelFile] = FILES[split].map((f) => join(dir, f)) as [string, string];
  for (const f of [imageFile, labelFile]) {
    if (!existsSync(f)) {
      throw new Error(
        `Fashion-MNIST not found: ${f} does not exist. Install the Debian package ` +
          `'dataset-fashion-mnist' (as root: apt-get install dataset-fashion-mnist)`,
      );
    }
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
  const bad = (labels.data as Uint8Array).findIndex((l) => l > 9);
  if (bad >= 0) throw new Error(`${labelFile}: label ${labels.data[bad]} at ${bad} is not in 0..9`);
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array };
}

export function loadFashionMnist(opts: FashionMnistOptions = {}): Dataset {
  const split = opts.split ?? 'train';
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  let images: Uint8Array;
  let labels: Uint8Array;
  if (split === 'all') {
    const a = readSplit(dir, 'train');
    const b = readSplit(dir, 'test');
    images = new Uint8Array(a.images.length + b.images.length);
    images.set(a.images);
    images.set(b.images, a.images.length);
    labels = new Uint8Array(a.labels.length + b.labels.length);
    labels.set(a.labels);
    labels.set(b.labels, a.labels.length);
  } else if (split === 'train' || split === 'test') {
    ({ images, labels } = readSplit(dir, split));
  } else {
    throw new Error(`fashion-mnist: unknown split '${String(split)}' (train, test or all)`);
  }
  const pixels = 28 * 28;
  const ds: Dataset = {
    name: `fashion-mnist/${split}`,
    length: labels.length,
    channels: 1,
    height: 28,
    width: 28,
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES,
    get(i: number): Sample {
      checkIndex(ds, i);
      const image = new Float32Array(pixels);
      for (let p = 0; p < pixels; p++) image[p] = images[i * pixels + p]! / 255;
      return { image, label: labels[i]!, name: `${split}/${i}` };
    },
  };
  return ds;
}
