import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { classDistribution, conditionalAccuracy } from '../../../src/eval/metrics/classes.js';

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) < 1e-14, `${what}: ${a} vs ${b}`);
}

void describe('classDistribution', () => {
  void it('uniform over K classes: H = ln K nats = log₂ K bits, normalized 1', () => {
    const labels = Array.from({ length: 40 }, (_, i) => i % 10);
    const r = classDistribution(labels, 10);
    assert.deepEqual(Array.from(r.counts), new Array<number>(10).fill(4), 'counts');
    close(r.entropyNats, Math.log(10), 'nats');
    close(r.entropyBits, Math.log2(10), 'bits');
    close(r.normalizedEntropy, 1, 'normalized');
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
    close(r.entropyNats, 1.5 * Math.LN2, 'nats');
    close(r.entropyBits, 1.5, 'bits');
    close(r.normalizedEntropy, 0.75, 'H / ln 4');
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
    close(r.accuracy, 0.7, 'accuracy');
    close(r.standardError, Math.sqrt((0.7 * 0.3) / 10), '√(p(1−p)/n)');
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
