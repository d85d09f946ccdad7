/**
 * Timestep embeddings (diffusers' `embeddings.py`): the sinusoidal projection of DDPM (Ho et al.
 * 2020, after Vaswani et al. 2017) and the MLP that follows it.
 */
import {
  arange,
  type Backend,
  cast,
  concat,
  cos,
  div,
  exp,
  expand,
  mul,
  pad,
  reshape,
  sin,
  tensor,
  type Tensor,
} from '../../engine/index.js';
import { Linear } from '../layers.js';
import { Module } from '../module.js';
import { type Activation, type ActivationName, BuildContext, getActivation } from './common.js';

/** A timestep for the whole batch, one per sample, or a tensor of either ([] / [1] / [B]). */
export type TimestepInput = Tensor | number | readonly number[];

/**
 * The timesteps as a float32 tensor [batch] on `backend` (diffusers broadcasts a single timestep
 * to the batch). Float64 timesteps are rounded to float32, as diffusers' `.float()` does.
 */
export function timestepsTensor(t: TimestepInput, batch: number, backend: Backend): Tensor {
  let ts: Tensor;
  if (typeof t === 'number') ts = tensor([t], [1], { dtype: 'float32', backend });
  else if (Array.isArray(t)) ts = tensor(Float32Array.from(t as number[]), [t.length], { backend });
  else ts = cast(t as Tensor, 'float32');
  if (ts.size === 1) return expand(reshape(ts, [1]), [batch]);
  if (ts.rank !== 1 || ts.shape[0] !== batch) {
    throw new Error(
      `timesteps: expected one timestep or ${batch}, got shape [${ts.shape.join(', ')}]`,
    );
  }
  return ts;
}

export interface TimestepEmbeddingOptions {
  /** Put cos first (diffusers' `flip_sin_to_cos`). */
  flipSinToCos?: boolean;
  /** The frequencies are exp(−ln(maxPeriod) · i / (half − downscaleFreqShift)). */
  downscaleFreqShift?: number;
  scale?: number;
  maxPeriod?: number;
}

/**
 * diffusers' `get_timestep_embedding`: [N] timesteps -> [N, dim] sinusoids
 * [sin(t·f_i), cos(t·f_i)] with f_i = exp(−ln(maxPeriod) · i / (dim/2 − shift)), computed in
 * float32 whatever the model's dtype (diffusers uses `.float()` here too), zero-padded when dim is
 * odd.
 */
export function getTimestepEmbedding(
  timesteps: Tensor,
  dim: number,
  opts: TimestepEmbeddingOptions = {},
): Tensor {
  const half = Math.floor(dim / 2);
  const backend = timesteps.backend;
  const t = reshape(cast(timesteps, 'float32'), [-1, 1]);
  const exponent = div(
    mul(arange(0, half, 1, { dtype: 'float32', backend }), -Math.log(opts.maxPeriod ?? 10000)),
    half - (opts.downscaleFreqShift ?? 1),
  );
  let emb = mul(t, reshape(exp(exponent), [1, half]));
  if ((opts.scale ?? 1) !== 1) emb = mul(emb, opts.scale ?? 1);
  const parts = [sin(emb), cos(emb)];
  if (opts.flipSinToCos === true) parts.reverse();
  emb = concat(parts, 1);
  return dim % 2 === 1
    ? pad(emb, [
        [0, 0],
        [0, 1],
      ])
    : emb;
}

/** diffusers' `Timesteps`: the sinusoidal projection as a (parameterless) module. */
export class Timesteps extends Module {
  constructor(
    readonly numChannels: number,
    readonly flipSinToCos: boolean,
    readonly downscaleFreqShift: number,
  ) {
    super();
  }
  forward(timesteps: Tensor): Tensor {
    return getTimestepEmbedding(timesteps, this.numChannels, {
      flipSinToCos: this.flipSinToCos,
      downscaleFreqShift: this.downscaleFreqShift,
    });
  }
  /**
   * The projection of `t` for a batch (computed in float32 on `like`'s backend), cast to `like`'s
   * dtype: the input of the model's TimestepEmbedding, `like` being one of its weights.
   */
  project(t: TimestepInput, batch: number, like: Tensor): Tensor {
    return cast(this.forward(timestepsTensor(t, batch, like.backend)), like.dtype);
  }
}

/** diffusers' `TimestepEmbedding`: linear_1 -> act -> linear_2 (-> post_act). */
export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly act: Activation;
  readonly postAct: Activation | null;
  constructor(
    inChannels: number,
    timeEmbedDim: number,
    opts: {
      actFn?: ActivationName;
      outDim?: number | null;
      postActFn?: ActivationName | null;
      ctx?: BuildContext;
    } = {},
  ) {
    super();
    const init = (opts.ctx ?? new BuildContext()).init;
    this.linear1 = this.child('linear_1', new Linear(inChannels, timeEmbedDim, init));
    this.act = getActivation(opts.actFn ?? 'silu');
    this.linear2 = this.child(
      'linear_2',
      new Linear(timeEmbedDim, opts.outDim ?? timeEmbedDim, init),
    );
    this.postAct = opts.postActFn ? getActivation(opts.postActFn) : null;
  }
  forward(sample: Tensor): Tensor {
    const y = this.linear2.forward(this.act(this.linear1.forward(sample)));
    return this.postAct ? this.postAct(y) : y;
  }
}
