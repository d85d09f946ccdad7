/**
 * The model shipped in models/mnist-small/ (what `sumi demo` samples): it loads as a diffusers
 * DDPMPipeline folder, records its training command, and its samples look like MNIST digits by
 * the nearest-neighbour measure of digit-likeness.ts against the 10,000 training digits.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadPreset } from '../../src/cli/presets.js';
import { loadMnist } from '../../src/data/index.js';
import { assertSamplesLookLikeDigits } from './digit-likeness.js';

const DIR = join(REPO_ROOT, 'models', 'mnist-small');

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
    const ds = loadMnist();
    const digits = Array.from({ length: ds.length }, (_, i) => ds.get(i).image);
    await assertSamplesLookLikeDigits(DIR, digits);
  });
});
