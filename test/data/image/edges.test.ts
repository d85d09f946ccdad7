import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { edgeAgreement, sobelEdges, sobelMagnitude } from '../../../src/data/image/edges.js';

/** A w×w image, black with a white square [a, b)². */
function square(w: number, a: number, b: number): Float32Array {
  const img = new Float32Array(w * w);
  for (let y = a; y < b; y++) for (let x = a; x < b; x++) img[y * w + x] = 1;
  return img;
}

void describe('Sobel edges', () => {
  void it('a unit step has magnitude 1 on both sides of it and 0 in flat regions', () => {
    const w = 6;
    const img = new Float32Array(w * w);
    for (let y = 0; y < w; y++) for (let x = 3; x < w; x++) img[y * w + x] = 1;
    const m = sobelMagnitude(img, w, w);
    for (let y = 0; y < w; y++) {
      assert.deepEqual(Array.from(m.slice(y * w, y * w + w)), [0, 0, 1, 1, 0, 0], `row ${y}`);
    }
  });

  void it('outlines a square: the ring of pixels on both sides of its border', () => {
    const e = sobelEdges(square(8, 2, 6), 8, 8);
    const rows = Array.from({ length: 8 }, (_, y) =>
      Array.from(e.slice(y * 8, y * 8 + 8)).join(''),
    );
    assert.deepEqual(rows, [
      '00000000',
      '01111110',
      '01111110',
      '01100110',
      '01100110',
      '01111110',
      '01111110',
      '00000000',
    ]);
    assert.throws(() => sobelEdges(new Float32Array(5), 2, 2), /5 values for a 2x2 image/);
  });

  void it('scores edge agreement with a pixel tolerance', () => {
    const ref = sobelEdges(square(10, 3, 7), 10, 10);
    assert.deepEqual(edgeAgreement(ref, ref, 10, 10), { precision: 1, recall: 1, f1: 1 });
    // Shifted by one pixel: every pixel is within the tolerance of 1, none within 0.
    const shifted = sobelEdges(square(10, 4, 8), 10, 10);
    assert.equal(edgeAgreement(shifted, ref, 10, 10, 1).f1, 1);
    assert.ok(edgeAgreement(shifted, ref, 10, 10, 0).f1 < 0.8, 'no tolerance, lower F1');
    // Half the predicted pixels far away: precision 1/2; all reference pixels found: recall 1.
    const far = new Float32Array(100);
    far[0] = 1;
    far[1] = 1;
    const ref2 = new Float32Array(100);
    ref2[55] = 1;
    far[55] = 1;
    far[56] = 1;
    const a = edgeAgreement(far, ref2, 10, 10, 1);
    assert.equal(a.precision, 0.5);
    assert.equal(a.recall, 1);
    assert.ok(Math.abs(a.f1 - 2 / 3) < 1e-12, `f1 ${a.f1}`);
    const empty = new Float32Array(100);
    assert.deepEqual(edgeAgreement(empty, ref2, 10, 10), { precision: 0, recall: 0, f1: 0 });
  });
});
