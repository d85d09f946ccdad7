/**
 * diffusers' UNet2DConditionModel: the latent-diffusion U-Net (Rombach et al. 2022) whose
 * cross-attention blocks attend to `encoder_hidden_states` (text or other conditioning tokens).
 * The same skeleton as UNet2DModel; CrossAttnDownBlock2D / CrossAttnUpBlock2D /
 * UNetMidBlock2DCrossAttn add a Transformer2DModel after each residual block.
 *
 * diffusers reads `attention_head_dim` as the number of heads here (its `num_attention_heads` must
 * stay unset): with attention_head_dim 8, every transformer has 8 heads of channels / 8.
 */
import { add, cast, concat, mul, reshape, sub, type Tensor } from '../../engine/index.js';
import { Conv2d, Embedding, GroupNorm } from '../layers.js';
import { ModuleList } from '../module.js';
import {
  type Activation,
  ACTIVATIONS,
  type ActivationName,
  BuildContext,
  getActivation,
  type ModelInitOptions,
} from './common.js';
import {
  anyValue,
  bool,
  checkLength,
  int,
  listOf,
  nullable,
  num,
  oneOf,
  oneOrList,
  only,
  perBlock,
  unetSchema,
} from './config.js';
import {
  type CrossAttentionSettings,
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  UNetMidBlock2DCrossAttn,
} from './cross-attn-blocks.js';
import {
  type AdditionalResiduals,
  addResiduals,
  type Conditioning,
  type EncoderOutput,
} from './denoiser.js';
import { TimestepEmbedding, type TimestepInput, Timesteps } from './embeddings.js';
import type { TimeEmbeddingNorm } from './resnet.js';
import {
  AttnDownBlock2D,
  AttnUpBlock2D,
  type DownBlock,
  DownBlock2D,
  downLevel,
  type ResnetSettings,
  resnetSettings,
  runEncoder,
  type UpBlock,
  UpBlock2D,
  UNetMidBlock2D,
  upLevel,
} from './unet-2d-blocks.js';
import { UNetDenoiser } from './unet-model.js';

export type UNet2DConditionDownBlockType =
  'CrossAttnDownBlock2D' | 'DownBlock2D' | 'AttnDownBlock2D';
export type UNet2DConditionUpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D' | 'AttnUpBlock2D';
export type UNet2DConditionMidBlockType = 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D' | null;

/** UNet2DConditionModel's config.json (diffusers' keys and meaning). */
export interface UNet2DConditionModelConfig {
  sample_size: number | readonly [number, number] | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: readonly UNet2DConditionDownBlockType[];
  mid_block_type: UNet2DConditionMidBlockType;
  up_block_types: readonly UNet2DConditionUpBlockType[];
  only_cross_attention: boolean | readonly boolean[];
  block_out_channels: readonly number[];
  layers_per_block: number | readonly number[];
  downsample_padding: number;
  mid_block_scale_factor: number;
  dropout: number;
  act_fn: ActivationName;
  /** (diffusers' null, no output norm, fails in its resnets anyway: not supported.) */
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number | readonly number[];
  transformer_layers_per_block: number | readonly number[];
  reverse_transformer_layers_per_block: null;
  encoder_hid_dim: null;
  encoder_hid_dim_type: null;
  /** The number of heads of each transformer (diffusers' naming; see the file comment). */
  attention_head_dim: number | readonly number[];
  num_attention_heads: null;
  dual_cross_attention: false;
  use_linear_projection: boolean;
  class_embed_type: null;
  addition_embed_type: null;
  addition_time_embed_dim: null;
  num_class_embeds: number | null;
  upcast_attention: boolean | null;
  resnet_time_scale_shift: TimeEmbeddingNorm;
  resnet_skip_time_act: boolean;
  resnet_out_scale_factor: number;
  time_embedding_type: 'positional';
  time_embedding_dim: number | null;
  time_embedding_act_fn: ActivationName | null;
  timestep_post_act: ActivationName | null;
  time_cond_proj_dim: null;
  conv_in_kernel: number;
  conv_out_kernel: number;
  projection_class_embeddings_input_dim: null;
  attention_type: 'default';
  class_embeddings_concat: boolean;
  mid_block_only_cross_attention: boolean | null;
  cross_attention_norm: null | string;
  addition_embed_type_num_heads: number;
}

export const UNET_2D_CONDITION_DEFAULTS: UNet2DConditionModelConfig = {
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: [
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'DownBlock2D',
  ],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  dropout: 0,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  reverse_transformer_layers_per_block: null,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  attention_head_dim: 8,
  num_attention_heads: null,
  dual_cross_attention: false,
  use_linear_projection: false,
  class_embed_type: null,
  addition_embed_type: null,
  addition_time_embed_dim: null,
  num_class_embeds: null,
  upcast_attention: false,
  resnet_time_scale_shift: 'default',
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1,
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  timestep_post_act: null,
  time_cond_proj_dim: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  projection_class_embeddings_input_dim: null,
  attention_type: 'default',
  class_embeddings_concat: false,
  mid_block_only_cross_attention: null,
  cross_attention_norm: null,
  addition_embed_type_num_heads: 64,
};

const DOWN = ['CrossAttnDownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'];
const UP = ['CrossAttnUpBlock2D', 'UpBlock2D', 'AttnUpBlock2D'];
const OTHER_DOWN = [
  'SimpleCrossAttnDownBlock2D',
  'ResnetDownsampleBlock2D',
  'SkipDownBlock2D',
  'AttnSkipDownBlock2D',
  'KDownBlock2D',
  'KCrossAttnDownBlock2D',
];
const OTHER_UP = [
  'SimpleCrossAttnUpBlock2D',
  'ResnetUpsampleBlock2D',
  'SkipUpBlock2D',
  'AttnSkipUpBlock2D',
  'KUpBlock2D',
  'KCrossAttnUpBlock2D',
];
const oddKernel = (v: unknown) =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 && v % 2 === 1
    ? null
    : `expected an odd kernel size, got ${JSON.stringify(v)}`;

export const UNET_2D_CONDITION_SCHEMA = unetSchema(
  'UNet2DConditionModel',
  UNET_2D_CONDITION_DEFAULTS,
  {
    down_block_types: listOf(oneOf(DOWN, OTHER_DOWN)),
    mid_block_type: oneOf(
      ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D', null],
      ['UNetMidBlock2DSimpleCrossAttn'],
    ),
    up_block_types: listOf(oneOf(UP, OTHER_UP)),
    layers_per_block: oneOrList(int(1)),
    cross_attention_dim: oneOrList(int(1)),
    reverse_transformer_layers_per_block: only(null),
    attention_head_dim: oneOrList(int(1)),
    dual_cross_attention: only(false),
    class_embed_type: oneOf([null], ['timestep', 'identity', 'projection', 'simple_projection']),
    resnet_time_scale_shift: oneOf(['default', 'scale_shift'], ['spatial']),
    // Used only by block types Sumi does not build (ResnetDownsampleBlock2D, SimpleCrossAttn*).
    resnet_skip_time_act: bool,
    resnet_out_scale_factor: num,
    time_embedding_type: oneOf(['positional'], ['fourier']),
    time_embedding_act_fn: nullable(oneOf(ACTIVATIONS)),
    timestep_post_act: nullable(oneOf(ACTIVATIONS)),
    time_cond_proj_dim: only(null),
    conv_in_kernel: oddKernel,
    conv_out_kernel: oddKernel,
    attention_type: oneOf(['default'], ['gated', 'gated-text-image']),
    class_embeddings_concat: bool,
    mid_block_only_cross_attention: nullable(bool),
    cross_attention_norm: anyValue,
    addition_embed_type_num_heads: anyValue,
  },
  (c) => {
    const n = c.down_block_types.length;
    const what = 'down block';
    return [
      ...checkLength('up_block_types', c.up_block_types, n, what),
      ...checkLength('block_out_channels', c.block_out_channels, n, what),
      ...checkLength('only_cross_attention', c.only_cross_attention, n, what),
      ...checkLength('attention_head_dim', c.attention_head_dim, n, what),
      ...checkLength('cross_attention_dim', c.cross_attention_dim, n, what),
      ...checkLength('layers_per_block', c.layers_per_block, n, what),
      ...checkLength('transformer_layers_per_block', c.transformer_layers_per_block, n, what),
    ];
  },
);

export type UNet2DConditionModelInput = Partial<UNet2DConditionModelConfig> & {
  [meta: `_${string}`]: unknown;
};

export interface UNet2DConditionForwardOptions extends AdditionalResiduals {
  /** Class ids, one per sample, when the model has a class embedding (num_class_embeds). */
  classLabels?: Tensor | readonly number[] | null;
  /** [B, L]: 1 for tokens of the encoder hidden states to attend to, 0 for padding. */
  encoderAttentionMask?: Tensor | null;
}

/**
 * diffusers' encoder attention mask as an additive score bias: (1 − mask) · (−10⁴), shaped
 * [B, 1, 1, L] to broadcast over heads and queries. Null without a mask.
 */
export function attentionMaskBias(mask: Tensor | null, states: Tensor | null): Tensor | null {
  if (mask === null) return null;
  if (states === null) {
    throw new Error(
      'UNet2DConditionModel: an encoder attention mask without encoder hidden states',
    );
  }
  const [b, l] = states.shape as [number, number];
  if (mask.rank !== 2 || mask.shape[0] !== b || mask.shape[1] !== l) {
    throw new Error(
      `UNet2DConditionModel: encoder attention mask [${mask.shape.join(', ')}] must be [${b}, ${l}] ` +
        '(batch, tokens of the encoder hidden states)',
    );
  }
  const m = cast(mask, states.dtype);
  return reshape(mul(sub(1, m), -10000), [b, 1, 1, l]);
}

export class UNet2DConditionModel extends UNetDenoiser<UNet2DConditionModelConfig> {
  readonly convIn: Conv2d;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  readonly classEmbedding: Embedding | null;
  readonly timeEmbedAct: Activation | null;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly midBlock: UNetMidBlock2DCrossAttn | UNetMidBlock2D | null;
  readonly upBlocks: ModuleList<UpBlock>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  /** How many ×2 upsamplers the up path has. */
  readonly numUpsamplers: number;

  protected readonly readsEncoderHiddenStates = true;

  constructor(config: UNet2DConditionModelInput = {}, opts: ModelInitOptions = {}) {
    super(UNET_2D_CONDITION_SCHEMA, config);
    const c = this.config;
    const ctx = new BuildContext(opts);
    const init = ctx.init;
    const ch = c.block_out_channels;
    const n = ch.length;
    const ch0 = ch[0]!;
    const groups = c.norm_num_groups;

    this.convIn = this.child(
      'conv_in',
      new Conv2d(c.in_channels, ch0, c.conv_in_kernel, {
        ...init,
        padding: (c.conv_in_kernel - 1) / 2,
      }),
    );
    const tembDim = c.time_embedding_dim ?? 4 * ch0;
    this.timeProj = new Timesteps(ch0, c.flip_sin_to_cos, c.freq_shift);
    this.timeEmbedding = this.child(
      'time_embedding',
      new TimestepEmbedding(ch0, tembDim, { actFn: c.act_fn, postActFn: c.timestep_post_act, ctx }),
    );
    this.classEmbedding =
      c.num_class_embeds !== null
        ? this.child('class_embedding', new Embedding(c.num_class_embeds, tembDim, init))
        : null;
    this.timeEmbedAct = c.time_embedding_act_fn ? getActivation(c.time_embedding_act_fn) : null;
    const blockTemb = c.class_embeddings_concat && this.classEmbedding ? 2 * tembDim : tembDim;

    const heads = perBlock(c.attention_head_dim, n);
    const crossDims = perBlock(c.cross_attention_dim, n);
    const layers = perBlock(c.layers_per_block, n);
    const tLayers = perBlock(c.transformer_layers_per_block, n);
    const onlyCross = perBlock(c.only_cross_attention, n);
    const midOnlyCross =
      c.mid_block_only_cross_attention ??
      (typeof c.only_cross_attention === 'boolean' ? c.only_cross_attention : false);
    const attention = (i: number, only: boolean): CrossAttentionSettings => ({
      numAttentionHeads: heads[i]!,
      crossAttentionDim: crossDims[i]!,
      transformerLayersPerBlock: tLayers[i]!,
      useLinearProjection: c.use_linear_projection,
      onlyCrossAttention: only,
    });
    const settings = (osf = 1): ResnetSettings => resnetSettings(c, blockTemb, ctx, osf);
    const resnet = settings();

    const down: DownBlock[] = [];
    c.down_block_types.forEach((type, i) => {
      const base = downLevel(ch, i, {
        numLayers: layers[i]!,
        downsamplePadding: c.downsample_padding,
        resnet,
      });
      if (type === 'CrossAttnDownBlock2D') {
        down.push(new CrossAttnDownBlock2D({ ...base, attention: attention(i, onlyCross[i]!) }));
      } else if (type === 'AttnDownBlock2D') {
        down.push(
          new AttnDownBlock2D({ ...base, attentionHeadDim: heads[i]!, downsampleType: 'conv' }),
        );
      } else {
        down.push(new DownBlock2D(base));
      }
    });
    this.downBlocks = this.child('down_blocks', new ModuleList(down));

    const last = ch[n - 1]!;
    if (c.mid_block_type === 'UNetMidBlock2DCrossAttn') {
      this.midBlock = this.child(
        'mid_block',
        new UNetMidBlock2DCrossAttn({
          inChannels: last,
          attention: { ...attention(n - 1, midOnlyCross) },
          resnet: settings(c.mid_block_scale_factor),
        }),
      );
    } else if (c.mid_block_type === 'UNetMidBlock2D') {
      // diffusers' get_mid_block builds this one with no attention layer: a single resnet.
      this.midBlock = this.child(
        'mid_block',
        new UNetMidBlock2D({
          inChannels: last,
          numLayers: 0,
          addAttention: false,
          attentionHeadDim: last,
          attnGroups: null,
          resnet: settings(c.mid_block_scale_factor),
        }),
      );
    } else {
      this.midBlock = null;
    }

    const up: UpBlock[] = [];
    c.up_block_types.forEach((type, i) => {
      const j = n - 1 - i; // the down level this up level mirrors
      const base = upLevel(ch, i, layers[j]! + 1, resnet);
      if (type === 'CrossAttnUpBlock2D') {
        up.push(new CrossAttnUpBlock2D({ ...base, attention: attention(j, onlyCross[j]!) }));
      } else if (type === 'AttnUpBlock2D') {
        // diffusers passes attention_head_dim[i] here without reversing it.
        up.push(new AttnUpBlock2D({ ...base, attentionHeadDim: heads[i]!, upsampleType: 'conv' }));
      } else {
        up.push(new UpBlock2D(base));
      }
    });
    this.upBlocks = this.child('up_blocks', new ModuleList(up));
    this.numUpsamplers = n - 1;

    this.convNormOut = this.child('conv_norm_out', new GroupNorm(groups, ch0, c.norm_eps));
    this.convOut = this.child(
      'conv_out',
      new Conv2d(ch0, c.out_channels, c.conv_out_kernel, {
        ...init,
        padding: (c.conv_out_kernel - 1) / 2,
      }),
    );
  }

  #crossAttention(): boolean {
    const c = this.config;
    return (
      c.mid_block_type === 'UNetMidBlock2DCrossAttn' ||
      c.down_block_types.includes('CrossAttnDownBlock2D') ||
      c.up_block_types.includes('CrossAttnUpBlock2D')
    );
  }

  /** emb + the class embedding (or [emb, class embedding]), then time_embedding_act_fn. */
  protected withClassEmbedding(temb: Tensor, ids: Tensor | null): Tensor {
    let emb = temb;
    if (this.classEmbedding !== null && ids !== null) {
      const classEmb = this.classEmbedding.forward(
        ids.dtype === 'int32' ? ids : cast(ids, 'int32'),
      );
      emb = this.config.class_embeddings_concat ? concat([emb, classEmb], -1) : add(emb, classEmb);
    }
    return this.timeEmbedAct ? this.timeEmbedAct(emb) : emb;
  }

  /**
   * The encoder half: conv_in (+ `hint`, ControlNet's embedded condition), the down blocks and
   * the mid block, attending to `encoderHiddenStates` with the additive mask `bias`. Returns the
   * mid block's output and the skips (conv_in's output first).
   */
  encode(
    x: Tensor,
    emb: Tensor,
    encoderHiddenStates: Tensor | null,
    bias: Tensor | null,
    hint: Tensor | null = null,
  ): EncoderOutput {
    return runEncoder(this, x, hint, {
      temb: emb,
      context: encoderHiddenStates,
      contextBias: bias,
    });
  }

  /**
   * The prediction for a noisy batch [B, C, H, W] at `timestep`, attending to
   * `encoderHiddenStates` [B, L, cross_attention_dim].
   */
  forward(
    sample: Tensor,
    timestep: TimestepInput,
    encoderHiddenStates: Tensor | null,
    opts: UNet2DConditionForwardOptions = {},
  ): Tensor {
    if (sample.rank !== 4) {
      throw new Error(
        `UNet2DConditionModel: input [${sample.shape.join(', ')}] must be [B, C, H, W]`,
      );
    }
    const [b, , h, w] = sample.shape as [number, number, number, number];
    if (encoderHiddenStates === null && this.#crossAttention()) {
      throw new Error(
        'UNet2DConditionModel: this model has cross-attention; pass encoderHiddenStates',
      );
    }
    const factor = 2 ** this.numUpsamplers;
    const forwardUpsampleSize = h % factor !== 0 || w % factor !== 0;
    const x = this.config.center_input_sample ? sub(mul(sample, 2), 1) : sample;
    const emb = this.embed(timestep, b, opts.classLabels);
    const bias = attentionMaskBias(opts.encoderAttentionMask ?? null, encoderHiddenStates);
    const enc = addResiduals(
      this.encode(x, emb, encoderHiddenStates, bias),
      opts,
      'UNet2DConditionModel',
    );
    let hdn = enc.hidden;
    const skips = enc.skips;
    this.upBlocks.items.forEach((blk, i) => {
      const n = blk.resnets.length;
      const mine = skips.splice(skips.length - n, n);
      const next = skips[skips.length - 1];
      const size: [number, number] | null =
        forwardUpsampleSize && i < this.upBlocks.length - 1 && next
          ? [next.shape[2]!, next.shape[3]!]
          : null;
      hdn = blk.forward(hdn, mine, emb, encoderHiddenStates, size, bias);
    });
    hdn = getActivation(this.config.act_fn)(this.convNormOut.forward(hdn));
    return this.convOut.forward(hdn);
  }

  protected crossAttentionDim(): number | null {
    const d = this.config.cross_attention_dim;
    return this.#crossAttention() ? (typeof d === 'number' ? d : d[0]!) : null;
  }

  /** The Denoiser's forward: class labels and/or encoder hidden states (+ their mask). */
  protected forwardConditioned(
    x: Tensor,
    t: TimestepInput,
    cond: Conditioning,
    residuals: AdditionalResiduals,
  ): Tensor {
    return this.forward(x, t, cond.encoderHiddenStates ?? null, {
      ...residuals,
      classLabels: cond.classLabels ?? null,
      encoderAttentionMask: cond.encoderAttentionMask ?? null,
    });
  }
}
