/**
 * imageQuality (image-quality.ts), the measure of an autoencoder's reconstructions: PSNR over all
 * values of a [C, H, W] image, SSIM averaged over its channel planes from constants the formulas
 * give by hand, and no SSIM for an image smaller than the window.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { imageQuality, SSIM_WINDOW } from '../../../src/eval/metrics/image-quality.js';

void describe('imageQuality', () => {
  void test('PSNR of every value, SSIM the mean of the channel planes', () => {
    const [c, h, w] = [2, 16, 16];
    const n = h * w;
    // Channel 0 exact (SSIM 1); channel 1 the constant 0.3 for 0.5 (the luminance term only).
    const original = Float32Array.from({ length: c * n }, (_, i) => (i < n ? Math.sin(i) : 0.5));
    const recon = Float32Array.from({ length: c * n }, (_, i) => (i < n ? original[i]! : 0.3));
    const q = imageQuality(original, recon, [c, h, w]);
    const mse = (n * (0.5 - Math.fround(0.3)) ** 2) / (c * n);
    assert.ok(Math.abs(q.psnr - 10 * Math.log10(4 / mse)) < 1e-6, `PSNR ${q.psnr}`);
    const c1 = (0.01 * 2) ** 2;
    const lum = (2 * 0.5 * Math.fround(0.3) + c1) / (0.25 + Math.fround(0.3) ** 2 + c1);
    assert.ok(Math.abs(q.ssim! - (1 + lum) / 2) < 1e-6, `SSIM ${q.ssim}, want ${(1 + lum) / 2}`);
  });

  void test('no SSIM below the window', () => {
    const side = SSIM_WINDOW - 1;
    const a = new Float32Array(side * side).fill(0.25);
    const q = imageQuality(
      a,
      a.map((v) => v + 0.5),
      [1, side, side],
    );
    assert.equal(q.ssim, null);
    assert.ok(Math.abs(q.psnr - 10 * Math.log10(4 / 0.25)) < 1e-9, `PSNR ${q.psnr}`);
  });
});
