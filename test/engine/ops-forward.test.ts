/**
 * Forward values of every op against hand-computed numbers, closed forms, or direct-loop
 * references written here (conv2d, pooling, normalization, attention), with the edge cases:
 * broadcasting, negative axes, keepDims, empty and 0-d tensors, NumPy/PyTorch semantics.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { assertClose } from './testing.js';

const f64 = { dtype: 'float64' } as const;

/** A float64 tensor from nested arrays or a flat array with a shape. */
function t(data: E.NestedArray | readonly number[], shape?: readonly number[]): Tensor {
  if (shape !== undefined) return E.tensor(Float64Array.from(data as number[]), shape);
  return E.tensor(data as E.NestedArray, undefined, f64);
}

const ints = (data: readonly number[], shape?: readonly number[]): Tensor =>
  E.tensor(Int32Array.from(data), shape ?? [data.length]);

const vals = (x: Tensor): number[] => Array.from(x.dataSync());

/** mulberry32 uniforms in [-1, 1). */
function randArray(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    out[i] = (((z ^ (z >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);
const rnd = (shape: readonly number[], seed: number): Tensor =>
  E.tensor(randArray(size(shape), seed), shape);

void describe('creation', () => {
  void test('tensor infers shape and dtype; 0-d from a number', () => {
    const a = E.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(a.shape, [2, 3]);
    assert.equal(a.dtype, 'float32');
    assert.deepEqual(vals(a), [1, 2, 3, 4, 5, 6]);
    const s = E.tensor(3.5, undefined, f64);
    assert.deepEqual(s.shape, []);
    assert.equal(s.itemSync(), 3.5);
    assert.equal(E.tensor(new Int32Array([1, 2])).dtype, 'int32');
    assert.deepEqual(
      vals(E.tensor(new Float64Array([1.5, -2.5]), [2], { dtype: 'int32' })),
      [1, -2],
    );
    assert.throws(() => E.tensor([[1, 2], [3]]), /ragged/);
    assert.throws(() => E.tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  });

  void test('tensor copies its input', () => {
    const src = new Float64Array([1, 2]);
    const a = E.tensor(src);
    src[0] = 9;
    assert.deepEqual(vals(a), [1, 2]);
  });

  void test('zeros, ones, full, *Like; empty shapes', () => {
    assert.deepEqual(vals(E.zeros([2, 2])), [0, 0, 0, 0]);
    assert.deepEqual(vals(E.ones([3], f64)), [1, 1, 1]);
    assert.deepEqual(vals(E.full([2], 7.25)), [7.25, 7.25]);
    const like = E.fullLike(t([1, 2, 3], [3]), -1);
    assert.equal(like.dtype, 'float64');
    assert.deepEqual(vals(like), [-1, -1, -1]);
    assert.equal(E.zeros([0, 5]).size, 0);
    assert.deepEqual(E.ones([]).shape, []);
    assert.throws(() => E.zeros([2, -1]), /non-negative integers/);
  });

  void test('arange and linspace follow NumPy', () => {
    assert.deepEqual(vals(E.arange(5)), [0, 1, 2, 3, 4]);
    assert.deepEqual(vals(E.arange(2, 11, 3)), [2, 5, 8]);
    assert.deepEqual(vals(E.arange(5, 0, -2)), [5, 3, 1]);
    assert.deepEqual(vals(E.arange(3, 3)), []);
    assert.deepEqual(vals(E.arange(0, 1, 0.25, f64)), [0, 0.25, 0.5, 0.75]);
    assert.equal(E.arange(4, undefined, 1, { dtype: 'int32' }).dtype, 'int32');
    assert.throws(() => E.arange(0, 1, 0), /step must not be 0/);
    assert.deepEqual(vals(E.linspace(0, 1, 5, f64)), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(vals(E.linspace(-1, 1, 1)), [-1]);
    // The last value is exactly stop, even when the steps round.
    assert.equal(vals(E.linspace(0, 0.3, 7, f64))[6], 0.3);
  });
});

void describe('unary ops', () => {
  const xs = [-2.5, -1, -0.5, 0, 0.5, 1, 3];
  const cases: [string, (x: Tensor) => Tensor, (v: number) => number][] = [
    ['neg', E.neg, (v) => -v],
    ['exp', E.exp, Math.exp],
    ['sin', E.sin, Math.sin],
    ['cos', E.cos, Math.cos],
    ['tanh', E.tanh, Math.tanh],
    ['abs', E.abs, Math.abs],
    ['square', E.square, (v) => v * v],
    ['sign', E.sign, (v) => (v > 0 ? 1 : v < 0 ? -1 : 0)],
    ['floor', E.floor, Math.floor],
    ['sigmoid', E.sigmoid, (v) => 1 / (1 + Math.exp(-v))],
    ['silu', E.silu, (v) => v / (1 + Math.exp(-v))],
  ];
  for (const [name, op, ref] of cases) {
    void test(`${name} matches its closed form`, () => {
      assertClose(op(t(xs, [7])), xs.map(ref), { rtol: 1e-14, atol: 1e-15 }, name);
    });
  }

  void test('log, sqrt, rsqrt, reciprocal on positive values; IEEE at the edges', () => {
    const p = t([0.25, 1, 4, 9], [4]);
    assertClose(E.log(p), [Math.log(0.25), 0, Math.log(4), Math.log(9)], { rtol: 1e-15 });
    assertClose(E.sqrt(p), [0.5, 1, 2, 3], { rtol: 1e-15 });
    assertClose(E.rsqrt(p), [2, 1, 0.5, 1 / 3], { rtol: 1e-15 });
    assertClose(E.reciprocal(p), [4, 1, 0.25, 1 / 9], { rtol: 1e-15 });
    const edge = t([0, -1], [2]);
    assert.deepEqual(vals(E.log(edge)), [-Infinity, NaN]);
    assert.deepEqual(vals(E.sqrt(edge)), [0, NaN]);
    assert.deepEqual(vals(E.reciprocal(edge)), [Infinity, -1]);
  });

  void test('erf and gelu against tabulated values (exact-CDF GELU, as PyTorch)', () => {
    const x = t([-1.5, 0, 0.5, 1, 2, 3, 4, -6.5], [8]);
    const erf = [
      -0.9661051464753108, 0, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527,
      0.9999779095030014, 0.9999999845827421, -1,
    ];
    assertClose(E.erf(x), erf, { rtol: 1e-13, atol: 1e-15 }, 'erf');
    // gelu(x) = x Φ(x); Φ(1) = 0.8413447460685429, Φ(-1) = 0.15865525393145707.
    assertClose(
      E.gelu(t([1, -1, 0, 10], [4])),
      [0.8413447460685429, -0.15865525393145707, 0, 10],
      { rtol: 1e-13, atol: 1e-15 },
      'gelu',
    );
  });

  void test('sigmoid does not overflow for large |x|', () => {
    assert.deepEqual(vals(E.sigmoid(t([-800, 800], [2]))), [0, 1]);
    assert.deepEqual(vals(E.silu(t([-800], [1]))), [-0]);
  });

  void test('keep dtype; work on 0-d and empty tensors', () => {
    assert.equal(E.exp(E.tensor([1, 2])).dtype, 'float32');
    assertClose(E.exp(E.tensor([1], [1])), [Math.fround(Math.E)], { rtol: 0, atol: 0 });
    const s = E.tanh(t([0.3], []));
    assert.deepEqual(s.shape, []);
    assertClose(s, [Math.tanh(0.3)], { rtol: 1e-15 });
    const z = E.exp(E.zeros([0, 3], f64));
    assert.deepEqual(z.shape, [0, 3]);
    const scalar = E.exp(E.tensor(0, undefined, f64));
    assert.deepEqual(scalar.shape, []);
    assert.equal(scalar.itemSync(), 1);
  });
});

void describe('binary ops and broadcasting', () => {
  void test('shapes broadcast right-aligned ([2,1,3] + [4,1] -> [2,4,3])', () => {
    const a = rnd([2, 1, 3], 1);
    const b = rnd([4, 1], 2);
    const y = E.add(a, b);
    assert.deepEqual(y.shape, [2, 4, 3]);
    const av = vals(a);
    const bv = vals(b);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 4; j++)
        for (let k = 0; k < 3; k++) expected.push(av[i * 3 + k]! + bv[j]!);
    assertClose(y, expected, { rtol: 0, atol: 0 });
  });

  void test('every arithmetic op on a [3,1] x [1,2] pair', () => {
    const a = t([[1], [-2], [4]]);
    const b = t([[2, 0.5]]);
    assertClose(E.add(a, b), [3, 1.5, 0, -1.5, 6, 4.5]);
    assertClose(E.sub(a, b), [-1, 0.5, -4, -2.5, 2, 3.5]);
    assertClose(E.mul(a, b), [2, 0.5, -4, -1, 8, 2]);
    assertClose(E.div(a, b), [0.5, 2, -1, -4, 2, 8]);
    assertClose(E.pow(a, b), [1, 1, 4, NaN, 16, 2]);
    assertClose(E.maximum(a, b), [2, 1, 2, 0.5, 4, 4]);
    assertClose(E.minimum(a, b), [1, 0.5, -2, -2, 2, 0.5]);
    assert.deepEqual(E.add(a, b).shape, [3, 2]);
  });

  void test('numbers as operands on either side take the tensor dtype', () => {
    const x = t([1, 2, 4], [3]);
    assert.deepEqual(vals(E.sub(1, x)), [0, -1, -3]);
    assert.deepEqual(vals(E.div(2, x)), [2, 1, 0.5]);
    assert.deepEqual(vals(E.pow(x, 2)), [1, 4, 16]);
    assert.deepEqual(vals(E.pow(2, x)), [2, 4, 16]);
    assert.deepEqual(vals(x.mul(3)), [3, 6, 12]);
    assert.equal(E.mul(E.tensor([1]), 0.1).dtype, 'float32');
    assert.deepEqual(vals(E.mul(E.tensor([1]), 0.1)), [Math.fround(0.1)]);
    assert.throws(() => E.add(1, 2), /at least one operand must be a tensor/);
  });

  void test('0-d with n-d, and empty with broadcast', () => {
    const y = E.mul(E.tensor(2, undefined, f64), t([1, 2, 3], [3]));
    assert.deepEqual(y.shape, [3]);
    assert.deepEqual(vals(y), [2, 4, 6]);
    const z = E.add(E.zeros([0, 3], f64), t([1, 2, 3], [3]));
    assert.deepEqual(z.shape, [0, 3]);
    const s = E.add(E.tensor(1, undefined, f64), E.tensor(2, undefined, f64));
    assert.deepEqual(s.shape, []);
    assert.equal(s.itemSync(), 3);
  });

  void test('incompatible shapes and dtypes fail naming both', () => {
    assert.throws(() => E.add(E.zeros([2, 3]), E.zeros([3, 2])), /\[2, 3\] and \[3, 2\]/);
    assert.throws(() => E.add(E.zeros([2]), E.zeros([2], f64)), /dtype mismatch float32/);
  });

  void test('comparisons give 1/0 in the operand dtype; NaN compares unequal', () => {
    const a = t([1, 2, 3, NaN], [4]);
    const b = t([2, 2, 2, NaN], [4]);
    assert.deepEqual(vals(E.lt(a, b)), [1, 0, 0, 0]);
    assert.deepEqual(vals(E.le(a, b)), [1, 1, 0, 0]);
    assert.deepEqual(vals(E.gt(a, b)), [0, 0, 1, 0]);
    assert.deepEqual(vals(E.ge(a, b)), [0, 1, 1, 0]);
    assert.deepEqual(vals(E.eq(a, b)), [0, 1, 0, 0]);
    assert.deepEqual(vals(E.ne(a, b)), [1, 0, 1, 1]);
    assert.equal(E.lt(a, b).dtype, 'float64');
    const i = E.eq(ints([1, 2, 3]), 2);
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(vals(i), [0, 1, 0]);
  });

  void test('int32 arithmetic stays int32', () => {
    const y = E.add(ints([1, 2, 3]), ints([10]));
    assert.equal(y.dtype, 'int32');
    assert.deepEqual(vals(y), [11, 12, 13]);
  });
});

void describe('maximum, minimum, clamp, where: ties and edges', () => {
  void test('maximum/minimum at ties give the value and split the gradient evenly', () => {
    const a = t([1, 2, 3], [3]).requireGrad();
    const b = t([1, 5, 0], [3]).requireGrad();
    const y = E.maximum(a, b);
    assert.deepEqual(vals(y), [1, 5, 3]);
    E.sum(y).backward();
    assert.deepEqual(vals(a.grad!), [0.5, 0, 1]);
    assert.deepEqual(vals(b.grad!), [0.5, 1, 0]);
    const c = t([1, 2], [2]).requireGrad();
    const d = t([1, 1], [2]).requireGrad();
    E.sum(E.minimum(c, d)).backward();
    assert.deepEqual(vals(c.grad!), [0.5, 0]);
    assert.deepEqual(vals(d.grad!), [0.5, 1]);
  });

  void test('maximum/minimum propagate NaN from either side', () => {
    const a = t([NaN, 1], [2]);
    const b = t([1, NaN], [2]);
    assert.deepEqual(vals(E.maximum(a, b)), [NaN, NaN]);
    assert.deepEqual(vals(E.minimum(a, b)), [NaN, NaN]);
  });

  void test('clamp: bounds optional, NaN kept, gradient 1 inside and at the bounds, 0 outside', () => {
    const x = t([-2, -1, 0, 1, 2, NaN], [6]).requireGrad();
    assert.deepEqual(vals(E.clamp(x, -1, 1)), [-1, -1, 0, 1, 1, NaN]);
    assert.deepEqual(vals(E.clamp(x, 0)), [0, 0, 0, 1, 2, NaN]);
    assert.deepEqual(vals(E.clamp(x, undefined, 0)), [-2, -1, 0, 0, 0, NaN]);
    assert.deepEqual(vals(x.clamp(5, 3)), [3, 3, 3, 3, 3, NaN]); // min > max: all max, as PyTorch
    const y = t([-2, -1, 0, 1, 2], [5]).requireGrad();
    E.sum(E.clamp(y, -1, 1)).backward();
    assert.deepEqual(vals(y.grad!), [0, 1, 1, 1, 0]);
  });

  void test('where broadcasts all three operands and routes the gradient', () => {
    const cond = t([[1], [0]]); // [2,1]
    const a = t([1, 2, 3], [3]).requireGrad();
    const b = t([[10], [20]]).requireGrad(); // [2,1]
    const y = E.where(cond, a, b);
    assert.deepEqual(y.shape, [2, 3]);
    assert.deepEqual(vals(y), [1, 2, 3, 20, 20, 20]);
    E.sum(y).backward();
    assert.deepEqual(vals(a.grad!), [1, 1, 1]);
    assert.deepEqual(vals(b.grad!), [0, 3]);
    assert.deepEqual(vals(E.where(t([0, 1, 2], [3]), 5, t([7], [1]))), [7, 5, 5]);
    assert.deepEqual(vals(E.where(ints([0, 1]), t([1, 2], [2]), -1)), [-1, 2]);
  });
});

void describe('cast', () => {
  void test('float to int32 truncates toward zero', () => {
    const y = E.cast(t([1.7, -1.7, 2.5, -0.5, 0, -3], [6]), 'int32');
    assert.equal(y.dtype, 'int32');
    assert.deepEqual(vals(y), [1, -1, 2, 0, 0, -3]);
  });

  void test('float64 to float32 rounds; int32 to float is exact; same dtype is a copy in the graph', () => {
    assert.deepEqual(vals(E.cast(t([0.1, 1e40], [2]), 'float32')), [Math.fround(0.1), Infinity]);
    assert.deepEqual(vals(E.cast(ints([-3, 7]), 'float64')), [-3, 7]);
    const x = t([1, 2], [2]).requireGrad();
    const y = E.cast(x, 'float64');
    assert.notEqual(y, x);
    E.sum(E.mul(y, 3)).backward();
    assert.deepEqual(vals(x.grad!), [3, 3]);
    const z = t([1], [1]).requireGrad();
    E.sum(E.cast(E.cast(z, 'float32'), 'float64')).backward();
    assert.deepEqual(vals(z.grad!), [1]);
  });
});

void describe('reductions', () => {
  const x = (): Tensor => E.tensor(E.arange(24, undefined, 1, f64).dataSync(), [2, 3, 4]);

  void test('sum over all, one axis, negative axes, keepDims', () => {
    assert.equal(E.sum(x()).itemSync(), 276);
    assert.deepEqual(E.sum(x()).shape, []);
    const s1 = E.sum(x(), 1);
    assert.deepEqual(s1.shape, [2, 4]);
    assert.deepEqual(vals(s1), [12, 15, 18, 21, 48, 51, 54, 57]);
    const s2 = E.sum(x(), -1, true);
    assert.deepEqual(s2.shape, [2, 3, 1]);
    assert.deepEqual(vals(s2), [6, 22, 38, 54, 70, 86]);
    assert.deepEqual(vals(E.sum(x(), [-1, 0])), [60, 92, 124]);
    assert.deepEqual(E.sum(x(), [0, 2], true).shape, [1, 3, 1]);
    assert.deepEqual(vals(E.sum(x(), [0, 1, 2], true)), [276]);
    assert.deepEqual(E.sum(x(), [0, 1, 2], true).shape, [1, 1, 1]);
  });

  void test('non-contiguous axes equal reducing one axis at a time', () => {
    const r = rnd([3, 4, 5, 2], 7);
    assertClose(E.sum(r, [0, 2]), E.sum(E.sum(r, 2), 0), { rtol: 1e-14 });
    assertClose(E.max(r, [1, 3]), E.max(E.max(r, 3), 1), { rtol: 0 });
    assertClose(E.mean(r, [0, 3], true), E.mean(E.mean(r, 3, true), 0, true), { rtol: 1e-14 });
  });

  void test('mean, max, min, variance', () => {
    assert.deepEqual(vals(E.mean(x(), 2)), [1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
    assert.deepEqual(vals(E.max(x(), 0)), vals(E.add(E.arange(12, undefined, 1, f64), 12)));
    assert.deepEqual(vals(E.min(x(), [1, 2])), [0, 12]);
    assert.deepEqual(vals(E.max(t([-Infinity, -Infinity], [2]))), [-Infinity]);
    assert.deepEqual(vals(E.max(t([1, NaN, 3], [3]))), [NaN]);
    const v = t([
      [1, 2, 3, 4],
      [2, 2, 2, 2],
    ]);
    assertClose(E.variance(v, 1), [1.25, 0]);
    assertClose(E.variance(v, 1, true, 1), [5 / 3, 0]);
    assert.deepEqual(E.variance(v, 1, true).shape, [2, 1]);
    assertClose(E.variance(v), [0.6875]); // mean 2.25, Σ(x−μ)² = 5.5, /8
  });

  void test('float32 reductions accumulate in float64', () => {
    // In float32 arithmetic 1e8 + 1 − 1e8 is 0.
    assert.deepEqual(vals(E.sum(E.tensor([1e8, 1, -1e8]))), [1]);
    assert.deepEqual(vals(E.mean(E.tensor([[1e8, 3, -1e8]]), 1)), [1]);
  });

  void test('max/min gradient splits evenly among ties', () => {
    const a = t([3, 1, 3, 2], [4]).requireGrad();
    E.max(a).backward();
    assert.deepEqual(vals(a.grad!), [0.5, 0, 0.5, 0]);
    const b = t([
      [1, 1],
      [0, 2],
    ]).requireGrad();
    E.sum(E.min(b, 1)).backward();
    assert.deepEqual(vals(b.grad!), [0.5, 0.5, 1, 0]);
  });

  void test('empty and 0-d inputs', () => {
    const e = E.zeros([0, 3], f64);
    assert.deepEqual(vals(E.sum(e, 0)), [0, 0, 0]);
    assert.deepEqual(vals(E.sum(e)), [0]);
    assert.ok(Number.isNaN(E.mean(e).itemSync()), 'the mean of nothing is NaN');
    assert.throws(() => E.max(e, 0), /empty axis/);
    assert.deepEqual(E.sum(e, 1).shape, [0]);
    const s = E.tensor(4, undefined, f64);
    assert.equal(E.sum(s).itemSync(), 4);
    assert.equal(E.max(s).itemSync(), 4);
    assert.throws(() => E.sum(s, 0), /out of range/);
    assert.throws(() => E.sum(x(), 3), /axis 3 is out of range for a tensor of rank 3/);
    assert.throws(() => E.sum(x(), [1, -2]), /repeated axis/);
  });

  void test('argmax: first index on ties, negative axis, keepDims, NaN counts as the maximum', () => {
    const a = t([
      [1, 5, 5],
      [7, 2, 7],
    ]);
    const i = E.argmax(a, 1);
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(vals(i), [1, 0]);
    assert.deepEqual(vals(E.argmax(a, -2)), [1, 0, 1]);
    assert.deepEqual(E.argmax(a, 0, true).shape, [1, 3]);
    assert.deepEqual(vals(E.argmax(t([1, NaN, 3], [3]), 0)), [1]);
    // Over an empty axis there is no maximum (NumPy and PyTorch raise too).
    assert.throws(
      () => E.argmax(E.zeros([2, 0, 3], f64), 1),
      /argmax: axis 1 .*\[2, 0, 3\].* is empty/,
    );
    assert.deepEqual(E.argmax(E.zeros([0, 4], f64), 1).shape, [0]);
  });

  void test('sumTo sums leading axes and size-1 axes', () => {
    const g = E.ones([2, 3, 4], f64);
    const s = E.sumTo(g, [3, 1]);
    assert.deepEqual(s.shape, [3, 1]);
    assert.deepEqual(vals(s), [8, 8, 8]);
    assert.deepEqual(vals(E.sumTo(g, [])), [24]);
    assert.equal(E.sumTo(g, [2, 3, 4]), g);
  });
});

void describe('movement', () => {
  void test('reshape infers -1, shares storage and checks sizes', () => {
    const a = E.arange(12, undefined, 1, f64);
    const r = E.reshape(a, [3, -1, 2]);
    assert.deepEqual(r.shape, [3, 2, 2]);
    assert.deepEqual(vals(r), vals(a));
    assert.equal(r.storage, a.storage);
    assert.deepEqual(E.reshape(E.zeros([0, 4]), [-1, 2]).shape, [0, 2]);
    assert.deepEqual(E.reshape(E.ones([1, 1]), []).shape, []);
    assert.throws(() => E.reshape(a, [5, -1]), /cannot view \[12\]/);
    assert.throws(() => E.reshape(a, [-1, -1]), /more than one -1/);
  });

  void test('unsqueeze, squeeze and flatten with negative axes', () => {
    const a = E.zeros([3, 1, 5]);
    assert.deepEqual(E.unsqueeze(a, 0).shape, [1, 3, 1, 5]);
    assert.deepEqual(E.unsqueeze(a, -1).shape, [3, 1, 5, 1]);
    assert.deepEqual(E.unsqueeze(a, -2).shape, [3, 1, 1, 5]);
    assert.deepEqual(E.squeeze(a).shape, [3, 5]);
    assert.deepEqual(E.squeeze(a, -2).shape, [3, 5]);
    assert.deepEqual(E.squeeze(E.zeros([1, 1])).shape, []);
    assert.throws(() => E.squeeze(a, 0), /axis 0 of \[3, 1, 5\] has size 3/);
    assert.deepEqual(E.flatten(E.zeros([2, 3, 4, 5]), 1, -2).shape, [2, 12, 5]);
    assert.deepEqual(E.flatten(E.zeros([2, 3, 4])).shape, [24]);
    assert.deepEqual(E.flatten(E.zeros([])).shape, [1]);
  });

  void test('permute and transpose move data as NumPy transpose', () => {
    const a = E.reshape(E.arange(24, undefined, 1, f64), [2, 3, 4]);
    const p = E.permute(a, [2, 0, -2]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    const av = vals(a);
    const pv = vals(p);
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 2; j++)
        for (let k = 0; k < 3; k++) assert.equal(pv[(i * 2 + j) * 3 + k], av[(j * 3 + k) * 4 + i]);
    assert.deepEqual(vals(E.transpose(t([[1, 2, 3]]))), [1, 2, 3]);
    assert.deepEqual(
      vals(
        E.transpose(
          t([
            [1, 2],
            [3, 4],
          ]),
        ),
      ),
      [1, 3, 2, 4],
    );
    assert.deepEqual(E.transpose(a, 0, -1).shape, [4, 3, 2]);
    assert.throws(() => E.permute(a, [0, 0, 1]), /not a permutation/);
  });

  void test('permuteData copies like permute and records no gradient', () => {
    const a = E.tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), [2, 3], { requiresGrad: true });
    const p = E.permuteData(a, [1, 0]);
    assert.deepEqual(p.shape, [3, 2]);
    assert.deepEqual(vals(p), [1, 4, 2, 5, 3, 6]);
    assert.equal(p.requiresGrad, false);
  });

  void test('expand broadcasts to a target shape', () => {
    const e = E.expand(t([[1], [2]]), [3, 2, 2]);
    assert.deepEqual(vals(e), [1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2]);
    assert.throws(() => E.expand(E.zeros([2, 3]), [3, 3]), /cannot broadcast|do not broadcast/);
    assert.throws(() => E.expand(E.zeros([2, 3]), [3]), /cannot broadcast|do not broadcast/);
  });

  void test('slice: Python semantics for negative, out-of-range and empty ranges', () => {
    const a = E.reshape(E.arange(20, undefined, 1, f64), [4, 5]);
    const s = E.slice(a, [1, -3], [3, -1]); // a[1:3, -3:-1]
    assert.deepEqual(s.shape, [2, 2]);
    assert.deepEqual(vals(s), [7, 8, 12, 13]);
    assert.deepEqual(vals(E.slice(a, [2])), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    assert.deepEqual(E.slice(a, [-100, 2], [100, 100]).shape, [4, 3]);
    assert.deepEqual(E.slice(a, [3, 0], [1, 5]).shape, [0, 5]);
    assert.throws(() => E.slice(a, [0, 0, 0]), /3 starts for rank 2/);
  });

  void test('pad: [before, after] per leading axis, constant value', () => {
    const p = E.pad(t([[1, 2]]), [
      [1, 0],
      [0, 2],
    ]);
    assert.deepEqual(p.shape, [2, 4]);
    assert.deepEqual(vals(p), [0, 0, 0, 0, 1, 2, 0, 0]);
    assert.deepEqual(vals(E.pad(t([1, 2], [2]), [[2, 1]], -1)), [-1, -1, 1, 2, -1]);
    assert.deepEqual(E.pad(E.zeros([2, 3]), [[1, 1]]).shape, [4, 3]);
    assert.deepEqual(vals(E.pad(E.zeros([0]), [[1, 1]], 5)), [5, 5]);
    assert.throws(() => E.pad(E.zeros([2]), [[-1, 0]]), /non-negative/);
  });

  void test('concat and stack as numpy.concatenate / numpy.stack', () => {
    const a = t([
      [1, 2],
      [3, 4],
    ]);
    const b = t([[5, 6]]);
    assert.deepEqual(vals(E.concat([a, b])), [1, 2, 3, 4, 5, 6]);
    const c = E.concat([a, t([[7], [8]])], -1);
    assert.deepEqual(c.shape, [2, 3]);
    assert.deepEqual(vals(c), [1, 2, 7, 3, 4, 8]);
    assert.deepEqual(vals(E.concat([a, E.zeros([0, 2], f64), b], 0)), [1, 2, 3, 4, 5, 6]);
    assert.throws(() => E.concat([a, b], 1), /differ off axis 1/);
    assert.throws(() => E.concat([]), /no tensors/);
    const s0 = E.stack([a, a.mul(10)]);
    assert.deepEqual(s0.shape, [2, 2, 2]);
    assert.deepEqual(vals(s0), [1, 2, 3, 4, 10, 20, 30, 40]);
    const s1 = E.stack([t([1, 2], [2]), t([3, 4], [2]), t([5, 6], [2])], -1);
    assert.deepEqual(s1.shape, [2, 3]);
    assert.deepEqual(vals(s1), [1, 3, 5, 2, 4, 6]);
    const s2 = E.stack([a, a.mul(10)], 1);
    assert.deepEqual(vals(s2), [1, 2, 10, 20, 3, 4, 30, 40]);
    const s3 = E.stack([E.tensor(1, undefined, f64), E.tensor(2, undefined, f64)]);
    assert.deepEqual(s3.shape, [2]);
    assert.equal(E.concat([ints([1]), ints([2, 3])]).dtype, 'int32');
    assert.deepEqual(vals(E.concat([ints([1]), ints([2, 3])])), [1, 2, 3]);
    assert.throws(
      () => E.concat([a, E.tensor([[5, 6]], undefined, { dtype: 'float32' })]),
      /concat: float32 \[1, 2\] on cpu joined to float64 \[2, 2\] on cpu/,
    );
  });

  void test('gather with int32 indices: repeats, 2-D and 0-d indices, as torch.index_select', () => {
    const a = t([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(vals(E.gather(a, 1, ints([2, 0, 2]))), [3, 1, 3, 6, 4, 6]);
    const g = E.gather(a, 0, ints([1, 1, 0, 1], [2, 2]));
    assert.deepEqual(g.shape, [2, 2, 3]);
    assert.deepEqual(vals(g), [4, 5, 6, 4, 5, 6, 1, 2, 3, 4, 5, 6]);
    const g0 = E.gather(a, -1, ints([1], []).reshape([]));
    assert.deepEqual(g0.shape, [2]);
    assert.deepEqual(vals(g0), [2, 5]);
    assert.deepEqual(E.gather(a, 0, E.tensor(new Int32Array(0))).shape, [0, 3]);
    assert.throws(() => E.gather(a, 0, t([0], [1])), /indices must be int32/);
    assert.throws(() => E.gather(a, 0, ints([2])), /index 2 is out of range for an axis of size 2/);
  });

  void test('gather gradient accumulates repeated indices', () => {
    const a = t([1, 2, 3], [3]).requireGrad();
    E.sum(E.gather(a, 0, ints([2, 0, 2, 2]))).backward();
    assert.deepEqual(vals(a.grad!), [1, 0, 3]);
  });

  void test('oneHot', () => {
    const o = E.oneHot(ints([2, 0, 1, 2], [2, 2]), 3);
    assert.deepEqual(o.shape, [2, 2, 3]);
    assert.equal(o.dtype, 'float32');
    assert.deepEqual(vals(o), [0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert.equal(E.oneHot(ints([0]), 2, 'float64').dtype, 'float64');
  });
});

/** Batched C = A·B by direct loops, with A [b, m, k], B [b, k, n]. */
function matmulRef(a: number[], b: number[], batch: number, m: number, k: number, n: number) {
  const out: number[] = [];
  for (let q = 0; q < batch; q++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[(q * m + i) * k + p]! * b[(q * k + p) * n + j]!;
        out.push(s);
      }
  return out;
}

void describe('matmul', () => {
  void test('2-D by hand', () => {
    const y = E.matmul(
      t([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      t([
        [7, 8],
        [9, 10],
        [11, 12],
      ]),
    );
    assert.deepEqual(y.shape, [2, 2]);
    assert.deepEqual(vals(y), [58, 64, 139, 154]);
  });

  void test('batch dims broadcast ([2,1,3,4] · [3,4,5] -> [2,3,3,5])', () => {
    const a = rnd([2, 1, 3, 4], 1);
    const b = rnd([3, 4, 5], 2);
    const y = E.matmul(a, b);
    assert.deepEqual(y.shape, [2, 3, 3, 5]);
    const ae = vals(E.expand(a, [2, 3, 3, 4]));
    const be = vals(E.expand(b, [2, 3, 4, 5]));
    assertClose(y, matmulRef(ae, be, 6, 3, 4, 5), { rtol: 1e-14, atol: 1e-15 });
  });

  void test('1-D operands as in numpy.matmul', () => {
    const v = t([1, 2, 3], [3]);
    const m = t([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    const vm = E.matmul(v, m);
    assert.deepEqual(vm.shape, [2]);
    assert.deepEqual(vals(vm), [4, 5]);
    const mv = E.matmul(E.transpose(m), v);
    assert.deepEqual(mv.shape, [2]);
    assert.deepEqual(vals(mv), [4, 5]);
    const vv = E.matmul(v, v);
    assert.deepEqual(vv.shape, []);
    assert.equal(vv.itemSync(), 14);
    const bm = E.matmul(v, E.stack([m, m.mul(2)]));
    assert.deepEqual(bm.shape, [2, 2]);
    assert.deepEqual(vals(bm), [4, 5, 8, 10]);
  });

  void test('matmulT: the four transpose cases equal matmul of explicit transposes', () => {
    const a = rnd([2, 3, 5], 3);
    const b = rnd([2, 5, 4], 4);
    const at = E.transpose(a);
    const bt = E.transpose(b);
    const ref = E.matmul(a, b);
    const tol = { rtol: 1e-13, atol: 1e-15 };
    assertClose(E.matmulT(a, b, false, false), ref, tol, 'nn');
    assertClose(E.matmulT(a, bt, false, true), ref, tol, 'nt');
    assertClose(E.matmulT(at, b, true, false), ref, tol, 'tn');
    assertClose(E.matmulT(at, bt, true, true), ref, tol, 'tt');
    assert.throws(() => E.matmulT(a, b, false, true), /inner dimensions differ/);
    assert.throws(() => E.matmul(E.zeros([2, 3]), E.zeros([2, 3])), /inner dimensions differ/);
  });

  void test('k = 0 gives zeros; float32 stays float32', () => {
    assert.deepEqual(vals(E.matmul(E.zeros([2, 0]), E.zeros([0, 3]))), [0, 0, 0, 0, 0, 0]);
    assert.equal(E.matmul(E.ones([2, 2]), E.ones([2, 2])).dtype, 'float32');
  });

  void test('linear is x Wᵀ + b over leading dims', () => {
    const x = rnd([1, 4, 5], 5);
    const w = rnd([3, 5], 6);
    const b = t([0.5, -1, 2], [3]);
    const y = E.linear(x, w, b);
    assert.deepEqual(y.shape, [1, 4, 3]);
    const ref = E.add(E.matmul(x, E.transpose(w)), b);
    assertClose(y, ref, { rtol: 1e-14, atol: 1e-15 });
    assert.deepEqual(E.linear(t([1, 2], [2]), t([[3, 4]])).shape, [1]);
    assert.throws(() => E.linear(x, E.zeros([3, 4], f64)), /does not end in 4/);
  });
});

interface ConvOpts {
  stride: [number, number];
  pad: [number, number];
  dil: [number, number];
  groups: number;
}

/** Direct-loop cross-correlation (PyTorch conv2d), NCHW input, OIHW weight. */
function conv2dRef(
  x: number[],
  [n, c, h, w]: number[],
  wt: number[],
  [o, cg, kh, kw]: number[],
  bias: number[] | null,
  { stride, pad, dil, groups }: ConvOpts,
): { out: number[]; shape: number[] } {
  const ho = Math.floor((h! + 2 * pad[0] - dil[0] * (kh! - 1) - 1) / stride[0]) + 1;
  const wo = Math.floor((w! + 2 * pad[1] - dil[1] * (kw! - 1) - 1) / stride[1]) + 1;
  const og = o! / groups;
  const out: number[] = [];
  for (let b = 0; b < n!; b++)
    for (let oc = 0; oc < o!; oc++) {
      const g = Math.floor(oc / og);
      for (let y = 0; y < ho; y++)
        for (let xo = 0; xo < wo; xo++) {
          let s = bias ? bias[oc]! : 0;
          for (let ci = 0; ci < cg!; ci++)
            for (let ky = 0; ky < kh!; ky++)
              for (let kx = 0; kx < kw!; kx++) {
                const iy = y * stride[0] - pad[0] + ky * dil[0];
                const ix = xo * stride[1] - pad[1] + kx * dil[1];
                if (iy < 0 || iy >= h! || ix < 0 || ix >= w!) continue;
                const xc = g * cg! + ci;
                s +=
                  x[((b * c! + xc) * h! + iy) * w! + ix]! *
                  wt[((oc * cg! + ci) * kh! + ky) * kw! + kx]!;
              }
          out.push(s);
        }
    }
  return { out, shape: [n!, o!, ho, wo] };
}

void describe('conv2d', () => {
  void test('ones ⊛ ones with padding 1 counts the covered pixels', () => {
    const y = E.conv2d(E.ones([1, 1, 3, 3], f64), E.ones([1, 1, 3, 3], f64), null, { padding: 1 });
    assert.deepEqual(vals(y), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
  });

  void test('a hand-computed 2×2 kernel with bias', () => {
    const x = t([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const w = t([1, 0, 0, -1], [1, 1, 2, 2]);
    const y = E.conv2d(x, w, t([10], [1]));
    assert.deepEqual(y.shape, [1, 1, 2, 2]);
    assert.deepEqual(vals(y), [6, 6, 6, 6]); // x[i,j] − x[i+1,j+1] = −4, + 10
  });

  const configs: [string, number[], number[], ConvOpts, boolean][] = [
    [
      'plain',
      [2, 3, 5, 5],
      [4, 3, 3, 3],
      { stride: [1, 1], pad: [0, 0], dil: [1, 1], groups: 1 },
      true,
    ],
    [
      'stride 2, padding 1',
      [1, 2, 7, 6],
      [3, 2, 3, 3],
      { stride: [2, 2], pad: [1, 1], dil: [1, 1], groups: 1 },
      false,
    ],
    [
      'dilation 2',
      [1, 2, 7, 7],
      [2, 2, 3, 3],
      { stride: [1, 1], pad: [2, 2], dil: [2, 2], groups: 1 },
      true,
    ],
    [
      'groups 2',
      [2, 4, 5, 5],
      [6, 2, 3, 3],
      { stride: [1, 1], pad: [1, 1], dil: [1, 1], groups: 2 },
      true,
    ],
    [
      'depthwise',
      [1, 3, 4, 5],
      [3, 1, 3, 3],
      { stride: [1, 2], pad: [1, 1], dil: [1, 1], groups: 3 },
      false,
    ],
    [
      'rectangular everything',
      [1, 3, 8, 7],
      [2, 3, 2, 3],
      { stride: [2, 1], pad: [1, 0], dil: [1, 2], groups: 1 },
      true,
    ],
    [
      '1×1',
      [1, 5, 3, 2],
      [7, 5, 1, 1],
      { stride: [1, 1], pad: [0, 0], dil: [1, 1], groups: 1 },
      false,
    ],
  ];
  for (const [name, xs, ws, opts, withBias] of configs) {
    void test(`matches the direct loop: ${name}`, () => {
      const x = rnd(xs, 11);
      const w = rnd(ws, 12);
      const b = withBias ? rnd([ws[0]!], 13) : null;
      const y = E.conv2d(x, w, b, {
        stride: opts.stride,
        padding: opts.pad,
        dilation: opts.dil,
        groups: opts.groups,
      });
      const ref = conv2dRef(vals(x), xs, vals(w), ws, b ? vals(b) : null, opts);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(y, ref.out, { rtol: 1e-13, atol: 1e-14 }, name);
    });
  }

  void test('float32 matches the float64 reference to f32 precision', () => {
    const xs = [1, 3, 6, 6];
    const ws = [4, 3, 3, 3];
    const x = randArray(size(xs), 21);
    const w = randArray(size(ws), 22);
    const y = E.conv2d(E.tensor(Float32Array.from(x), xs), E.tensor(Float32Array.from(w), ws));
    const opts: ConvOpts = { stride: [1, 1], pad: [0, 0], dil: [1, 1], groups: 1 };
    const ref = conv2dRef(
      Array.from(Float32Array.from(x)),
      xs,
      Array.from(Float32Array.from(w)),
      ws,
      null,
      opts,
    );
    assert.equal(y.dtype, 'float32');
    assertClose(y, ref.out, { rtol: 1e-6, atol: 1e-6 });
  });

  void test('bad geometry fails with a message', () => {
    assert.throws(() => E.conv2d(E.zeros([1, 3, 5, 5]), E.zeros([4, 2, 3, 3])), /3 channels/);
    assert.throws(() => E.conv2d(E.zeros([1, 1, 2, 2]), E.zeros([1, 1, 3, 3])), /does not fit/);
    assert.throws(() => E.conv2d(E.zeros([3, 5, 5]), E.zeros([1, 3, 3, 3])), /4-D/);
  });
});

/** Average pooling with count_include_pad (PyTorch's default), direct loops. */
function avgPoolRef(x: number[], [n, c, h, w]: number[], k: number, s: number, p: number) {
  const ho = Math.floor((h! + 2 * p - k) / s) + 1;
  const wo = Math.floor((w! + 2 * p - k) / s) + 1;
  const out: number[] = [];
  for (let b = 0; b < n! * c!; b++)
    for (let y = 0; y < ho; y++)
      for (let xo = 0; xo < wo; xo++) {
        let acc = 0;
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const iy = y * s - p + ky;
            const ix = xo * s - p + kx;
            if (iy >= 0 && iy < h! && ix >= 0 && ix < w!) acc += x[(b * h! + iy) * w! + ix]!;
          }
        out.push(acc / (k * k));
      }
  return { out, shape: [n!, c!, ho, wo] };
}

void describe('avgPool2d and upsampleNearest2d', () => {
  void test('tiling path (reshape + mean) by hand and against the loop', () => {
    const x = t([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]);
    assert.deepEqual(vals(E.avgPool2d(x, 2)), [3.5, 5.5, 11.5, 13.5]);
    const r = rnd([2, 3, 6, 9], 3);
    const y = E.avgPool2d(r, 3);
    const ref = avgPoolRef(vals(r), [2, 3, 6, 9], 3, 3, 0);
    assert.deepEqual(y.shape, ref.shape);
    assertClose(y, ref.out, { rtol: 1e-14, atol: 1e-15 });
  });

  for (const [k, s, p, shape] of [
    [3, 2, 1, [2, 3, 5, 5]],
    [2, 1, 0, [1, 2, 4, 6]], // tiles evenly but overlaps: must not take the reshape path
    [2, 2, 0, [1, 1, 5, 5]],
    [3, 3, 1, [1, 2, 4, 4]],
  ] as [number, number, number, number[]][]) {
    void test(`convolution path k=${k} s=${s} p=${p} counts padding (count_include_pad)`, () => {
      const x = rnd(shape, k * 10 + s + p);
      const y = E.avgPool2d(x, k, s, p);
      const ref = avgPoolRef(vals(x), shape, k, s, p);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(y, ref.out, { rtol: 1e-14, atol: 1e-15 });
    });
  }

  void test('padded corner of ones divides by k·k', () => {
    const y = E.avgPool2d(E.ones([1, 1, 2, 2], f64), 2, 1, 1);
    assert.deepEqual(vals(y), [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]);
  });

  void test('upsampleNearest2d repeats each pixel factor×factor', () => {
    const x = t([1, 2, 3, 4], [1, 1, 2, 2]);
    const y = E.upsampleNearest2d(x);
    assert.deepEqual(y.shape, [1, 1, 4, 4]);
    assert.deepEqual(vals(y), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const z = E.upsampleNearest2d(t([1, 2, 3, 4, 5, 6], [2, 1, 1, 3]), 3);
    assert.deepEqual(z.shape, [2, 1, 3, 9]);
    assert.deepEqual(vals(z).slice(0, 9), [1, 1, 1, 2, 2, 2, 3, 3, 3]);
    assert.deepEqual(vals(z).slice(27, 36), [4, 4, 4, 5, 5, 5, 6, 6, 6]);
  });
});

void describe('softmax and normalization', () => {
  void test('softmax closed form; rows sum to 1; large logits do not overflow', () => {
    const y = E.softmax(t([[0, Math.log(2), Math.log(3)]]));
    assertClose(y, [1 / 6, 2 / 6, 3 / 6], { rtol: 1e-15 });
    const r = E.mul(rnd([4, 7], 1), 10);
    assertClose(E.sum(E.softmax(r), -1), [1, 1, 1, 1], { rtol: 1e-14 });
    assertClose(E.sum(E.softmax(r, 0), 0), Array<number>(7).fill(1), { rtol: 1e-14 });
    assertClose(E.softmax(t([[1000, 1001]])), [1 / (1 + Math.E), Math.E / (1 + Math.E)], {
      rtol: 1e-14,
    });
    assertClose(E.softmax(t([[-Infinity, 0]])), [0, 1]);
  });

  void test('logSoftmax equals log(softmax) and stays finite for large logits', () => {
    const r = E.mul(rnd([3, 5], 2), 5);
    assertClose(E.logSoftmax(r), E.log(E.softmax(r)), { rtol: 1e-13, atol: 1e-14 });
    assertClose(E.logSoftmax(t([[0, 1000]])), [-1000, 0], { rtol: 1e-15 });
  });

  void test('layerNorm against the direct formula (biased variance, eps inside the root)', () => {
    const shape = [2, 3, 5];
    const x = rnd(shape, 3);
    const w = rnd([3, 5], 4);
    const b = rnd([3, 5], 5);
    const eps = 1e-3;
    const y = E.layerNorm(x, 2, w, b, eps);
    const xv = vals(x);
    const wv = vals(w);
    const bv = vals(b);
    const ref: number[] = [];
    for (let i = 0; i < 2; i++) {
      const row = xv.slice(i * 15, i * 15 + 15);
      const mu = row.reduce((s, v) => s + v, 0) / 15;
      const v = row.reduce((s, q) => s + (q - mu) ** 2, 0) / 15;
      row.forEach((q, j) => ref.push(((q - mu) / Math.sqrt(v + eps)) * wv[j]! + bv[j]!));
    }
    assertClose(y, ref, { rtol: 1e-13, atol: 1e-14 });
    const plain = E.layerNorm(x, 1);
    assertClose(E.mean(plain, -1), Array<number>(6).fill(0), { atol: 1e-15 });
    assertClose(E.variance(plain, -1), Array<number>(6).fill(1), { rtol: 1e-3 });
  });

  void test('groupNorm against the direct formula', () => {
    const [n, c, h, w] = [2, 6, 2, 3];
    const groups = 3;
    const x = rnd([n, c, h, w], 6);
    const wt = rnd([c], 7);
    const bs = rnd([c], 8);
    const y = E.groupNorm(x, groups, wt, bs);
    const xv = vals(x);
    const ref = new Array<number>(xv.length);
    const per = (c / groups) * h * w;
    for (let b = 0; b < n; b++)
      for (let g = 0; g < groups; g++) {
        const start = (b * groups + g) * per;
        const block = xv.slice(start, start + per);
        const mu = block.reduce((s, v) => s + v, 0) / per;
        const v = block.reduce((s, q) => s + (q - mu) ** 2, 0) / per;
        for (let i = 0; i < per; i++) {
          const ch = g * (c / groups) + Math.floor(i / (h * w));
          ref[start + i] = ((block[i]! - mu) / Math.sqrt(v + 1e-5)) * vals(wt)[ch]! + vals(bs)[ch]!;
        }
      }
    assertClose(y, ref, { rtol: 1e-12, atol: 1e-13 });
    // Groups = channels is instance norm; one group over [N, C, L] works too.
    assert.deepEqual(E.groupNorm(rnd([1, 3, 5], 9), 1).shape, [1, 3, 5]);
    assert.throws(() => E.groupNorm(E.zeros([1, 6, 2]), 4), /not divisible into 4 groups/);
  });
});

/** softmax(q kᵀ · scale + mask) v by direct loops over [B, L, d]. */
function attentionRef(
  q: number[],
  k: number[],
  v: number[],
  [b, lq, lk, d, dv]: number[],
  scale: number,
  mask: number[] | null,
): number[] {
  const out: number[] = [];
  for (let z = 0; z < b!; z++)
    for (let i = 0; i < lq!; i++) {
      const s: number[] = [];
      for (let j = 0; j < lk!; j++) {
        let dot = 0;
        for (let e = 0; e < d!; e++) dot += q[(z * lq! + i) * d! + e]! * k[(z * lk! + j) * d! + e]!;
        s.push(dot * scale + (mask ? mask[i * lk! + j]! : 0));
      }
      const m = Math.max(...s);
      const p = s.map((v2) => Math.exp(v2 - m));
      const tot = p.reduce((a, c) => a + c, 0);
      for (let e = 0; e < dv!; e++) {
        let acc = 0;
        for (let j = 0; j < lk!; j++) acc += (p[j]! / tot) * v[(z * lk! + j) * dv! + e]!;
        out.push(acc);
      }
    }
  return out;
}

void describe('scaledDotProductAttention and dropout', () => {
  void test('matches the direct formula with the default scale 1/√d', () => {
    const q = rnd([1, 2, 3, 4], 1);
    const k = rnd([1, 2, 5, 4], 2);
    const v = rnd([1, 2, 5, 3], 3);
    const y = E.scaledDotProductAttention(q, k, v);
    assert.deepEqual(y.shape, [1, 2, 3, 3]);
    const ref = attentionRef(vals(q), vals(k), vals(v), [2, 3, 5, 4, 3], 0.5, null);
    assertClose(y, ref, { rtol: 1e-13, atol: 1e-14 });
  });

  void test('a broadcast mask and an explicit scale; −∞ masks a key out', () => {
    const q = rnd([2, 3, 4], 4);
    const k = rnd([2, 5, 4], 5);
    const v = rnd([2, 5, 2], 6);
    const maskVals = Array.from({ length: 15 }, (_, i) =>
      i % 5 > Math.floor(i / 5) + 1 ? -Infinity : i * 0.1,
    );
    const y = E.scaledDotProductAttention(q, k, v, { mask: t(maskVals, [3, 5]), scale: 0.3 });
    const ref = attentionRef(vals(q), vals(k), vals(v), [2, 3, 5, 4, 2], 0.3, maskVals);
    assertClose(y, ref, { rtol: 1e-13, atol: 1e-14 });
    // Row 0 sees keys 0 and 1 only: changing v at key 4 must not move it.
    const v2 = E.add(
      v,
      E.pad(E.ones([2, 1, 2], f64), [
        [0, 0],
        [4, 0],
      ]),
    );
    const y2 = E.scaledDotProductAttention(q, k, v2, { mask: t(maskVals, [3, 5]), scale: 0.3 });
    assertClose(E.slice(y2, [0, 0], [2, 1]), E.slice(y, [0, 0], [2, 1]), { rtol: 0, atol: 0 });
  });

  void test('dropout: identity when p = 0 or not training; inverted scaling; deterministic', () => {
    const x = E.ones([40, 50], f64);
    assert.equal(E.dropout(x, 0, new E.Generator(1)), x);
    assert.equal(E.dropout(x, 0.5, new E.Generator(1), false), x);
    const y = E.dropout(x, 0.25, new E.Generator(3));
    const v = vals(y);
    assert.ok(
      v.every((q) => q === 0 || Math.abs(q - 4 / 3) < 1e-15),
      'every value dropped or scaled by 4/3',
    );
    const dropped = v.filter((q) => q === 0).length / v.length;
    assert.ok(Math.abs(dropped - 0.25) < 0.04, `dropped fraction ${dropped}`);
    assert.deepEqual(vals(E.dropout(x, 0.25, new E.Generator(3))), v);
    assert.notDeepEqual(vals(E.dropout(x, 0.25, new E.Generator(4))), v);
    assert.throws(() => E.dropout(x, 1, new E.Generator(1)), /p must be in \[0, 1\)/);
  });
});
