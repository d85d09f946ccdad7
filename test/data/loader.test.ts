import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Dataset } from '../../src/data/dataset.js';
import { type Batch, DataLoader } from '../../src/data/loader.js';

/** n samples of 3x2x3 whose pixels identify the sample and the position. */
function toyDataset(n: number, labelled = true): Dataset {
  const ds: Dataset = {
    name: 'toy',
    length: n,
    channels: 3,
    height: 2,
    width: 3,
    ...(labelled ? { numClasses: 4, classNames: ['a', 'b', 'c', 'd'] } : {}),
    get(i) {
      const image = Float32Array.from({ length: 18 }, (_, k) => ((i * 18 + k) % 97) / 96);
      return labelled ? { image, label: i % 4 } : { image };
    },
  };
  return ds;
}

function expectedImage(ds: Dataset, idx: number, flipped: boolean): number[] {
  const img = ds.get(idx).image;
  const out: number[] = [];
  for (let row = 0; row < 6; row++) {
    for (let col = 0; col < 3; col++) out.push(img[row * 3 + (flipped ? 2 - col : col)]! * 2 - 1);
  }
  return out;
}

function summary(b: Batch): unknown {
  return {
    indices: b.indices,
    flipped: b.flipped,
    x: [...b.x.dataSync()],
    labels: b.labels === undefined ? null : [...b.labels.dataSync()],
    step: b.step,
    epoch: b.epoch,
  };
}

void describe('DataLoader', () => {
  void test('batches hold the scaled images, int32 labels, and cover each epoch once', () => {
    const ds = toyDataset(10);
    const loader = new DataLoader(ds, { batchSize: 4, seed: 3, dropLast: false, flip: true });
    assert.equal(loader.stepsPerEpoch, 3);
    for (let epoch = 0; epoch < 2; epoch++) {
      const seen: number[] = [];
      for (const b of loader.batches(epoch * 3, 3)) {
        assert.equal(b.epoch, epoch);
        assert.deepEqual(b.x.shape, [b.indices.length, 3, 2, 3]);
        assert.equal(b.x.dtype, 'float32');
        assert.equal(b.labels!.dtype, 'int32');
        assert.deepEqual(
          [...b.labels!.dataSync()],
          b.indices.map((i) => i % 4),
        );
        const x = b.x.dataSync();
        b.indices.forEach((idx, k) => {
          const want = expectedImage(ds, idx, b.flipped[k]!);
          want.forEach((v, j) =>
            assert.ok(Math.abs(x[k * 18 + j]! - v) < 1e-6, `batch element ${k}, value ${j}`),
          );
        });
        seen.push(...b.indices);
      }
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        [...Array(10).keys()],
      );
      assert.deepEqual(loader.batchAt(epoch * 3 + 2).indices.length, 2); // the short last batch
    }
  });

  void test('dropLast (the default) keeps only full batches', () => {
    const loader = new DataLoader(toyDataset(10), { batchSize: 4 });
    assert.equal(loader.stepsPerEpoch, 2);
    assert.deepEqual(loader.batchAt(2).epoch, 1);
    for (const b of loader.batches(0, 6)) assert.equal(b.indices.length, 4);
  });

  void test('same seed, same stream; other seeds and epochs shuffle differently', () => {
    const ds = toyDataset(50);
    const a = new DataLoader(ds, { batchSize: 50, seed: 7, flip: true });
    const b = new DataLoader(ds, { batchSize: 50, seed: 7, flip: true });
    const c = new DataLoader(ds, { batchSize: 50, seed: 8, flip: true });
    assert.deepEqual(summary(a.batchAt(0)), summary(b.batchAt(0)));
    assert.notDeepEqual(a.batchAt(0).indices, c.batchAt(0).indices);
    assert.notDeepEqual(a.batchAt(0).indices, a.batchAt(1).indices);
    assert.notDeepEqual(a.batchAt(0).flipped, a.batchAt(1).flipped);
    const plain = new DataLoader(ds, { batchSize: 50, shuffle: false });
    assert.deepEqual(plain.batchAt(3).indices, [...Array(50).keys()]);
    assert.ok(
      plain.batchAt(3).flipped.every((f) => !f),
      'nothing flipped by default',
    );
  });

  void test('resuming at step k gives the batches of an uninterrupted run', () => {
    const ds = toyDataset(23);
    const opts = { batchSize: 5, seed: 12345, flip: true };
    const full = [...new DataLoader(ds, opts).batches(0, 14)].map(summary);
    for (const k of [0, 3, 4, 9, 13]) {
      const resumed = [...new DataLoader(ds, opts).batches(k, 14 - k)].map(summary);
      assert.deepEqual(resumed, full.slice(k), `resumed at ${k}`);
    }
    // Random access in any order agrees too (the epoch cache holds no hidden state).
    const loader = new DataLoader(ds, opts);
    for (const k of [13, 2, 9, 0, 9]) assert.deepEqual(summary(loader.batchAt(k)), full[k]);
  });

  void test('flips are seeded: deterministic, about half, independent of the order', () => {
    const ds = toyDataset(400, false);
    const withFlip = new DataLoader(ds, { batchSize: 400, seed: 1, flip: true });
    const without = new DataLoader(ds, { batchSize: 400, seed: 1 });
    const b = withFlip.batchAt(0);
    assert.equal(b.labels, undefined);
    assert.deepEqual(b.indices, without.batchAt(0).indices);
    assert.deepEqual(
      b.flipped,
      new DataLoader(ds, { batchSize: 400, seed: 1, flip: true }).batchAt(0).flipped,
    );
    const n = b.flipped.filter(Boolean).length;
    assert.ok(n > 160 && n < 240, `${n} of 400 flipped`);
  });

  void test('float64 batches and argument checks', () => {
    const ds = toyDataset(3);
    assert.equal(
      new DataLoader(ds, { batchSize: 2, dtype: 'float64' }).batchAt(0).x.dtype,
      'float64',
    );
    assert.throws(
      () => new DataLoader(ds, { batchSize: 0 }),
      /batchSize must be a positive integer/,
    );
    assert.throws(
      () => new DataLoader(ds, { batchSize: 4 }),
      /3 samples, fewer than one batch of 4/,
    );
    assert.throws(() => new DataLoader(ds, { batchSize: 1, seed: -1 }), /seed/);
    assert.throws(() => new DataLoader(ds, { batchSize: 1 }).batchAt(-1), /bad step -1/);
  });
});
