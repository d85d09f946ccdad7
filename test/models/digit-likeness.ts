/**
 * A nearest-neighbour check that a shipped MNIST model's samples look like digits: the RMS pixel
 * distance from each sample to the closest real digit is about what a real digit has to its
 * closest other digit, and far below what a digit with its pixels shuffled (the same ink, no
 * strokes) has; and the samples carry about as much ink as digits do (a blank image is close to
 * the thinnest 1s, so distance alone would not do).
 */
import assert from 'node:assert/strict';

import { createSampler, generate, loadPipeline } from '../../src/diffusion/index.js';

/** RMS distance from x to the nearest of the images, skipping index `skip`. */
function nearest(x: Float32Array, digits: Float32Array[], skip = -1): number {
  let best = Infinity;
  for (let j = 0; j < digits.length; j++) {
    if (j === skip) continue;
    const d = digits[j]!;
    let s = 0;
    for (let i = 0; i < x.length; i++) {
      const e = x[i]! - d[i]!;
      s += e * e;
      if (s >= best) break;
    }
    best = Math.min(best, s);
  }
  return Math.sqrt(best / x.length);
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Samples 12 images (DPM-Solver++ 2M, 12 steps, seed 3) from the model folder `dir` and asserts
 * the three relations above against `digits` (images in [0, 1], 28×28).
 */
export async function assertSamplesLookLikeDigits(
  dir: string,
  digits: Float32Array[],
): Promise<void> {
  const { model, schedulerConfig } = await loadPipeline(dir);
  const images = generate(model, createSampler('dpmpp-2m', schedulerConfig), {
    n: 12,
    seed: 3,
    numInferenceSteps: 12,
  });
  const values = await images.data();
  images.dispose();
  const size = 28 * 28;
  const samples = Array.from({ length: 12 }, (_, i) =>
    Float32Array.from(values.subarray(i * size, (i + 1) * size), (v) =>
      Math.min(1, Math.max(0, (v + 1) / 2)),
    ),
  );
  const sampleDist = mean(samples.map((s) => nearest(s, digits)));
  const realDist = mean(
    [11, 222, 3333, 4444, 5555, 6666].map((i) => nearest(digits[i]!, digits, i)),
  );
  let seed = 1;
  const rand = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const shuffled = [11, 222, 3333, 4444].map((i) => {
    const d = Float32Array.from(digits[i]!);
    for (let k = d.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [d[k], d[j]] = [d[j]!, d[k]!];
    }
    return nearest(d, digits);
  });
  const shuffledDist = mean(shuffled);
  const ink = (x: Float32Array): number => mean(Array.from(x));
  const sampleInk = mean(samples.map(ink));
  const digitInk = mean(digits.slice(0, 1000).map(ink));
  const figures =
    `nearest-digit RMS distance: samples ${sampleDist.toFixed(3)}, real digits ${realDist.toFixed(3)}, ` +
    `shuffled digits ${shuffledDist.toFixed(3)}; mean ink: samples ${sampleInk.toFixed(3)}, digits ${digitInk.toFixed(3)}`;
  assert.ok(sampleDist < 1.3 * realDist, `samples are far from the digits: ${figures}`);
  assert.ok(
    sampleDist < 0.7 * shuffledDist,
    `samples are no closer than shuffled digits: ${figures}`,
  );
  assert.ok(
    sampleInk > 0.5 * digitInk && sampleInk < 2 * digitInk,
    `samples carry too little or too much ink: ${figures}`,
  );
}
