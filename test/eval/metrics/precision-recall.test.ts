import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { featureMatrix } from '../../../src/eval/metrics/features.js';
import { kthNeighbourRadii2, precisionRecall } from '../../../src/eval/metrics/precision-recall.js';
import { gaussianSample, type SampleSpec, sumOf } from './test-data.js';

const ref = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/metrics/metrics_ref.json', import.meta.url), 'utf8'),
) as {
  precisionRecall: {
    real: SampleSpec & { sum: number };
    generated: SampleSpec & { sum: number };
    k: number;
    precision: number;
    recall: number;
    realRadii2: number[];
    generatedRadii2: number[];
  };
};

void describe('improved precision and recall vs numpy brute force', () => {
  const pr = ref.precisionRecall;
  const real = gaussianSample(pr.real);
  const gen = gaussianSample(pr.generated);

  void it('the inputs are bit-identical to the reference script', () => {
    assert.equal(sumOf(real), pr.real.sum, 'Σ real');
    assert.equal(sumOf(gen), pr.generated.sum, 'Σ generated');
  });

  void it('k = 3 radii, precision and recall', () => {
    const r = precisionRecall(real, gen, { k: pr.k });
    const check = (got: Float64Array, want: number[], what: string) =>
      want.forEach((v, i) =>
        assert.ok(Math.abs(got[i]! - v) <= 1e-12 * v, `${what} radius² ${i}: ${got[i]} vs ${v}`),
      );
    check(r.realRadii2, pr.realRadii2, 'real');
    check(r.generatedRadii2, pr.generatedRadii2, 'generated');
    assert.equal(r.precision, pr.precision, 'precision');
    assert.equal(r.recall, pr.recall, 'recall');
    console.log(
      `  precision ${r.precision.toFixed(4)}, recall ${r.recall.toFixed(4)} (numpy agrees)`,
    );
  });
});

void describe('improved precision and recall: analytic checks', () => {
  void it('identical sets: precision = recall = 1', () => {
    const x = gaussianSample({ stream: 5, rows: 90, cols: 10, scale: 1, shift: 1 });
    const r = precisionRecall(x, x);
    assert.equal(r.precision, 1, 'precision');
    assert.equal(r.recall, 1, 'recall');
  });

  void it('far-apart sets: precision = recall = 0', () => {
    const x = gaussianSample({ stream: 6, rows: 30, cols: 4, scale: 1, shift: 0 });
    const far = featureMatrix(
      x.data.map((v) => v + 100),
      30,
      4,
    );
    const r = precisionRecall(x, far);
    assert.equal(r.precision, 0, 'precision');
    assert.equal(r.recall, 0, 'recall');
  });

  void it('points on a line: radii are the k-th neighbour distance, self excluded', () => {
    // 0, 1, 3, 6, 10: the 2nd nearest other point of 0 is 3 (dist² 9), of 6 is 10 (16), of 10 is 3 (49).
    const line = featureMatrix(Float64Array.from([0, 1, 3, 6, 10]), 5, 1);
    assert.deepEqual(Array.from(kthNeighbourRadii2(line, 2)), [9, 4, 9, 16, 49], 'k = 2');
    // A duplicate counts as a neighbour at distance 0.
    const dup = featureMatrix(Float64Array.from([0, 0, 5]), 3, 1);
    assert.deepEqual(Array.from(kthNeighbourRadii2(dup, 1)), [0, 0, 25], 'k = 1 with a duplicate');
  });

  void it('a generated sample on a ball boundary counts (≤)', () => {
    const real = featureMatrix(Float64Array.from([0, 2, 4, 6]), 4, 1); // k = 1 radii² all 4
    const gen = featureMatrix(Float64Array.from([8, 9, 10, 11]), 4, 1);
    const r = precisionRecall(real, gen, { k: 1 });
    assert.equal(r.precision, 0.25, 'only 8 lies within 2 of a real sample (6)');
  });

  void it('needs more than k rows', () => {
    const small = featureMatrix(new Float64Array(6), 3, 2);
    assert.throws(() => precisionRecall(small, small), /at least 4 rows/);
  });
});
