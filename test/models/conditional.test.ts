/**
 * The conditional models and classifiers shipped in models/: models/mnist-cond (class-conditional,
 * classifier-free guidance) and models/mnist-cond-full (mnist-cond trained further on all of
 * MNIST), models/mnist-text (prompts through cross-attention), models/mnist-eval (the clean evaluation classifier) and
 * models/mnist-classifier (the noise-aware classifier of classifier guidance). Each loads, records
 * its training command, and does its job on real digits: the evaluation classifier labels the
 * digits it was not trained on, the noise-aware one still labels slightly noisy ones, and guided
 * samples of mnist-cond, and unguided ones of mnist-cond-full, are classified as the class they
 * were asked for.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { classPrompt, loadMnist } from '../../src/data/index.js';
import {
  addNoise,
  createSampler,
  disposeConditioning,
  encodeConditions,
  generate,
  holdoutSplit,
  loadClassifier,
  loadPipeline,
  makeSchedule,
} from '../../src/diffusion/index.js';
import { argmax, cpuBackend, noGrad, randn, tensor, type Tensor } from '../../src/engine/index.js';

const models = (name: string): string => join(REPO_ROOT, 'models', name);

/** The first `n` images the classifiers held out of training, as [n, 1, 28, 28] in [-1, 1]. */
function heldOutDigits(n: number): { x: Tensor; labels: number[] } {
  const ds = loadMnist();
  const { heldOut } = holdoutSplit(ds, 0.1, 0);
  const picked = heldOut.filter((_, i) => i % Math.floor(heldOut.length / n) === 0).slice(0, n);
  const data = new Float32Array(n * 784);
  const labels: number[] = [];
  picked.forEach((idx, k) => {
    const s = ds.get(idx);
    for (let i = 0; i < 784; i++) data[k * 784 + i] = s.image[i]! * 2 - 1;
    labels.push(s.label!);
  });
  return { x: tensor(data, [n, 1, 28, 28]), labels };
}

function accuracy(logits: Tensor, labels: readonly number[]): number {
  const pred = argmax(logits, 1).dataSync();
  return labels.filter((y, i) => pred[i] === y).length / labels.length;
}

const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/**
 * The share of images drawn for `values` (one per digit 0–9, in order) at guidance w (default 3)
 * with 12 DPM-Solver++ steps that models/mnist-eval classifies as that digit.
 */
async function guidedAccuracy(
  name: string,
  kind: 'class' | 'text',
  values: readonly (number | string)[],
  w = 3,
): Promise<number> {
  const p = await loadPipeline(models(name));
  assert.equal(p.condition.kind, kind);
  const evalClf = (await loadClassifier(models('mnist-eval'))).classifier;
  const { cond, uncond } = encodeConditions(
    p.condition,
    { values: [...values], guidanceScale: w },
    cpuBackend(),
  );
  const images = generate(p.model, createSampler('dpmpp-2m', p.schedulerConfig), {
    n: values.length,
    seed: 0,
    numInferenceSteps: 12,
    cond,
    uncond,
    guidanceScale: w,
  });
  disposeConditioning(cond);
  if (uncond !== null) disposeConditioning(uncond);
  return noGrad(() => accuracy(evalClf.forward(images, 0), DIGITS));
}

void describe('shipped conditional models', () => {
  void test('each records the command that trained it', () => {
    for (const [name, pattern] of [
      ['mnist-cond', /^sumi train .*--class-cond/],
      ['mnist-cond-full', /^sumi train --init models\/mnist-cond --data mnist-full --class-cond /],
      ['mnist-text', /^sumi train .*--preset mnist-text/],
      ['mnist-eval', /^sumi train-classifier .*--clean/],
      ['mnist-classifier', /^sumi train-classifier .*--noise-aware/],
    ] as const) {
      const info = JSON.parse(readFileSync(join(models(name), 'sumi.json'), 'utf8')) as {
        command?: string;
      };
      assert.match(info.command ?? '', pattern, `${name}/sumi.json`);
    }
  });

  void test('models/mnist-eval labels held-out digits; models/mnist-classifier labels noisy ones', async () => {
    const evalClf = (await loadClassifier(models('mnist-eval'))).classifier;
    const guide = await loadClassifier(models('mnist-classifier'));
    const { x, labels } = heldOutDigits(100);
    const schedule = makeSchedule(
      Float64Array.from(createSampler('ddpm', guide.schedulerConfig ?? {}).betas),
    );
    noGrad(() => {
      const clean = accuracy(evalClf.forward(x, 0), labels);
      assert.ok(clean >= 0.95, `evaluation classifier: ${clean} of 100 held-out digits`);
      const t = Array.from({ length: labels.length }, () => 100);
      const noisy = addNoise(schedule, x, randn(x.shape, { seed: 1 }), t);
      const acc = accuracy(guide.classifier.forward(noisy, t), labels);
      assert.ok(acc >= 0.9, `noise-aware classifier at t = 100: ${acc}`);
    });
  });

  void test('models/mnist-cond: guided samples show the class asked for', async () => {
    const acc = await guidedAccuracy('mnist-cond', 'class', DIGITS);
    assert.ok(acc >= 0.8, `${acc * 10} of 10 guided samples classified as asked`);
  });

  void test('models/mnist-cond-full: unguided samples show the class asked for', async () => {
    const acc = await guidedAccuracy('mnist-cond-full', 'class', DIGITS, 1);
    assert.ok(acc >= 0.8, `${acc * 10} of 10 unguided samples classified as asked`);
  });

  void test('models/mnist-text: guided samples show the digit the prompt names', async () => {
    const prompts = DIGITS.map((c) => classPrompt('mnist', c));
    const acc = await guidedAccuracy('mnist-text', 'text', prompts);
    assert.ok(acc >= 0.8, `${acc * 10} of 10 prompted samples classified as asked`);
  });
});
