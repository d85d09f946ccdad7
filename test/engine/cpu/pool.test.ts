/**
 * The CPU backend hands freed arrays out again without clearing them to the kernels that write
 * every element (concat, element-wise, strided copies, pad, cast, random). Each such op, on
 * arrays long enough to be recycled, gives the same values when every array of its output's size
 * waiting in the pool holds NaN: no kernel reads what it did not write.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../../src/engine/index.js';
import type { Tensor } from '../../../src/engine/index.js';

const f32 = { dtype: 'float32' } as const;

/** Seeded float32 values of a shape. */
const rand = (shape: number[], seed: number): Tensor => E.randn(shape, { seed, ...f32 });

const CASES: [string, () => Tensor][] = [
  ['concat', () => E.concat([rand([4, 3, 17, 19], 1), rand([4, 5, 17, 19], 2)], 1)],
  ['add', () => rand([6, 7, 31], 1).add(rand([6, 7, 31], 2))],
  ['add per row', () => rand([6, 7, 31], 1).add(rand([6, 7, 1], 2))],
  ['sub row', () => rand([40, 33], 1).sub(rand([33], 2))],
  ['mul scalar', () => rand([2000], 1).mul(3)],
  [
    'pow',
    () =>
      rand([2000], 1)
        .abs()
        .pow(rand([2000], 2)),
  ],
  ['maximum broadcast', () => E.maximum(rand([8, 1, 300], 1), rand([1, 5, 300], 2))],
  ['exp', () => rand([2000], 1).exp()],
  ['silu', () => E.silu(rand([2000], 1))],
  ['gelu', () => E.gelu(rand([2000], 1))],
  ['where', () => E.where(E.gt(rand([40, 50], 1), 0), rand([40, 50], 2), rand([50], 3))],
  ['permute', () => E.permute(rand([7, 11, 23], 1), [2, 0, 1])],
  ['slice', () => E.slice(rand([9, 40, 41], 1), [1, 3, 2], [8, 37, 40])],
  ['expand', () => E.expand(rand([1, 33, 1, 31], 1), [3, 33, 4, 31])],
  ['upsample', () => E.upsampleNearest2d(rand([2, 3, 13, 17], 1))],
  [
    'pad',
    () =>
      E.pad(
        rand([5, 30, 29], 1),
        [
          [0, 1],
          [2, 0],
          [1, 3],
        ],
        0.5,
      ),
  ],
  ['cast', () => E.cast(rand([3000], 1), 'float64')],
  ['randn', () => rand([3000], 9)],
];

void describe('cpu arrays recycled without clearing', () => {
  for (const [name, op] of CASES) {
    void test(`${name} writes every element`, () => {
      const first = E.tidy(() => op().dataSync());
      // Arrays of the output's length full of NaN, freed into the pool, then the op again.
      for (const dtype of ['float32', 'float64'] as const) {
        const poison = Array.from({ length: 8 }, () =>
          E.full([first.length], Number.NaN, { dtype }),
        );
        poison.forEach((t) => t.dispose());
      }
      const again = E.tidy(() => op().dataSync());
      assert.deepEqual(again, first);
    });
  }
});
