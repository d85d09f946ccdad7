/**
 * TimeGrad (Rasul et al. 2021, "Autoregressive Denoising Diffusion Models for Multivariate
 * Probabilistic Time Series Forecasting"): an RNN reads the series step by step, and its hidden
 * state h_{t−1} conditions a denoising diffusion model of the next target vector x_t ∈ ℝ^D:
 *
 *   h_t = GRU(concat(x̃_{t−l} for l in lags, time features of t, log scale), h_{t−1})
 *   loss  = E ‖ε − ε_θ(√ᾱ_k x̃_t + √(1 − ᾱ_k) ε, k, h_t)‖²      (the paper's eq. 8, per time step)
 *
 * where x̃ is the series divided by its scale (and `h_t` here is the state after reading the
 * inputs of step t, which hold only values before t). ε_θ (the paper's Fig. 2, after DiffWave)
 * treats the D target dimensions as a 1-D sequence: a 1×1 input projection to C channels, residual
 * blocks with gated dilated convolutions (kernel 3, dilation 2^(i mod cycle)) into which the
 * diffusion-step embedding and the upsampled h_t are added, skip connections summed over the
 * blocks, and two output convolutions. Convolutions over the sequence run as conv2d with height 1.
 * The paper pads circularly; here padding is zeros.
 *
 * Parameter names follow PyTorch (`rnn.weight_ih_l0`, `epsilon.residual_layers.3.dilated_conv.weight`),
 * with Conv1d weights [out, in, k].
 */
import {
  add,
  conv2d,
  linear,
  maximum,
  mul,
  reshape,
  sigmoid,
  silu,
  slice,
  sub,
  tanh,
  type Tensor,
  zeros,
} from '../../engine/index.js';
import { defaultBound, defaultInitGenerator, uniform } from '../init.js';
import { type InitOptions, Linear } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import type { ModelInitOptions } from './common.js';
import { bool, type ConfigSchema, int, listOf, oneOf, type Rule } from './config.js';
import { DiffusersModel } from './diffusers-model.js';
import { getTimestepEmbedding, timestepsTensor, type TimestepInput } from './embeddings.js';

export const TIMEGRAD_CLASS = 'TimeGradModel';

/** The calendar features a TimeGrad model reads (data/series.ts computes them). */
export const TIMEGRAD_TIME_FEATURES = [
  'hour_of_day',
  'day_of_week',
  'day_of_year',
  'month_of_year',
] as const;

export interface TimeGradConfig {
  /** D, the number of target series forecast jointly. */
  target_dim: number;
  context_length: number;
  prediction_length: number;
  /** Lags of the inputs (1 = the previous value). */
  lags_seq: readonly number[];
  /** Calendar features of each step, each as [sin, cos] (see TIMEGRAD_TIME_FEATURES). */
  time_features: readonly (typeof TIMEGRAD_TIME_FEATURES)[number][];
  /** How each window is scaled before the model sees it: 'mean' (TimeGrad's) or 'standard'. */
  scaling: 'mean' | 'standard';
  /** The series' frequency (informational: hourly, daily, monthly, ...). */
  freq: string;
  num_layers: number;
  hidden_size: number;
  residual_layers: number;
  residual_channels: number;
  dilation_cycle_length: number;
  /** Width of the diffusion-step embedding MLP. */
  residual_hidden: number;
  /** Channels of the upsampled hidden state per target dimension (the paper: 1). */
  cond_channels: number;
  /** Width of the hidden layer of the conditioning upsampler. */
  cond_hidden: number;
  /** Feed the log of each dimension's scale to the RNN (GluonTS's static feature). */
  scale_feature: boolean;
}

const positiveInts: Rule = listOf(int(1));
const features: Rule = (v) =>
  Array.isArray(v) &&
  v.every((f) => (TIMEGRAD_TIME_FEATURES as readonly unknown[]).includes(f)) &&
  new Set(v).size === v.length
    ? null
    : `expected distinct names of ${TIMEGRAD_TIME_FEATURES.join(', ')}, got ${JSON.stringify(v)}`;
const text: Rule = (v) => (typeof v === 'string' ? null : `expected a string, got ${String(v)}`);

export const TIMEGRAD_SCHEMA: ConfigSchema<TimeGradConfig> = {
  className: TIMEGRAD_CLASS,
  defaults: {
    target_dim: 1,
    context_length: 96,
    prediction_length: 24,
    lags_seq: [1],
    time_features: [],
    scaling: 'mean',
    freq: 'daily',
    num_layers: 2,
    hidden_size: 40,
    residual_layers: 8,
    residual_channels: 8,
    dilation_cycle_length: 2,
    residual_hidden: 64,
    cond_channels: 1,
    cond_hidden: 16,
    scale_feature: true,
  },
  rules: {
    target_dim: int(1),
    context_length: int(1),
    prediction_length: int(1),
    lags_seq: positiveInts,
    time_features: features,
    scaling: oneOf(['mean', 'standard']),
    freq: text,
    num_layers: int(1),
    hidden_size: int(1),
    residual_layers: int(1),
    residual_channels: int(1),
    dilation_cycle_length: int(1),
    residual_hidden: int(2),
    cond_channels: int(1),
    cond_hidden: int(1),
    scale_feature: bool,
  },
};

/** The RNN's input width: the lagged values, 2 numbers per time feature, the log scales. */
export function timeGradInputSize(c: TimeGradConfig): number {
  return (
    c.target_dim * c.lags_seq.length +
    2 * c.time_features.length +
    (c.scale_feature ? c.target_dim : 0)
  );
}

/** TimeGrad's leaky ReLU (slope 0.4): max(x, 0.4 x). */
const leakyRelu = (x: Tensor): Tensor => maximum(x, mul(x, 0.4));

/**
 * A 1-D convolution (PyTorch's conv1d, zero padding): x [B, C, L], weight [O, C, k], bias [O], run
 * as conv2d on [B, C, 1, L] with a [O, C, 1, k] kernel.
 */
export function conv1d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  padding = 0,
  dilation = 1,
): Tensor {
  const [b, c, l] = x.shape as [number, number, number];
  const [o, i, k] = weight.shape as [number, number, number];
  const y = conv2d(reshape(x, [b, c, 1, l]), reshape(weight, [o, i, 1, k]), bias, {
    padding: [0, padding],
    dilation: [1, dilation],
  });
  return reshape(y, [b, o, y.shape[3]!]);
}

/** PyTorch's Conv1d module over conv1d; weight [out, in, k]. */
export class Conv1d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly opts: InitOptions & { padding?: number; dilation?: number; zeroInit?: boolean } = {},
  ) {
    super();
    const g = opts.generator ?? defaultInitGenerator();
    const bound = 1 / Math.sqrt(inChannels * kernelSize);
    const shape = [outChannels, inChannels, kernelSize];
    this.weight = this.param(
      'weight',
      opts.zeroInit === true ? zeros(shape) : uniform(shape, bound, g),
    );
    this.bias = this.param(
      'bias',
      opts.zeroInit === true ? zeros([outChannels]) : uniform([outChannels], bound, g),
    );
  }
  forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, this.opts.padding ?? 0, this.opts.dilation ?? 1);
  }
}

/**
 * One GRU cell step (PyTorch's equations; weights [3H, I] and [3H, H] with the gates in the order
 * r, z, n):
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h.
 */
export function gruCell(
  x: Tensor,
  h: Tensor,
  weightIh: Tensor,
  weightHh: Tensor,
  biasIh: Tensor,
  biasHh: Tensor,
): Tensor {
  const [B, H] = h.shape as [number, number];
  const gx = linear(x, weightIh, biasIh);
  const gh = linear(h, weightHh, biasHh);
  const rz = sigmoid(add(slice(gx, [0, 0], [B, 2 * H]), slice(gh, [0, 0], [B, 2 * H])));
  const r = slice(rz, [0, 0], [B, H]);
  const z = slice(rz, [0, H], [B, 2 * H]);
  const n = tanh(add(slice(gx, [0, 2 * H], [B, 3 * H]), mul(r, slice(gh, [0, 2 * H], [B, 3 * H]))));
  return add(n, mul(z, sub(h, n))); // (1 − z) n + z h
}

/**
 * A multi-layer GRU (PyTorch's nn.GRU; gruCell per layer and step). The sequence is a list of [B, I] steps (slicing one [B, T, ·] tensor per step would make each
 * step's gradient a tensor of the whole sequence).
 */
export class GRU extends Module {
  readonly weights: { ih: Tensor; hh: Tensor; bih: Tensor; bhh: Tensor }[] = [];
  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    readonly numLayers: number,
    opts: InitOptions = {},
  ) {
    super();
    // PyTorch's RNN init: every weight and bias ~ U(−1/√H, 1/√H), Linear's bound with fan-in H.
    const k = defaultBound(hiddenSize);
    const g = opts.generator ?? defaultInitGenerator();
    const H3 = 3 * hiddenSize;
    for (let l = 0; l < numLayers; l++) {
      const inSize = l === 0 ? inputSize : hiddenSize;
      this.weights.push({
        ih: this.param(`weight_ih_l${l}`, uniform([H3, inSize], k, g)),
        hh: this.param(`weight_hh_l${l}`, uniform([H3, hiddenSize], k, g)),
        bih: this.param(`bias_ih_l${l}`, uniform([H3], k, g)),
        bhh: this.param(`bias_hh_l${l}`, uniform([H3], k, g)),
      });
    }
  }

  /** One step of every layer: input [B, I] and the layers' states → the new states. */
  step(x: Tensor, state: readonly Tensor[]): Tensor[] {
    const out: Tensor[] = [];
    let input = x;
    for (let l = 0; l < this.numLayers; l++) {
      const w = this.weights[l]!;
      input = gruCell(input, state[l]!, w.ih, w.hh, w.bih, w.bhh);
      out.push(input);
    }
    return out;
  }

  /** Zero states for a batch of B, like `like`'s dtype and backend. */
  initialState(B: number, like: Tensor): Tensor[] {
    return Array.from({ length: this.numLayers }, () =>
      zeros([B, this.hiddenSize], { dtype: like.dtype, backend: like.backend }),
    );
  }

  /**
   * The last layer's output at each step ([B, H] each) and the final states. `state` continues
   * from a previous call (default zeros).
   */
  forward(
    steps: readonly Tensor[],
    state?: readonly Tensor[],
  ): { output: Tensor[]; state: Tensor[] } {
    if (steps.length === 0) throw new Error('GRU: an empty sequence');
    let s = state ? [...state] : this.initialState(steps[0]!.shape[0]!, steps[0]!);
    const output: Tensor[] = [];
    for (const x of steps) {
      s = this.step(x, s);
      output.push(s[s.length - 1]!);
    }
    return { output, state: s };
  }
}

/** Two linear layers under the given names (the step embedding's MLP, the cond upsampler). */
class TwoLinear extends Module {
  readonly first: Linear;
  readonly second: Linear;
  constructor(
    names: readonly [string, string],
    sizes: readonly [number, number, number],
    init: InitOptions,
  ) {
    super();
    this.first = this.child(names[0], new Linear(sizes[0], sizes[1], init));
    this.second = this.child(names[1], new Linear(sizes[1], sizes[2], init));
  }
  /** act(second(act(first(x)))). */
  forward(x: Tensor, act: (x: Tensor) => Tensor): Tensor {
    return act(this.second.forward(act(this.first.forward(x))));
  }
}

/** A residual block of ε_θ: gated dilated convolution with step and condition added. */
export class TimeGradResidualBlock extends Module {
  readonly dilatedConv: Conv1d;
  readonly diffusionProjection: Linear;
  readonly conditionerProjection: Conv1d;
  readonly outputProjection: Conv1d;
  constructor(
    readonly channels: number,
    hidden: number,
    condChannels: number,
    dilation: number,
    init: InitOptions,
  ) {
    super();
    this.dilatedConv = this.child(
      'dilated_conv',
      new Conv1d(channels, 2 * channels, 3, { ...init, padding: dilation, dilation }),
    );
    this.diffusionProjection = this.child(
      'diffusion_projection',
      new Linear(hidden, channels, init),
    );
    this.conditionerProjection = this.child(
      'conditioner_projection',
      new Conv1d(condChannels, 2 * channels, 1, init),
    );
    this.outputProjection = this.child(
      'output_projection',
      new Conv1d(channels, 2 * channels, 1, init),
    );
  }

  /** x [B, C, D], step embedding [B, E], condition [B, Cc, D] → (x + residual)/√2 and skip. */
  forward(x: Tensor, step: Tensor, cond: Tensor): { x: Tensor; skip: Tensor } {
    const C = this.channels;
    const [B, , D] = x.shape as [number, number, number];
    const d = reshape(this.diffusionProjection.forward(step), [B, C, 1]);
    const y = add(this.dilatedConv.forward(add(x, d)), this.conditionerProjection.forward(cond));
    const gate = sigmoid(slice(y, [0, 0, 0], [B, C, D]));
    const filter = tanh(slice(y, [0, C, 0], [B, 2 * C, D]));
    const out = leakyRelu(this.outputProjection.forward(mul(gate, filter)));
    const residual = slice(out, [0, 0, 0], [B, C, D]);
    const skip = slice(out, [0, C, 0], [B, 2 * C, D]);
    return { x: mul(add(x, residual), Math.SQRT1_2), skip };
  }
}

/** ε_θ(x_k, k, h): the denoiser of one target vector given the RNN state h. */
export class TimeGradEpsilon extends Module {
  readonly diffusionEmbedding: TwoLinear;
  readonly condUpsampler: TwoLinear;
  readonly inputProjection: Conv1d;
  readonly residualLayers: ModuleList<TimeGradResidualBlock>;
  readonly skipProjection: Conv1d;
  readonly outputProjection: Conv1d;
  constructor(
    readonly config: TimeGradConfig,
    init: InitOptions,
  ) {
    super();
    const c = config;
    const C = c.residual_channels;
    const E = c.residual_hidden;
    this.diffusionEmbedding = this.child(
      'diffusion_embedding',
      new TwoLinear(['projection1', 'projection2'], [E, E, E], init),
    );
    this.condUpsampler = this.child(
      'cond_upsampler',
      new TwoLinear(
        ['linear1', 'linear2'],
        [c.hidden_size, c.cond_hidden, c.cond_channels * c.target_dim],
        init,
      ),
    );
    this.inputProjection = this.child('input_projection', new Conv1d(1, C, 1, init));
    this.residualLayers = this.child(
      'residual_layers',
      new ModuleList(
        Array.from(
          { length: c.residual_layers },
          (_, i) =>
            new TimeGradResidualBlock(
              C,
              E,
              c.cond_channels,
              2 ** (i % c.dilation_cycle_length),
              init,
            ),
        ),
      ),
    );
    this.skipProjection = this.child(
      'skip_projection',
      new Conv1d(C, C, 3, { ...init, padding: 1 }),
    );
    this.outputProjection = this.child(
      'output_projection',
      new Conv1d(C, 1, 3, { ...init, padding: 1, zeroInit: true }),
    );
  }

  /** x_k [B, D], diffusion steps k [B] (or one for all), RNN state h [B, H] → ε̂ [B, D]. */
  forward(sample: Tensor, timestep: TimestepInput, hidden: Tensor): Tensor {
    const c = this.config;
    const [B, D] = sample.shape as [number, number];
    if (D !== c.target_dim || hidden.shape[0] !== B || hidden.shape[1] !== c.hidden_size) {
      throw new Error(
        `TimeGradEpsilon: x_k [${sample.shape.join(', ')}] and h [${hidden.shape.join(', ')}], expected [B, ${c.target_dim}] and [B, ${c.hidden_size}]`,
      );
    }
    const ts = timestepsTensor(timestep, B, sample.backend);
    const emb0 = getTimestepEmbedding(ts, c.residual_hidden, { flipSinToCos: false });
    const emb = this.diffusionEmbedding.forward(emb0.cast(sample.dtype), silu);
    const cond = reshape(this.condUpsampler.forward(hidden, leakyRelu), [B, c.cond_channels, D]);
    let x = leakyRelu(this.inputProjection.forward(reshape(sample, [B, 1, D])));
    let skip: Tensor | null = null;
    for (const block of this.residualLayers.items) {
      const r = block.forward(x, emb, cond);
      x = r.x;
      skip = skip === null ? r.skip : add(skip, r.skip);
    }
    const s = mul(skip!, 1 / Math.sqrt(c.residual_layers));
    const out = this.outputProjection.forward(leakyRelu(this.skipProjection.forward(s)));
    return reshape(out, [B, D]);
  }
}

/** The whole TimeGrad network: the GRU encoder (`rnn`) and ε_θ (`epsilon`). */
export class TimeGradModel extends DiffusersModel<TimeGradConfig> {
  readonly rnn: GRU;
  readonly epsilon: TimeGradEpsilon;
  constructor(
    config: Partial<TimeGradConfig> | Record<string, unknown>,
    opts: ModelInitOptions = {},
  ) {
    super(TIMEGRAD_SCHEMA, config);
    const c = this.config;
    const init: InitOptions = { generator: opts.generator };
    this.rnn = this.child('rnn', new GRU(timeGradInputSize(c), c.hidden_size, c.num_layers, init));
    this.epsilon = this.child('epsilon', new TimeGradEpsilon(c, init));
  }

  /**
   * The RNN over a sequence of inputs ([B, I] each): the hidden state after each step ([B, H]
   * each) and the state to continue from.
   */
  encode(
    steps: readonly Tensor[],
    state?: readonly Tensor[],
  ): { hidden: Tensor[]; state: Tensor[] } {
    const I = timeGradInputSize(this.config);
    const bad = steps.find((x) => x.rank !== 2 || x.shape[1] !== I);
    if (bad !== undefined) {
      throw new Error(
        `TimeGradModel.encode: an input [${bad.shape.join(', ')}], expected [B, ${I}]`,
      );
    }
    const r = this.rnn.forward(steps, state);
    return { hidden: r.output, state: r.state };
  }

  /** ε̂ = ε_θ(x_k, k, h) for x_k [B, D] and h [B, H]. */
  denoise(sample: Tensor, timestep: TimestepInput, hidden: Tensor): Tensor {
    return this.epsilon.forward(sample, timestep, hidden);
  }
}
