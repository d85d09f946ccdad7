/**
 * The cross-attention blocks of diffusers' `unet_2d_blocks.py` used by UNet2DConditionModel:
 * CrossAttnDownBlock2D, CrossAttnUpBlock2D and UNetMidBlock2DCrossAttn. Each residual block is
 * followed by a Transformer2DModel that attends to the encoder hidden states.
 */
import type { Tensor } from '../../engine/index.js';
import { Module, ModuleList } from '../module.js';
import type { ResnetBlock2D } from './resnet.js';
import { Transformer2DModel } from './transformer-2d.js';
import {
  DownBlock2D,
  type DownBlockOptions,
  type FollowingAttention,
  resnetBlock,
  type ResnetSettings,
  UpBlock2D,
  type UpBlockOptions,
} from './unet-2d-blocks.js';

export interface CrossAttentionSettings {
  /** Heads of each transformer; a head has channels / heads channels. */
  numAttentionHeads: number;
  crossAttentionDim: number;
  /** Transformer blocks per Transformer2DModel, one entry per residual block (or one for all). */
  transformerLayersPerBlock: number | readonly number[];
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

function transformer(
  channels: number,
  a: CrossAttentionSettings,
  s: ResnetSettings,
  layer: number,
): Transformer2DModel {
  const t = a.transformerLayersPerBlock;
  const numLayers = typeof t === 'number' ? t : t[layer];
  if (numLayers === undefined) {
    throw new Error(`transformer_layers_per_block: no entry for layer ${layer} of a block`);
  }
  if (channels % a.numAttentionHeads !== 0) {
    throw new Error(
      `cross-attention block: ${channels} channels do not split into ${a.numAttentionHeads} heads`,
    );
  }
  return new Transformer2DModel({
    heads: a.numAttentionHeads,
    headDim: channels / a.numAttentionHeads,
    inChannels: channels,
    numLayers,
    normNumGroups: s.groups,
    crossAttentionDim: a.crossAttentionDim,
    useLinearProjection: a.useLinearProjection,
    onlyCrossAttention: a.onlyCrossAttention,
    ctx: s.ctx,
  });
}

/** One transformer per residual block, attending to the context. */
function transformers(o: {
  outChannels: number;
  attention: CrossAttentionSettings;
  resnet: ResnetSettings;
}): FollowingAttention<Transformer2DModel> {
  return {
    make: (count) =>
      Array.from({ length: count }, (_, i) => transformer(o.outChannels, o.attention, o.resnet, i)),
    apply: (a, h, x) => a.forward(h, x.context, x.contextBias),
  };
}

/** Residual block then transformer, per layer; then an optional ×2 downsampler. */
export class CrossAttnDownBlock2D extends DownBlock2D<Transformer2DModel> {
  constructor(o: DownBlockOptions & { attention: CrossAttentionSettings }) {
    super(o, transformers(o));
  }
}

/** Residual block over [hidden, skip], then transformer, per layer; then a ×2 upsampler. */
export class CrossAttnUpBlock2D extends UpBlock2D<Transformer2DModel> {
  constructor(o: UpBlockOptions & { attention: CrossAttentionSettings }) {
    super(o, transformers(o));
  }
}

/** resnet -> (transformer -> resnet) × numLayers, at constant width. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(o: {
    inChannels: number;
    numLayers?: number;
    attention: CrossAttentionSettings;
    resnet: ResnetSettings;
  }) {
    super();
    const c = o.inChannels;
    const resnets = [resnetBlock(o.resnet, c, c)];
    const attentions: Transformer2DModel[] = [];
    for (let i = 0; i < (o.numLayers ?? 1); i++) {
      attentions.push(transformer(c, o.attention, o.resnet, i));
      resnets.push(resnetBlock(o.resnet, c, c));
    }
    this.attentions = this.child('attentions', new ModuleList(attentions));
    this.resnets = this.child('resnets', new ModuleList(resnets));
  }
  forward(
    hidden: Tensor,
    temb: Tensor | null,
    context?: Tensor | null,
    contextBias?: Tensor | null,
  ): Tensor {
    let h = this.resnets.at(0).forward(hidden, temb);
    this.attentions.items.forEach((a, i) => {
      h = this.resnets.at(i + 1).forward(a.forward(h, context, contextBias), temb);
    });
    return h;
  }
}
