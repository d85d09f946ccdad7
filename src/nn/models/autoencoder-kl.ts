/**
 * diffusers' AutoencoderKL: the KL-regularised autoencoder of latent diffusion (Rombach et al.
 * 2022). encode(x) gives a DiagonalGaussianDistribution over latents (quant_conv on the encoder's
 * [mean; logvar]); decode(z) runs post_quant_conv and the decoder. `scaling_factor` (and
 * `shift_factor`) are for the caller: diffusion runs on (z − shift) · scaling_factor.
 */
import type { Generator, Tensor } from '../../engine/index.js';
import { Conv2d } from '../layers.js';
import { BuildContext, type ModelInitOptions } from './common.js';
import { anyValue, bool, type ConfigSchema, nullable, num } from './config.js';
import { DiffusersModel } from './diffusers-model.js';
import {
  CODER_DEFAULTS,
  type CoderConfig,
  coderOptions,
  coderSchema,
  Decoder,
  DiagonalGaussianDistribution,
  Encoder,
} from './vae.js';

export interface AutoencoderKLConfig extends CoderConfig {
  shift_factor: number | null;
  latents_mean: readonly number[] | null;
  latents_std: readonly number[] | null;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
}

export const AUTOENCODER_KL_DEFAULTS: AutoencoderKLConfig = {
  ...CODER_DEFAULTS,
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  shift_factor: null,
  latents_mean: null,
  latents_std: null,
  force_upcast: true,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
};

export const AUTOENCODER_KL_SCHEMA: ConfigSchema<AutoencoderKLConfig> = coderSchema(
  'AutoencoderKL',
  AUTOENCODER_KL_DEFAULTS,
  {
    shift_factor: nullable(num),
    latents_mean: anyValue,
    latents_std: anyValue,
    use_quant_conv: bool,
    use_post_quant_conv: bool,
  },
);

export type AutoencoderKLInput = Partial<AutoencoderKLConfig> & { [meta: `_${string}`]: unknown };

export interface AutoencoderKLForwardOptions {
  /** Decode a sample of the posterior (needs `generator`) instead of its mean. */
  samplePosterior?: boolean;
  generator?: Generator;
}

export class AutoencoderKL extends DiffusersModel<AutoencoderKLConfig> {
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;

  constructor(config: AutoencoderKLInput = {}, opts: ModelInitOptions = {}) {
    super(AUTOENCODER_KL_SCHEMA, config);
    const c = this.config;
    const ctx = new BuildContext(opts);
    const lc = c.latent_channels;
    const common = coderOptions(c, ctx);
    this.encoder = this.child(
      'encoder',
      new Encoder({ ...common, inChannels: c.in_channels, outChannels: 2 * lc }),
    );
    this.decoder = this.child(
      'decoder',
      new Decoder({ ...common, inChannels: lc, outChannels: c.out_channels }),
    );
    this.quantConv = c.use_quant_conv
      ? this.child('quant_conv', new Conv2d(2 * lc, 2 * lc, 1, ctx.init))
      : null;
    this.postQuantConv = c.use_post_quant_conv
      ? this.child('post_quant_conv', new Conv2d(lc, lc, 1, ctx.init))
      : null;
  }

  /** Images [B, C, H, W] -> the posterior over latents [B, latent_channels, H/f, W/f]. */
  encode(x: Tensor): DiagonalGaussianDistribution {
    const h = this.encoder.forward(x);
    return new DiagonalGaussianDistribution(this.quantConv ? this.quantConv.forward(h) : h);
  }

  /** Latents -> images. */
  decode(z: Tensor): Tensor {
    return this.decoder.forward(this.postQuantConv ? this.postQuantConv.forward(z) : z);
  }

  /** decode(posterior mean), or decode(a posterior sample). */
  forward(x: Tensor, opts: AutoencoderKLForwardOptions = {}): Tensor {
    const posterior = this.encode(x);
    if (opts.samplePosterior === true) {
      if (!opts.generator) throw new Error('AutoencoderKL: samplePosterior needs a generator');
      return this.decode(posterior.sample(opts.generator));
    }
    return this.decode(posterior.mode());
  }

  /** The spatial downsampling factor, 2^(levels − 1). */
  get downsampleFactor(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }
}
