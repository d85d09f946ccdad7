/** Scalar functions of the CPU reference backend (f64 arithmetic; results rounded on store). */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

/**
 * erf(x) to ~1e-15: the Maclaurin series erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)) for |x| < 3,
 * and for |x| ≥ 3 the continued fraction erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 3) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return Math.sign(x);
  // Evaluate the continued fraction from the tail: f = x + (k/2)/f for k = K..1.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * f);
  return Math.sign(x) * (1 - erfc);
}

/** σ(x) = 1/(1 + e^(−x)); for very negative x, e^(−x) overflows to ∞ and σ to its limit 0. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** GELU with the exact normal CDF: x Φ(x) = x (1 + erf(x/√2)) / 2 (PyTorch's default). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * Math.SQRT1_2));
}
