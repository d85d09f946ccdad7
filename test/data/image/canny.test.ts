/**
 * Canny edges: a step becomes one line at its bright side, blank images have none, hysteresis
 * keeps weak pixels only when chained to strong ones, non-maximum suppression thins a blurred
 * ramp to one pixel, and bad sizes or options are one clear error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  cannyEdges,
  gaussianBlur,
  hysteresis,
  nonMaximumSuppression,
  sobelGradients,
} from '../../../src/data/image/canny.js';

/** The rows of a binary map as strings of 0 and 1. */
const rows = (e: ArrayLike<number>, h: number, w: number): string[] =>
  Array.from({ length: h }, (_, y) =>
    Array.from({ length: w }, (_, x) => (e[y * w + x]! > 0.5 ? '1' : '0')).join(''),
  );

/** An h×w image whose column x has value f(x). */
function columns(h: number, w: number, f: (x: number) => number): Float32Array {
  const img = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img[y * w + x] = f(x);
  return img;
}

void describe('Canny edges', () => {
  void it('a vertical step gives one line, on the first column of its bright side', () => {
    for (const sigma of [0, 1, 1.5]) {
      const e = cannyEdges(
        columns(9, 12, (x) => (x >= 6 ? 1 : 0)),
        9,
        12,
        { sigma },
      );
      for (const r of rows(e, 9, 12)) assert.equal(r, '000000100000', `sigma ${sigma}`);
    }
    // A dark-to-bright step the other way round: the line is still on the bright side.
    const e = cannyEdges(
      columns(6, 10, (x) => (x < 4 ? 0.8 : 0.1)),
      6,
      10,
    );
    for (const r of rows(e, 6, 10)) assert.equal(r, '0001000000');
  });

  void it('a horizontal step gives one line too (the gradient along y)', () => {
    const w = 7;
    const img = new Float32Array(8 * w);
    for (let i = 4 * w; i < 8 * w; i++) img[i] = 1;
    const e = cannyEdges(img, 8, w);
    assert.deepEqual(rows(e, 8, w), [
      '0000000',
      '0000000',
      '0000000',
      '0000000',
      '1111111',
      '0000000',
      '0000000',
      '0000000',
    ]);
  });

  void it('a blank or flat image has no edges', () => {
    for (const v of [0, 0.5, 1]) {
      const e = cannyEdges(new Float32Array(10 * 10).fill(v), 10, 10);
      assert.equal(
        e.reduce((a, b) => a + b, 0),
        0,
        `flat ${v}`,
      );
    }
  });

  void it('a filled square gives a closed one-pixel outline', () => {
    const w = 12;
    const img = new Float32Array(w * w);
    for (let y = 3; y < 9; y++) for (let x = 3; x < 9; x++) img[y * w + x] = 1;
    const e = cannyEdges(img, w, w, { sigma: 0 });
    assert.deepEqual(rows(e, w, w), [
      '000000000000',
      '000000000000',
      '000000000000',
      '000111111000',
      '000100001000',
      '000100001000',
      '000100001000',
      '000100001000',
      '000111111000',
      '000000000000',
      '000000000000',
      '000000000000',
    ]);
  });

  void it('non-maximum suppression thins a blurred ramp to one pixel per row', () => {
    // A linear ramp over 6 columns, then blurred: |∇| is a wide bump before suppression.
    const h = 7;
    const w = 16;
    const ramp = columns(h, w, (x) => Math.min(1, Math.max(0, (x - 5) / 6)));
    const { gx, gy } = sobelGradients(gaussianBlur(ramp, h, w, 1.5), h, w);
    const wide = rows(
      gx.map((v) => (v > 0.02 ? 1 : 0)),
      h,
      w,
    )[3]!;
    assert.ok(wide.split('1').length - 1 >= 8, `the gradient is wide before NMS: ${wide}`);
    const thin = nonMaximumSuppression(gx, gy, h, w);
    for (const r of rows(
      thin.map((v) => (v > 0 ? 1 : 0)),
      h,
      w,
    )) {
      assert.equal(r.split('1').length - 1, 1, `one pixel: ${r}`);
      assert.equal(r, '0000000010000000', 'at the middle of the ramp (x = 8, value 0.5)');
    }
    const e = cannyEdges(ramp, h, w, { sigma: 1.5, low: 0.05, high: 0.1 });
    assert.deepEqual(new Set(rows(e, h, w)).size, 1, 'every row the same');
    assert.equal(rows(e, h, w)[0]!.split('1').length - 1, 1);
  });

  void it('hysteresis keeps a weak segment joined to a strong one and drops an isolated one', () => {
    // 0.9: strong; 0.3: weak (between low 0.2 and high 0.5); 0.1: below low.
    const w = 9;
    // prettier-ignore
    const m = [
      0.9, 0.3, 0.3, 0,   0,   0,   0,   0,   0,
      0,   0,   0,   0.3, 0,   0,   0.3, 0.3, 0,
      0,   0,   0,   0,   0.3, 0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,
      0.1, 0.9, 0,   0,   0,   0,   0.3, 0,   0,
    ];
    const e = hysteresis(m, 5, w, 0.2, 0.5);
    assert.deepEqual(rows(e, 5, w), [
      '111000000', // the strong pixel and the weak chain it starts (diagonal steps count)
      '000100000',
      '000010000',
      '000000000',
      '010000000', // below low: not an edge even beside a strong pixel; isolated weak ones dropped
    ]);
  });

  void it('bad sizes and options are one clear error', () => {
    assert.throws(
      () => cannyEdges(new Float32Array(5), 2, 2),
      /^Error: cannyEdges: 5 values for a 2x2 image$/,
    );
    assert.throws(
      () => cannyEdges(new Float32Array(0), 0, 3),
      /cannyEdges: the image size must be positive integers, got 0x3/,
    );
    assert.throws(
      () => cannyEdges(new Float32Array(4), 2, 2, { sigma: -1 }),
      /cannyEdges: sigma must be a finite number ≥ 0, got -1/,
    );
    assert.throws(
      () => cannyEdges(new Float32Array(4), 2, 2, { low: 0.5, high: 0.2 }),
      /cannyEdges: thresholds must satisfy 0 ≤ low ≤ high, got low 0.5, high 0.2/,
    );
    assert.throws(
      () => nonMaximumSuppression(new Float64Array(4), new Float64Array(3), 2, 2),
      /nonMaximumSuppression: 3 values for a 2x2 image/,
    );
  });
});
