/**
 * Noise levels in the variance-exploding parameterization of Karras et al. 2022 ("Elucidating the
 * Design Space of Diffusion-Based Generative Models", EDM): x_σ = x_0 + σ ε with
 * σ_t = √((1 − ᾱ_t)/ᾱ_t), so that x_t = √ᾱ_t · x_σ. Plain float64 arrays, as k-diffusion keeps them.
 */
import { npLinspace } from './spacing.js';

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep (ascending in t). */
export function sigmasFromAlphasCumprod(alphasCumprod: Float64Array): Float64Array {
  return alphasCumprod.map((a) => Math.sqrt((1 - a) / a));
}

/**
 * numpy.interp(x, [0, 1, …, L−1], fp): piecewise-linear interpolation of a per-timestep table at
 * fractional timesteps, clamped at both ends.
 */
export function interpAtTimesteps(x: ArrayLike<number>, fp: Float64Array): Float64Array {
  const L = fp.length;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isNaN(v)) out[i] = v;
    else if (v <= 0) out[i] = fp[0]!;
    else if (v >= L - 1) out[i] = fp[L - 1]!;
    else {
      const j = Math.floor(v);
      if (j === v) out[i] = fp[j]!;
      else out[i] = (fp[j + 1]! - fp[j]!) * (v - j) + fp[j]!;
    }
  }
  return out;
}

/**
 * The Karras et al. 2022 schedule (eq. 5): σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,
 * ρ = 7, i = 0..n−1 (k-diffusion's `get_sigmas_karras` without the final 0).
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7): Float64Array {
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInvRho + r * (minInvRho - maxInvRho)) ** rho);
}

/** σ_i evenly spaced in log σ from σ_max to σ_min (k-diffusion's `get_sigmas_exponential`). */
export function exponentialSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  return npLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/**
 * The fractional timestep whose σ is `sigma`: linear interpolation in log σ between the two
 * neighbouring training timesteps (diffusers' `_sigma_to_t`). `logSigmas` is ascending in t.
 */
export function sigmaToT(sigma: number, logSigmas: Float64Array): number {
  const L = logSigmas.length;
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // low = the last index whose log σ is ≤ logSigma (0 if none), as argmax(cumsum(dists ≥ 0))
  let count = 0;
  for (let j = 0; j < L; j++) if (logSigma - logSigmas[j]! >= 0) count++;
  let low = 0;
  if (count > 0) {
    for (let j = 0, c = 0; j < L; j++) {
      if (logSigma - logSigmas[j]! >= 0) c++;
      if (c === count) {
        low = j;
        break;
      }
    }
  }
  low = Math.min(low, L - 2);
  const high = low + 1;
  const lo = logSigmas[low]!;
  const hi = logSigmas[high]!;
  const w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
  return (1 - w) * low + w * high;
}

/** VP coefficients of a VE noise level: α_t = 1/√(σ² + 1), σ_t = σ α_t (x_t = α_t x_0 + σ_t ε). */
export function alphaSigmaOf(sigma: number): { alphaT: number; sigmaT: number } {
  const alphaT = 1 / Math.sqrt(sigma * sigma + 1);
  return { alphaT, sigmaT: sigma * alphaT };
}

/** Half log-SNR λ = log α_t − log σ_t (DPM-Solver's time variable); +∞ at σ = 0. */
export function lambdaOf(sigma: number): number {
  const { alphaT, sigmaT } = alphaSigmaOf(sigma);
  return Math.log(alphaT) - Math.log(sigmaT);
}
