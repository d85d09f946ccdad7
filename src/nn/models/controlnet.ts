/**
 * diffusers' ControlNetModel (Zhang et al. 2023, "Adding Conditional Control to Text-to-Image
 * Diffusion Models"): a trainable copy of a U-Net's encoder (conv_in, the time and class
 * embeddings, the down blocks and the mid block) fed x_t plus the embedded condition image,
 *
 *     h_0 = conv_in(x_t) + E(c),   (skips_i, mid) = encoder(h_0, emb),
 *     r_i = s · Z_i(skip_i),       r_mid = s · Z_mid(mid),
 *
 * where E is ControlNetConditioningEmbedding (3×3 convolutions with SiLU, each block after the
 * first halving the resolution, and a zero-initialised last convolution) and Z the zero-initialised
 * 1×1 convolutions `controlnet_down_blocks.i` / `controlnet_mid_block`. The frozen U-Net adds r_i
 * to its skip connections and r_mid to its mid block's output (its `downBlockAdditionalResiduals`
 * and `midBlockAdditionalResidual`); s is `conditioning_scale`. At initialisation every Z is zero,
 * so the U-Net's output is unchanged.
 *
 * The config has diffusers' keys and meaning for a UNet2DConditionModel base. A UNet2DModel base
 * (which diffusers has no ControlNet for) is marked by `unet_class_name: "UNet2DModel"`, with the
 * four UNet2DModel keys its encoder needs besides (`add_attention`, `attn_norm_num_groups`,
 * `time_embedding_dim`, `downsample_type`); its mid block is UNet2DModel's (resnet, attention,
 * resnet), and `attention_head_dim` is the size of a head as in UNet2DModel.
 */
import { concat, mean, mul, noGrad, reshape, type Tensor } from '../../engine/index.js';
import { Conv2d, conv3x3 } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { getActivation, type ActivationName, type ModelInitOptions } from './common.js';
import {
  bool,
  checkLength,
  configToJson,
  int,
  listOf,
  nullable,
  oneOf,
  oneOrList,
  unetSchema,
} from './config.js';
import { DiffusersModel } from './diffusers-model.js';
import {
  type Conditioning,
  type ConditioningInputs,
  type Denoiser,
  denoiserInput,
  type EncoderOutput,
} from './denoiser.js';
import type { TimestepInput } from './embeddings.js';
import type { TimeEmbeddingNorm } from './resnet.js';
import {
  attentionMaskBias,
  type UNet2DConditionModelConfig,
  UNet2DConditionModel,
} from './unet-2d-condition.js';
import { type UNet2DModelConfig, UNet2DModel } from './unet-2d.js';

export type ControlNetBase = UNet2DModel | UNet2DConditionModel;
export type ControlNetUNetClass = 'UNet2DConditionModel' | 'UNet2DModel';

/** ControlNetModel's config.json (diffusers' keys, and Sumi's five for a UNet2DModel base). */
export interface ControlNetModelConfig {
  in_channels: number;
  conditioning_channels: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: readonly string[];
  mid_block_type: 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D';
  only_cross_attention: boolean | readonly boolean[];
  block_out_channels: readonly number[];
  layers_per_block: number;
  downsample_padding: number;
  mid_block_scale_factor: number;
  act_fn: ActivationName;
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number;
  transformer_layers_per_block: number | readonly number[];
  encoder_hid_dim: null;
  encoder_hid_dim_type: null;
  /** Heads per transformer (UNet2DConditionModel) or channels per head (UNet2DModel, null: one head). */
  attention_head_dim: number | readonly number[] | null;
  num_attention_heads: null;
  use_linear_projection: boolean;
  class_embed_type: null | 'timestep';
  addition_embed_type: null;
  addition_time_embed_dim: null;
  num_class_embeds: number | null;
  upcast_attention: boolean | null;
  resnet_time_scale_shift: TimeEmbeddingNorm;
  projection_class_embeddings_input_dim: null;
  controlnet_conditioning_channel_order: 'rgb';
  /** Channels of the condition embedding's blocks; each after the first halves the resolution. */
  conditioning_embedding_out_channels: readonly number[];
  global_pool_conditions: boolean;
  addition_embed_type_num_heads: number;
  /** (Sumi) The class of the U-Net this ControlNet copies. */
  unet_class_name: ControlNetUNetClass;
  /** (Sumi, UNet2DModel base) Attention in the mid block. */
  add_attention: boolean;
  /** (Sumi, UNet2DModel base) GroupNorm groups of the mid block's attention. */
  attn_norm_num_groups: number | null;
  /** (Sumi, UNet2DModel base) Width of the time embedding (null: 4 × block_out_channels[0]). */
  time_embedding_dim: number | null;
  /** (Sumi, UNet2DModel base) The down blocks' downsampler. */
  downsample_type: 'conv' | 'resnet';
}

export const CONTROLNET_DEFAULTS: ControlNetModelConfig = {
  in_channels: 4,
  conditioning_channels: 3,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: [
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'DownBlock2D',
  ],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  attention_head_dim: 8,
  num_attention_heads: null,
  use_linear_projection: false,
  class_embed_type: null,
  addition_embed_type: null,
  addition_time_embed_dim: null,
  num_class_embeds: null,
  upcast_attention: false,
  resnet_time_scale_shift: 'default',
  projection_class_embeddings_input_dim: null,
  controlnet_conditioning_channel_order: 'rgb',
  conditioning_embedding_out_channels: [16, 32, 96, 256],
  global_pool_conditions: false,
  addition_embed_type_num_heads: 64,
  unet_class_name: 'UNet2DConditionModel',
  add_attention: true,
  attn_norm_num_groups: null,
  time_embedding_dim: null,
  downsample_type: 'conv',
};

/** The Sumi keys, and their values for a UNet2DConditionModel base (not written then). */
const SUMI_KEYS = [
  'unet_class_name',
  'add_attention',
  'attn_norm_num_groups',
  'time_embedding_dim',
  'downsample_type',
] as const;

/** The keys that describe the ControlNet's own parts rather than the U-Net it copies. */
const CONTROLNET_OWN_KEYS = new Set<string>([
  'conditioning_channels',
  'controlnet_conditioning_channel_order',
  'conditioning_embedding_out_channels',
  'global_pool_conditions',
]);

const DOWN = ['CrossAttnDownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'];

export const CONTROLNET_SCHEMA = unetSchema(
  'ControlNetModel',
  CONTROLNET_DEFAULTS,
  {
    conditioning_channels: int(1),
    down_block_types: listOf(oneOf(DOWN)),
    mid_block_type: oneOf(['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D']),
    layers_per_block: int(1),
    cross_attention_dim: int(1),
    attention_head_dim: nullable(oneOrList(int(1))),
    class_embed_type: oneOf([null, 'timestep'], ['identity', 'projection', 'simple_projection']),
    resnet_time_scale_shift: oneOf(['default', 'scale_shift'], ['spatial']),
    controlnet_conditioning_channel_order: oneOf(['rgb'], ['bgr']),
    conditioning_embedding_out_channels: listOf(int(1)),
    global_pool_conditions: bool,
    addition_embed_type_num_heads: int(1),
    unet_class_name: oneOf(['UNet2DConditionModel', 'UNet2DModel']),
  },
  (c) => {
    const n = c.down_block_types.length;
    const what = 'down block';
    const problems = [
      ...checkLength('block_out_channels', c.block_out_channels, n, what),
      ...checkLength('only_cross_attention', c.only_cross_attention, n, what),
      ...checkLength('attention_head_dim', c.attention_head_dim, n, what),
      ...checkLength('transformer_layers_per_block', c.transformer_layers_per_block, n, what),
    ];
    if (c.unet_class_name === 'UNet2DConditionModel') {
      for (const k of SUMI_KEYS) {
        if (k !== 'unet_class_name' && c[k] !== CONTROLNET_DEFAULTS[k]) {
          problems.push(`${k}: set only for a UNet2DModel base (unet_class_name)`);
        }
      }
      if (c.attention_head_dim === null) problems.push('attention_head_dim: null');
    } else {
      if (c.down_block_types.includes('CrossAttnDownBlock2D')) {
        problems.push('down_block_types: a UNet2DModel has no CrossAttnDownBlock2D');
      }
      if (c.mid_block_type !== 'UNetMidBlock2D') {
        problems.push(`mid_block_type: a UNet2DModel's is UNetMidBlock2D`);
      }
      if (Array.isArray(c.attention_head_dim)) {
        problems.push('attention_head_dim: one value for a UNet2DModel base');
      }
    }
    return problems;
  },
);

export type ControlNetModelInput = Partial<ControlNetModelConfig> & {
  [meta: `_${string}`]: unknown;
};

/** The up block that mirrors a down block type (for the U-Net built to borrow its encoder). */
const MIRROR: Record<string, string> = {
  CrossAttnDownBlock2D: 'CrossAttnUpBlock2D',
  DownBlock2D: 'UpBlock2D',
  AttnDownBlock2D: 'AttnUpBlock2D',
};

/** The U-Net config whose encoder is this ControlNet's (its up path is never used). */
function unetConfigOf(c: ControlNetModelConfig): Record<string, unknown> {
  const up = [...c.down_block_types].reverse().map((t) => MIRROR[t]!);
  const common = {
    in_channels: c.in_channels,
    out_channels: c.in_channels,
    flip_sin_to_cos: c.flip_sin_to_cos,
    freq_shift: c.freq_shift,
    down_block_types: c.down_block_types,
    up_block_types: up,
    mid_block_type: c.mid_block_type,
    block_out_channels: c.block_out_channels,
    layers_per_block: c.layers_per_block,
    downsample_padding: c.downsample_padding,
    mid_block_scale_factor: c.mid_block_scale_factor,
    act_fn: c.act_fn,
    norm_num_groups: c.norm_num_groups,
    norm_eps: c.norm_eps,
    attention_head_dim: c.attention_head_dim,
    class_embed_type: c.class_embed_type,
    num_class_embeds: c.num_class_embeds,
    resnet_time_scale_shift: c.resnet_time_scale_shift,
  };
  if (c.unet_class_name === 'UNet2DModel') {
    return {
      ...common,
      add_attention: c.add_attention,
      attn_norm_num_groups: c.attn_norm_num_groups,
      time_embedding_dim: c.time_embedding_dim,
      downsample_type: c.downsample_type,
    };
  }
  return {
    ...common,
    only_cross_attention: c.only_cross_attention,
    cross_attention_dim: c.cross_attention_dim,
    transformer_layers_per_block: c.transformer_layers_per_block,
    use_linear_projection: c.use_linear_projection,
    upcast_attention: c.upcast_attention,
  };
}

/** How a ControlNet's own parts are made (diffusers' `from_unet` arguments). */
export interface ControlNetOptions {
  /** Channels of the condition image (default 3). */
  conditioningChannels?: number;
  /** Channels of the condition embedding's blocks (default [16, 32, 96, 256]: 8× downsampling). */
  conditioningEmbeddingOutChannels?: readonly number[];
}

/** U-Net keys a ControlNet cannot copy, with the values it can (diffusers' from_unet drops them). */
const COND_ONLY: Partial<Record<keyof UNet2DConditionModelConfig, unknown>> = {
  center_input_sample: false,
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  timestep_post_act: null,
  conv_in_kernel: 3,
  class_embeddings_concat: false,
  mid_block_only_cross_attention: null,
};

/** The keys a ControlNet copies unchanged from either U-Net class. */
function copiedKeys(u: UNet2DModelConfig | UNet2DConditionModelConfig) {
  return {
    in_channels: u.in_channels,
    flip_sin_to_cos: u.flip_sin_to_cos,
    freq_shift: u.freq_shift,
    down_block_types: [...u.down_block_types],
    block_out_channels: [...u.block_out_channels],
    downsample_padding: u.downsample_padding,
    mid_block_scale_factor: u.mid_block_scale_factor,
    act_fn: u.act_fn,
    norm_num_groups: u.norm_num_groups,
    norm_eps: u.norm_eps,
    attention_head_dim: u.attention_head_dim,
    class_embed_type: u.class_embed_type,
    num_class_embeds: u.num_class_embeds,
    resnet_time_scale_shift: u.resnet_time_scale_shift,
  };
}

/**
 * The ControlNetModel config that copies a U-Net's encoder (diffusers' `from_unet`). Throws
 * naming the U-Net keys a ControlNet cannot represent.
 */
export function controlNetConfigFor(
  unet: { className: string; config: object },
  opts: ControlNetOptions = {},
): ControlNetModelConfig {
  const own = {
    conditioning_channels: opts.conditioningChannels ?? CONTROLNET_DEFAULTS.conditioning_channels,
    conditioning_embedding_out_channels: [
      ...(opts.conditioningEmbeddingOutChannels ??
        CONTROLNET_DEFAULTS.conditioning_embedding_out_channels),
    ],
  };
  const bad: string[] = [];
  const refuse = (k: string, v: unknown, want: unknown): void => {
    if (JSON.stringify(v) !== JSON.stringify(want)) {
      bad.push(`${k} ${JSON.stringify(v)} (a ControlNet copies only ${JSON.stringify(want)})`);
    }
  };
  let config: ControlNetModelConfig;
  if (unet.className === 'UNet2DModel') {
    const u = unet.config as UNet2DModelConfig;
    refuse('center_input_sample', u.center_input_sample, false);
    refuse('mid_block_type', u.mid_block_type, 'UNetMidBlock2D');
    config = {
      ...CONTROLNET_DEFAULTS,
      ...own,
      ...copiedKeys(u),
      unet_class_name: 'UNet2DModel',
      mid_block_type: 'UNetMidBlock2D',
      layers_per_block: u.layers_per_block,
      add_attention: u.add_attention,
      attn_norm_num_groups: u.attn_norm_num_groups,
      time_embedding_dim: u.time_embedding_dim,
      downsample_type: u.downsample_type,
    };
  } else if (unet.className === 'UNet2DConditionModel') {
    const u = unet.config as UNet2DConditionModelConfig;
    for (const [k, want] of Object.entries(COND_ONLY)) {
      refuse(k, u[k as keyof UNet2DConditionModelConfig], want);
    }
    if (Array.isArray(u.layers_per_block)) refuse('layers_per_block', u.layers_per_block, 'one');
    if (Array.isArray(u.cross_attention_dim)) {
      refuse('cross_attention_dim', u.cross_attention_dim, 'one');
    }
    if (u.mid_block_type === null) refuse('mid_block_type', null, 'a mid block');
    config = {
      ...CONTROLNET_DEFAULTS,
      ...own,
      ...copiedKeys(u),
      only_cross_attention: u.only_cross_attention,
      mid_block_type: u.mid_block_type ?? 'UNetMidBlock2DCrossAttn',
      layers_per_block: u.layers_per_block as number,
      cross_attention_dim: u.cross_attention_dim as number,
      transformer_layers_per_block: u.transformer_layers_per_block,
      use_linear_projection: u.use_linear_projection,
      upcast_attention: u.upcast_attention,
    };
  } else {
    throw new Error(`ControlNetModel: a ${unet.className} has no encoder to copy (a U-Net has)`);
  }
  if (bad.length > 0) {
    throw new Error(`ControlNetModel: cannot copy this ${unet.className}: ${bad.join('; ')}`);
  }
  return config;
}

/**
 * The keys in which a ControlNet's config and the one it would have as a copy of `unet` differ
 * (`key: controlnet X, model Y`): empty when the ControlNet fits the U-Net.
 */
export function controlNetMismatch(
  controlnet: ControlNetModel,
  unet: { className: string; config: object },
): string[] {
  let want: ControlNetModelConfig;
  try {
    want = controlNetConfigFor(unet);
  } catch (e) {
    return [e instanceof Error ? e.message : String(e)];
  }
  const have = controlnet.config as unknown as Record<string, unknown>;
  const out: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    if (CONTROLNET_OWN_KEYS.has(k)) continue;
    const a = JSON.stringify(have[k]);
    const b = JSON.stringify(v);
    if (a !== b) out.push(`${k}: controlnet ${a}, model ${b}`);
  }
  return out;
}

/**
 * E(c): conv_in (3×3) → SiLU → [3×3 conv → SiLU → 3×3 conv stride 2 → SiLU] per later block →
 * conv_out (3×3, zero-initialised) to block_out_channels[0].
 */
export class ControlNetConditioningEmbedding extends Module {
  readonly convIn: Conv2d;
  readonly blocks: ModuleList<Conv2d>;
  readonly convOut: Conv2d;

  constructor(
    embeddingChannels: number,
    conditioningChannels: number,
    blockOutChannels: readonly number[],
    opts: ModelInitOptions = {},
  ) {
    super();
    const init = { generator: opts.generator };
    const ch = blockOutChannels;
    this.convIn = this.child('conv_in', conv3x3(conditioningChannels, ch[0]!, init));
    const blocks: Conv2d[] = [];
    for (let i = 0; i < ch.length - 1; i++) {
      blocks.push(conv3x3(ch[i]!, ch[i]!, init));
      blocks.push(new Conv2d(ch[i]!, ch[i + 1]!, 3, { ...init, padding: 1, stride: 2 }));
    }
    this.blocks = this.child('blocks', new ModuleList(blocks));
    this.convOut = this.child(
      'conv_out',
      zeroModule(conv3x3(ch[ch.length - 1]!, embeddingChannels, init)),
    );
  }

  forward(cond: Tensor, act: (x: Tensor) => Tensor): Tensor {
    let h = act(this.convIn.forward(cond));
    for (const b of this.blocks.items) h = act(b.forward(h));
    return this.convOut.forward(h);
  }
}

/** Sets every parameter of `m` to 0 (diffusers' zero_module). */
function zeroModule<M extends Module>(m: M): M {
  noGrad(() => {
    for (const p of m.parameters()) {
      const z = mul(p, 0);
      p.setData(z);
      z.dispose();
    }
  });
  return m;
}

export interface ControlNetForwardOptions {
  classLabels?: Tensor | readonly number[] | null;
  /** [B, L, cross_attention_dim], for a base with cross-attention. */
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  /** s, the scale of every residual (default 1). */
  conditioningScale?: number;
}

/** ControlNet's residuals for the U-Net (diffusers' ControlNetOutput). */
export interface ControlNetOutput {
  downBlockResSamples: Tensor[];
  midBlockResSample: Tensor;
}

export class ControlNetModel extends DiffusersModel<ControlNetModelConfig> {
  /** The U-Net whose encoder modules this ControlNet holds (its up path is freed, never run). */
  readonly #unet: ControlNetBase;
  readonly controlnetCondEmbedding: ControlNetConditioningEmbedding;
  readonly controlnetDownBlocks: ModuleList<Conv2d>;
  readonly controlnetMidBlock: Conv2d;

  constructor(config: ControlNetModelInput = {}, opts: ModelInitOptions = {}) {
    super(CONTROLNET_SCHEMA, config);
    const c = this.config;
    const unetConfig = unetConfigOf(c);
    const unet =
      c.unet_class_name === 'UNet2DModel'
        ? new UNet2DModel(unetConfig, opts)
        : new UNet2DConditionModel(unetConfig, opts);
    for (const m of [unet.upBlocks, unet.convNormOut, unet.convOut]) {
      for (const p of m.parameters()) p.dispose();
    }
    this.#unet = unet;
    const ch0 = c.block_out_channels[0]!;
    this.child('conv_in', unet.convIn);
    this.child('time_embedding', unet.timeEmbedding);
    if (unet.classEmbedding !== null) this.child('class_embedding', unet.classEmbedding);
    this.controlnetCondEmbedding = this.child(
      'controlnet_cond_embedding',
      new ControlNetConditioningEmbedding(
        ch0,
        c.conditioning_channels,
        c.conditioning_embedding_out_channels,
        opts,
      ),
    );
    this.child('down_blocks', unet.downBlocks);
    // One zero convolution per skip: conv_in's output, each resnet's, each downsampler's.
    const zeros: Conv2d[] = [];
    const zero = (n: number): Conv2d =>
      zeroModule(new Conv2d(n, n, 1, { generator: opts.generator }));
    zeros.push(zero(ch0));
    c.block_out_channels.forEach((n, i) => {
      for (let j = 0; j < c.layers_per_block; j++) zeros.push(zero(n));
      if (i < c.block_out_channels.length - 1) zeros.push(zero(n));
    });
    this.controlnetDownBlocks = this.child('controlnet_down_blocks', new ModuleList(zeros));
    const last = c.block_out_channels[c.block_out_channels.length - 1]!;
    this.controlnetMidBlock = this.child('controlnet_mid_block', zero(last));
    this.child('mid_block', unet.midBlock!);
  }

  /**
   * A ControlNet that copies `unet`'s encoder (diffusers' `ControlNetModel.from_unet`): its
   * config, and its weights unless `loadWeightsFromUNet` is false. The condition embedding takes
   * its initial weights from `generator`; the zero convolutions are 0.
   */
  static fromUNet(
    unet: ControlNetBase,
    opts: ControlNetOptions & ModelInitOptions & { loadWeightsFromUNet?: boolean } = {},
  ): ControlNetModel {
    const config = controlNetConfigFor(unet, opts);
    const w = unet.convIn.weight;
    const cn = new ControlNetModel({ ...config }, opts);
    if (opts.loadWeightsFromUNet === false) return cn;
    const src = new Map(unet.namedParameters());
    noGrad(() => {
      for (const [name, p] of cn.namedParameters()) {
        if (name.startsWith('controlnet_')) continue;
        const q = src.get(name);
        if (q === undefined) throw new Error(`ControlNetModel.fromUNet: the U-Net has no ${name}`);
        const copy = mul(q, 1);
        p.setData(copy);
        copy.dispose();
      }
      // The zero convolutions and the condition embedding on the U-Net's backend and dtype too.
      for (const [name, p] of cn.namedParameters()) {
        if (!name.startsWith('controlnet_')) continue;
        if (p.backend === w.backend && p.dtype === w.dtype) continue;
        throw new Error('ControlNetModel.fromUNet: build the U-Net on the default backend');
      }
    });
    return cn;
  }

  /** [C, H, W] of the condition image for samples of height h and width w. */
  conditionShape(h: number, w: number): [number, number, number] {
    const f = 2 ** (this.config.conditioning_embedding_out_channels.length - 1);
    return [this.config.conditioning_channels, h * f, w * f];
  }

  /** The residuals for x_t [B, C, H, W] at `timestep` under the condition image [B, C', H', W']. */
  forward(
    sample: Tensor,
    timestep: TimestepInput,
    controlnetCond: Tensor,
    opts: ControlNetForwardOptions = {},
  ): ControlNetOutput {
    const [b, , h, w] = sample.shape as [number, number, number, number];
    const want = [b, ...this.conditionShape(h, w)];
    if (controlnetCond.rank !== 4 || want.some((d, i) => controlnetCond.shape[i] !== d)) {
      throw new Error(
        `ControlNetModel: the condition image is [${controlnetCond.shape.join(', ')}], ` +
          `expected [${want.join(', ')}] for samples [${sample.shape.join(', ')}]`,
      );
    }
    const unet = this.#unet;
    const emb = unet.embed(timestep, b, opts.classLabels ?? null);
    const hint = this.controlnetCondEmbedding.forward(controlnetCond, getActivation('silu'));
    let enc: EncoderOutput;
    if (unet instanceof UNet2DModel) {
      enc = unet.encode(sample, emb, hint);
    } else {
      const states = opts.encoderHiddenStates ?? null;
      const bias = attentionMaskBias(opts.encoderAttentionMask ?? null, states);
      enc = unet.encode(sample, emb, states, bias, hint);
    }
    const s = opts.conditioningScale ?? 1;
    const pool = (x: Tensor): Tensor =>
      this.config.global_pool_conditions
        ? reshape(mean(x, [2, 3]), [x.shape[0]!, x.shape[1]!, 1, 1])
        : x;
    const scale = (x: Tensor): Tensor => pool(s === 1 ? x : mul(x, s));
    return {
      downBlockResSamples: enc.skips.map((x, i) =>
        scale(this.controlnetDownBlocks.at(i).forward(x)),
      ),
      midBlockResSample: scale(this.controlnetMidBlock.forward(enc.hidden)),
    };
  }

  /** config.json: diffusers' keys; Sumi's five only for a UNet2DModel base. */
  override configJson(): string {
    if (this.config.unet_class_name === 'UNet2DModel') return super.configJson();
    const out: Record<string, unknown> = { ...this.config };
    for (const k of SUMI_KEYS) delete out[k];
    return configToJson(this.className, out);
  }
}

/**
 * A U-Net steered by a ControlNet: the Denoiser that reads the condition image from the
 * conditioning's `controlnetCond`, or else uses its own `controlImage` (one image for the whole
 * batch, or one per sample), runs the ControlNet on x_t and hands its residuals, scaled by
 * `conditioningScale`, to the U-Net.
 */
export class ControlledDenoiser extends Module implements Denoiser {
  constructor(
    readonly unet: ControlNetBase,
    readonly controlnet: ControlNetModel,
    public conditioningScale = 1,
    /** The condition image [1 or B, C', H', W'] when the conditioning gives none. */
    public controlImage: Tensor | null = null,
  ) {
    super();
    const bad = controlNetMismatch(controlnet, unet);
    if (bad.length > 0) {
      throw new Error(`the ControlNet does not fit the ${unet.className}: ${bad.join('; ')}`);
    }
    this.child('unet', unet);
    this.child('controlnet', controlnet);
  }

  get className(): string {
    return this.unet.className;
  }

  get sampleShape(): readonly [number, number, number] {
    return this.unet.sampleShape;
  }

  get conditioningInputs(): ConditioningInputs {
    return this.unet.conditioningInputs;
  }

  configJson(): string {
    return this.unet.configJson();
  }

  denoise(sample: Tensor, timestep: TimestepInput, cond: Conditioning = {}): Tensor {
    const image = cond.controlnetCond ?? this.controlImage;
    if (image === null) {
      throw new Error('ControlledDenoiser: no condition image (controlnetCond) for the ControlNet');
    }
    const rest: Conditioning = { ...cond, controlnetCond: null };
    const b = sample.shape[0]!;
    const rows = image.shape[0]!;
    if (rows !== b && rows !== 1 && b % rows !== 0) {
      throw new Error(
        `ControlledDenoiser: ${rows} condition images for a batch of ${b} (give 1 or ${b})`,
      );
    }
    const tiled = rows === b ? image : tileRows(image, b / rows);
    const x = denoiserInput(sample, rest, this.unet.config.in_channels, this.className);
    const r = this.controlnet.forward(x, timestep, tiled, {
      classLabels: cond.classLabels ?? null,
      encoderHiddenStates: cond.encoderHiddenStates ?? null,
      encoderAttentionMask: cond.encoderAttentionMask ?? null,
      conditioningScale: this.conditioningScale,
    });
    return this.unet.denoise(sample, timestep, rest, {
      downBlockAdditionalResiduals: r.downBlockResSamples,
      midBlockAdditionalResidual: r.midBlockResSample,
    });
  }
}

/** [x; x; ...] k times along the batch (a batch that repeats its images, as guidance does). */
function tileRows(x: Tensor, k: number): Tensor {
  return concat(
    Array.from({ length: k }, () => x),
    0,
  );
}
