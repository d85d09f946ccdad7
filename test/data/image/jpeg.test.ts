import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { encode } from 'jpeg-js';

import { decodeJpeg } from '../../../src/data/image/jpeg.js';
import { decodeImage } from '../../../src/data/image/decode.js';

void describe('JPEG', () => {
  // 16x8: left half orange, right half gray, as RGBA for jpeg-js's encoder.
  const rgba = new Uint8Array(16 * 8 * 4);
  for (let p = 0; p < 128; p++)
    rgba.set(p % 16 < 8 ? [250, 130, 20, 255] : [90, 90, 90, 255], 4 * p);
  const bytes = encode({ width: 16, height: 8, data: rgba }, 95).data;

  void test('decodes to 8-bit RGB close to the source', () => {
    const img = decodeImage(bytes, 'x.jpg');
    assert.deepEqual([img.width, img.height, img.channels], [16, 8, 3]);
    for (const [p, want] of [
      [2 * 16 + 2, [250, 130, 20]],
      [5 * 16 + 13, [90, 90, 90]],
    ] as const) {
      want.forEach((v, c) => assert.ok(Math.abs(img.data[3 * p + c]! - v) <= 6, `pixel ${p}`));
    }
  });

  void test('errors name the file', () => {
    assert.throws(
      () => decodeJpeg(Uint8Array.from([1, 2, 3]), 'a.jpg'),
      /^ImageDecodeError: a\.jpg: not a JPEG file/,
    );
    assert.throws(
      () => decodeJpeg(bytes.subarray(0, bytes.length >> 1), 'half.jpg'),
      /^ImageDecodeError: half\.jpg: corrupt JPEG/,
    );
    assert.throws(() => decodeImage(new Uint8Array(0), 'empty.png'), /empty\.png: empty file/);
  });

  void test('a frame header that claims more than the file holds is refused before decoding', () => {
    const sof = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === 0xc0);
    const lying = Uint8Array.from(bytes); // a copy: slice() of a Buffer is a view
    new DataView(lying.buffer).setUint16(sof + 5, 60000); // height
    new DataView(lying.buffer).setUint16(sof + 7, 60000); // width
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(
      () => decodeJpeg(lying, 'big.jpg'),
      /^ImageDecodeError: big\.jpg: corrupt JPEG \(the frame header claims more pixels than \d+ bytes can encode\)/,
    );
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 2 ** 24, `${grown} bytes allocated for a 3.6-gigapixel claim`);
    const sos = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === 0xda);
    assert.throws(
      () => decodeJpeg(bytes.subarray(0, sos), 'cut.jpg'),
      /cut\.jpg: corrupt JPEG \(no image data: no start-of-scan marker\)/,
    );
  });
});
