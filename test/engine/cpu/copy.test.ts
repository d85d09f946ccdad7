/**
 * The CPU backend's strided copy (copy.ts: permute, slice, expand, nearest upsampling) against
 * the definition, out[o] = x[offset + Σ_k idx_k · strides[k]], element by element, on random
 * shapes whose strides mix broadcast (0), natural and permuted axes, and a slice's offset.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import fc from 'fast-check';

import { concatKernel, stridedCopyKernel } from '../../../src/engine/backends/cpu/copy.js';
import { sizeOf, stridesOf } from '../../../src/engine/shape.js';

function reference(
  x: Float32Array,
  outShape: number[],
  strides: number[],
  offset: number,
): Float32Array {
  const out = new Float32Array(sizeOf(outShape));
  const os = stridesOf(outShape);
  for (let o = 0; o < out.length; o++) {
    let p = offset;
    outShape.forEach((_, k) => (p += (Math.floor(o / os[k]!) % outShape[k]!) * strides[k]!));
    out[o] = x[p]!;
  }
  return out;
}

/** A source shape, an axis order, axes broadcast to a size, and a slice's start. */
const copyCase = fc
  .array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 5 })
  .chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      order: fc.shuffledSubarray(
        shape.map((_, i) => i),
        { minLength: shape.length, maxLength: shape.length },
      ),
      broadcast: fc.array(fc.integer({ min: 0, max: 3 }), {
        minLength: shape.length,
        maxLength: shape.length,
      }),
      offset: fc.integer({ min: 0, max: 3 }),
    }),
  );

void describe('cpu strided copy', () => {
  void test('out[o] = x[offset + Σ idx_k · strides[k]] over random layouts', () => {
    fc.assert(
      fc.property(copyCase, ({ shape, order, broadcast, offset }) => {
        const natural = stridesOf(shape);
        // Axis k of the output reads source axis order[k]; a broadcast extent b > 0 on an axis
        // reads it with stride 0 (the source's size there counts as 1).
        const outShape = order.map((a, k) => (broadcast[k]! > 0 ? broadcast[k]! : shape[a]!));
        const strides = order.map((a, k) => (broadcast[k]! > 0 ? 0 : natural[a]!));
        const x = Float32Array.from({ length: sizeOf(shape) + offset }, (_, i) => i + 0.5);
        const want = reference(x, outShape, strides, offset);
        const got = new Float32Array(want.length).fill(-1);
        stridedCopyKernel(x, { outShape, strides, offset }, got);
        assert.deepEqual(got, want);
      }),
      { numRuns: 500 },
    );
  });

  void test('nearest upsampling by 2: each value in a 2×2 block', () => {
    const [r, w] = [3, 5];
    const x = Float32Array.from({ length: r * w }, (_, i) => i);
    const outShape = [r, 2, w, 2];
    const got = new Float32Array(sizeOf(outShape));
    stridedCopyKernel(x, { outShape, strides: [w, 0, 1, 0], offset: 0 }, got);
    for (let i = 0; i < r * 2; i++) {
      for (let j = 0; j < w * 2; j++) {
        assert.equal(got[i * w * 2 + j], x[Math.floor(i / 2) * w + Math.floor(j / 2)]);
      }
    }
  });

  void test('concat places each part in its columns of every row', () => {
    const a = Float32Array.from([1, 2, 3, 4]); // [2, 2]
    const b = Float32Array.from([5, 6, 7, 8, 9, 10]); // [2, 3]
    const empty = new Float32Array(0);
    const out = new Float32Array(10);
    concatKernel([a, empty, b], { outer: 2, lengths: [2, 0, 3] }, out);
    assert.deepEqual([...out], [1, 2, 5, 6, 7, 3, 4, 8, 9, 10]);
  });
});
