import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  centerCropPlanes,
  flipPlanesInPlace,
  resizeCoverPlanes,
  resizePlanes,
} from '../../../src/data/image/resize.js';
import { assertClose } from '../../engine/testing.js';

/** float32 planes: to 1e-6 absolute. */
const TOL = { rtol: 0, atol: 1e-6 };

const mean = (a: Float32Array): number => a.reduce((s, v) => s + v, 0) / a.length;

void describe('resizePlanes', () => {
  void test('integer shrink averages blocks (area filter)', () => {
    const src = Float32Array.from({ length: 16 }, (_, i) => i); // 4x4
    assertClose(resizePlanes(src, 1, 4, 4, 2, 2), [2.5, 4.5, 10.5, 12.5], TOL);
  });

  void test('fractional shrink weights partial coverage and keeps the mean', () => {
    // 1 row of 3 -> 2: outputs cover [0, 1.5) and [1.5, 3).
    assertClose(resizePlanes(Float32Array.from([0, 3, 6]), 1, 1, 3, 1, 2), [1, 5], TOL);
    const src = Float32Array.from({ length: 2 * 7 * 5 }, (_, i) => Math.sin(i) + 1);
    const out = resizePlanes(src, 2, 7, 5, 3, 4);
    for (let c = 0; c < 2; c++) {
      const m = mean(src.subarray(c * 35, (c + 1) * 35));
      assert.ok(
        Math.abs(mean(out.subarray(c * 12, (c + 1) * 12)) - m) < 1e-5,
        `plane ${c}: mean kept`,
      );
    }
  });

  void test('enlarging is bilinear with half-pixel centres and clamped edges', () => {
    assertClose(resizePlanes(Float32Array.from([0, 1]), 1, 1, 2, 1, 4), [0, 0.25, 0.75, 1], TOL);
    assertClose(resizePlanes(Float32Array.from([0, 1]), 1, 2, 1, 4, 1), [0, 0.25, 0.75, 1], TOL);
  });

  void test('same size copies; mixed directions per axis', () => {
    const src = Float32Array.from({ length: 6 }, (_, i) => i);
    const same = resizePlanes(src, 1, 2, 3, 2, 3);
    assert.deepEqual(same, src);
    assert.notEqual(same, src);
    // 2x3 -> 4x1: rows enlarge (bilinear), columns shrink (area).
    assertClose(resizePlanes(src, 1, 2, 3, 4, 1), [1, 1.75, 3.25, 4], TOL);
  });

  void test('constant images stay constant', () => {
    const src = new Float32Array(3 * 9 * 13).fill(0.3);
    for (const [h, w] of [
      [4, 5],
      [20, 7],
      [9, 30],
    ] as const) {
      for (const v of resizePlanes(src, 3, 9, 13, h, w))
        assert.ok(Math.abs(v - 0.3) < 1e-6, `${h}×${w}: ${v}`);
    }
  });

  void test('rejects bad sizes', () => {
    assert.throws(() => resizePlanes(new Float32Array(4), 1, 2, 3, 1, 1), /needs 6 values/);
    assert.throws(() => resizePlanes(new Float32Array(4), 1, 2, 2, 0, 1), /bad output size/);
  });
});

void describe('cropping and flipping', () => {
  void test('centerCropPlanes takes the middle window', () => {
    const src = Float32Array.from({ length: 2 * 4 * 5 }, (_, i) => i);
    // top = 1, left = 1 (floor of half the slack)
    assert.deepEqual([...centerCropPlanes(src, 2, 4, 5, 2, 2)], [6, 7, 11, 12, 26, 27, 31, 32]);
    assert.throws(() => centerCropPlanes(src, 2, 4, 5, 5, 5), /cannot crop 4x5 to 5x5/);
  });

  void test('resizeCoverPlanes scales the short side to fit, then crops the long one', () => {
    // 2x4 to 1x1: scale 1/2 -> 1x2, crop the left of the two middle... the window at left = 0.
    const src = Float32Array.from([0, 0, 4, 4, 0, 0, 4, 4]);
    assertClose(resizeCoverPlanes(src, 1, 2, 4, 1, 1), [0], TOL);
    // 2x4 to 2x2: no scaling, the middle two columns.
    assertClose(resizeCoverPlanes(src, 1, 2, 4, 2, 2), [0, 4, 0, 4], TOL);
    // 3x6 to 4x4: scale 4/3 -> 4x8, crop columns 2..5.
    assert.equal(resizeCoverPlanes(new Float32Array(18), 1, 3, 6, 4, 4).length, 16);
  });

  void test('flipPlanesInPlace mirrors every row of every channel', () => {
    const src = Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => i);
    assert.deepEqual([...flipPlanesInPlace(src, 2, 2, 3)], [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]);
  });
});
