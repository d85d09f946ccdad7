/** Pieces every diffusers model shares: activations by name and how a model is initialised. */
import {
  abs,
  add,
  exp,
  gelu,
  Generator,
  log,
  maximum,
  mul,
  silu,
  tanh,
  type Tensor,
} from '../../engine/index.js';
import { Dropout, type InitOptions } from '../layers.js';

/** The activations diffusers' `get_activation` knows ('swish' is 'silu'). */
export const ACTIVATIONS = ['silu', 'swish', 'gelu', 'relu', 'mish'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];
export type Activation = (x: Tensor) => Tensor;

/** log(1 + eˣ) without overflow: max(x, 0) + log(1 + e^(−|x|)). */
function softplus(x: Tensor): Tensor {
  return add(maximum(x, 0), log(add(exp(mul(abs(x), -1)), 1)));
}

export function getActivation(name: ActivationName): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return gelu;
    case 'relu':
      return (x) => maximum(x, 0);
    case 'mish':
      return (x) => mul(x, tanh(softplus(x)));
    default:
      throw new Error(`unknown activation '${String(name satisfies never)}'`);
  }
}

export interface ModelInitOptions {
  /** Stream for the initial weights (default: the shared init stream, see manualSeed). */
  generator?: Generator;
  /** Seed of the dropout masks; each Dropout layer gets its own stream from it (default 0). */
  dropoutSeed?: number;
}

/**
 * Handed down while a model is built: the weight stream, and a distinct dropout stream for each
 * Dropout layer (layers built alone would all share one seed and draw identical masks).
 */
export class BuildContext {
  readonly init: InitOptions;
  readonly #dropoutSeed: number;
  #dropouts = 0;

  constructor(opts: ModelInitOptions = {}) {
    this.init = { generator: opts.generator };
    this.#dropoutSeed = (opts.dropoutSeed ?? 0) % 2 ** 32;
  }

  dropout(p: number): Dropout {
    // key = [seed mod 2^32, seed / 2^32]: the layer index goes into the high key word.
    return new Dropout(p, new Generator(this.#dropoutSeed + 2 ** 32 * this.#dropouts++));
  }
}
