import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  continuousTimesteps,
  discreteTimesteps,
  multistepTimesteps,
  npArange,
  npLinspace,
  roundHalfEven,
} from '../../../src/diffusion/samplers/spacing.js';

const arr = (a: Float64Array): number[] => Array.from(a);

void describe('numpy helpers', () => {
  void it('rounds half to even like numpy.round', () => {
    assert.deepEqual(
      [0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 499.5, 500.5].map(roundHalfEven),
      [0, 2, 2, -0, -2, 2, 3, 500, 500],
    );
  });

  void it('linspace is start + i·step with the exact end', () => {
    assert.deepEqual(arr(npLinspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(arr(npLinspace(3, 7, 1)), [3]);
    assert.equal(npLinspace(0, 999, 11)[10], 999);
  });

  void it('arange with a float step has ⌈(stop − start)/step⌉ values', () => {
    assert.deepEqual(arr(npArange(1000, 0, -1000 / 3)), [1000, 1000 - 1000 / 3, 1000 - 2000 / 3]);
  });
});

void describe('timestep spacing (Lin et al. 2024, Table 2)', () => {
  void it('leading: i·⌊T/n⌋ + offset, descending', () => {
    assert.deepEqual(
      arr(discreteTimesteps('leading', 1000, 10)),
      [900, 800, 700, 600, 500, 400, 300, 200, 100, 0],
    );
    assert.deepEqual(arr(discreteTimesteps('leading', 1000, 3, 1)), [667, 334, 1]);
  });

  void it('trailing: round(T − i·T/n) − 1', () => {
    assert.deepEqual(arr(discreteTimesteps('trailing', 1000, 3)), [999, 666, 332]);
    assert.deepEqual(arr(discreteTimesteps('trailing', 1000, 4)), [999, 749, 499, 249]);
  });

  void it('linspace: rounded for the discrete schedulers, fractional for the sigma ones', () => {
    assert.deepEqual(arr(discreteTimesteps('linspace', 1000, 4)), [999, 666, 333, 0]);
    assert.deepEqual(arr(continuousTimesteps('linspace', 1000, 3)), [999, 499.5, 0]);
  });

  void it('multistep: n + 1 points with the final 0 dropped', () => {
    // np.linspace(0, 999, 11).round()[::-1][:-1]: 499.5 rounds to 500
    assert.deepEqual(
      arr(multistepTimesteps('linspace', 1000, 10)),
      [999, 899, 799, 699, 599, 500, 400, 300, 200, 100],
    );
    assert.deepEqual(arr(multistepTimesteps('leading', 1000, 3, 1)), [751, 501, 251]);
    assert.deepEqual(arr(multistepTimesteps('trailing', 1000, 4)), [999, 749, 499, 249]);
    // λ clipping shortens the range
    assert.deepEqual(arr(multistepTimesteps('linspace', 1000, 2, 0, 901)), [900, 450]);
  });

  void it('rejects step counts it cannot make', () => {
    assert.throws(() => discreteTimesteps('leading', 1000, 0), /positive integer/);
    assert.throws(() => discreteTimesteps('leading', 1000, 1001), /cannot exceed/);
  });
});
