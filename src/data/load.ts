/**
 * `loadDataset(spec)`: a dataset by name ('mnist', 'mnist-full', 'fashion-mnist', 'emoji') or
 * folder path.
 */
import { existsSync } from 'node:fs';

import { type Dataset, reshapeDataset } from './dataset.js';
import { loadEmoji } from './emoji.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadImageFolder } from './folder.js';
import type { ImageSplit } from './idx-splits.js';
import type { Rgb } from './image/image.js';
import { loadMnist } from './mnist.js';
import { loadMnistFull } from './mnist-full.js';

export const DATASET_NAMES = ['mnist', 'mnist-full', 'fashion-mnist', 'emoji'] as const;

/** The named datasets with an official test split (`split: 'test'`). */
export const SPLIT_DATASETS: readonly string[] = ['mnist-full', 'fashion-mnist'];

export interface LoadDatasetOptions {
  /** Output size, square or [height, width]. Defaults: 28 for the MNISTs, 64 for emoji and folders. */
  size?: number | readonly [number, number];
  /** 1 or 3. Defaults: 1 for the MNISTs, 3 for emoji and folders. */
  channels?: 1 | 3;
  /** Split of mnist-full and fashion-mnist (default 'train'). */
  split?: ImageSplit;
  /** Colour under transparent pixels (emoji, folders), RGB in [0, 1]; default white. */
  background?: Rgb;
}

/**
 * Resolves `spec`: a known name first, then an existing folder. Errors name what was asked for and
 * what would have worked.
 */
export function loadDataset(spec: string, opts: LoadDatasetOptions = {}): Dataset {
  switch (spec) {
    case 'mnist':
      return reshapeDataset(loadMnist(), opts);
    case 'mnist-full':
      return reshapeDataset(loadMnistFull({ split: opts.split }), opts);
    case 'fashion-mnist':
      return reshapeDataset(loadFashionMnist({ split: opts.split }), opts);
    case 'emoji':
      return loadEmoji(opts);
  }
  if (existsSync(spec)) return loadImageFolder(spec, opts);
  if (/[/\\]/.test(spec) || spec.startsWith('.')) {
    throw new Error(`dataset folder '${spec}' does not exist`);
  }
  throw new Error(
    `unknown dataset '${spec}': expected ${DATASET_NAMES.join(', ')} or the path of a folder of PNG/JPEG images`,
  );
}
