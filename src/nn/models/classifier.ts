/**
 * A noise-aware image classifier p_φ(y | x_t, t): the encoder half of a U-Net, as the classifier
 * of "Diffusion Models Beat GANs on Image Synthesis" (Dhariwal & Nichol 2021, guided-diffusion's
 * EncoderUNetModel), built from the diffusers blocks of UNet2DModel and saved in the same folder
 * layout (config.json + diffusion_pytorch_model.safetensors).
 *
 * forward: t -> sinusoidal projection (float32) -> TimestepEmbedding = emb (time-conditioned only);
 * conv_in; down blocks (DownBlock2D / AttnDownBlock2D, a ×2 downsampler after all but the last);
 * mid block; GroupNorm -> SiLU -> mean over H and W = the features [B, F]; Linear -> logits [B, K].
 * Without time conditioning the residual blocks have no time projection and t is ignored: a plain
 * classifier of clean images (the feature extractor of the evaluation metrics).
 */
import { mean, type Tensor } from '../../engine/index.js';
import { Conv2d, conv3x3, GroupNorm, Linear } from '../layers.js';
import { ModuleList } from '../module.js';
import { type ActivationName, BuildContext, getActivation } from './common.js';
import type { ModelInitOptions } from './common.js';
import { bool, checkLevels, int, listOf, nullable, oneOf, unetSchema } from './config.js';
import { DiffusersModel } from './diffusers-model.js';
import { TimestepEmbedding, type TimestepInput, Timesteps } from './embeddings.js';
import { groupNormAct, type TimeEmbeddingNorm } from './resnet.js';
import {
  type DownBlock,
  resnetSettings,
  UNetMidBlock2D,
  unetDownBlocks,
  unetMidBlock,
} from './unet-2d-blocks.js';

export const ENCODER_CLASSIFIER_CLASS = 'EncoderClassifierModel';

/** EncoderClassifierModel's config.json (UNet2DModel's keys where they mean the same). */
export interface EncoderClassifierModelConfig {
  /** Image side (or [height, width]) the classifier was trained at; null: not recorded. */
  sample_size: number | readonly [number, number] | null;
  in_channels: number;
  num_classes: number;
  /** Conditions on the diffusion timestep (a noise-aware classifier); false: t is ignored. */
  time_conditioned: boolean;
  /** Width of the time embedding (default 4 × block_out_channels[0]). */
  time_embedding_dim: number | null;
  freq_shift: number;
  flip_sin_to_cos: boolean;
  down_block_types: readonly ('DownBlock2D' | 'AttnDownBlock2D')[];
  mid_block_type: 'UNetMidBlock2D' | null;
  block_out_channels: readonly number[];
  layers_per_block: number;
  downsample_padding: number;
  dropout: number;
  act_fn: ActivationName;
  /** Channels per attention head (null: one head over all channels). */
  attention_head_dim: number | null;
  norm_num_groups: number;
  norm_eps: number;
  resnet_time_scale_shift: TimeEmbeddingNorm;
  /** Self-attention in the mid block. */
  add_attention: boolean;
  /** T of the diffusion schedule the classifier was trained on (informational). */
  num_train_timesteps: number | null;
}

export const ENCODER_CLASSIFIER_DEFAULTS: EncoderClassifierModelConfig = {
  sample_size: null,
  in_channels: 3,
  num_classes: 10,
  time_conditioned: true,
  time_embedding_dim: null,
  freq_shift: 0,
  flip_sin_to_cos: true,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
  mid_block_type: 'UNetMidBlock2D',
  block_out_channels: [128, 256, 512],
  layers_per_block: 2,
  downsample_padding: 1,
  dropout: 0,
  act_fn: 'silu',
  attention_head_dim: 64,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  resnet_time_scale_shift: 'default',
  add_attention: true,
  num_train_timesteps: null,
};

export const ENCODER_CLASSIFIER_SCHEMA = unetSchema(
  ENCODER_CLASSIFIER_CLASS,
  ENCODER_CLASSIFIER_DEFAULTS,
  {
    num_classes: int(2),
    time_conditioned: bool,
    down_block_types: listOf(oneOf(['DownBlock2D', 'AttnDownBlock2D'])),
    mid_block_type: oneOf(['UNetMidBlock2D', null]),
    layers_per_block: int(1),
    attention_head_dim: nullable(int(1)),
    resnet_time_scale_shift: oneOf(['default', 'scale_shift']),
  },
  (c) => checkLevels(c, ['down_block_types']),
);

export type EncoderClassifierModelInput = Partial<EncoderClassifierModelConfig> & {
  [meta: `_${string}`]: unknown;
};

/** The features and the logits of one forward pass. */
export interface ClassifierOutput {
  /** Pooled penultimate activations [B, F] (F = the last block_out_channels entry). */
  features: Tensor;
  logits: Tensor;
}

export class EncoderClassifierModel extends DiffusersModel<EncoderClassifierModelConfig> {
  readonly convIn: Conv2d;
  readonly timeProj: Timesteps | null;
  readonly timeEmbedding: TimestepEmbedding | null;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly midBlock: UNetMidBlock2D | null;
  readonly convNormOut: GroupNorm;
  readonly projOut: Linear;

  constructor(config: EncoderClassifierModelInput = {}, opts: ModelInitOptions = {}) {
    super(ENCODER_CLASSIFIER_SCHEMA, config);
    const c = this.config;
    const ctx = new BuildContext(opts);
    const init = ctx.init;
    const ch = c.block_out_channels;
    const ch0 = ch[0]!;
    const last = ch[ch.length - 1]!;
    const tembDim = c.time_conditioned ? (c.time_embedding_dim ?? 4 * ch0) : null;

    this.convIn = this.child('conv_in', conv3x3(c.in_channels, ch0, init));
    if (tembDim !== null) {
      this.timeProj = new Timesteps(ch0, c.flip_sin_to_cos, c.freq_shift);
      this.timeEmbedding = this.child(
        'time_embedding',
        new TimestepEmbedding(ch0, tembDim, { ctx, actFn: c.act_fn }),
      );
    } else {
      this.timeProj = null;
      this.timeEmbedding = null;
    }
    const settings = resnetSettings(c, tembDim, ctx);
    this.downBlocks = this.child(
      'down_blocks',
      new ModuleList(unetDownBlocks(c, settings, 'conv')),
    );
    const mid = unetMidBlock(c, settings);
    this.midBlock = mid === null ? null : this.child('mid_block', mid);
    this.convNormOut = this.child(
      'conv_norm_out',
      new GroupNorm(c.norm_num_groups, last, c.norm_eps),
    );
    this.projOut = this.child('proj_out', new Linear(last, c.num_classes, init));
  }

  /** Number of classes K. */
  get numClasses(): number {
    return this.config.num_classes;
  }

  /** Width F of the features. */
  get numFeatures(): number {
    const ch = this.config.block_out_channels;
    return ch[ch.length - 1]!;
  }

  /** The time embedding [B, temb], or null for a classifier without time conditioning. */
  embed(timestep: TimestepInput | undefined, batch: number): Tensor | null {
    if (this.timeProj === null || this.timeEmbedding === null) return null;
    if (timestep === undefined) {
      throw new Error('EncoderClassifierModel: this classifier is time-conditioned; pass t');
    }
    const w = this.timeEmbedding.linear1.weight;
    return this.timeEmbedding.forward(this.timeProj.project(timestep, batch, w));
  }

  /** Features and logits of a batch [B, C, H, W] at timestep t (ignored without time conditioning). */
  classify(sample: Tensor, timestep?: TimestepInput): ClassifierOutput {
    const c = this.config;
    if (sample.rank !== 4 || sample.shape[1] !== c.in_channels) {
      throw new Error(
        `EncoderClassifierModel: input [${sample.shape.join(', ')}] must be [B, ${c.in_channels}, H, W]`,
      );
    }
    const emb = this.embed(timestep, sample.shape[0]!);
    let h = this.convIn.forward(sample);
    for (const blk of this.downBlocks.items) h = blk.forward(h, emb).hidden;
    if (this.midBlock) h = this.midBlock.forward(h, emb);
    h = groupNormAct(this.convNormOut, getActivation(c.act_fn), h);
    const features = mean(h, [2, 3]);
    return { features, logits: this.projOut.forward(features) };
  }

  /** Logits [B, K] of p_φ(y | x_t, t). */
  forward(sample: Tensor, timestep?: TimestepInput): Tensor {
    return this.classify(sample, timestep).logits;
  }

  /** The pooled penultimate features [B, F] (the space of Fréchet distance and KID). */
  features(sample: Tensor, timestep?: TimestepInput): Tensor {
    return this.classify(sample, timestep).features;
  }
}
