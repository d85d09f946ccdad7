/**
 * Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; github.com/zalandoresearch/fashion-mnist): 70,000
 * gray 28x28 images of clothing in 10 classes, 60,000 for training and 10,000 for testing. Read
 * from the Debian package `dataset-fashion-mnist`, which installs the original gzipped IDX files
 * into /usr/share/datasets/fashion-mnist/: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
 */
import type { Dataset } from './dataset.js';
import {
  idxSplitsAvailable,
  type IdxSplitSource,
  type ImageSplit,
  lecunFiles,
  loadIdxSplits,
} from './idx-splits.js';

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

export type FashionMnistSplit = ImageSplit;

export interface FashionMnistOptions {
  /** 'train' (60,000; default), 'test' (10,000) or 'all' (train then test). */
  split?: FashionMnistSplit;
  /** Folder with the four .gz files (default FASHION_MNIST_DIR). */
  dir?: string;
}

function source(dir: string): IdxSplitSource {
  return {
    name: 'fashion-mnist',
    dir,
    files: lecunFiles('.gz'),
    classNames: FASHION_MNIST_CLASSES,
    install:
      "Install the Debian package 'dataset-fashion-mnist' (as root: apt-get install dataset-fashion-mnist)",
  };
}

/** Whether the Fashion-MNIST files are installed in `dir`. */
export function fashionMnistAvailable(dir = FASHION_MNIST_DIR): boolean {
  return idxSplitsAvailable(source(dir));
}

export function loadFashionMnist(opts: FashionMnistOptions = {}): Dataset {
  return loadIdxSplits(source(opts.dir ?? FASHION_MNIST_DIR), opts.split);
}
