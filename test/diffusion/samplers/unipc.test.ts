import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createScheduler } from '../../../src/diffusion/samplers/registry.js';
import { solveLinear, unipcCoefficients } from '../../../src/diffusion/samplers/unipc.js';

void describe('UniPC pieces', () => {
  void it('solves small linear systems with pivoting', () => {
    const x = solveLinear(
      [
        [0, 2, 1],
        [1, 1, 1],
        [2, 1, 3],
      ],
      [5, 4, 7],
    );
    [1, 2, 1].forEach((v, i) => assert.ok(Math.abs(x[i]! - v) < 1e-14, `${x.join(', ')}`));
  });

  void it('B(h) coefficients: order 1 gives b = [φ_2 / B], and bh1 uses B = hh', () => {
    const hh = -0.7;
    const { hPhi1, Bh, R, b } = unipcCoefficients(hh, [1], 1, 'bh2');
    assert.equal(hPhi1, Math.expm1(hh));
    assert.equal(Bh, Math.expm1(hh));
    assert.deepEqual(R, [[1]]);
    assert.ok(
      Math.abs(b[0]! - (Math.expm1(hh) / hh - 1) / Math.expm1(hh)) < 1e-15,
      `b[0] = ${b[0]}`,
    );
    assert.equal(unipcCoefficients(hh, [1], 1, 'bh1').Bh, hh);
  });

  void it('rejects noise prediction with a final σ of 0 (NaN in diffusers)', () => {
    assert.throws(() => createScheduler('unipc', { predict_x0: false }), /sigma_min/);
  });
});
