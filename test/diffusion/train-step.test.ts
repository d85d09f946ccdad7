// denoiserTrainStep, the browser-safe training step: the loss of a tiny U-Net on 8×8 MNIST falls
// over a few steps, the same seed gives the same losses, and a non-finite loss leaves the weights
// as they were.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  defaultScheduleConfig,
  denoiserTrainStep,
  makeSchedule,
  NonFiniteError,
} from '../../src/diffusion/index.js';
import { tensor } from '../../src/engine/index.js';
import { AdamW } from '../../src/nn/index.js';
import { firstImages, tinyUNet, trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-train-step-');
const schedule = makeSchedule(defaultScheduleConfig);

async function losses(seed: number, steps: number): Promise<number[]> {
  const model = tinyUNet(7);
  const opt = new AdamW(model, { lr: 3e-3 });
  const x0 = firstImages(fx.mnist8, 8);
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    out.push((await denoiserTrainStep(model, schedule, opt, x0, { step: s, seed })).loss);
  }
  x0.dispose();
  opt.dispose();
  return out;
}

const mean = (a: number[]): number => a.reduce((p, c) => p + c, 0) / a.length;

void test('the loss falls over 20 steps, and the same seed gives the same losses', async () => {
  const a = await losses(0, 20);
  const first = mean(a.slice(0, 5));
  const last = mean(a.slice(-5));
  assert.ok(last < 0.7 * first, `mean loss of the first 5 steps ${first}, of the last 5 ${last}`);
  assert.deepEqual(await losses(0, 4), a.slice(0, 4));
  assert.notDeepEqual(await losses(1, 4), a.slice(0, 4));
});

void test('a non-finite loss throws NonFiniteError and leaves the weights unchanged', async () => {
  const model = tinyUNet(7);
  const opt = new AdamW(model, { lr: 1e-2 });
  const before = model.parameters().map((p) => Float32Array.from(p.dataSync()));
  const x0 = tensor(new Float32Array(2 * 64).fill(Number.NaN), [2, 1, 8, 8]);
  await assert.rejects(
    denoiserTrainStep(model, schedule, opt, x0, { step: 3, seed: 0 }),
    (e: unknown) => e instanceof NonFiniteError && /at step 4/.test(e.message),
  );
  x0.dispose();
  model.parameters().forEach((p, i) => assert.deepEqual(p.dataSync(), before[i]));
  assert.ok(
    model.parameters().every((p) => p.grad === null),
    'the gradients are cleared',
  );
  opt.dispose();
});
