/**
 * Baselines for probabilistic forecasts, scored on the same windows as a TimeGrad model:
 *
 * - seasonal naive: the last season repeated (a point forecast; its CRPS is its MAE);
 * - a Gaussian-output MLP: the scaled context and the origin's time features → (μ_h, log σ_h) for
 *   each horizon row h, trained by the Gaussian negative log-likelihood
 *   log σ + (y − μ)²/(2σ²) on the training windows (a direct multi-horizon forecaster, the
 *   likelihood of DeepAR without its recurrence). Its samples are μ + σ z.
 */
import {
  Generator,
  rand,
  randn,
  tensor,
  type Tensor,
  tidy,
  exp,
  mean,
  add,
  mul,
  square,
  sub,
  slice,
  noGrad,
  silu,
} from '../engine/index.js';
import {
  fitScale,
  forecastOrigins,
  historyLength,
  type ScalingKind,
  timeFeatureValues,
  timeFeaturesFor,
  type TimeSeries,
  type TimeSplit,
} from '../data/series.js';
import { timestampAt } from '../diffusion/forecast.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { AdamW } from '../nn/optim.js';
import { streamSeed } from '../diffusion/trainer/streams.js';

export interface GaussianBaselineOptions {
  context: number;
  horizon: number;
  scaling: ScalingKind;
  hidden: number;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
}

/** The Gaussian-output MLP (one target dimension). */
export class GaussianMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly out: Linear;
  constructor(
    inputs: number,
    hidden: number,
    readonly horizon: number,
    g: Generator,
  ) {
    super();
    this.fc1 = this.child('fc1', new Linear(inputs, hidden, { generator: g }));
    this.fc2 = this.child('fc2', new Linear(hidden, hidden, { generator: g }));
    this.out = this.child('out', new Linear(hidden, 2 * horizon, { generator: g }));
  }
  /** x [B, I] → μ [B, H] and log σ [B, H]. */
  forward(x: Tensor): { mu: Tensor; logSigma: Tensor } {
    const y = this.out.forward(silu(this.fc2.forward(silu(this.fc1.forward(x)))));
    const B = x.shape[0]!;
    const H = this.horizon;
    return { mu: slice(y, [0, 0], [B, H]), logSigma: slice(y, [0, H], [B, 2 * H]) };
  }
}

/** The MLP's input at origin o for target dimension d, and the window's scale. */
function mlpInput(
  s: TimeSeries,
  o: number,
  d: number,
  o2: GaussianBaselineOptions,
): { x: number[]; loc: number; scale: number } {
  const D = s.targets.length;
  const sc = fitScale(s.values.subarray(d), D, o - o2.context, o, o2.scaling);
  const loc = sc.loc[0]!;
  const scale = sc.scale[0]!;
  const x: number[] = [];
  for (let t = o - o2.context; t < o; t++) x.push((s.values[t * D + d]! - loc) / scale);
  x.push(...timeFeatureValues(timeFeaturesFor(s.freq), timestampAt(s, o)));
  x.push(Math.log(Math.abs(scale)));
  return { x, loc, scale };
}

/** A trained Gaussian baseline for target dimension d: samples for given origins. */
export interface GaussianBaseline {
  samples(origins: readonly number[], n: number, seed: number): Float64Array[][];
  finalLoss: number;
}

/** Trains the Gaussian MLP on the training part of the split (target dimension d). */
export function trainGaussianBaseline(
  s: TimeSeries,
  split: TimeSplit,
  d: number,
  o: GaussianBaselineOptions,
): GaussianBaseline {
  const w = { context: o.context, horizon: o.horizon, lags: [] };
  const origins = forecastOrigins(historyLength(w), split.trainEnd, w, 1);
  if (origins.length === 0) throw new Error('the training part holds no window');
  const D = s.targets.length;
  const inputs = origins.map((t) => mlpInput(s, t, d, o));
  const I = inputs[0]!.x.length;
  const model = new GaussianMlp(I, o.hidden, o.horizon, new Generator(streamSeed(o.seed, 'init')));
  const opt = new AdamW(model, { lr: o.lr, weightDecay: 1e-4 });
  let last = NaN;
  for (let step = 0; step < o.steps; step++) {
    last = tidy(() => {
      const g = new Generator(streamSeed(o.seed, 'data', step));
      const u = rand([o.batchSize], { generator: g, dtype: 'float64' }).dataSync();
      const pick = Array.from(u, (v) =>
        Math.min(origins.length - 1, Math.floor(v * origins.length)),
      );
      const x = new Float64Array(o.batchSize * I);
      const y = new Float64Array(o.batchSize * o.horizon);
      pick.forEach((k, b) => {
        const inp = inputs[k]!;
        x.set(inp.x, b * I);
        for (let h = 0; h < o.horizon; h++) {
          y[b * o.horizon + h] = (s.values[(origins[k]! + h) * D + d]! - inp.loc) / inp.scale;
        }
      });
      const { mu, logSigma } = model.forward(tensor(x, [o.batchSize, I], { dtype: 'float32' }));
      const z = mul(
        sub(tensor(y, [o.batchSize, o.horizon], { dtype: 'float32' }), mu),
        exp(mul(logSigma, -1)),
      );
      // −log N(y; μ, σ²) up to the constant ½ log 2π.
      const nll = mean(add(logSigma, mul(square(z), 0.5)));
      nll.backward();
      opt.step();
      model.zeroGrad();
      return nll.itemSync();
    });
  }
  return {
    finalLoss: last,
    samples(forecastAt: readonly number[], n: number, seed: number): Float64Array[][] {
      return noGrad(() =>
        tidy(() => {
          const inp = forecastAt.map((t) => mlpInput(s, t, d, o));
          const x = tensor(Float64Array.from(inp.flatMap((v) => v.x)), [inp.length, I], {
            dtype: 'float32',
          });
          const { mu, logSigma } = model.forward(x);
          const m = mu.dataSync();
          const sg = exp(logSigma).dataSync();
          const z = randn([inp.length, n, o.horizon], { seed }).dataSync();
          return inp.map((v, w) =>
            Array.from({ length: n }, (_, k) =>
              Float64Array.from({ length: o.horizon }, (_, h) => {
                const i = w * o.horizon + h;
                const zz = z[(w * n + k) * o.horizon + h]!;
                return (m[i]! + sg[i]! * zz) * v.scale + v.loc;
              }),
            ),
          );
        }),
      );
    },
  };
}
