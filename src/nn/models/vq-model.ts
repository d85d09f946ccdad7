/**
 * diffusers' VQModel (VQ-VAE / VQGAN autoencoder): the AutoencoderKL encoder and decoder around a
 * VectorQuantizer (`quantize.embedding.weight`, β = 0.25) instead of a Gaussian posterior.
 * encode(x) gives the unquantized latents (after quant_conv); decode quantizes them (nearest
 * codebook row, straight-through gradient) and returns the commitment loss with the image.
 */
import { type Tensor, zeros } from '../../engine/index.js';
import { Conv2d } from '../layers.js';
import { BuildContext, type ModelInitOptions } from './common.js';
import { bool, type ConfigSchema, int, nullable, oneOf } from './config.js';
import { DiffusersModel } from './diffusers-model.js';
import {
  CODER_DEFAULTS,
  type CoderConfig,
  coderOptions,
  coderSchema,
  Decoder,
  Encoder,
  VectorQuantizer,
} from './vae.js';

export interface VQModelConfig extends CoderConfig {
  num_vq_embeddings: number;
  /** Width of the codebook vectors (default latent_channels). */
  vq_embed_dim: number | null;
  norm_type: 'group';
  lookup_from_codebook: boolean;
}

export const VQ_MODEL_DEFAULTS: VQModelConfig = {
  ...CODER_DEFAULTS,
  latent_channels: 3,
  sample_size: 32,
  num_vq_embeddings: 256,
  norm_num_groups: 32,
  vq_embed_dim: null,
  scaling_factor: 0.18215,
  norm_type: 'group',
  mid_block_add_attention: true,
  lookup_from_codebook: false,
  force_upcast: false,
};

export const VQ_MODEL_SCHEMA: ConfigSchema<VQModelConfig> = coderSchema(
  'VQModel',
  VQ_MODEL_DEFAULTS,
  {
    num_vq_embeddings: int(1),
    vq_embed_dim: nullable(int(1)),
    norm_type: oneOf(['group'], ['spatial']),
    lookup_from_codebook: bool,
  },
);

export type VQModelInput = Partial<VQModelConfig> & { [meta: `_${string}`]: unknown };

export interface VQDecodeOutput {
  sample: Tensor;
  /** The quantizer's codebook + commitment loss (0 when not quantized). */
  commitLoss: Tensor;
}

export class VQModel extends DiffusersModel<VQModelConfig> {
  readonly encoder: Encoder;
  readonly quantConv: Conv2d;
  readonly quantize: VectorQuantizer;
  readonly postQuantConv: Conv2d;
  readonly decoder: Decoder;

  constructor(config: VQModelInput = {}, opts: ModelInitOptions = {}) {
    super(VQ_MODEL_SCHEMA, config);
    const c = this.config;
    const ctx = new BuildContext(opts);
    const lc = c.latent_channels;
    const vq = c.vq_embed_dim ?? lc;
    const common = coderOptions(c, ctx);
    this.encoder = this.child(
      'encoder',
      new Encoder({ ...common, inChannels: c.in_channels, outChannels: lc }),
    );
    this.quantConv = this.child('quant_conv', new Conv2d(lc, vq, 1, ctx.init));
    this.quantize = this.child('quantize', new VectorQuantizer(c.num_vq_embeddings, vq, 0.25, ctx));
    this.postQuantConv = this.child('post_quant_conv', new Conv2d(vq, lc, 1, ctx.init));
    this.decoder = this.child(
      'decoder',
      new Decoder({ ...common, inChannels: lc, outChannels: c.out_channels }),
    );
  }

  /** Images -> unquantized latents [B, vq_embed_dim, H/f, W/f]. */
  encode(x: Tensor): Tensor {
    return this.quantConv.forward(this.encoder.forward(x));
  }

  /**
   * Latents -> images. They are quantized first unless `forceNotQuantize`; with
   * `lookup_from_codebook`, `forceNotQuantize` reads `h` as codebook indices of `shape` [B, H, W].
   */
  decode(
    h: Tensor,
    opts: { forceNotQuantize?: boolean; shape?: readonly [number, number, number] } = {},
  ): VQDecodeOutput {
    let quant: Tensor;
    let commitLoss: Tensor;
    if (opts.forceNotQuantize !== true) {
      const q = this.quantize.forward(h);
      quant = q.quantized;
      commitLoss = q.loss;
    } else {
      const w = this.quantConv.weight;
      if (this.config.lookup_from_codebook) {
        if (!opts.shape) throw new Error('VQModel.decode: lookup_from_codebook needs the shape');
        quant = this.quantize.lookup(h, opts.shape);
      } else {
        quant = h;
      }
      commitLoss = zeros([], { dtype: w.dtype, backend: w.backend });
    }
    return { sample: this.decoder.forward(this.postQuantConv.forward(quant)), commitLoss };
  }

  /** decode(encode(x)): the reconstruction and the quantizer loss. */
  forward(x: Tensor): VQDecodeOutput {
    return this.decode(this.encode(x));
  }
}
