/**
 * coalesce: fewer, longer rows that visit exactly the same (output, input) element pairs as the
 * original shape and strides.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { coalesce, forEachRow } from '../../../src/engine/backends/cpu/iterate.js';

/** Every (output index, input offsets) pair, element by element. */
function elements(shape: readonly number[], strides: readonly (readonly number[])[]): string[] {
  const out: string[] = [];
  const rank = shape.length;
  const rowLen = rank === 0 ? 1 : shape[rank - 1]!;
  const steps = strides.map((s) => (rank === 0 ? 0 : s[rank - 1]!));
  forEachRow(shape, strides, (o, offs) => {
    for (let i = 0; i < rowLen; i++)
      out.push([o + i, ...offs.map((p, j) => p + i * steps[j]!)].join(','));
  });
  return out;
}

const CASES: [number[], number[][]][] = [
  [
    [2, 3, 4, 5],
    [
      [60, 20, 5, 1],
      [3, 1, 0, 0],
    ],
  ], // [B, C, H, W] + [B, C, 1, 1]
  [
    [2, 1, 3],
    [
      [3, 3, 1],
      [0, 0, 1],
    ],
  ],
  [[4, 5], [[1, 4]]], // a transpose: nothing merges
  [[1, 1, 1], [[1, 1, 1]]],
  [
    [3, 1, 1, 7],
    [
      [7, 7, 7, 1],
      [1, 0, 0, 0],
    ],
  ],
  [[2, 0, 3], [[0, 3, 1]]],
  [[], [[]]],
];

void describe('cpu iteration', () => {
  for (const [shape, strides] of CASES) {
    void test(`coalesce ${JSON.stringify(shape)} ${JSON.stringify(strides)}`, () => {
      const c = coalesce(shape, strides);
      assert.equal(
        c.shape.reduce((a, b) => a * b, 1),
        shape.reduce((a, b) => a * b, 1),
        'same element count',
      );
      assert.deepEqual(elements(c.shape, c.strides), elements(shape, strides));
    });
  }

  void test('a broadcast over the spatial axes becomes one row per (B, C)', () => {
    const c = coalesce(
      [2, 3, 4, 5],
      [
        [60, 20, 5, 1],
        [3, 1, 0, 0],
      ],
    );
    assert.deepEqual(c.shape, [6, 20]);
    assert.deepEqual(c.strides, [
      [20, 1],
      [1, 0],
    ]);
  });
});
