/** PSNR and SSIM (image-quality.ts) on planes whose scores follow from the formulas by hand. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { psnr, ssim } from '../../../src/eval/metrics/image-quality.js';

/** A 16×16 plane from a formula. */
const plane = (f: (i: number) => number): Float64Array =>
  Float64Array.from({ length: 256 }, (_, i) => f(i));

void describe('image quality', () => {
  void test('PSNR = 10 log10(L² / MSE)', () => {
    const a = plane(() => 0);
    const b = plane(() => 0.1);
    assert.ok(Math.abs(psnr(a, b, 2) - 10 * Math.log10(4 / 0.01)) < 1e-9, `${psnr(a, b, 2)}`);
    assert.equal(psnr(a, a, 2), Infinity);
    assert.throws(() => psnr(a, b.subarray(1), 2), /256 values against 255/);
  });

  void test('SSIM: 1 for equal planes; the luminance term (2cd + C1)/(c² + d² + C1) for constants', () => {
    const a = plane((i) => Math.sin(i * 0.7) * 0.8);
    assert.ok(Math.abs(ssim(a, a, 16, 16, 2) - 1) < 1e-12, 'equal planes');
    const c1 = (0.01 * 2) ** 2;
    const want = (2 * 0.5 * 0.3 + c1) / (0.25 + 0.09 + c1);
    const got = ssim(
      plane(() => 0.5),
      plane(() => 0.3),
      16,
      16,
      2,
    );
    assert.ok(Math.abs(got - want) < 1e-12, `${got} vs ${want}`);
  });

  void test('SSIM is symmetric and falls as noise grows; small planes are refused', () => {
    const a = plane((i) => Math.sin(i * 0.7) * 0.8);
    const noisy = (s: number) => a.map((v, i) => v + s * Math.cos(i * 12.9898));
    const b = noisy(0.1);
    assert.ok(Math.abs(ssim(a, b, 16, 16, 2) - ssim(b, a, 16, 16, 2)) < 1e-12, 'symmetric');
    const scores = [0.05, 0.2, 0.8].map((s) => ssim(a, noisy(s), 16, 16, 2));
    assert.ok(scores[0]! > scores[1]! && scores[1]! > scores[2]!, `${scores.join(' > ')}`);
    assert.throws(
      () => ssim(a.subarray(0, 100), a.subarray(0, 100), 10, 10, 2),
      /smaller than the 11x11/,
    );
  });
});
