/** The basic layers, each a thin Module over engine ops, with PyTorch/diffusers parameter names. */
import {
  conv2d,
  type Conv2dOptions,
  dropout,
  gather,
  gelu,
  Generator,
  groupNorm,
  layerNorm,
  linear,
  ones,
  silu,
  type Tensor,
  zeros,
} from '../engine/index.js';
import { defaultBound, defaultInitGenerator, normal, uniform } from './init.js';
import { Module } from './module.js';

export interface InitOptions {
  /** Stream for the initial weights (default: the shared init stream, see manualSeed). */
  generator?: Generator;
}

/** y = x Wᵀ + b; weight [out, in]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: InitOptions & { bias?: boolean } = {},
  ) {
    super();
    const g = opts.generator ?? defaultInitGenerator();
    const bound = defaultBound(inFeatures);
    this.weight = this.param('weight', uniform([outFeatures, inFeatures], bound, g));
    this.bias = opts.bias === false ? null : this.param('bias', uniform([outFeatures], bound, g));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export interface Conv2dLayerOptions extends InitOptions, Conv2dOptions {
  bias?: boolean;
}

/** 2-D convolution, NCHW; weight [out, in/groups, k, k]. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly opts: Conv2dOptions;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dLayerOptions = {},
  ) {
    super();
    const g = opts.generator ?? defaultInitGenerator();
    const groups = opts.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(
        `Conv2d: channels ${inChannels}→${outChannels} are not divisible by groups=${groups}`,
      );
    }
    const fanIn = (inChannels / groups) * kernelSize * kernelSize;
    const bound = defaultBound(fanIn);
    const shape = [outChannels, inChannels / groups, kernelSize, kernelSize];
    this.weight = this.param('weight', uniform(shape, bound, g));
    this.bias = opts.bias === false ? null : this.param('bias', uniform([outChannels], bound, g));
    this.opts = {
      stride: opts.stride ?? 1,
      padding: opts.padding ?? 0,
      dilation: opts.dilation ?? 1,
      groups,
    };
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.opts);
  }
}

/** The size-preserving 3×3 convolution (padding 1) of diffusers' U-Net, VAE and ControlNet. */
export function conv3x3(inChannels: number, outChannels: number, init: InitOptions = {}): Conv2d {
  return new Conv2d(inChannels, outChannels, 3, { ...init, padding: 1 });
}

/** Group normalization over [N, C, ...] with per-channel affine (weight 1, bias 0 at init). */
export class GroupNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    if (numChannels % numGroups !== 0) {
      throw new Error(
        `GroupNorm: ${numChannels} channels are not divisible into ${numGroups} groups`,
      );
    }
    this.weight = affine ? this.param('weight', ones([numChannels])) : null;
    this.bias = affine ? this.param('bias', zeros([numChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

/** Layer normalization over the last axis. */
export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    opts: { elementwiseAffine?: boolean; bias?: boolean } = {},
  ) {
    super();
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? this.param('weight', ones([dim])) : null;
    this.bias = affine && opts.bias !== false ? this.param('bias', zeros([dim])) : null;
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, 1, this.weight, this.bias, this.eps);
  }
}

/** Inverted dropout, active only in training mode; masks come from its own Philox stream. */
export class Dropout extends Module {
  readonly generator: Generator;
  constructor(
    readonly p = 0.5,
    generator?: Generator,
  ) {
    super();
    // Each layer gets its own Philox key, derived from the init stream, so masks differ per layer.
    const g = defaultInitGenerator();
    this.generator =
      generator ?? new Generator((g.seed % 2 ** 32) * 2 ** 20 + (g.take(1) % 2 ** 20));
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.generator, this.training);
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

export class GELU extends Module {
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}

/** A lookup table [num, dim] indexed by int32 ids; N(0, 1) at init as in PyTorch. */
export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: InitOptions = {},
  ) {
    super();
    this.weight = this.param(
      'weight',
      normal([numEmbeddings, embeddingDim], 1, opts.generator ?? defaultInitGenerator()),
    );
  }
  forward(ids: Tensor): Tensor {
    return gather(this.weight, 0, ids);
  }
}
