/**
 * The model shipped in models/mnist-small/ (what `sumi demo` samples): it loads as a diffusers
 * DDPMPipeline folder, records its training command, and its samples look like MNIST digits by a
 * nearest-neighbour measure: the RMS pixel distance from each sample to the closest of the 10,000
 * training digits is about what a real digit has to its closest other digit, and far below what a
 * digit with its pixels shuffled (the same ink, no strokes) has; and they carry about as much ink
 * as digits do (a blank image is close to the thinnest 1s, so distance alone would not do).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadPreset } from '../../src/cli/presets.js';
import { loadMnist } from '../../src/data/index.js';
import { createSampler, generate, loadPipeline } from '../../src/diffusion/index.js';

const DIR = join(REPO_ROOT, 'models', 'mnist-small');

/** RMS distance from x to the nearest of the dataset's images, skipping index `skip`. */
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

void describe('models/mnist-small', () => {
  void test('is a complete sample-ready folder with its training command', () => {
    for (const f of [
      'model_index.json',
      'unet/config.json',
      'unet/diffusion_pytorch_model.safetensors',
      'scheduler/scheduler_config.json',
      'sumi.json',
    ]) {
      assert.ok(existsSync(join(DIR, f)), `models/mnist-small/${f} is missing`);
    }
    const info = JSON.parse(readFileSync(join(DIR, 'sumi.json'), 'utf8')) as {
      command?: string;
      trainArgs?: string[];
    };
    assert.match(info.command ?? '', /^sumi train .*--data mnist .*--preset mnist-small/);
    assert.ok(Array.isArray(info.trainArgs), 'trainArgs recorded');
  });

  void test("the mnist-small preset's train section holds the settings it was trained with", () => {
    const info = JSON.parse(readFileSync(join(DIR, 'sumi.json'), 'utf8')) as {
      trainArgs: string[];
    };
    const arg = (name: string): string | undefined => {
      const i = info.trainArgs.indexOf(name);
      return i >= 0 ? info.trainArgs[i + 1] : undefined;
    };
    const train = loadPreset('mnist-small').train;
    assert.deepEqual(
      {
        batchSize: Number(arg('--batch')),
        lr: Number(arg('--lr')),
        lrSchedule: arg('--lr-schedule'),
        warmupSteps: Number(arg('--warmup')),
        emaDecay: Number(arg('--ema-decay')),
        steps: Number(arg('--steps')),
      },
      train,
    );
    assert.equal(Number(arg('--seed') ?? 0), 0, 'the default seed');
  });

  void test('its samples are as close to MNIST digits as digits are to each other', async () => {
    const { model, schedulerConfig } = await loadPipeline(DIR);
    const images = generate(model, createSampler('dpmpp-2m', schedulerConfig), {
      n: 12,
      seed: 3,
      numInferenceSteps: 12,
    });
    const values = await images.data();
    images.dispose();
    const ds = loadMnist();
    const digits = Array.from({ length: ds.length }, (_, i) => ds.get(i).image);
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
  });
});
