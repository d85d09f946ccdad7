import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decodeGif } from '../gif-reader.js';
import { encodeGif } from '../../../src/data/image/gif.js';
import type { RawImage } from '../../../src/data/image/image.js';

function makeRand(state: number): () => number {
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

function rgbOf(img: RawImage): number[][] {
  return Array.from({ length: img.width * img.height }, (_, i) => {
    const s = i * img.channels;
    return img.channels <= 2
      ? [img.data[s]!, img.data[s]!, img.data[s]!]
      : [...img.data.subarray(s, s + 3)];
  });
}

void describe('LZW through encodeGif', () => {
  void test('long noisy, striped and single-colour frames (several code table resets) decode exactly', () => {
    const rand = makeRand(11);
    const gray = (w: number, h: number, value: (i: number) => number): RawImage => ({
      width: w,
      height: h,
      channels: 1,
      data: Uint8Array.from({ length: w * h }, (_, i) => value(i)),
    });
    const frames = [
      gray(120, 120, () => rand() & 255), // 14,400 pixels of 256 levels
      gray(200, 200, (i) => ((i >> 4) & 15) * 17),
      gray(200, 200, () => 7),
    ];
    for (const frame of [...frames, gray(1, 1, () => 3)]) {
      const gif = decodeGif(encodeGif([frame]));
      assert.deepEqual(gif.frames[0]!.pixels, rgbOf(frame));
    }
  });
});

void describe('encodeGif', () => {
  void test('RGB frames with few colours: structure, loop, delays, exact pixels', () => {
    const colours = [
      [255, 0, 0],
      [0, 128, 255],
      [10, 20, 30],
      [255, 255, 255],
      [0, 0, 0],
    ];
    const frames: RawImage[] = [0, 1, 2].map((f) => {
      const data = new Uint8Array(13 * 11 * 3);
      for (let i = 0; i < 13 * 11; i++)
        data.set(colours[(i * (f + 1) + f) % colours.length]!, 3 * i);
      return { width: 13, height: 11, channels: 3, data };
    });
    const bytes = encodeGif(frames, { delayMs: [100, 250, 40], loop: 3 });
    assert.equal(bytes[bytes.length - 1], 0x3b);
    const gif = decodeGif(bytes);
    assert.equal(gif.width, 13);
    assert.equal(gif.height, 11);
    assert.equal(gif.palette.length, 8); // 5 colours round up to a table of 8
    assert.equal(gif.loop, 3);
    assert.deepEqual(
      gif.frames.map((f) => f.delay),
      [10, 25, 4],
    );
    gif.frames.forEach((f, i) => assert.deepEqual(f.pixels, rgbOf(frames[i]!)));
  });

  void test('gray frames with the fixed palette are exact; loops forever by default', () => {
    const frames: RawImage[] = [0, 1].map((f) => ({
      width: 20,
      height: 20,
      channels: 1,
      data: Uint8Array.from({ length: 400 }, (_, i) => (i * 7 + f * 100) & 255),
    }));
    const gif = decodeGif(encodeGif(frames, { palette: 'fixed' }));
    assert.equal(gif.loop, 0);
    assert.equal(gif.palette.length, 256);
    gif.frames.forEach((f, i) => {
      assert.equal(f.delay, 10);
      assert.deepEqual(f.pixels, rgbOf(frames[i]!));
    });
  });

  void test('many colours: the quantized palette stays close; the fixed cube too', () => {
    const rand = makeRand(5);
    const w = 48;
    const data = new Uint8Array(w * w * 4);
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 4;
        data.set([x * 5, y * 5, (x * y) & 255, rand() & 255], i); // alpha is ignored
      }
    }
    const frame: RawImage = { width: w, height: w, channels: 4, data };
    const want = rgbOf(frame);
    for (const [palette, bound] of [
      ['adaptive', 9],
      ['fixed', 13],
    ] as const) {
      const gif = decodeGif(encodeGif([frame, frame], { palette }));
      assert.ok(gif.palette.length <= 256, `${gif.palette.length} palette entries`);
      let err = 0;
      gif.frames[1]!.pixels.forEach((px, i) =>
        px.forEach((v, c) => (err += Math.abs(v - want[i]![c]!))),
      );
      const mean = err / (want.length * 3);
      assert.ok(mean < bound, `${palette}: mean abs error ${mean.toFixed(2)}`);
    }
  });

  void test('rejects mismatched or unusable frames', () => {
    const a: RawImage = { width: 2, height: 2, channels: 1, data: new Uint8Array(4) };
    const b: RawImage = { width: 3, height: 2, channels: 1, data: new Uint8Array(6) };
    assert.throws(() => encodeGif([]), /no frames/);
    assert.throws(() => encodeGif([a, b]), /frame 1 is 3x2, frame 0 is 2x2/);
    assert.throws(() => encodeGif([{ ...a, data: new Uint16Array(4) }]), /not 8-bit/);
    assert.throws(() => encodeGif([a], { loop: -1 }), /loop/);
  });
});
