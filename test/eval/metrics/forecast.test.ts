import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  crpsQuantileLoss,
  crpsSamples,
  forecastMetrics,
  seasonalError,
  seasonalNaive,
  sortedQuantile,
} from '../../../src/eval/metrics/forecast.js';
import { assertClose } from '../../engine/testing.js';

/** Scores of a few values: to 1e-12 absolute. */
const ABS = { rtol: 0, atol: 1e-12 };

/** E|X − y| − ½ E|X − X'| by the double sum, the definition the sorted form must equal. */
function crpsBruteForce(x: readonly number[], y: number): number {
  const n = x.length;
  let a = 0;
  let b = 0;
  for (const xi of x) {
    a += Math.abs(xi - y);
    for (const xj of x) b += Math.abs(xi - xj);
  }
  return a / n - b / (2 * n * n);
}

void describe('forecast metrics', () => {
  void it('CRPS of a point forecast is its absolute error, in both forms', () => {
    assertClose(crpsSamples([3, 3, 3], 5), 2, ABS);
    assertClose(crpsQuantileLoss([3, 3, 3], 5), 2, ABS);
    assertClose(crpsQuantileLoss([7], 5), 2, ABS);
  });
  void it('CRPS of two samples {0, 1} at 0 is 1/2 − 1/4', () => {
    assertClose(crpsSamples([1, 0], 0), 0.25, ABS);
  });
  void it('the sorted CRPS equals the double sum', () => {
    let s = 7;
    const rnd = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 10 - 5;
    for (let k = 0; k < 5; k++) {
      const x = Array.from({ length: 37 }, rnd);
      const y = rnd();
      assertClose(crpsSamples(x, y), crpsBruteForce(x, y), { rtol: 0, atol: 1e-9 });
    }
  });
  void it('quantiles interpolate linearly between order statistics', () => {
    assertClose(sortedQuantile([0, 10], 0.25), 2.5, ABS);
    assertClose(sortedQuantile([1, 2, 3, 4, 5], 0.5), 3, ABS);
  });
  void it('seasonal naive repeats the last season; its MASE scale is the in-sample seasonal MAE', () => {
    assert.deepEqual([...seasonalNaive([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3, 5)], [8, 9, 10, 8, 9]);
    assertClose(seasonalError([1, 2, 4, 7], 1), 2, ABS);
    assertClose(seasonalError([0, 5, 1, 6, 2, 7], 2), 1, ABS);
  });
  void it('scores MAE, MASE and the coverage of the central intervals', () => {
    const samples = Array.from({ length: 101 }, (_, i) => [i, i]); // q_p = 100 p
    const m = forecastMetrics([{ samples, truth: [50, 97], scale: 4 }]);
    // Median 50: errors 0 and 47. 50 is inside both intervals; 97 is above q0.95 = 95.
    assertClose(m.mae, 23.5, ABS);
    assertClose(m.mase, 23.5 / 4, ABS);
    assertClose(m.coverage50, 0.5, ABS);
    assertClose(m.coverage90, 0.5, ABS);
    assertClose(
      m.crps,
      (crpsBruteForce(
        samples.map((p) => p[0]!),
        50,
      ) +
        crpsBruteForce(
          samples.map((p) => p[1]!),
          97,
        )) /
        2,
      { rtol: 0, atol: 1e-9 },
    );
    assert.equal(m.count, 2);
  });
});
