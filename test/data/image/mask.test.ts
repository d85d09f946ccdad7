/**
 * Foreground masks: the background is the median colour of the border, the mask the pixels that
 * differ from it by more than the threshold in some channel.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { backgroundColour, foregroundMask } from '../../../src/data/image/mask.js';

const rows = (e: ArrayLike<number>, h: number, w: number): string[] =>
  Array.from({ length: h }, (_, y) =>
    Array.from({ length: w }, (_, x) => (e[y * w + x]! > 0.5 ? '1' : '0')).join(''),
  );

void describe('foreground masks', () => {
  void it('a grey digit on black: the pixels above 0.5', () => {
    // prettier-ignore
    const img = [
      0,   0,   0,   0,   0,
      0,   0.3, 0.9, 0.6, 0,
      0,   0.5, 1,   0.51, 0,
      0.2, 0,   0.8, 0,   0,
      0,   0,   0,   0,   0,
    ];
    assert.deepEqual(Array.from(backgroundColour(img, 1, 5, 5)), [0]);
    assert.deepEqual(rows(foregroundMask(img, 1, 5, 5), 5, 5), [
      '00000',
      '00110',
      '00110',
      '00100',
      '00000',
    ]);
    assert.deepEqual(rows(foregroundMask(img, 1, 5, 5, 0.25), 5, 5), [
      '00000',
      '01110',
      '01110',
      '00100',
      '00000',
    ]);
  });

  void it('a colour image on white: the pixels far from white in some channel', () => {
    const h = 4;
    const w = 4;
    const planes = new Float32Array(3 * h * w).fill(1);
    const set = (y: number, x: number, rgb: [number, number, number]): void => {
      for (let k = 0; k < 3; k++) planes[k * h * w + y * w + x] = rgb[k]!;
    };
    set(1, 1, [1, 0.8, 0]); // yellow: blue 1 away from white
    set(1, 2, [0.2, 0.2, 0.2]); // dark grey
    set(2, 1, [0.7, 0.85, 0.9]); // pale blue: within 0.5 of white in every channel
    set(0, 3, [0, 0, 0]); // one dark border pixel does not move the median
    assert.deepEqual(Array.from(backgroundColour(planes, 3, h, w)), [1, 1, 1]);
    assert.deepEqual(rows(foregroundMask(planes, 3, h, w), h, w), ['0001', '0110', '0000', '0000']);
  });

  void it('the median of an even border is the mean of its two middle values', () => {
    // 2×2: every pixel is on the border; sorted 0, 0.2, 0.6, 1 → (0.2 + 0.6) / 2.
    assert.ok(Math.abs(backgroundColour([0.6, 0, 1, 0.2], 1, 2, 2)[0]! - 0.4) < 1e-7, '0.4');
  });

  void it('bad shapes are one clear error', () => {
    assert.throws(
      () => foregroundMask(new Float32Array(10), 3, 2, 2),
      /^Error: foregroundMask: 10 values for a 3x2x2 image$/,
    );
    assert.throws(
      () => foregroundMask(new Float32Array(0), 1, 0, 4),
      /foregroundMask: the image shape must be positive integers, got 1x0x4/,
    );
    assert.throws(
      () => foregroundMask(new Float32Array(4), 1, 2, 2, Number.NaN),
      /foregroundMask: threshold must be a finite number ≥ 0, got NaN/,
    );
  });
});
