/**
 * A forecaster against its baselines on the test part of a series: forecasts from each origin of
 * the test part (every `horizon` rows), N sample paths each, scored by CRPS, MASE and the
 * coverage of the 50% and 90% intervals (metrics/forecast.ts), beside the seasonal naive forecast
 * and a Gaussian-output MLP (forecast-baselines.ts) on the same windows.
 */
import {
  forecastOrigins,
  seasonLength,
  splitByTime,
  type TimeSeries,
  type TimeSplit,
} from '../data/series.js';
import { forecastSamples, type SamplePaths } from '../diffusion/forecast.js';
import type { Scheduler } from '../diffusion/samplers/index.js';
import type { TimeGradModel } from '../nn/models/timegrad.js';
import { type GaussianBaselineOptions, trainGaussianBaseline } from './forecast-baselines.js';
import {
  type ForecastCase,
  forecastMetrics,
  type ForecastMetrics,
  seasonalError,
  seasonalNaive,
} from './metrics/forecast.js';

export interface ForecastEvalOptions {
  numSamples: number;
  numInferenceSteps: number;
  seed: number;
  split: { validation: number; test: number };
  /** The Gaussian MLP's training (its context and horizon are the model's). */
  gaussian: Omit<GaussianBaselineOptions, 'context' | 'horizon' | 'scaling' | 'seed'>;
  onProgress?: (what: string) => void;
}

export interface MethodScore {
  method: string;
  metrics: ForecastMetrics;
}

export interface ForecastEvaluation {
  split: TimeSplit;
  origins: number[];
  season: number;
  scores: MethodScore[];
  /** TimeGrad's sample paths per origin ([origin][sample][H·D]). */
  paths: SamplePaths;
}

/** The cases of one method for every origin and target dimension. */
function casesOf(
  s: TimeSeries,
  origins: readonly number[],
  H: number,
  m: number,
  pathsOf: (w: number, d: number) => readonly ArrayLike<number>[],
): ForecastCase[] {
  const D = s.targets.length;
  const out: ForecastCase[] = [];
  origins.forEach((o, w) => {
    for (let d = 0; d < D; d++) {
      const hist = Float64Array.from({ length: o }, (_, t) => s.values[t * D + d]!);
      const truth = Float64Array.from({ length: H }, (_, h) => s.values[(o + h) * D + d]!);
      out.push({ samples: pathsOf(w, d), truth, scale: seasonalError(hist, m) });
    }
  });
  return out;
}

/** Scores the model and both baselines on the test part of `s`. */
export function evaluateForecaster(
  model: TimeGradModel,
  scheduler: Scheduler,
  s: TimeSeries,
  opts: ForecastEvalOptions,
): ForecastEvaluation {
  const c = model.config;
  const D = s.targets.length;
  if (D !== c.target_dim) {
    throw new Error(`the model forecasts ${c.target_dim} targets, the series has ${D}`);
  }
  const w = { context: c.context_length, horizon: c.prediction_length, lags: c.lags_seq };
  const H = w.horizon;
  const split = splitByTime(s, w, opts.split);
  const origins = forecastOrigins(split.validationEnd, split.length, w);
  const m = seasonLength(s.freq);
  opts.onProgress?.(`TimeGrad: ${origins.length} windows × ${opts.numSamples} paths`);
  const paths = forecastSamples(model, scheduler, s, origins, {
    numSamples: opts.numSamples,
    numInferenceSteps: opts.numInferenceSteps,
    seed: opts.seed,
  });
  const column = (p: Float64Array, d: number): Float64Array =>
    Float64Array.from({ length: H }, (_, h) => p[h * D + d]!);
  const scores: MethodScore[] = [];
  scores.push({
    method: 'TimeGrad',
    metrics: forecastMetrics(
      casesOf(s, origins, H, m, (k, d) => paths[k]!.map((p) => column(p, d))),
    ),
  });
  scores.push({
    method: `seasonal naive (m = ${m})`,
    metrics: forecastMetrics(
      casesOf(s, origins, H, m, (k, d) => {
        const o = origins[k]!;
        const hist = Float64Array.from({ length: o }, (_, t) => s.values[t * D + d]!);
        return [seasonalNaive(hist, m, H)];
      }),
    ),
  });
  opts.onProgress?.('Gaussian MLP baseline: training');
  const gauss = Array.from({ length: D }, (_, d) =>
    trainGaussianBaseline(s, split, d, {
      ...opts.gaussian,
      context: c.context_length,
      horizon: H,
      scaling: c.scaling,
      seed: opts.seed,
    }).samples(origins, opts.numSamples, opts.seed + 1 + d),
  );
  scores.push({
    method: 'Gaussian MLP',
    metrics: forecastMetrics(casesOf(s, origins, H, m, (k, d) => gauss[d]![k]!)),
  });
  return { split, origins, season: m, scores, paths };
}
