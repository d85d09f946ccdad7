/**
 * The U-Net and VAE blocks of diffusers' `unet_2d_blocks.py` that need no cross-attention:
 * DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D, UNetMidBlock2D, DownEncoderBlock2D and
 * UpDecoderBlock2D, with diffusers' parameter names (`resnets.0`, `attentions.0`,
 * `downsamplers.0`, `upsamplers.0`).
 */
import { add, composite, concat, type Tensor } from '../../engine/index.js';
import { Attention } from '../attention.js';
import type { Conv2d } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import type { ActivationName, BuildContext } from './common.js';
import { Downsample2D, ResnetBlock2D, type TimeEmbeddingNorm, Upsample2D } from './resnet.js';

/** What every block passes on to its ResnetBlock2D layers. */
export interface ResnetSettings {
  tembChannels: number | null;
  dropout: number;
  eps: number;
  actFn: ActivationName;
  groups: number;
  timeScaleShift: TimeEmbeddingNorm;
  outputScaleFactor: number;
  ctx: BuildContext;
}

/** The config keys (diffusers' names) a U-Net's residual blocks are built from. */
export interface ResnetConfig {
  dropout: number;
  norm_eps: number;
  act_fn: ActivationName;
  norm_num_groups: number;
  resnet_time_scale_shift: TimeEmbeddingNorm;
}

/** The ResnetBlock2D settings of a U-Net (or a U-Net encoder) from its config. */
export function resnetSettings(
  c: ResnetConfig,
  tembChannels: number | null,
  ctx: BuildContext,
  outputScaleFactor = 1,
): ResnetSettings {
  return {
    tembChannels,
    dropout: c.dropout,
    eps: c.norm_eps,
    actFn: c.act_fn,
    groups: c.norm_num_groups,
    timeScaleShift: c.resnet_time_scale_shift,
    outputScaleFactor,
    ctx,
  };
}

/** A residual block with the block's settings; `resample` makes it a ×2 up- or downsampler. */
export function resnetBlock(
  s: ResnetSettings,
  inChannels: number,
  outChannels: number,
  resample: { up?: boolean; down?: boolean } = {},
) {
  return new ResnetBlock2D({
    inChannels,
    outChannels,
    tembChannels: s.tembChannels,
    eps: s.eps,
    groups: s.groups,
    dropout: s.dropout,
    timeEmbeddingNorm: s.timeScaleShift,
    nonLinearity: s.actFn,
    outputScaleFactor: s.outputScaleFactor,
    ...resample,
    ctx: s.ctx,
  });
}

/**
 * The self-attention of AttnDownBlock2D / AttnUpBlock2D / UNetMidBlock2D (diffusers' "deprecated
 * attention block"): GroupNorm, C / headDim heads of headDim, biases on q/k/v, the input added
 * back, the sum divided by the block's output scale factor.
 */
export function spatialAttention(
  channels: number,
  headDim: number,
  normGroups: number | null,
  s: ResnetSettings,
): Attention {
  const heads = Math.floor(channels / headDim);
  if (heads < 1) {
    throw new Error(`attention: ${channels} channels are fewer than attention_head_dim=${headDim}`);
  }
  return new Attention(channels, {
    heads,
    dimHead: headDim,
    bias: true,
    normNumGroups: normGroups,
    eps: s.eps,
    residualConnection: true,
    rescaleOutputFactor: s.outputScaleFactor,
    generator: s.ctx.init.generator,
  });
}

/** What a block's residual blocks see besides the hidden state. */
export interface LayerInputs {
  temb: Tensor | null;
  /** The cross-attention context (encoder hidden states), and the additive mask over its tokens. */
  context: Tensor | null;
  contextBias: Tensor | null;
}

/** The attention layer that follows each residual block of a block: how to build and run it. */
export interface FollowingAttention<A extends Module> {
  /** The layers, one per residual block (built after the residual blocks). */
  make(count: number): A[];
  apply(a: A, h: Tensor, x: LayerInputs): Tensor;
}

/** One spatial self-attention per residual block of an AttnDownBlock2D / AttnUpBlock2D. */
function spatialAttentions(o: {
  outChannels: number;
  attentionHeadDim: number;
  resnet: ResnetSettings;
}): FollowingAttention<Attention> {
  const s = o.resnet;
  return {
    make: (count) =>
      Array.from({ length: count }, () =>
        spatialAttention(o.outChannels, o.attentionHeadDim, s.groups, s),
      ),
    apply: (a, h) => a.forward(h),
  };
}

/**
 * A U-Net or VAE block: residual blocks (`resnets`), each followed by an attention layer
 * (`attentions`) when the block has them, and at the end an optional ×2 resampler in diffusers'
 * list of one (`downsamplers` / `upsamplers`). The residual blocks are built first (by the
 * caller), then the attentions, then the resampler.
 */
export abstract class ResampledBlock<A extends Module, R extends Module> extends Module {
  readonly attentions: ModuleList<A> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  /** The resampler list (registered as `downsamplers` or `upsamplers`); null without one. */
  readonly resamplers: ModuleList<R> | null;
  readonly #attention: FollowingAttention<A> | null;

  constructor(
    resnets: ResnetBlock2D[],
    attention: FollowingAttention<A> | null,
    resampler: 'downsamplers' | 'upsamplers',
    addResampler: boolean,
    makeResampler: () => R,
  ) {
    super();
    this.#attention = attention;
    const attentions = attention?.make(resnets.length);
    this.attentions = attentions ? this.child('attentions', new ModuleList(attentions)) : null;
    this.resnets = this.child('resnets', new ModuleList(resnets));
    this.resamplers = addResampler
      ? this.child(resampler, new ModuleList([makeResampler()]))
      : null;
  }

  /** Residual block `i` on `h`, then its attention layer. */
  protected layer(h: Tensor, i: number, x: LayerInputs): Tensor {
    // Without a graph (sampling), what the layer made but its output is freed at its end: the next
    // layer reuses those arrays while they are still in cache, and a first call faults in less.
    return composite(() => {
      const r = this.resnets.at(i).forward(h, x.temb);
      return this.#attention ? this.#attention.apply(this.attentions!.at(i), r, x) : r;
    });
  }
}

/** A down block's result: the new hidden state and the skip tensors for the up path. */
export interface DownOutput {
  hidden: Tensor;
  skips: Tensor[];
}

export interface DownBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  /** `contextBias`: the additive mask over the context's tokens (cross-attention blocks). */
  forward(
    hidden: Tensor,
    temb: Tensor | null,
    context?: Tensor | null,
    contextBias?: Tensor | null,
  ): DownOutput;
}

export interface UpBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  /** `skips`: this block's skip tensors in the order the down path made them. */
  forward(
    hidden: Tensor,
    skips: readonly Tensor[],
    temb: Tensor | null,
    context?: Tensor | null,
    upsampleSize?: readonly [number, number] | null,
    contextBias?: Tensor | null,
  ): Tensor;
}

export type DownsampleType = 'conv' | 'resnet';

export interface DownBlockOptions {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  addDownsample: boolean;
  downsamplePadding: number;
  resnet: ResnetSettings;
}

/**
 * The input width of level `i` of a path whose levels output `widths`: the previous level's
 * output, the first level's own width for the first (diffusers' running `output_channel`).
 */
export function levelInput(widths: readonly number[], i: number): number {
  return widths[Math.max(i - 1, 0)]!;
}

/**
 * Down level `i` of a U-Net encoder with block_out_channels `ch`: from levelInput to ch[i], a ×2
 * downsampler at the end of all but the last level.
 */
export function downLevel(
  ch: readonly number[],
  i: number,
  o: Pick<DownBlockOptions, 'numLayers' | 'downsamplePadding' | 'resnet'>,
): DownBlockOptions {
  return {
    numLayers: o.numLayers,
    inChannels: levelInput(ch, i),
    outChannels: ch[i]!,
    addDownsample: i < ch.length - 1,
    downsamplePadding: o.downsamplePadding,
    resnet: o.resnet,
  };
}

/** The residual blocks of a down (or VAE) block: the first goes from inChannels to outChannels. */
export function downResnets(
  o: Pick<DownBlockOptions, 'numLayers' | 'inChannels' | 'outChannels' | 'resnet'>,
): ResnetBlock2D[] {
  return Array.from({ length: o.numLayers }, (_, i) =>
    resnetBlock(o.resnet, i === 0 ? o.inChannels : o.outChannels, o.outChannels),
  );
}

/** The ×2 strided-convolution downsampler at the end of a down block. */
export function convDownsampler(o: DownBlockOptions): Downsample2D {
  return new Downsample2D(o.outChannels, {
    useConv: true,
    padding: o.downsamplePadding,
    ctx: o.resnet.ctx,
  });
}

/** The ×2 nearest-neighbour + convolution upsampler at the end of an up block. */
export function convUpsampler(o: Pick<UpBlockOptions, 'outChannels' | 'resnet'>): Upsample2D {
  return new Upsample2D(o.outChannels, { useConv: true, ctx: o.resnet.ctx });
}

/** The ×2 downsampler of a block: a strided convolution, or a ResnetBlock2D with pooling. */
function makeDownsampler(type: DownsampleType, o: DownBlockOptions): Downsample2D | ResnetBlock2D {
  if (type === 'conv') return convDownsampler(o);
  return resnetBlock(o.resnet, o.outChannels, o.outChannels, { down: true });
}

function makeUpsampler(type: DownsampleType, o: UpBlockOptions): Upsample2D | ResnetBlock2D {
  if (type === 'conv') return convUpsampler(o);
  return resnetBlock(o.resnet, o.outChannels, o.outChannels, { up: true });
}

function applyResampler(
  m: Downsample2D | Upsample2D | ResnetBlock2D,
  h: Tensor,
  temb: Tensor | null,
  size?: readonly [number, number] | null,
): Tensor {
  return composite(() => {
    if (m instanceof ResnetBlock2D) return m.forward(h, temb);
    if (m instanceof Upsample2D) return m.forward(h, size);
    return m.forward(h);
  });
}

/**
 * DownBlock2D and the down blocks with attention: each residual block followed by what the block
 * adds after it (nothing, a self-attention or a transformer), every output kept as a skip, then
 * the optional ×2 downsampler (a strided convolution, or a ResnetBlock2D with pooling with
 * `downsampleType` 'resnet'), its output a skip too.
 */
export class DownBlock2D<A extends Module = never>
  extends ResampledBlock<A, Downsample2D | ResnetBlock2D>
  implements DownBlock
{
  constructor(
    o: DownBlockOptions,
    attention: FollowingAttention<A> | null = null,
    downsampleType: DownsampleType = 'conv',
  ) {
    super(downResnets(o), attention, 'downsamplers', o.addDownsample, () =>
      makeDownsampler(downsampleType, o),
    );
  }

  forward(
    hidden: Tensor,
    temb: Tensor | null,
    context: Tensor | null = null,
    contextBias: Tensor | null = null,
  ): DownOutput {
    const skips: Tensor[] = [];
    let h = hidden;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.layer(h, i, { temb, context, contextBias });
      skips.push(h);
    }
    const down = this.resamplers?.at(0);
    if (down) {
      h = applyResampler(down, h, temb);
      skips.push(h);
    }
    return { hidden: h, skips };
  }
}

/** DownBlock2D with a spatial self-attention after each residual block. */
export class AttnDownBlock2D extends DownBlock2D<Attention> {
  constructor(o: DownBlockOptions & { attentionHeadDim: number; downsampleType: DownsampleType }) {
    super(o, spatialAttentions(o), o.downsampleType);
  }
}

/** A U-Net mid block; one without cross-attention ignores the context. */
export interface MidBlock extends Module {
  forward(
    hidden: Tensor,
    temb: Tensor | null,
    context?: Tensor | null,
    contextBias?: Tensor | null,
  ): Tensor;
}

/** The modules of a U-Net's encoder half. */
export interface UNetEncoder {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly midBlock: MidBlock | null;
}

/**
 * Runs the encoder half of a U-Net: conv_in (+ `hint`, ControlNet's embedded condition), the down
 * blocks and the mid block. Returns the mid block's output and the skips (conv_in's output first).
 */
export function runEncoder(
  m: UNetEncoder,
  x: Tensor,
  hint: Tensor | null,
  inputs: LayerInputs,
): DownOutput {
  const h0 = m.convIn.forward(x);
  let h = hint === null ? h0 : add(h0, hint);
  const skips: Tensor[] = [h];
  for (const blk of m.downBlocks.items) {
    const out = blk.forward(h, inputs.temb, inputs.context, inputs.contextBias);
    h = out.hidden;
    skips.push(...out.skips);
  }
  const mid = m.midBlock;
  if (mid) {
    const below = h;
    h = composite(() => mid.forward(below, inputs.temb, inputs.context, inputs.contextBias));
  }
  return { hidden: h, skips };
}

/** The config keys (diffusers' names) of a UNet2DModel-style down path and mid block. */
export interface EncoderConfig {
  down_block_types: readonly ('DownBlock2D' | 'AttnDownBlock2D')[];
  block_out_channels: readonly number[];
  layers_per_block: number;
  downsample_padding: number;
  /** Channels per attention head (null: one head over all channels). */
  attention_head_dim: number | null;
  mid_block_type: 'UNetMidBlock2D' | null;
  add_attention: boolean;
  resnet_time_scale_shift: TimeEmbeddingNorm;
  norm_num_groups: number;
  /** GroupNorm groups of the mid block's attention (absent or null: see unetMidBlock). */
  attn_norm_num_groups?: number | null;
}

/**
 * The down path of a UNet2DModel-style config: a DownBlock2D or AttnDownBlock2D per entry of
 * block_out_channels, every one but the last ending in a ×2 downsampler of `downsampleType`.
 */
export function unetDownBlocks(
  c: EncoderConfig,
  resnet: ResnetSettings,
  downsampleType: DownsampleType,
): DownBlock[] {
  return c.down_block_types.map((type, i) => {
    const base = downLevel(c.block_out_channels, i, {
      numLayers: c.layers_per_block,
      downsamplePadding: c.downsample_padding,
      resnet,
    });
    return type === 'DownBlock2D'
      ? new DownBlock2D(base)
      : new AttnDownBlock2D({
          ...base,
          attentionHeadDim: c.attention_head_dim ?? base.outChannels,
          downsampleType,
        });
  });
}

/**
 * The mid block of a UNet2DModel-style config at the last width (null when mid_block_type is);
 * its attention's GroupNorm has attn_norm_num_groups groups, or norm_num_groups with the
 * 'default' time embedding and none with 'scale_shift'.
 */
export function unetMidBlock(c: EncoderConfig, resnet: ResnetSettings): UNetMidBlock2D | null {
  if (c.mid_block_type === null) return null;
  const last = c.block_out_channels[c.block_out_channels.length - 1]!;
  return new UNetMidBlock2D({
    inChannels: last,
    addAttention: c.add_attention,
    attentionHeadDim: c.attention_head_dim ?? last,
    attnGroups:
      c.attn_norm_num_groups ??
      (c.resnet_time_scale_shift === 'default' ? c.norm_num_groups : null),
    resnet,
  });
}

export interface UpBlockOptions {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  prevOutputChannel: number;
  addUpsample: boolean;
  resnet: ResnetSettings;
}

/**
 * Up level `i` of a U-Net with block_out_channels `ch`: it mirrors down level j = n − 1 − i (its
 * width ch[j], its last skip levelInput(ch, j) wide), continues from the previous up level's
 * output (the mid block's for the first) and ends in a ×2 upsampler on all but the last level.
 */
export function upLevel(
  ch: readonly number[],
  i: number,
  numLayers: number,
  resnet: ResnetSettings,
): UpBlockOptions {
  const n = ch.length;
  const j = n - 1 - i;
  return {
    numLayers,
    inChannels: levelInput(ch, j),
    outChannels: ch[j]!,
    prevOutputChannel: ch[Math.min(j + 1, n - 1)]!,
    addUpsample: i < n - 1,
    resnet,
  };
}

/** The residual blocks of an up block: each takes the hidden state joined with one skip. */
export function upResnets(o: UpBlockOptions): ResnetBlock2D[] {
  return Array.from({ length: o.numLayers }, (_, i) => {
    const skipChannels = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
    const resnetIn = i === 0 ? o.prevOutputChannel : o.outChannels;
    return resnetBlock(o.resnet, resnetIn + skipChannels, o.outChannels);
  });
}

/**
 * UpBlock2D and the up blocks with attention: each residual block takes the hidden state joined
 * on the channels with the next skip (the down path's last first) and is followed by what the
 * block adds after it (nothing, a self-attention or a transformer); then the optional ×2
 * upsampler (nearest-neighbour + convolution, or a ResnetBlock2D with `upsampleType` 'resnet').
 */
export class UpBlock2D<A extends Module = never>
  extends ResampledBlock<A, Upsample2D | ResnetBlock2D>
  implements UpBlock
{
  constructor(
    o: UpBlockOptions,
    attention: FollowingAttention<A> | null = null,
    upsampleType: DownsampleType = 'conv',
  ) {
    super(upResnets(o), attention, 'upsamplers', o.addUpsample, () =>
      makeUpsampler(upsampleType, o),
    );
  }

  forward(
    hidden: Tensor,
    skips: readonly Tensor[],
    temb: Tensor | null,
    context: Tensor | null = null,
    upsampleSize: readonly [number, number] | null = null,
    contextBias: Tensor | null = null,
  ): Tensor {
    const rest = [...skips];
    let h = hidden;
    for (let i = 0; i < this.resnets.length; i++) {
      const skip = rest.pop();
      if (skip === undefined) throw new Error('up block: ran out of skip connections');
      const joined = h;
      h = composite(() => this.layer(concat([joined, skip], 1), i, { temb, context, contextBias }));
    }
    const up = this.resamplers?.at(0);
    return up ? applyResampler(up, h, temb, upsampleSize) : h;
  }
}

/** UpBlock2D with a spatial self-attention after each residual block. */
export class AttnUpBlock2D extends UpBlock2D<Attention> {
  constructor(o: UpBlockOptions & { attentionHeadDim: number; upsampleType: DownsampleType }) {
    super(o, spatialAttentions(o), o.upsampleType);
  }
}

export interface MidBlockOptions {
  inChannels: number;
  /** Attention layers, each followed by a residual block (diffusers' default 1). */
  numLayers?: number;
  addAttention: boolean;
  attentionHeadDim: number;
  /** GroupNorm groups of the attention; null: none (diffusers' `attn_groups`). */
  attnGroups: number | null;
  resnet: ResnetSettings;
}

/** resnet -> (attention -> resnet) × numLayers, at constant width. */
export class UNetMidBlock2D extends Module {
  readonly attentions: ModuleList<Attention> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly numLayers: number;
  constructor(o: MidBlockOptions) {
    super();
    const s = o.resnet;
    const c = o.inChannels;
    this.numLayers = o.numLayers ?? 1;
    const resnets = [resnetBlock(s, c, c)];
    const attentions: Attention[] = [];
    for (let i = 0; i < this.numLayers; i++) {
      if (o.addAttention) attentions.push(spatialAttention(c, o.attentionHeadDim, o.attnGroups, s));
      resnets.push(resnetBlock(s, c, c));
    }
    this.attentions = o.addAttention ? this.child('attentions', new ModuleList(attentions)) : null;
    this.resnets = this.child('resnets', new ModuleList(resnets));
  }
  forward(hidden: Tensor, temb: Tensor | null): Tensor {
    let h = this.resnets.at(0).forward(hidden, temb);
    for (let i = 0; i < this.numLayers; i++) {
      if (this.attentions) h = this.attentions.at(i).forward(h);
      h = this.resnets.at(i + 1).forward(h, temb);
    }
    return h;
  }
}

/** A VAE block: residual blocks without a time embedding, then the resampler. */
abstract class CoderBlock2D<R extends Downsample2D | Upsample2D> extends ResampledBlock<never, R> {
  forward(hidden: Tensor): Tensor {
    let h = hidden;
    for (const r of this.resnets.items) h = r.forward(h, null);
    if (this.resamplers) for (const m of this.resamplers.items) h = m.forward(h);
    return h;
  }
}

/** The VAE encoder's block: residual blocks, then a downsampler. */
export class DownEncoderBlock2D extends CoderBlock2D<Downsample2D> {
  constructor(o: DownBlockOptions) {
    super(downResnets(o), null, 'downsamplers', o.addDownsample, () => convDownsampler(o));
  }
}

/** The VAE decoder's block: residual blocks, then an upsampler. */
export class UpDecoderBlock2D extends CoderBlock2D<Upsample2D> {
  constructor(o: Omit<UpBlockOptions, 'prevOutputChannel'>) {
    super(downResnets(o), null, 'upsamplers', o.addUpsample, () => convUpsampler(o));
  }
}
