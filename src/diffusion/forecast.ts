/**
 * Probabilistic forecasting with a TimeGrad model (Rasul et al. 2021): the model's inputs from a
 * series, the DDPM training loss over a batch of windows, and autoregressive sampling of N paths
 * with any sampler of the registry.
 *
 * A window at forecast origin o (the first future row) covers the context rows [o − C, o) and the
 * horizon [o, o + H). Its values are scaled by a scale fitted on the context alone (data/series.ts
 * `fitScale`). The RNN reads one input per row p: the scaled values at p − l for each lag l, the
 * time features of p and the log scales; its state after row p conditions ε_θ for x̃_p.
 *
 * Training (the paper's Algorithm 1, over every row of the window with teacher forcing):
 *   k ~ U{0..K−1}, ε ~ N(0, I),  loss = mean ‖ε − ε_θ(√ᾱ_k x̃_p + √(1 − ᾱ_k) ε, k, h_p)‖².
 * Sampling (Algorithm 2, one row at a time): read the context, then for each horizon row draw
 * x̃_p with the sampler from h_p and feed it back as the lagged input of the rows after it.
 */
import {
  concat,
  expand,
  gather,
  Generator,
  keep,
  noGrad,
  rand,
  randn,
  reshape,
  type Tensor,
  tensor,
  tidy,
} from '../engine/index.js';
import {
  fitScale,
  futureTimestamp,
  type SeriesScale,
  seriesLength,
  timeFeatureValues,
  type TimeSeries,
} from '../data/series.js';
import type { TimeGradConfig, TimeGradModel } from '../nn/models/timegrad.js';
import { timeGradInputSize } from '../nn/models/timegrad.js';
import { addNoise } from './forward.js';
import { simpleLoss } from './losses.js';
import { sample, type Scheduler } from './samplers/index.js';
import type { NoiseSchedule } from './schedule.js';

/** The diffusers scheduler config of a TimeGrad model: the paper's K = 100, β linear to 0.1. */
export const TIMEGRAD_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'DDPMScheduler',
  num_train_timesteps: 100,
  beta_schedule: 'linear',
  beta_start: 1e-4,
  beta_end: 0.1,
  prediction_type: 'epsilon',
  clip_sample: false,
  variance_type: 'fixed_small',
};

/** The timestamp of row p (rows past the end continue the series' step). */
export function timestampAt(s: TimeSeries, p: number): number {
  const T = seriesLength(s);
  return p < T ? s.timestamps[p]! : futureTimestamp(s.timestamps, s.freq, p - T + 1);
}

const maxLag = (c: TimeGradConfig): number => Math.max(...c.lags_seq);

/**
 * One window's scaled values: rows [o − C − maxLag, o + H) of the series (rows past the end or
 * not yet known are NaN until filled), with its scale.
 */
export interface ScaledWindow {
  origin: number;
  scale: SeriesScale;
  /** [(maxLag + C + H) · D], row-major. */
  values: Float64Array;
}

/** The scaled window at origin o; rows from `known` on are left NaN (to be sampled). */
export function scaledWindow(
  s: TimeSeries,
  c: TimeGradConfig,
  origin: number,
  known = origin + c.prediction_length,
): ScaledWindow {
  const D = c.target_dim;
  const C = c.context_length;
  const start = origin - C - maxLag(c);
  if (start < 0) {
    throw new Error(`origin ${origin}: the window needs ${C + maxLag(c)} rows before it`);
  }
  const scale = fitScale(s.values, D, origin - C, origin, c.scaling);
  const rows = maxLag(c) + C + c.prediction_length;
  const values = new Float64Array(rows * D).fill(NaN);
  const T = seriesLength(s);
  for (let j = 0; j < rows; j++) {
    const p = start + j;
    if (p >= known || p >= T) continue;
    for (let d = 0; d < D; d++) {
      values[j * D + d] = (s.values[p * D + d]! - scale.loc[d]!) / scale.scale[d]!;
    }
  }
  return { origin, scale, values };
}

/** The dtype and backend of the tensors a pass of the model makes (`tensor`/`randn` options). */
interface Placement {
  dtype: 'float32' | 'float64';
  backend: Tensor['backend'];
}

/** Tensors of `dtype` on the backend of the model's parameters. */
function modelLike(model: TimeGradModel, dtype: Placement['dtype']): Placement {
  return { dtype, backend: model.parameters()[0]!.backend };
}

/**
 * `count` indices uniform on {0, …, n − 1}: min(n − 1, ⌊u n⌋) for u ~ U[0, 1) drawn in float64
 * from `g`.
 */
function uniformIndices(g: Generator, count: number, n: number, like: Placement): number[] {
  const u = tidy(() =>
    rand([count], { generator: g, dtype: 'float64', backend: like.backend }).dataSync(),
  );
  return Array.from(u, (v) => Math.min(n - 1, Math.floor(v * n)));
}

/**
 * The RNN input of window row j (j ≥ maxLag) for several windows: [B, I] with the lagged scaled
 * values, the time features of the row's timestamp and the log scales.
 */
function inputsAt(
  s: TimeSeries,
  c: TimeGradConfig,
  windows: readonly ScaledWindow[],
  j: number,
  like: Placement,
): Tensor {
  const D = c.target_dim;
  const I = timeGradInputSize(c);
  const out = new Float64Array(windows.length * I);
  windows.forEach((w, b) => {
    const p = w.origin - c.context_length - maxLag(c) + j;
    let k = b * I;
    for (const l of c.lags_seq) for (let d = 0; d < D; d++) out[k++] = w.values[(j - l) * D + d]!;
    const tf = timeFeatureValues(c.time_features, timestampAt(s, p));
    for (const v of tf) out[k++] = v;
    if (c.scale_feature) for (let d = 0; d < D; d++) out[k++] = Math.log(w.scale.scale[d]!);
  });
  return tensor(out, [windows.length, I], like);
}

export interface ForecastLossOptions {
  /** Philox seeds of the diffusion steps k and of ε. */
  seed: number;
  dtype?: 'float32' | 'float64';
  /**
   * Score at most this many of the window rows × windows, drawn uniformly (default: all). The
   * RNN still reads every row; ε_θ runs on the drawn ones only (an unbiased estimate of the loss
   * at a fraction of the cost).
   */
  maxRows?: number;
}

/**
 * L_simple over every context and horizon row of a batch of windows (teacher forcing: each row's
 * input holds the true values before it). Returns the scalar loss, in the graph.
 */
export function forecastLoss(
  model: TimeGradModel,
  schedule: NoiseSchedule,
  s: TimeSeries,
  windows: readonly ScaledWindow[],
  opts: ForecastLossOptions,
): Tensor {
  const like = modelLike(model, opts.dtype ?? 'float32');
  const c = model.config;
  const D = c.target_dim;
  const B = windows.length;
  const L = maxLag(c);
  const rows = c.context_length + c.prediction_length;
  const steps = Array.from({ length: rows }, (_, i) => inputsAt(s, c, windows, L + i, like));
  const { hidden } = model.encode(steps);
  // Row-major over (row i, window b), as concat of the per-row [B, ·] tensors.
  const x0data = new Float64Array(rows * B * D);
  for (let i = 0; i < rows; i++) {
    windows.forEach((w, b) => {
      for (let d = 0; d < D; d++) x0data[(i * B + b) * D + d] = w.values[(L + i) * D + d]!;
    });
  }
  const g = new Generator(opts.seed);
  const all = rows * B;
  let N = all;
  let picked: Int32Array | null = null;
  if (opts.maxRows !== undefined && opts.maxRows < all) {
    N = opts.maxRows;
    picked = Int32Array.from(uniformIndices(g, N, all, like));
  }
  const x0rows = picked === null ? x0data : new Float64Array(N * D);
  if (picked !== null)
    picked.forEach((r, i) => x0rows.set(x0data.subarray(r * D, (r + 1) * D), i * D));
  const x0 = tensor(x0rows, [N, D], like);
  const ks = uniformIndices(g, N, schedule.betas.length, like);
  const noise = randn([N, D], { generator: g, ...like });
  const xk = addNoise(schedule, x0, noise, ks);
  let h = concat(hidden, 0);
  if (picked !== null)
    h = gather(h, 0, tensor(picked, [N], { dtype: 'int32', backend: like.backend }));
  const eps = model.denoise(xk, ks, h);
  return simpleLoss(eps, noise);
}

export interface ForecastOptions {
  /** Sample paths per window. */
  numSamples: number;
  /** Steps of the sampler per horizon row. */
  numInferenceSteps: number;
  seed: number;
  /** Called after each horizon row with the row index (progress). */
  onRow?: (h: number) => void;
}

/** Sample paths of several windows: [windows][numSamples][H · D], in the series' units. */
export type SamplePaths = Float64Array[][];

/**
 * N sample paths for each forecast origin: the model reads each window's context, then draws the
 * horizon row by row with `scheduler` (any sampler of the registry), feeding each draw back.
 * Origins may be the series' length (a forecast past the end).
 */
export function forecastSamples(
  model: TimeGradModel,
  scheduler: Scheduler,
  s: TimeSeries,
  origins: readonly number[],
  opts: ForecastOptions,
): SamplePaths {
  const c = model.config;
  const D = c.target_dim;
  const C = c.context_length;
  const H = c.prediction_length;
  const L = maxLag(c);
  const N = opts.numSamples;
  const W = origins.length;
  const like = modelLike(model, 'float32');
  const windows = origins.map((o) => scaledWindow(s, c, o, o));
  // One copy of each window per path (row w·N + n), sharing the context's values.
  const paths = windows.flatMap((w) =>
    Array.from({ length: N }, () => ({ ...w, values: w.values.slice() })),
  );
  const g = new Generator(opts.seed);
  return noGrad(() => {
    // The context is the same for every path of a window: read it once per window, then repeat.
    let state = tidy(() => {
      const steps = Array.from({ length: C }, (_, i) => inputsAt(s, c, windows, L + i, like));
      const st = model.encode(steps).state;
      return st.map((h) => {
        const Hs = h.shape[1]!;
        return keep(reshape(expand(reshape(h, [W, 1, Hs]), [W, N, Hs]), [W * N, Hs]));
      });
    });
    for (let h = 0; h < H; h++) {
      const j = L + C + h;
      const next = tidy(() => {
        const st = model.rnn.step(inputsAt(s, c, paths, j, like), state);
        const cond = st[st.length - 1]!;
        const xT = randn([W * N, D], { generator: g, ...like });
        const x = sample(scheduler, (xk, t) => model.denoise(xk, t, cond), xT, {
          numInferenceSteps: opts.numInferenceSteps,
          generator: g,
        });
        const drawn = x.dataSync();
        paths.forEach((p, r) => {
          for (let d = 0; d < D; d++) p.values[j * D + d] = drawn[r * D + d]!;
        });
        return st.map((t) => keep(t));
      });
      for (const t of state) t.dispose();
      state = next;
      opts.onRow?.(h);
    }
    for (const t of state) t.dispose();
    return windows.map((_, w) =>
      Array.from({ length: N }, (_, n) => {
        const p = paths[w * N + n]!;
        const out = new Float64Array(H * D);
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            const z = p.values[(L + C + h) * D + d]!;
            out[h * D + d] = z * p.scale.scale[d]! + p.scale.loc[d]!;
          }
        }
        return out;
      }),
    );
  });
}
