import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { lmsCoefficient } from '../../../src/diffusion/samplers/lms.js';

/** 5-point Gauss–Legendre quadrature: exact for polynomials of degree ≤ 9. */
function gaussLegendre(f: (x: number) => number, a: number, b: number): number {
  const nodes = [0, -0.5384693101056831, 0.5384693101056831, -0.906179845938664, 0.906179845938664];
  const weights = [
    0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891,
    0.2369268850561891,
  ];
  const m = (a + b) / 2;
  const r = (b - a) / 2;
  return r * nodes.reduce((s, x, i) => s + weights[i]! * f(m + r * x), 0);
}

/** The Lagrange basis polynomial diffusers integrates with scipy's quad. */
function basis(sigmas: number[], order: number, i: number, j: number): (tau: number) => number {
  return (tau) => {
    let p = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      p *= (tau - sigmas[i - k]!) / (sigmas[i - j]! - sigmas[i - k]!);
    }
    return p;
  };
}

void describe('LMS coefficients', () => {
  const sigmas = [14.6, 9.7, 6.1, 3.9, 2.2, 1.1, 0.4, 0.03, 0];

  void it('integrate the Lagrange basis exactly', () => {
    for (let i = 0; i < sigmas.length - 1; i++) {
      for (let order = 1; order <= Math.min(4, i + 1); order++) {
        for (let j = 0; j < order; j++) {
          const ours = lmsCoefficient(sigmas, order, i, j);
          const ref = gaussLegendre(basis(sigmas, order, i, j), sigmas[i]!, sigmas[i + 1]!);
          assert.ok(
            Math.abs(ours - ref) <= 1e-13 * Math.max(1, Math.abs(ref)),
            `i ${i} order ${order} j ${j}: ${ours} vs ${ref}`,
          );
        }
      }
    }
  });

  void it('sum to the step size (the basis is a partition of unity)', () => {
    for (let i = 3; i < sigmas.length - 1; i++) {
      const sum = [0, 1, 2, 3].reduce((s, j) => s + lmsCoefficient(sigmas, 4, i, j), 0);
      assert.ok(Math.abs(sum - (sigmas[i + 1]! - sigmas[i]!)) < 1e-13, `i ${i}: ${sum}`);
    }
  });

  void it('of order 1 is the Euler step', () => {
    assert.equal(lmsCoefficient(sigmas, 1, 2, 0), sigmas[3]! - sigmas[2]!);
  });
});
