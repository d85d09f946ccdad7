/**
 * `sumi eval classifier`: the shipped evaluation classifier's accuracy on its reference set is the
 * held-out accuracy its training recorded (the same 999 digits, recomputed from the split), in
 * the table and in --json; models/fashion-eval scores at least 90% of the Fashion-MNIST test split
 * and models/mnist-full-eval at least 99% of the MNIST test split, the figures docs/quality.md
 * gives; bad input is one line and exit code 2.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { assertCleanError, sumiInProcess as sumi } from './run-sumi.js';

const MNIST_EVAL = join(REPO_ROOT, 'models', 'mnist-eval');
const FASHION_EVAL = join(REPO_ROOT, 'models', 'fashion-eval');
const MNIST_FULL_EVAL = join(REPO_ROOT, 'models', 'mnist-full-eval');

/** `sumi eval classifier` on models/mnist-eval with this file's cache, plus `extra`. */
const evalMnistEval = (...extra: string[]) =>
  sumi(['eval', 'classifier', '--classifier', MNIST_EVAL, '--cache-dir', cache, ...extra]);

let cache = '';
before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'sumi-eval-classifier-'));
});
after(async () => {
  await rm(cache, { recursive: true, force: true });
});

void describe('sumi eval classifier', () => {
  void test('models/mnist-eval: the accuracy its sumi.json recorded on the digits it held out', async () => {
    const info = JSON.parse(readFileSync(join(MNIST_EVAL, 'sumi.json'), 'utf8')) as {
      heldOut: { count: number; scores: { t: number; accuracy: number }[] };
    };
    const r = await evalMnistEval('--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      reference: { images: number; seenByClassifier: boolean | null };
      accuracy: { accuracy: number; n: number; correct: number; perClassCount: number[] };
    };
    assert.equal(out.reference.images, info.heldOut.count);
    assert.equal(out.reference.seenByClassifier, false);
    assert.equal(out.accuracy.n, info.heldOut.count);
    assert.equal(
      out.accuracy.perClassCount.reduce((a, b) => a + b, 0),
      info.heldOut.count,
    );
    assert.ok(
      Math.abs(out.accuracy.accuracy - info.heldOut.scores[0]!.accuracy) < 1e-12,
      `${out.accuracy.accuracy} against the recorded ${info.heldOut.scores[0]!.accuracy}`,
    );

    const table = await evalMnistEval('--quiet');
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      new RegExp(`accuracy +${(100 * out.accuracy.accuracy).toFixed(2)}% `),
    );
  });

  /** A shipped classifier of a dataset with a test split: its test accuracy, as the docs give it. */
  const testSplitAccuracy = async (
    dir: string,
    data: string,
    lastClass: string,
    atLeast: number,
    docPhrase: string,
  ): Promise<void> => {
    const info = JSON.parse(readFileSync(join(dir, 'sumi.json'), 'utf8')) as {
      data: string;
      classNames: string[];
      command: string;
    };
    assert.equal(info.data, data);
    assert.equal(info.classNames[9], lastClass);
    assert.match(info.command, new RegExp(`^sumi train-classifier --data ${data} --clean `));
    const r = await sumi([
      'eval',
      'classifier',
      '--classifier',
      dir,
      '--cache-dir',
      cache,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      reference: { images: number; seenByClassifier: boolean | null };
      accuracy: { accuracy: number; n: number; correct: number };
    };
    assert.equal(out.reference.images, 10000);
    assert.equal(out.reference.seenByClassifier, false);
    assert.equal(out.accuracy.n, 10000);
    assert.ok(out.accuracy.correct >= atLeast, `${out.accuracy.correct} of 10,000 test images`);
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'quality.md'), 'utf8');
    const phrase = `${out.accuracy.correct.toLocaleString('en-US')} ${docPhrase}`;
    assert.ok(doc.includes(phrase), `docs/quality.md says "${phrase}"`);
  };

  void test('models/fashion-eval: at least 90% of the 10,000 Fashion-MNIST test images, as docs/quality.md records', async () => {
    await testSplitAccuracy(
      FASHION_EVAL,
      'fashion-mnist',
      'Ankle boot',
      9000,
      'of the 10,000 test images',
    );
  });

  void test('models/mnist-full-eval: at least 99% of the 10,000 MNIST test digits, as docs/quality.md records', async () => {
    await testSplitAccuracy(
      MNIST_FULL_EVAL,
      'mnist-full',
      '9',
      9900,
      'of the 10,000 MNIST test digits',
    );
  });

  void test('a folder that is not a classifier: one line, exit code 2', async () => {
    assertCleanError(
      await sumi(['eval', 'classifier', '--classifier', join(cache, 'nope')]),
      2,
      /nope/,
    );
  });
});
