/** Scalar functions of the CPU reference backend (f64 arithmetic; results rounded on store). */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

/**
 * erf(x) to ~1e-15: the Maclaurin series erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)) for |x| < 3,
 * and 1 − erfc |x| (with its sign) beyond.
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
  return Math.sign(x) * (1 - erfcTail(ax));
}

/**
 * erfc x = 1 − erf x, to ~1e-15 relative also where it is tiny (x ≥ 3, where 1 − erf x would
 * cancel): the continued fraction erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  return x < 3 ? 1 - erf(x) : erfcTail(x);
}

/** The continued fraction for x ≥ 3, evaluated from its tail: f = x + (k/2)/f for k = K..1. */
function erfcTail(x: number): number {
  if (x === Infinity) return 0;
  let f = x;
  for (let k = 60; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** σ(x) = 1/(1 + e^(−x)); for very negative x, e^(−x) overflows to ∞ and σ to its limit 0. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Φ(x) = erfc(−x/√2)/2, the standard normal CDF, accurate in its lower tail too. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x * Math.SQRT1_2);
}

/** GELU with the exact normal CDF: x Φ(x) (PyTorch's default, `approximate='none'`). */
export function gelu(x: number): number {
  return x * normalCdf(x);
}
