/**
 * diffusers' UNet2DModel: the unconditional (or class-conditional) U-Net of DDPM (Ho et al. 2020),
 * configured by its config.json and loading `diffusion_pytorch_model.safetensors` under diffusers'
 * parameter names.
 *
 * forward: t -> sinusoidal projection (float32) -> TimestepEmbedding (+ class embedding) = emb;
 * conv_in; down blocks (every resnet / attention / downsampler output kept as a skip, conv_in's
 * output first); mid block; up blocks (each resnet takes [h, last skip] joined on channels);
 * GroupNorm -> SiLU -> conv_out.
 */
import { add, cast, mul, silu, sub, type Tensor } from '../../engine/index.js';
import { Conv2d, conv3x3, Embedding, GroupNorm } from '../layers.js';
import { ModuleList } from '../module.js';
import { type ActivationName, BuildContext, type ModelInitOptions } from './common.js';
import { checkLevels, int, listOf, nullable, oneOf, unetSchema } from './config.js';
import {
  type AdditionalResiduals,
  addResiduals,
  type Conditioning,
  type EncoderOutput,
} from './denoiser.js';
import { TimestepEmbedding, type TimestepInput, Timesteps } from './embeddings.js';
import { groupNormAct, type TimeEmbeddingNorm } from './resnet.js';
import {
  AttnUpBlock2D,
  type DownBlock,
  type DownsampleType,
  resnetSettings,
  runEncoder,
  type UpBlock,
  UpBlock2D,
  UNetMidBlock2D,
  unetDownBlocks,
  unetMidBlock,
  upLevel,
} from './unet-2d-blocks.js';
import { UNetDenoiser } from './unet-model.js';

export type UNet2DDownBlockType = 'DownBlock2D' | 'AttnDownBlock2D';
export type UNet2DUpBlockType = 'UpBlock2D' | 'AttnUpBlock2D';

/** UNet2DModel's config.json (diffusers' keys and meaning). */
export interface UNet2DModelConfig {
  sample_size: number | readonly [number, number] | null;
  in_channels: number;
  out_channels: number;
  /** Maps the input from [0, 1] to [−1, 1] first. */
  center_input_sample: boolean;
  time_embedding_type: 'positional';
  /** Width of the time embedding (default 4 × block_out_channels[0]). */
  time_embedding_dim: number | null;
  freq_shift: number;
  flip_sin_to_cos: boolean;
  down_block_types: readonly UNet2DDownBlockType[];
  mid_block_type: 'UNetMidBlock2D' | null;
  up_block_types: readonly UNet2DUpBlockType[];
  block_out_channels: readonly number[];
  layers_per_block: number;
  mid_block_scale_factor: number;
  downsample_padding: number;
  downsample_type: DownsampleType;
  upsample_type: DownsampleType;
  dropout: number;
  act_fn: ActivationName;
  /** Channels per attention head (null: one head over all channels). */
  attention_head_dim: number | null;
  norm_num_groups: number;
  /** GroupNorm groups of the mid block's attention (null: norm_num_groups, or none with scale_shift). */
  attn_norm_num_groups: number | null;
  norm_eps: number;
  resnet_time_scale_shift: TimeEmbeddingNorm;
  add_attention: boolean;
  class_embed_type: null | 'timestep';
  num_class_embeds: number | null;
  num_train_timesteps: number | null;
}

export const UNET_2D_DEFAULTS: UNet2DModelConfig = {
  sample_size: null,
  in_channels: 3,
  out_channels: 3,
  center_input_sample: false,
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  freq_shift: 0,
  flip_sin_to_cos: true,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
  mid_block_type: 'UNetMidBlock2D',
  up_block_types: ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
  block_out_channels: [224, 448, 672, 896],
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  downsample_padding: 1,
  downsample_type: 'conv',
  upsample_type: 'conv',
  dropout: 0,
  act_fn: 'silu',
  attention_head_dim: 8,
  norm_num_groups: 32,
  attn_norm_num_groups: null,
  norm_eps: 1e-5,
  resnet_time_scale_shift: 'default',
  add_attention: true,
  class_embed_type: null,
  num_class_embeds: null,
  num_train_timesteps: null,
};

const DOWN_TYPES = ['DownBlock2D', 'AttnDownBlock2D'];
const UP_TYPES = ['UpBlock2D', 'AttnUpBlock2D'];
const OTHER_DOWN = ['AttnSkipDownBlock2D', 'SkipDownBlock2D', 'ResnetDownsampleBlock2D'];
const OTHER_UP = ['AttnSkipUpBlock2D', 'SkipUpBlock2D', 'ResnetUpsampleBlock2D'];

export const UNET_2D_SCHEMA = unetSchema(
  'UNet2DModel',
  UNET_2D_DEFAULTS,
  {
    time_embedding_type: oneOf(['positional'], ['fourier', 'learned']),
    down_block_types: listOf(oneOf(DOWN_TYPES, OTHER_DOWN)),
    mid_block_type: oneOf(['UNetMidBlock2D', null]),
    up_block_types: listOf(oneOf(UP_TYPES, OTHER_UP)),
    layers_per_block: int(1),
    upsample_type: oneOf(['conv', 'resnet']),
    attention_head_dim: nullable(int(1)),
    resnet_time_scale_shift: oneOf(['default', 'scale_shift'], ['spatial']),
    class_embed_type: oneOf([null, 'timestep'], ['identity']),
  },
  (c) => checkLevels(c, ['down_block_types', 'up_block_types']),
);

export type UNet2DModelInput = Partial<UNet2DModelConfig> & { [meta: `_${string}`]: unknown };

export interface UNet2DForwardOptions extends AdditionalResiduals {
  /** Class ids (int32 tensor or numbers), one per sample: needed when the model has a class embedding. */
  classLabels?: Tensor | readonly number[] | null;
}

export class UNet2DModel extends UNetDenoiser<UNet2DModelConfig> {
  readonly convIn: Conv2d;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  readonly classEmbedding: Embedding | TimestepEmbedding | null;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly midBlock: UNetMidBlock2D | null;
  readonly upBlocks: ModuleList<UpBlock>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  protected readonly readsEncoderHiddenStates = false;

  constructor(config: UNet2DModelInput = {}, opts: ModelInitOptions = {}) {
    super(UNET_2D_SCHEMA, config);
    const c = this.config;
    const ctx = new BuildContext(opts);
    const init = ctx.init;
    const ch = c.block_out_channels;
    const ch0 = ch[0]!;
    const tembDim = c.time_embedding_dim ?? 4 * ch0;

    this.convIn = this.child('conv_in', conv3x3(c.in_channels, ch0, init));
    this.timeProj = new Timesteps(ch0, c.flip_sin_to_cos, c.freq_shift);
    this.timeEmbedding = this.child('time_embedding', new TimestepEmbedding(ch0, tembDim, { ctx }));
    if (c.class_embed_type === null && c.num_class_embeds !== null) {
      this.classEmbedding = this.child(
        'class_embedding',
        new Embedding(c.num_class_embeds, tembDim, init),
      );
    } else if (c.class_embed_type === 'timestep') {
      this.classEmbedding = this.child(
        'class_embedding',
        new TimestepEmbedding(ch0, tembDim, { ctx }),
      );
    } else {
      this.classEmbedding = null;
    }

    const settings = resnetSettings(c, tembDim, ctx);
    this.downBlocks = this.child(
      'down_blocks',
      new ModuleList(unetDownBlocks(c, settings, c.downsample_type)),
    );
    const mid = unetMidBlock(c, resnetSettings(c, tembDim, ctx, c.mid_block_scale_factor));
    this.midBlock = mid === null ? null : this.child('mid_block', mid);

    const up = c.up_block_types.map((type, i): UpBlock => {
      const base = upLevel(ch, i, c.layers_per_block + 1, settings);
      return type === 'UpBlock2D'
        ? new UpBlock2D(base)
        : new AttnUpBlock2D({
            ...base,
            attentionHeadDim: c.attention_head_dim ?? base.outChannels,
            upsampleType: c.upsample_type,
          });
    });
    this.upBlocks = this.child('up_blocks', new ModuleList(up));

    this.convNormOut = this.child(
      'conv_norm_out',
      new GroupNorm(c.norm_num_groups, ch0, c.norm_eps),
    );
    this.convOut = this.child('conv_out', conv3x3(ch0, c.out_channels, init));
  }

  /** emb + the class embedding (an Embedding row, or a TimestepEmbedding of the projected ids). */
  protected withClassEmbedding(emb: Tensor, ids: Tensor | null, batch: number): Tensor {
    if (ids === null) return emb;
    const w = this.timeEmbedding.linear1.weight;
    const classEmb =
      this.classEmbedding instanceof Embedding
        ? this.classEmbedding.forward(ids.dtype === 'int32' ? ids : cast(ids, 'int32'))
        : this.classEmbedding!.forward(this.timeProj.project(ids, batch, w));
    return add(emb, cast(classEmb, w.dtype));
  }

  /**
   * The encoder half: conv_in (+ `hint`, ControlNet's embedded condition), the down blocks and
   * the mid block. Returns the mid block's output and the skips (conv_in's output first).
   */
  encode(x: Tensor, emb: Tensor, hint: Tensor | null = null): EncoderOutput {
    return runEncoder(this, x, hint, { temb: emb, context: null, contextBias: null });
  }

  /** ε (or whatever the model was trained to predict) for a noisy batch [B, C, H, W] at `timestep`. */
  forward(sample: Tensor, timestep: TimestepInput, opts: UNet2DForwardOptions = {}): Tensor {
    const [b, , h, w] = sample.shape as [number, number, number, number];
    const factor = 2 ** (this.config.block_out_channels.length - 1);
    if (sample.rank !== 4 || h % factor !== 0 || w % factor !== 0) {
      throw new Error(
        `UNet2DModel: input [${sample.shape.join(', ')}] must be [B, C, H, W] with H and W ` +
          `divisible by ${factor} (2^(levels − 1))`,
      );
    }
    const x = this.config.center_input_sample ? sub(mul(sample, 2), 1) : sample;
    const emb = this.embed(timestep, b, opts.classLabels);
    const enc = addResiduals(this.encode(x, emb), opts, 'UNet2DModel');
    let hdn = enc.hidden;
    const skips = enc.skips;
    for (const blk of this.upBlocks.items) {
      const n = blk.resnets.length;
      hdn = blk.forward(hdn, skips.splice(skips.length - n, n), emb);
    }
    return this.convOut.forward(groupNormAct(this.convNormOut, silu, hdn));
  }

  protected crossAttentionDim(): null {
    return null;
  }

  /** The Denoiser's forward: class labels (a UNet2DModel has no cross-attention). */
  protected forwardConditioned(
    x: Tensor,
    t: TimestepInput,
    cond: Conditioning,
    residuals: AdditionalResiduals,
  ): Tensor {
    return this.forward(x, t, { ...residuals, classLabels: cond.classLabels ?? null });
  }
}
