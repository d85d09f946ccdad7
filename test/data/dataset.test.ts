import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  convertChannels,
  type Dataset,
  reshapeDataset,
  sizePair,
  subsetDataset,
} from '../../src/data/dataset.js';

const ds: Dataset = {
  name: 'ramp',
  length: 5,
  channels: 1,
  height: 4,
  width: 4,
  numClasses: 5,
  get: (i) => ({ image: new Float32Array(16).fill(i / 4), label: i, name: `#${i}` }),
};

void describe('dataset helpers', () => {
  void test('reshapeDataset resizes and converts channels, keeping labels', () => {
    const r = reshapeDataset(ds, { size: 2, channels: 3 });
    assert.deepEqual([r.length, r.channels, r.height, r.width, r.numClasses], [5, 3, 2, 2, 5]);
    const s = r.get(2);
    assert.equal(s.label, 2);
    assert.equal(s.name, '#2');
    assert.deepEqual([...s.image], new Array(12).fill(0.5));
    assert.equal(reshapeDataset(ds, { size: 4, channels: 1 }), ds);
    assert.deepEqual([reshapeDataset(ds, { size: [3, 6] }).get(0).image.length], [18]);
  });

  void test('subsetDataset picks indices, checks them', () => {
    const sub = subsetDataset(ds, [4, 0]);
    assert.equal(sub.length, 2);
    assert.equal(sub.get(0).label, 4);
    assert.equal(subsetDataset(ds, 3).length, 3);
    assert.throws(() => sub.get(2), /ramp: index 2 out of range \[0, 2\)/);
    assert.throws(() => subsetDataset(ds, [5]), /index 5 out of range/);
  });

  void test('convertChannels and sizePair', () => {
    assert.deepEqual(
      [...convertChannels(Float32Array.from([1, 0, 0]), 3, 1, 1)],
      [Math.fround(0.299)],
    );
    assert.deepEqual([...convertChannels(Float32Array.from([0.5]), 1, 3, 1)], [0.5, 0.5, 0.5]);
    assert.deepEqual(sizePair(8), [8, 8]);
    assert.throws(() => sizePair(0), /bad image size/);
  });
});
