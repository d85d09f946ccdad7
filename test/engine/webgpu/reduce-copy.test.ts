/**
 * WebGPU reductions and data movement against the CPU reference: reduce (sum/max/min over
 * [outer, size, inner], long rows split into segments, inner > 1, empty axes), argmax (ties and
 * NaN), stridedCopy (permute, slice, expand), pad, gather and scatterAdd.
 *
 * Tolerances: max, min, argmax and every copy are exact (no arithmetic). sum: the GPU adds in
 * f32 in a fixed tree/segment order while the CPU adds in f64 and rounds once, so the bound is
 * the classical one for recursive summation, |error| ≤ (n − 1)·2^-24·Σ|x_i| (plus half an ulp
 * for the CPU's final rounding), with n the number of terms. int32 sums are exact (wrapping).
 * scatterAdd adds at most a few terms per output: the same bound with n = terms per output.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Storage } from '../../../src/engine/backend.js';
import { stridesOf, sizeOf } from '../../../src/engine/shape.js';
import { assertNear, both, cpu, randArray, randInts, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;

/** Σ|x| over the reduced axis for each output of [outer, size, inner]. */
function absSums(x: Float32Array, outer: number, size: number, inner: number): Float64Array {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < size; r++) {
      for (let i = 0; i < inner; i++)
        out[o * inner + i]! += Math.abs(x[(o * size + r) * inner + i]!);
    }
  }
  return out;
}

const REDUCE_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 1],
  [7, 65, 1],
  [2, 1000, 1],
  [1, 100003, 1], // one long row: segmented, then reduced again
  [5, 7, 3],
  [1, 13, 257],
  [4, 3001, 2], // long axis with few outputs: segmented cols
  [2, 300, 17],
  [3, 0, 4], // empty axis: the identity
  [0, 5, 3],
];

void describe('webgpu reductions', { skip }, () => {
  for (const op of ['sum', 'max', 'min'] as const) {
    void test(`reduce ${op} float32`, async () => {
      for (const [outer, size, inner] of REDUCE_SHAPES) {
        if (op !== 'sum' && size === 0) continue;
        const x = randArray(outer * size * inner, outer * 31 + size + inner, -2, 2);
        const { g, c } = await both(gpu!, [x], (b, [s]) => b.reduce(op, s!, outer, size, inner));
        const abs = absSums(x, outer, size, inner);
        const bound = (i: number): number =>
          op === 'sum'
            ? Math.max(size - 1, 0) * 2 ** -24 * abs[i]! + 2 ** -24 * Math.abs(c[i]!)
            : 0;
        assertNear(g, c, { bound }, `${op} [${outer}, ${size}, ${inner}]`);
      }
    });
  }

  void test('reduce int32 (exact)', async () => {
    for (const [outer, size, inner] of REDUCE_SHAPES) {
      const x = randInts(outer * size * inner, size + 3, -1000, 1000);
      for (const op of ['sum', 'max', 'min'] as const) {
        if (op !== 'sum' && size === 0) continue;
        const { g, c } = await both(gpu!, [x], (b, [s]) => b.reduce(op, s!, outer, size, inner));
        assert.deepEqual(g, c, `${op} int32 [${outer}, ${size}, ${inner}]`);
      }
    }
  });

  void test('max and min propagate NaN', async () => {
    const x = randArray(2 * 300 * 3, 9);
    x[5 * 3 + 1] = NaN; // row 0, inner 1
    x[300 * 3 + 299 * 3] = NaN; // row 1, inner 0, last element
    const y = randArray(2 * 500, 10);
    y[17] = NaN;
    for (const op of ['max', 'min'] as const) {
      const a = await both(gpu!, [x], (b, [s]) => b.reduce(op, s!, 2, 300, 3));
      assertNear(a.g, a.c, {}, `${op} NaN cols`);
      const r = await both(gpu!, [y], (b, [s]) => b.reduce(op, s!, 2, 500, 1));
      assertNear(r.g, r.c, {}, `${op} NaN rows`);
    }
  });

  void test('argmax: first index of the maximum, NaN counts as maximal', async () => {
    for (const [outer, size, inner] of REDUCE_SHAPES) {
      if (size === 0) continue;
      // Few distinct values, so ties are common.
      const x = randInts(outer * size * inner, size * 7 + 1, 0, 5).map((v) => v);
      const xf = Float32Array.from(x);
      const { g, c } = await both(gpu!, [xf], (b, [s]) => b.argmax(s!, outer, size, inner));
      assert.deepEqual(g, c, `argmax f32 [${outer}, ${size}, ${inner}]`);
      const r = await both(gpu!, [x], (b, [s]) => b.argmax(s!, outer, size, inner));
      assert.deepEqual(r.g, r.c, `argmax i32 [${outer}, ${size}, ${inner}]`);
    }
    const y = Float32Array.from([1, NaN, 3, NaN, -Infinity, -Infinity, -Infinity, 2]);
    for (const [outer, size] of [
      [2, 4],
      [1, 8],
    ]) {
      const { g, c } = await both(gpu!, [y], (b, [s]) => b.argmax(s!, outer!, size!, 1));
      assert.deepEqual(g, c, 'argmax NaN / -inf');
    }
    const long = randArray(3 * 1000, 12);
    long[1500] = NaN;
    long[1700] = NaN;
    const l = await both(gpu!, [long], (b, [s]) => b.argmax(s!, 3, 1000, 1));
    assert.deepEqual(l.g, l.c, 'argmax long rows with NaN');
  });
});

void describe('webgpu data movement', { skip }, () => {
  void test('stridedCopy: permutes, slices, expands, rank 0', async () => {
    const shape = [3, 4, 5, 2];
    const x = randArray(sizeOf(shape), 20);
    const st = stridesOf(shape);
    const perms = [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [1, 0, 3, 2],
      [2, 0, 3, 1],
    ];
    for (const p of perms) {
      const spec = { outShape: p.map((a) => shape[a]!), strides: p.map((a) => st[a]!), offset: 0 };
      const { g, c } = await both(gpu!, [x], (b, [s]) => b.stridedCopy(s!, spec));
      assertNear(g, c, {}, `permute ${p.join(',')}`);
    }
    // slice [1:3, :, 2:5, 1:2]
    const slice = { outShape: [2, 4, 3, 1], strides: st, offset: 1 * st[0]! + 2 * st[2]! + 1 };
    const s1 = await both(gpu!, [x], (b, [s]) => b.stridedCopy(s!, slice));
    assertNear(s1.g, s1.c, {}, 'slice');
    // expand [5] -> [3, 5] and [3, 1] -> [3, 7]
    const v = randArray(5, 21);
    const e1 = await both(gpu!, [v], (b, [s]) =>
      b.stridedCopy(s!, { outShape: [3, 5], strides: [0, 1], offset: 0 }),
    );
    assertNear(e1.g, e1.c, {}, 'expand rows');
    const e2 = await both(gpu!, [randArray(3, 22)], (b, [s]) =>
      b.stridedCopy(s!, { outShape: [3, 7], strides: [1, 0], offset: 0 }),
    );
    assertNear(e2.g, e2.c, {}, 'expand cols');
    const z = await both(gpu!, [v], (b, [s]) =>
      b.stridedCopy(s!, { outShape: [], strides: [], offset: 3 }),
    );
    assertNear(z.g, z.c, {}, 'rank 0');
    const ints = randInts(24, 23, -9, 9);
    const i1 = await both(gpu!, [ints], (b, [s]) =>
      b.stridedCopy(s!, { outShape: [4, 6], strides: [1, 4], offset: 0 }),
    );
    assert.deepEqual(i1.g, i1.c, 'int32 transpose');
  });

  void test('pad: any axes, value, int32, rank 0', async () => {
    const cases: { inShape: number[]; before: number[]; after: number[]; value: number }[] = [
      { inShape: [5], before: [2], after: [3], value: 0 },
      { inShape: [2, 3, 4], before: [0, 1, 0], after: [0, 2, 0], value: -1.5 },
      { inShape: [2, 3, 4, 5], before: [1, 0, 2, 0], after: [0, 0, 1, 3], value: 7 },
      { inShape: [1, 1, 7, 7], before: [0, 0, 1, 1], after: [0, 0, 1, 1], value: 0 },
      { inShape: [3, 0], before: [1, 2], after: [0, 1], value: 2 },
      { inShape: [], before: [], after: [], value: 0 },
    ];
    for (const { inShape, before, after, value } of cases) {
      const outShape = inShape.map((d, i) => d + before[i]! + after[i]!);
      const spec = { inShape, outShape, before, value };
      const x = randArray(sizeOf(inShape), 30);
      const { g, c } = await both(gpu!, [x], (b, [s]) => b.pad(s!, spec));
      assertNear(g, c, {}, `pad ${JSON.stringify(inShape)}`);
      const xi = randInts(sizeOf(inShape), 31, -5, 5);
      const r = await both(gpu!, [xi], (b, [s]) => b.pad(s!, spec));
      assert.deepEqual(r.g, r.c, `pad int32 ${JSON.stringify(inShape)}`);
    }
  });

  void test('gather and scatterAdd (repeated indices, inner 1 and > 1)', async () => {
    const cases = [
      { outer: 1, axisSize: 10, inner: 1, numIndices: 7 },
      { outer: 3, axisSize: 5, inner: 4, numIndices: 9 },
      { outer: 2, axisSize: 13, inner: 33, numIndices: 1 },
      { outer: 1, axisSize: 3, inner: 2, numIndices: 0 },
    ];
    for (const spec of cases) {
      const x = randArray(spec.outer * spec.axisSize * spec.inner, 40);
      const idx = randInts(spec.numIndices, 41, 0, spec.axisSize);
      const g1 = await both(gpu!, [x, idx], (b, [s, i]) => b.gather(s!, i!, spec));
      assertNear(g1.g, g1.c, {}, `gather ${JSON.stringify(spec)}`);
      const src = randArray(spec.outer * spec.numIndices * spec.inner, 42);
      const g2 = await both(gpu!, [src, idx], (b, [s, i]) => b.scatterAdd(s!, i!, spec));
      const terms = Math.max(1, spec.numIndices);
      assertNear(g2.g, g2.c, { rtol: terms * 2 ** -24, atol: terms * 2 ** -24 }, 'scatterAdd');
      const xi = randInts(x.length, 43, -9, 9);
      const g3 = await both(gpu!, [xi, idx], (b, [s, i]) => b.gather(s!, i!, spec));
      assert.deepEqual(g3.g, g3.c, 'gather int32');
    }
  });

  void test('an out-of-range index is reported at the next read', async () => {
    const spec = { outer: 1, axisSize: 4, inner: 2, numIndices: 3 };
    const x = gpu!.fromArray(randArray(8, 50));
    const idx = gpu!.fromArray(Int32Array.from([0, 4, 1]));
    const out: Storage = gpu!.gather(x, idx, spec);
    await assert.rejects(gpu!.read(out), /out of range/);
    // The flag is cleared: later reads work.
    const ok = await gpu!.read(x);
    assert.equal(ok.length, 8);
    const neg = gpu!.fromArray(Int32Array.from([-1, 0, 0]));
    const out2 = gpu!.scatterAdd(gpu!.fromArray(randArray(6, 51)), neg, spec);
    await assert.rejects(gpu!.read(out2), /out of range/);
    void cpu;
  });
});
