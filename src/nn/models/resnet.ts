/**
 * diffusers' `resnet.py`: ResnetBlock2D (the residual block of every U-Net and VAE here),
 * Downsample2D and Upsample2D.
 */
import {
  add,
  avgPool2d,
  div,
  gather,
  groupNormSilu,
  mul,
  pad,
  reshape,
  silu,
  slice,
  tensor,
  type Tensor,
  upsampleNearest2d,
} from '../../engine/index.js';
import { Conv2d, conv3x3, type Dropout, GroupNorm, Linear } from '../layers.js';
import { Module } from '../module.js';
import { type Activation, type ActivationName, BuildContext, getActivation } from './common.js';

/** How the time embedding enters a ResnetBlock2D (diffusers' `resnet_time_scale_shift`). */
export type TimeEmbeddingNorm = 'default' | 'scale_shift';

/**
 * Nearest-neighbour resize to an exact size (PyTorch's `interpolate(size=..., mode='nearest')`:
 * source index floor(dst · in/out) in float32).
 */
export function resizeNearest2d(x: Tensor, size: readonly [number, number]): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  if (size[0] === 2 * h && size[1] === 2 * w) return upsampleNearest2d(x, 2);
  const index = (inSize: number, outSize: number): Tensor => {
    const scale = Math.fround(inSize / outSize);
    const idx = Int32Array.from({ length: outSize }, (_, i) =>
      Math.min(Math.floor(Math.fround(i * scale)), inSize - 1),
    );
    return tensor(idx, [outSize], { dtype: 'int32', backend: x.backend });
  };
  return gather(gather(x, 2, index(h, size[0])), 3, index(w, size[1]));
}

/**
 * act(norm(x)), the GroupNorm → activation pair of every ResNet block and output head in
 * diffusers; with SiLU it runs as one fused group norm + SiLU (groupNormSilu), forward and
 * backward, where the backend has the kernel.
 */
export function groupNormAct(norm: GroupNorm, act: Activation, x: Tensor): Tensor {
  if (act !== silu) return act(norm.forward(x));
  return groupNormSilu(x, norm.numGroups, norm.weight, norm.bias, norm.eps);
}

export interface Downsample2DOptions {
  useConv?: boolean;
  outChannels?: number;
  /** Conv padding; 0 pads one row and column at the bottom and right first (diffusers). */
  padding?: number;
  ctx?: BuildContext;
}

/** Halves the resolution: a 3×3 convolution with stride 2, or 2×2 average pooling. */
export class Downsample2D extends Module {
  readonly conv: Conv2d | null;
  readonly padding: number;
  constructor(
    readonly channels: number,
    opts: Downsample2DOptions = {},
  ) {
    super();
    this.padding = opts.padding ?? 1;
    const out = opts.outChannels ?? channels;
    if (opts.useConv === true) {
      const init = (opts.ctx ?? new BuildContext()).init;
      this.conv = this.child(
        'conv',
        new Conv2d(channels, out, 3, { ...init, stride: 2, padding: this.padding }),
      );
    } else {
      if (out !== channels) throw new Error('Downsample2D: pooling cannot change the channels');
      this.conv = null;
    }
  }
  forward(x: Tensor): Tensor {
    if (x.shape[1] !== this.channels) {
      throw new Error(`Downsample2D: expected ${this.channels} channels, got ${x.shape[1]}`);
    }
    if (this.conv === null) return avgPool2d(x, 2, 2);
    const input =
      this.padding === 0
        ? pad(x, [
            [0, 0],
            [0, 0],
            [0, 1],
            [0, 1],
          ])
        : x;
    return this.conv.forward(input);
  }
}

export interface Upsample2DOptions {
  useConv?: boolean;
  outChannels?: number;
  ctx?: BuildContext;
}

/** Doubles the resolution (nearest neighbour), then an optional 3×3 convolution. */
export class Upsample2D extends Module {
  readonly conv: Conv2d | null;
  constructor(
    readonly channels: number,
    opts: Upsample2DOptions = {},
  ) {
    super();
    const out = opts.outChannels ?? channels;
    const init = (opts.ctx ?? new BuildContext()).init;
    this.conv = opts.useConv === true ? this.child('conv', conv3x3(channels, out, init)) : null;
  }
  /** `outputSize` resizes to that size instead of ×2 (UNet2DConditionModel with odd sizes). */
  forward(x: Tensor, outputSize?: readonly [number, number] | null): Tensor {
    if (x.shape[1] !== this.channels) {
      throw new Error(`Upsample2D: expected ${this.channels} channels, got ${x.shape[1]}`);
    }
    const y = outputSize ? resizeNearest2d(x, outputSize) : upsampleNearest2d(x, 2);
    return this.conv ? this.conv.forward(y) : y;
  }
}

export interface ResnetBlock2DOptions {
  inChannels: number;
  outChannels?: number;
  /** Width of the time embedding; null for blocks without one (the VAE). */
  tembChannels: number | null;
  groups?: number;
  groupsOut?: number;
  eps?: number;
  dropout?: number;
  nonLinearity?: ActivationName;
  timeEmbeddingNorm?: TimeEmbeddingNorm;
  outputScaleFactor?: number;
  /** A 1×1 convolution on the shortcut (default: when the channels change). */
  useInShortcut?: boolean;
  convShortcutBias?: boolean;
  /** Upsample ×2 (nearest) or downsample ×2 (average pooling) inside the block. */
  up?: boolean;
  down?: boolean;
  ctx?: BuildContext;
}

/**
 * out = (shortcut(x) + conv2(drop(act(norm2(conv1(act(norm1(x))) + proj(act(temb))))))) / s,
 * the residual block of DDPM; 'scale_shift' applies the embedding as norm2(h)·(1 + a) + b.
 */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  readonly act: Activation;
  readonly timeEmbeddingNorm: TimeEmbeddingNorm;
  readonly outputScaleFactor: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly resample: 'up' | 'down' | null;

  constructor(o: ResnetBlock2DOptions) {
    super();
    const ctx = o.ctx ?? new BuildContext();
    const init = ctx.init;
    const out = o.outChannels ?? o.inChannels;
    const groups = o.groups ?? 32;
    const eps = o.eps ?? 1e-6;
    this.inChannels = o.inChannels;
    this.outChannels = out;
    this.timeEmbeddingNorm = o.timeEmbeddingNorm ?? 'default';
    this.outputScaleFactor = o.outputScaleFactor ?? 1;
    this.act = getActivation(o.nonLinearity ?? 'swish');
    this.resample = o.up === true ? 'up' : o.down === true ? 'down' : null;
    this.norm1 = this.child('norm1', new GroupNorm(groups, o.inChannels, eps));
    this.conv1 = this.child('conv1', conv3x3(o.inChannels, out, init));
    const projOut = this.timeEmbeddingNorm === 'scale_shift' ? 2 * out : out;
    this.timeEmbProj =
      o.tembChannels === null
        ? null
        : this.child('time_emb_proj', new Linear(o.tembChannels, projOut, init));
    this.norm2 = this.child('norm2', new GroupNorm(o.groupsOut ?? groups, out, eps));
    this.dropout = this.child('dropout', ctx.dropout(o.dropout ?? 0));
    this.conv2 = this.child('conv2', conv3x3(out, out, init));
    const shortcut = o.useInShortcut ?? o.inChannels !== out;
    this.convShortcut = shortcut
      ? this.child(
          'conv_shortcut',
          new Conv2d(o.inChannels, out, 1, { ...init, bias: o.convShortcutBias ?? true }),
        )
      : null;
  }

  #resample(x: Tensor): Tensor {
    if (this.resample === 'up') return upsampleNearest2d(x, 2);
    if (this.resample === 'down') return avgPool2d(x, 2, 2);
    return x;
  }

  forward(input: Tensor, temb?: Tensor | null): Tensor {
    let h = groupNormAct(this.norm1, this.act, input);
    const x = this.#resample(input);
    h = this.conv1.forward(this.#resample(h));
    let t: Tensor | null = null;
    if (this.timeEmbProj !== null) {
      if (!temb) throw new Error('ResnetBlock2D: this block needs a time embedding');
      const p = this.timeEmbProj.forward(this.act(temb));
      t = reshape(p, [p.shape[0]!, p.shape[1]!, 1, 1]);
    }
    if (this.timeEmbeddingNorm === 'scale_shift' && t !== null) {
      const [b, c2] = t.shape as [number, number];
      const scale = slice(t, [0, 0], [b, c2 / 2]);
      const shift = slice(t, [0, c2 / 2], [b, c2]);
      h = this.act(add(mul(this.norm2.forward(h), add(scale, 1)), shift));
    } else {
      if (t !== null) h = add(h, t);
      h = groupNormAct(this.norm2, this.act, h);
    }
    h = this.conv2.forward(this.dropout.forward(h));
    const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
    const out = add(shortcut, h);
    return this.outputScaleFactor === 1 ? out : div(out, this.outputScaleFactor);
  }
}
