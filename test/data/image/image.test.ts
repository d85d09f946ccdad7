import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  checkImage,
  imageToPlanes,
  planesToImage,
  type RawImage,
  to8Bit,
} from '../../../src/data/image/image.js';
import { assertClose } from '../../engine/testing.js';

/** float32 planes: to 1e-6 absolute. */
const TOL = { rtol: 0, atol: 1e-6 };

void describe('imageToPlanes', () => {
  const rgba: RawImage = {
    width: 2,
    height: 1,
    channels: 4,
    data: Uint8Array.from([255, 0, 0, 255, 0, 0, 255, 0]), // opaque red, transparent blue
  };

  void test('RGBA over a background, planar', () => {
    assertClose(imageToPlanes(rgba, 3), [1, 1, 0, 1, 0, 1], TOL); // the transparent pixel shows white
    assertClose(imageToPlanes(rgba, 3, [0, 0.5, 0]), [1, 0, 0, 0.5, 0, 0], TOL);
  });

  void test('gray <-> RGB, 16-bit, gray+alpha half transparent', () => {
    assertClose(imageToPlanes(rgba, 1, [0, 0, 0]), [0.299, 0], TOL);
    const gray16: RawImage = {
      width: 2,
      height: 1,
      channels: 1,
      data: Uint16Array.from([0, 65535]),
    };
    assertClose(imageToPlanes(gray16, 3), [0, 1, 0, 1, 0, 1], TOL);
    const ga: RawImage = { width: 1, height: 1, channels: 2, data: Uint8Array.from([0, 51]) };
    assertClose(imageToPlanes(ga, 1), [0.8], TOL); // 0 * 0.2 + 1 * 0.8
  });

  void test('planesToImage rounds, clamps and maps a range', () => {
    const img = planesToImage([-1, 0, 1, 2, NaN, 0.5], 3, 1, 2, [-1, 1]);
    // Planes: R = (-1, 0), G = (1, 2), B = (NaN, 0.5); interleaved per pixel.
    assert.deepEqual([...img.data], [0, 255, 0, 128, 255, 191]);
    assert.throws(() => planesToImage([1, 2], 3, 1, 1), /needs 3 values/);
  });

  void test('to8Bit and checkImage', () => {
    const img: RawImage = { width: 1, height: 1, channels: 1, data: Uint16Array.from([257 * 200]) };
    assert.deepEqual([...to8Bit(img).data], [200]);
    assert.throws(() => checkImage({ ...img, width: 0 }), /positive integers/);
    assert.throws(() => checkImage({ ...img, channels: 3 }), /needs 3 samples, data has 1/);
  });
});
