/**
 * Noise schedules of the forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Ho et al. 2020),
 * computed in float64 as plain arrays. Names follow diffusers (`betas`, `alphasCumprod`).
 */

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';

export interface ScheduleConfig {
  numTrainTimesteps: number;
  betaSchedule: BetaSchedule;
  betaStart: number;
  betaEnd: number;
  /** Explicit betas override betaSchedule (diffusers' `trained_betas`). */
  trainedBetas?: readonly number[] | null;
  /** Rescale to zero terminal SNR (Lin et al. 2024, Algorithm 1). */
  rescaleBetasZeroSnr?: boolean;
}

export const defaultScheduleConfig: ScheduleConfig = {
  numTrainTimesteps: 1000,
  betaSchedule: 'linear',
  betaStart: 0.0001,
  betaEnd: 0.02,
};

/** n evenly spaced values from start to end, evaluated symmetrically from both ends as torch.linspace. */
export function linspace(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) out[0] = start;
  if (n <= 1) return out;
  const step = (end - start) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? start + step * i : end - step * (n - 1 - i);
  return out;
}

/**
 * β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), maxBeta) for a continuous ᾱ(t); with
 * ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) this is the cosine schedule (Nichol & Dhariwal 2021, eq. 17).
 */
export function betasForAlphaBar(
  T: number,
  alphaBar: (t: number) => number = (t) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2,
  maxBeta = 0.999,
): Float64Array {
  const betas = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), maxBeta);
  }
  return betas;
}

/**
 * Zero terminal SNR (Lin et al. 2024): shift and scale √ᾱ so that √ᾱ_T = 0 and √ᾱ_0 is
 * unchanged, then recover β from the new ᾱ.
 */
export function rescaleZeroTerminalSnr(betas: Float64Array): Float64Array {
  const T = betas.length;
  const sqrtAcp = new Float64Array(T);
  let acp = 1;
  for (let i = 0; i < T; i++) {
    acp *= 1 - betas[i]!;
    sqrtAcp[i] = Math.sqrt(acp);
  }
  const first = sqrtAcp[0]!;
  const last = sqrtAcp[T - 1]!;
  const out = new Float64Array(T);
  let prevBar = 1;
  for (let i = 0; i < T; i++) {
    const s = ((sqrtAcp[i]! - last) * first) / (first - last);
    const bar = s * s;
    out[i] = i === 0 ? 1 - bar : 1 - bar / prevBar;
    prevBar = bar;
  }
  return out;
}

export function makeBetas(cfg: ScheduleConfig): Float64Array {
  const T = cfg.numTrainTimesteps;
  if (!Number.isInteger(T) || T < 1)
    throw new Error(`numTrainTimesteps must be a positive integer, got ${T}`);
  let betas: Float64Array;
  if (cfg.trainedBetas) {
    if (cfg.trainedBetas.length !== T) {
      throw new Error(
        `trained_betas has ${cfg.trainedBetas.length} values, num_train_timesteps is ${T}`,
      );
    }
    betas = Float64Array.from(cfg.trainedBetas);
  } else {
    switch (cfg.betaSchedule) {
      case 'linear':
        betas = linspace(cfg.betaStart, cfg.betaEnd, T);
        break;
      case 'scaled_linear':
        betas = linspace(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), T).map((b) => b * b);
        break;
      case 'squaredcos_cap_v2':
        betas = betasForAlphaBar(T);
        break;
      case 'sigmoid': {
        const x = linspace(-6, 6, T);
        betas = x.map(
          (v) => (1 / (1 + Math.exp(-v))) * (cfg.betaEnd - cfg.betaStart) + cfg.betaStart,
        );
        break;
      }
      default:
        throw new Error(`unknown beta_schedule '${String(cfg.betaSchedule satisfies never)}'`);
    }
  }
  return cfg.rescaleBetasZeroSnr ? rescaleZeroTerminalSnr(betas) : betas;
}

/** Every per-timestep quantity of the DDPM forward process and its posterior, index t = 0..T−1. */
export interface NoiseSchedule {
  readonly numTrainTimesteps: number;
  readonly betas: Float64Array;
  /** α_t = 1 − β_t */
  readonly alphas: Float64Array;
  /** ᾱ_t = Π_{s≤t} α_s */
  readonly alphasCumprod: Float64Array;
  /** ᾱ_{t−1}, with ᾱ_{−1} = 1 */
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  /** β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t): variance of q(x_{t−1} | x_t, x_0) */
  readonly posteriorVariance: Float64Array;
  /** log β̃_t with β̃_0 (= 0) replaced by β̃_1, as in Nichol & Dhariwal's code */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** posterior mean = coef1 · x_0 + coef2 · x_t; coef1 = β_t √ᾱ_{t−1} / (1 − ᾱ_t) */
  readonly posteriorMeanCoef1: Float64Array;
  /** coef2 = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t) */
  readonly posteriorMeanCoef2: Float64Array;
}

export function makeSchedule(cfg: ScheduleConfig): NoiseSchedule;
export function makeSchedule(betas: Float64Array): NoiseSchedule;
export function makeSchedule(arg: ScheduleConfig | Float64Array): NoiseSchedule {
  const betas = arg instanceof Float64Array ? arg : makeBetas(arg);
  const T = betas.length;
  const alphas = betas.map((b) => 1 - b);
  const alphasCumprod = new Float64Array(T);
  let acp = 1;
  for (let t = 0; t < T; t++) alphasCumprod[t] = acp *= alphas[t]!;
  const alphasCumprodPrev = alphasCumprod.map((_, t) => (t === 0 ? 1 : alphasCumprod[t - 1]!));
  const posteriorVariance = betas.map(
    (b, t) => (b * (1 - alphasCumprodPrev[t]!)) / (1 - alphasCumprod[t]!),
  );
  const posteriorLogVarianceClipped = posteriorVariance.map((v, t) =>
    Math.log(t === 0 ? (T > 1 ? posteriorVariance[1]! : v) : v),
  );
  return {
    numTrainTimesteps: T,
    betas,
    alphas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtAlphasCumprod: alphasCumprod.map(Math.sqrt),
    sqrtOneMinusAlphasCumprod: alphasCumprod.map((a) => Math.sqrt(1 - a)),
    posteriorVariance,
    posteriorLogVarianceClipped,
    posteriorMeanCoef1: betas.map(
      (b, t) => (b * Math.sqrt(alphasCumprodPrev[t]!)) / (1 - alphasCumprod[t]!),
    ),
    posteriorMeanCoef2: alphas.map(
      (a, t) => ((1 - alphasCumprodPrev[t]!) * Math.sqrt(a)) / (1 - alphasCumprod[t]!),
    ),
  };
}
