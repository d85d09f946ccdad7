/** randn/rand through tensors and Generator: the Philox stream seen from the tensor API. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { philox4x32 } from '../../src/engine/rng/philox.js';

const vals = (x: Tensor): number[] => Array.from(x.dataSync());
const f64 = { dtype: 'float64' } as const;

void describe('randn and rand from a seed and offset', () => {
  void test('same seed and offset give the same numbers; another seed or offset does not', () => {
    E.tidy(() => {
      const a = vals(E.randn([3, 7], { seed: 5, offset: 2, ...f64 }));
      assert.deepEqual(vals(E.randn([3, 7], { seed: 5, offset: 2, ...f64 })), a);
      assert.notDeepEqual(vals(E.randn([3, 7], { seed: 6, offset: 2, ...f64 })), a);
      assert.notDeepEqual(vals(E.randn([3, 7], { seed: 5, offset: 3, ...f64 })), a);
      const u = vals(E.rand([11], { seed: 5, ...f64 }));
      assert.deepEqual(vals(E.rand([11], { seed: 5, offset: 0, ...f64 })), u);
    });
  });

  void test('offset counts blocks of 4: element i uses block offset + ⌊i/4⌋', () => {
    E.tidy(() => {
      const long = vals(E.randn([12], { seed: 9, ...f64 }));
      assert.deepEqual(vals(E.randn([8], { seed: 9, offset: 1, ...f64 })), long.slice(4));
      assert.deepEqual(
        vals(E.rand([3], { seed: 9, offset: 2, ...f64 })),
        vals(E.rand([12], { seed: 9, ...f64 })).slice(8, 11),
      );
      // The shape does not matter, only the element count.
      assert.deepEqual(vals(E.randn([2, 2, 3], { seed: 9, ...f64 })), long);
    });
  });

  void test('the first uniform is (word0 + 0.5)·2⁻³² of Philox block 0 keyed by the seed', () => {
    E.tidy(() => {
      const seed = 2 ** 40 + 12345; // exercises both key words
      const words = new Uint32Array(4);
      philox4x32(3, 0, 0, 0, seed % 2 ** 32, Math.floor(seed / 2 ** 32), words);
      const u = vals(E.rand([4], { seed, offset: 3, ...f64 }));
      assert.deepEqual(
        u,
        [...words].map((w) => (w + 0.5) / 2 ** 32),
      );
      // Box–Muller on the first pair of the same block.
      const z = vals(E.randn([2], { seed, offset: 3, ...f64 }));
      const r = Math.sqrt(-2 * Math.log(u[0]!));
      assert.ok(Math.abs(z[0]! - r * Math.cos(2 * Math.PI * u[1]!)) < 1e-15, `z_0 = ${z[0]}`);
      assert.ok(Math.abs(z[1]! - r * Math.sin(2 * Math.PI * u[1]!)) < 1e-15, `z_1 = ${z[1]}`);
    });
  });

  void test('float32 draws are the float64 draws rounded', () => {
    E.tidy(() => {
      const d = vals(E.randn([9], { seed: 3, ...f64 }));
      const f = E.randn([9], { seed: 3 });
      assert.equal(f.dtype, 'float32');
      assert.deepEqual(vals(f), d.map(Math.fround));
      const u = vals(E.rand([9], { seed: 3 }));
      assert.deepEqual(u, vals(E.rand([9], { seed: 3, ...f64 })).map(Math.fround));
    });
  });

  void test('rand is in (0, 1); randn has mean ≈ 0 and variance ≈ 1', () => {
    E.tidy(() => {
      const u = vals(E.rand([4000], { seed: 1, ...f64 }));
      assert.ok(
        u.every((v) => v > 0 && v < 1),
        'every u in (0, 1)',
      );
      const m = u.reduce((s, v) => s + v, 0) / u.length;
      assert.ok(Math.abs(m - 0.5) < 0.02, `uniform mean ${m}`);
      const z = E.randn([4000], { seed: 1, ...f64 });
      const zm = E.mean(z).itemSync();
      const zv = E.variance(z).itemSync();
      assert.ok(Math.abs(zm) < 0.05, `normal mean ${zm}`);
      assert.ok(Math.abs(zv - 1) < 0.07, `normal variance ${zv}`);
    });
  });

  void test('errors: no seed or generator; int32; empty draws are fine', () => {
    E.tidy(() => {
      assert.throws(() => E.randn([2], {}), /randn: pass a generator or a seed/);
      assert.throws(() => E.rand([2], {}), /rand: pass a generator or a seed/);
      assert.throws(() => E.randn([2], { seed: 1, dtype: 'int32' }), /int32/);
      assert.throws(() => E.randn([2], { seed: -1 }), /seed must be a non-negative integer/);
      assert.equal(E.randn([0, 3], { seed: 1 }).size, 0);
    });
  });
});

void describe('Generator', () => {
  void test('each draw advances the offset by ⌈n/4⌉ blocks', () => {
    E.tidy(() => {
      const g = new E.Generator(17);
      const steps: [number[], number][] = [
        [[5], 2],
        [[4], 1],
        [[1], 1],
        [[0], 0],
        [[2, 3, 3], 5],
        [[], 1],
      ];
      let offset = 0;
      for (const [shape, blocks] of steps) {
        E.randn(shape, { generator: g });
        offset += blocks;
        assert.equal(g.offset, offset, `after a draw of shape [${shape.join(', ')}]`);
      }
      assert.deepEqual(g.state(), { seed: 17, offset });
    });
  });

  void test('generator draws equal explicit (seed, offset) draws, and a copy replays them', () => {
    E.tidy(() => {
      const g = new E.Generator(4, 10);
      const a = vals(E.randn([5], { generator: g, ...f64 }));
      const b = vals(E.rand([3, 3], { generator: g, ...f64 }));
      const c = vals(E.randn([2], { generator: g, ...f64 }));
      assert.deepEqual(a, vals(E.randn([5], { seed: 4, offset: 10, ...f64 })));
      assert.deepEqual(b, vals(E.rand([9], { seed: 4, offset: 12, ...f64 })));
      assert.deepEqual(c, vals(E.randn([2], { seed: 4, offset: 15, ...f64 })));
      const replay = new E.Generator(g.seed, 10);
      assert.deepEqual(vals(E.randn([5], { generator: replay, ...f64 })), a);
    });
  });
});
