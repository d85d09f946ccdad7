import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { classDistribution, conditionalAccuracy } from '../../../src/eval/metrics/classes.js';
import { assertClose } from '../../engine/testing.js';

/** Entropies and accuracies of a few terms: to 1e-14 absolute. */
const TOL = { rtol: 0, atol: 1e-14 };

void describe('classDistribution', () => {
  void it('uniform over K classes: H = ln K nats = log₂ K bits, normalized 1', () => {
    const labels = Array.from({ length: 40 }, (_, i) => i % 10);
    const r = classDistribution(labels, 10);
    assert.deepEqual(Array.from(r.counts), new Array<number>(10).fill(4), 'counts');
    assertClose(r.entropyNats, Math.log(10), TOL, 'nats');
    assertClose(r.entropyBits, Math.log2(10), TOL, 'bits');
    assertClose(r.normalizedEntropy, 1, TOL, 'normalized');
  });

  void it('a single class has zero entropy; absent classes count as 0 ln 0 = 0', () => {
    const r = classDistribution([3, 3, 3], 5);
    assert.deepEqual(Array.from(r.frequencies), [0, 0, 0, 1, 0], 'frequencies');
    assert.equal(r.entropyNats, 0, 'H = 0');
    assert.equal(r.normalizedEntropy, 0, 'normalized 0');
  });

  void it('a skewed histogram against −Σ p ln p by hand', () => {
    // p = (1/2, 1/4, 1/4, 0): H = ½ ln 2 + ½ ln 4 = 1.5 ln 2 nats = 1.5 bits.
    const r = classDistribution([0, 0, 1, 2, 0, 0, 1, 2], 4);
    assertClose(r.entropyNats, 1.5 * Math.LN2, TOL, 'nats');
    assertClose(r.entropyBits, 1.5, TOL, 'bits');
    assertClose(r.normalizedEntropy, 0.75, TOL, 'H / ln 4');
    assert.ok(Number.isNaN(classDistribution([0, 0], 1).normalizedEntropy), 'K = 1: NaN');
  });

  void it('rejects labels outside [0, K) and empty input', () => {
    assert.throws(() => classDistribution([0, 10], 10), /outside/);
    assert.throws(() => classDistribution([0.5], 10), /outside/);
    assert.throws(() => classDistribution([], 10), /no labels/);
  });
});

void describe('conditionalAccuracy', () => {
  void it('overall and per-class accuracy with the binomial standard error', () => {
    const requested = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2];
    const predicted = [0, 0, 0, 1, 1, 1, 0, 2, 2, 2];
    const r = conditionalAccuracy(predicted, requested, 4);
    assert.equal(r.correct, 7, 'correct');
    assertClose(r.accuracy, 0.7, TOL, 'accuracy');
    assertClose(r.standardError, Math.sqrt((0.7 * 0.3) / 10), TOL, '√(p(1−p)/n)');
    assert.deepEqual(Array.from(r.perClassCount), [4, 4, 2, 0], 'requested per class');
    assert.deepEqual(Array.from(r.perClass.slice(0, 3)), [0.75, 0.5, 1], 'per class');
    assert.ok(Number.isNaN(r.perClass[3]!), 'never requested: NaN');
  });

  void it('all correct: accuracy 1 with standard error 0; length mismatch throws', () => {
    const r = conditionalAccuracy([1, 2, 3], [1, 2, 3], 4);
    assert.equal(r.accuracy, 1, 'accuracy');
    assert.equal(r.standardError, 0, 'standard error');
    assert.throws(() => conditionalAccuracy([1, 2], [1, 2, 3], 4), /2 predictions for 3 requests/);
  });
});
