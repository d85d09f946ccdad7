/**
 * `sumi eval classifier`: the shipped evaluation classifier's accuracy on its reference set is the
 * held-out accuracy its training recorded (the same 999 digits, recomputed from the split), in
 * the table and in --json; bad input is one line and exit code 2.
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

  void test('a folder that is not a classifier: one line, exit code 2', async () => {
    assertCleanError(
      await sumi(['eval', 'classifier', '--classifier', join(cache, 'nope')]),
      2,
      /nope/,
    );
  });
});
