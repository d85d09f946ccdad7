/**
 * Condition images of each control kind: 'edges' (Sobel), 'canny' (thin edges) and 'mask'
 * (foreground), from planes and from a batch in [−1, 1]; an unknown kind is one clear error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cannyEdges } from '../../src/data/image/canny.js';
import { sobelEdges } from '../../src/data/image/edges.js';
import {
  CONTROL_KINDS,
  controlImages,
  controlOfPlanes,
  parseControlKind,
} from '../../src/diffusion/control.js';
import { tensor } from '../../src/engine/index.js';

/** A 10×10 image, black with a white 4×4 square at (3, 3). */
function square(): Float32Array {
  const img = new Float32Array(100);
  for (let y = 3; y < 7; y++) for (let x = 3; x < 7; x++) img[y * 10 + x] = 1;
  return img;
}

const count = (v: ArrayLike<number>): number => Array.from(v).reduce((a, b) => a + b, 0);

void describe('control kinds', () => {
  void it('edges, canny and mask of a square: wide ring, thin ring, the square itself', () => {
    assert.deepEqual([...CONTROL_KINDS], ['edges', 'canny', 'mask']);
    const img = square();
    const edges = controlOfPlanes('edges', img, 1, 10, 10);
    const canny = controlOfPlanes('canny', img, 1, 10, 10);
    const mask = controlOfPlanes('mask', img, 1, 10, 10);
    assert.deepEqual(edges, sobelEdges(img, 10, 10));
    assert.deepEqual(canny, cannyEdges(img, 10, 10));
    assert.equal(
      count(edges),
      36 - 4,
      'Sobel: both sides of the border (corners outside excluded)',
    );
    assert.equal(count(canny), 12, 'Canny: the 4×4 square’s own outline');
    assert.equal(count(mask), 16);
    for (let i = 0; i < 100; i++) {
      assert.equal(mask[i], img[i], `mask pixel ${i}`);
      if (canny[i] === 1) assert.equal(edges[i], 1, 'Canny edges lie on Sobel edges');
    }
  });

  void it('a colour image: edges of the grey level, mask of every channel', () => {
    // A blue square on black: grey 1/3, below the mask threshold as grey, but blue is 1.
    const blue = new Float32Array(300);
    blue.set(square(), 200);
    assert.equal(count(controlOfPlanes('mask', blue, 3, 10, 10)), 16);
    // A magenta one (grey 2/3): its Canny edges are the white square's.
    const magenta = new Float32Array(300);
    magenta.set(square(), 0);
    magenta.set(square(), 200);
    assert.deepEqual(controlOfPlanes('canny', magenta, 3, 10, 10), cannyEdges(square(), 10, 10));
  });

  void it('controlImages maps a batch in [−1, 1] to condition images [B, 1, H, W]', async () => {
    const img = square();
    const x = new Float32Array(200).fill(-1);
    for (let i = 0; i < 100; i++) x[100 + i] = img[i]! * 2 - 1;
    const out = await controlImages('mask', tensor(x, [2, 1, 10, 10]));
    assert.deepEqual(out.shape, [2, 1, 10, 10]);
    const v = out.dataSync();
    assert.equal(count(v.subarray(0, 100)), 0, 'a blank image has an empty mask');
    assert.deepEqual(Array.from(v.subarray(100)), Array.from(img));
    out.dispose();
  });

  void it('an unknown kind is one clear error', () => {
    assert.equal(parseControlKind('canny', '--control'), 'canny');
    assert.throws(
      () => parseControlKind('depth', 'config.json'),
      /^Error: config.json: unknown control kind "depth" \(expected edges, canny, mask\)$/,
    );
    assert.throws(
      () => controlOfPlanes('depth' as 'edges', square(), 1, 10, 10),
      /unknown control kind 'depth'/,
    );
  });
});
