/**
 * Inference timestep spacing, with numpy's arithmetic so that schedules match diffusers bit for
 * bit: `linspace`, `leading` and `trailing` are the three rows of Table 2 in Lin et al. 2024,
 * "Common Diffusion Noise Schedules and Sample Steps are Flawed".
 */

export type TimestepSpacing = 'linspace' | 'leading' | 'trailing';

export const timestepSpacings: readonly TimestepSpacing[] = ['linspace', 'leading', 'trailing'];

/** numpy.linspace(start, stop, n): start + i·step, the last value exactly stop. */
export function npLinspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) out[0] = start;
  if (n <= 1) return out;
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  out[n - 1] = stop;
  return out;
}

/** numpy.arange(start, stop, step) for a float step: start + i·step, ⌈(stop − start)/step⌉ values. */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  return out;
}

/** numpy.round / rint: to the nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

function reversed(a: Float64Array): Float64Array {
  return a.slice().reverse();
}

function checkSteps(n: number, T: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`numInferenceSteps must be a positive integer, got ${n}`);
  }
  if (n > T) {
    throw new Error(`numInferenceSteps (${n}) cannot exceed num_train_timesteps (${T})`);
  }
}

/**
 * Descending integer timesteps of DDPM, DDIM and (reversed) PNDM:
 * linspace: round(linspace(0, T−1, n));  leading: i·⌊T/n⌋ + offset;  trailing: round(T − i·T/n) − 1.
 */
export function discreteTimesteps(
  spacing: TimestepSpacing,
  T: number,
  n: number,
  stepsOffset = 0,
): Float64Array {
  checkSteps(n, T);
  switch (spacing) {
    case 'linspace':
      return reversed(npLinspace(0, T - 1, n).map(roundHalfEven));
    case 'leading': {
      const ratio = Math.floor(T / n);
      return reversed(Float64Array.from({ length: n }, (_, i) => i * ratio + stepsOffset));
    }
    case 'trailing':
      return npArange(T, 0, -T / n).map((t) => roundHalfEven(t) - 1);
    default:
      throw new Error(`unknown timestep_spacing '${String(spacing satisfies never)}'`);
  }
}

/**
 * Descending, possibly fractional timesteps of the sigma schedulers (Euler, Euler ancestral,
 * Heun, LMS): as `discreteTimesteps`, except that linspace is not rounded.
 */
export function continuousTimesteps(
  spacing: TimestepSpacing,
  T: number,
  n: number,
  stepsOffset = 0,
): Float64Array {
  if (spacing !== 'linspace') return discreteTimesteps(spacing, T, n, stepsOffset);
  checkSteps(n, T);
  return reversed(npLinspace(0, T - 1, n));
}

/**
 * Descending integer timesteps of the multistep solvers (DPM-Solver, UniPC): n + 1 points from
 * `lastTimestep` down to 0, the final 0 dropped. `lastTimestep` < T when λ_min is clipped.
 */
export function multistepTimesteps(
  spacing: TimestepSpacing,
  T: number,
  n: number,
  stepsOffset = 0,
  lastTimestep = T,
): Float64Array {
  checkSteps(n, T);
  switch (spacing) {
    case 'linspace':
      return reversed(npLinspace(0, lastTimestep - 1, n + 1).map(roundHalfEven)).subarray(0, n);
    case 'leading': {
      const ratio = Math.floor(lastTimestep / (n + 1));
      const ts = Float64Array.from({ length: n + 1 }, (_, i) => i * ratio);
      return reversed(ts)
        .subarray(0, n)
        .map((t) => t + stepsOffset);
    }
    case 'trailing':
      return npArange(lastTimestep, 0, -T / n).map((t) => roundHalfEven(t) - 1);
    default:
      throw new Error(`unknown timestep_spacing '${String(spacing satisfies never)}'`);
  }
}
