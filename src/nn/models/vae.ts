/**
 * The autoencoder pieces of diffusers' `autoencoders/vae.py`: Encoder, Decoder,
 * DiagonalGaussianDistribution (the posterior of AutoencoderKL) and VectorQuantizer (VQModel's
 * codebook, van den Oord et al. 2017); and the config keys of the encoder and decoder, which
 * AutoencoderKL and VQModel share.
 */
import {
  add,
  argmax,
  clamp,
  cpuBackend,
  div,
  exp,
  fmtShapeOf,
  type Generator,
  matmulT,
  mean,
  mul,
  noGrad,
  permute,
  randn,
  reshape,
  silu,
  slice,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
} from '../../engine/index.js';
import { uniform } from '../init.js';
import { Conv2d, conv3x3, Embedding, GroupNorm } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { ACTIVATIONS, type ActivationName, type BuildContext } from './common.js';
import {
  bool,
  checkLevels,
  type ConfigSchema,
  either,
  int,
  listOf,
  oneOf,
  positive,
  type Rule,
} from './config.js';
import { groupNormAct } from './resnet.js';
import {
  DownEncoderBlock2D,
  levelInput,
  type ResnetSettings,
  UNetMidBlock2D,
  UpDecoderBlock2D,
} from './unet-2d-blocks.js';

export interface CoderOptions {
  inChannels: number;
  outChannels: number;
  blockOutChannels: readonly number[];
  layersPerBlock: number;
  normNumGroups: number;
  actFn: ActivationName;
  midBlockAddAttention: boolean;
  ctx: BuildContext;
}

/** The diffusers config keys of AutoencoderKL and VQModel that describe the encoder and decoder. */
export interface CoderConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: readonly 'DownEncoderBlock2D'[];
  up_block_types: readonly 'UpDecoderBlock2D'[];
  block_out_channels: readonly number[];
  layers_per_block: number;
  act_fn: ActivationName;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number | readonly [number, number];
  scaling_factor: number;
  /** Run in float32 under fp16 pipelines (no effect here). */
  force_upcast: boolean;
  mid_block_add_attention: boolean;
}

/** The defaults AutoencoderKL and VQModel share (diffusers'): one level of 64 channels, RGB. */
export const CODER_DEFAULTS = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
} satisfies Partial<CoderConfig>;

/** The rules of the CoderConfig keys. */
const CODER_RULES = {
  in_channels: int(1),
  out_channels: int(1),
  down_block_types: listOf(oneOf(['DownEncoderBlock2D'], ['AttnDownEncoderBlock2D'])),
  up_block_types: listOf(oneOf(['UpDecoderBlock2D'], ['AttnUpDecoderBlock2D'])),
  block_out_channels: listOf(int(1)),
  layers_per_block: int(1),
  act_fn: oneOf(ACTIVATIONS),
  latent_channels: int(1),
  norm_num_groups: int(1),
  sample_size: either(int(1), listOf(int(1), 2)),
  scaling_factor: positive,
  force_upcast: bool,
  mid_block_add_attention: bool,
} as const;

function checkCoder(c: CoderConfig): string[] {
  return checkLevels(c, ['down_block_types', 'up_block_types']);
}

/**
 * The config schema of an autoencoder (AutoencoderKL, VQModel): the rules and checks of the
 * CoderConfig keys, then `rules` for the model's own keys.
 */
export function coderSchema<C extends CoderConfig>(
  className: string,
  defaults: C,
  rules: { readonly [K in Exclude<keyof C, keyof CoderConfig>]: Rule },
): ConfigSchema<C> {
  return {
    className,
    defaults,
    rules: { ...CODER_RULES, ...rules } as ConfigSchema<C>['rules'],
    check: checkCoder,
  };
}

/** The encoder and decoder options a config gives, all but the channels in and out. */
export function coderOptions(
  c: CoderConfig,
  ctx: BuildContext,
): Omit<CoderOptions, 'inChannels' | 'outChannels'> {
  return {
    blockOutChannels: c.block_out_channels,
    layersPerBlock: c.layers_per_block,
    normNumGroups: c.norm_num_groups,
    actFn: c.act_fn,
    midBlockAddAttention: c.mid_block_add_attention,
    ctx,
  };
}

function vaeResnet(o: CoderOptions): ResnetSettings {
  return {
    tembChannels: null,
    dropout: 0,
    eps: 1e-6,
    actFn: o.actFn,
    groups: o.normNumGroups,
    timeScaleShift: 'default',
    outputScaleFactor: 1,
    ctx: o.ctx,
  };
}

function vaeMidBlock(o: CoderOptions, channels: number): UNetMidBlock2D {
  return new UNetMidBlock2D({
    inChannels: channels,
    addAttention: o.midBlockAddAttention,
    attentionHeadDim: channels,
    attnGroups: o.normNumGroups,
    resnet: vaeResnet(o),
  });
}

/**
 * conv_in -> DownEncoderBlock2D per level (×2 downsampling between levels, asymmetric padding)
 * -> mid block (resnet, attention, resnet) -> GroupNorm -> SiLU -> conv_out to outChannels
 * (2 · latent channels for a Gaussian posterior: `double_z`).
 */
export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(o: CoderOptions) {
    super();
    const init = o.ctx.init;
    const ch = o.blockOutChannels;
    const last = ch[ch.length - 1]!;
    this.convIn = this.child('conv_in', conv3x3(o.inChannels, ch[0]!, init));
    const resnet = vaeResnet(o);
    this.downBlocks = this.child(
      'down_blocks',
      new ModuleList(
        ch.map(
          (outCh, i) =>
            new DownEncoderBlock2D({
              numLayers: o.layersPerBlock,
              inChannels: levelInput(ch, i),
              outChannels: outCh,
              addDownsample: i < ch.length - 1,
              downsamplePadding: 0,
              resnet,
            }),
        ),
      ),
    );
    this.midBlock = this.child('mid_block', vaeMidBlock(o, last));
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(o.normNumGroups, last, 1e-6));
    this.convOut = this.child('conv_out', conv3x3(last, o.outChannels, init));
  }
  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const b of this.downBlocks.items) h = b.forward(h);
    h = this.midBlock.forward(h, null);
    return this.convOut.forward(groupNormAct(this.convNormOut, silu, h));
  }
}

/** conv_in -> mid block -> UpDecoderBlock2D per level (reversed widths) -> norm -> SiLU -> conv_out. */
export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(o: CoderOptions) {
    super();
    const init = o.ctx.init;
    const ch = o.blockOutChannels;
    const rev = [...ch].reverse();
    this.convIn = this.child('conv_in', conv3x3(o.inChannels, rev[0]!, init));
    this.midBlock = this.child('mid_block', vaeMidBlock(o, rev[0]!));
    const resnet = vaeResnet(o);
    this.upBlocks = this.child(
      'up_blocks',
      new ModuleList(
        rev.map(
          (outCh, i) =>
            new UpDecoderBlock2D({
              numLayers: o.layersPerBlock + 1,
              inChannels: levelInput(rev, i),
              outChannels: outCh,
              addUpsample: i < ch.length - 1,
              resnet,
            }),
        ),
      ),
    );
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(o.normNumGroups, ch[0]!, 1e-6));
    this.convOut = this.child('conv_out', conv3x3(ch[0]!, o.outChannels, init));
  }
  forward(z: Tensor): Tensor {
    let h = this.midBlock.forward(this.convIn.forward(z), null);
    for (const b of this.upBlocks.items) h = b.forward(h);
    return this.convOut.forward(groupNormAct(this.convNormOut, silu, h));
  }
}

/**
 * N(mean, exp(logvar)) per latent element, from the encoder's 2·C channels [mean; logvar]; logvar
 * is clamped to [−30, 20] as in diffusers.
 */
export class DiagonalGaussianDistribution {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;
  readonly var: Tensor;
  constructor(readonly parameters: Tensor) {
    const [b, c2, h, w] = parameters.shape as [number, number, number, number];
    if (parameters.rank !== 4 || c2 % 2 !== 0) {
      throw new Error(
        `DiagonalGaussianDistribution: expected [B, 2C, H, W], got [${parameters.shape.join(', ')}]`,
      );
    }
    this.mean = slice(parameters, [0, 0], [b, c2 / 2, h, w]);
    this.logvar = clamp(slice(parameters, [0, c2 / 2], [b, c2, h, w]), -30, 20);
    this.std = exp(mul(this.logvar, 0.5));
    this.var = exp(this.logvar);
  }
  /** mean + std · ε, ε ~ N(0, I) from `generator` (differentiable in mean and std). */
  sample(generator: Generator): Tensor {
    const eps = randn(this.mean.shape, {
      generator,
      dtype: this.mean.dtype,
      backend: this.mean.backend,
    });
    return add(this.mean, mul(this.std, eps));
  }
  mode(): Tensor {
    return this.mean;
  }
  /**
   * KL(q ‖ N(0, I)) per sample, or KL(q ‖ other): ½ Σ (μ² + σ² − 1 − log σ²) over C, H, W.
   */
  kl(other?: DiagonalGaussianDistribution): Tensor {
    const axes = [1, 2, 3];
    if (!other) {
      return mul(sum(sub(sub(add(square(this.mean), this.var), 1), this.logvar), axes), 0.5);
    }
    const ratio = add(div(square(sub(this.mean, other.mean)), other.var), div(this.var, other.var));
    const d = add(sub(sub(ratio, 1), this.logvar), other.logvar);
    return mul(sum(d, axes), 0.5);
  }
  /** Negative log-likelihood of `x` per sample: ½ Σ (log 2π + log σ² + (x − μ)² / σ²). */
  nll(x: Tensor): Tensor {
    const t = add(
      add(this.logvar, Math.log(2 * Math.PI)),
      div(square(sub(x, this.mean)), this.var),
    );
    return mul(sum(t, [1, 2, 3]), 0.5);
  }
}

export interface QuantizerOutput {
  /** The quantized latents [B, C, H, W], with the straight-through gradient to the input. */
  quantized: Tensor;
  /** mean((sg[z_q] − z)²) + β · mean((z_q − sg[z])²) (diffusers' legacy weighting). */
  loss: Tensor;
  /** The codebook index of every position, [B·H·W] int32. */
  indices: Tensor;
}

/**
 * Nearest-codebook vector quantization (VQ-VAE): each position's C-vector is replaced by the
 * closest of `numEmbeddings` codebook rows (`embedding.weight`).
 */
export class VectorQuantizer extends Module {
  readonly embedding: Embedding;
  constructor(
    readonly numEmbeddings: number,
    readonly embedDim: number,
    readonly beta = 0.25,
    ctx?: BuildContext,
  ) {
    super();
    this.embedding = this.child('embedding', new Embedding(numEmbeddings, embedDim, ctx?.init));
    // diffusers: embedding.weight.data.uniform_(-1/n_e, 1/n_e)
    const u = uniform([numEmbeddings, embedDim], 1 / numEmbeddings, ctx?.init.generator);
    this.embedding.weight.setData(u);
    u.dispose();
  }

  /** Codebook indices [N] of the nearest rows to the vectors z [N, C]. */
  nearest(z: Tensor): Tensor {
    return noGrad(() => {
      const e = this.embedding.weight;
      // argmin ‖z − e‖² = argmax (2 z·e − ‖e‖²)
      const score = sub(mul(matmulT(z, e, false, true), 2), reshape(sum(square(e), 1), [1, -1]));
      return argmax(score, 1);
    });
  }

  forward(z: Tensor): QuantizerOutput {
    const [b, c, h, w] = z.shape as [number, number, number, number];
    const zt = permute(z, [0, 2, 3, 1]);
    const flat = reshape(zt, [-1, c]);
    const indices = this.nearest(flat);
    const zq = reshape(this.embedding.forward(indices), [b, h, w, c]);
    const zd = zt.detach();
    const zqd = zq.detach();
    const loss = add(mean(square(sub(zqd, zt))), mul(mean(square(sub(zq, zd))), this.beta));
    // straight-through: the forward value is z_q, the gradient goes to z unchanged
    const st = add(zt, sub(zq, zt).detach());
    return { quantized: permute(st, [0, 3, 1, 2]), loss, indices };
  }

  /** Codebook rows for indices, as a [B, C, H, W] map of the given spatial shape. */
  lookup(indices: Tensor, shape: readonly [number, number, number]): Tensor {
    const [b, h, w] = shape;
    return permute(
      reshape(this.embedding.forward(indices), [b, h, w, this.embedDim]),
      [0, 3, 1, 2],
    );
  }
}

/**
 * The EMA codebook of VQ-VAE (van den Oord et al. 2017, Appendix A.1): instead of a gradient
 * step, each codebook row follows the running mean of the encoder outputs assigned to it. With
 * n_k the assignments of row k in a batch and s_k the sum of their vectors, per update:
 *
 *   N_k ← γ N_k + (1 − γ) n_k,   M_k ← γ M_k + (1 − γ) s_k,
 *   Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j           (Laplace smoothing)
 *   e_k = M_k / Ñ_k
 *
 * N starts at 1 and M at the initial rows (`start`), as if each row had seen itself once, so rows
 * never assigned drift only through the smoothing instead of collapsing to zero. The running sums
 * are float64 on the host and belong in a checkpoint (`stateDict`) for an exact resume.
 */
export class CodebookEma {
  /** N_k [K]. */
  readonly clusterSize: Float64Array;
  /** M_k [K, D], row-major. */
  readonly embedSum: Float64Array;

  constructor(
    readonly quantizer: VectorQuantizer,
    readonly decay: number,
    readonly epsilon = 1e-5,
  ) {
    if (!(decay > 0 && decay < 1))
      throw new Error(`CodebookEma: decay must be in (0, 1), got ${decay}`);
    this.clusterSize = new Float64Array(quantizer.numEmbeddings).fill(1);
    this.embedSum = new Float64Array(quantizer.numEmbeddings * quantizer.embedDim);
  }

  #started = false;

  /** Starts M at the codebook's current rows (read from any backend); once, before `update`. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.embedSum.set(await this.quantizer.embedding.weight.data());
    this.#started = true;
  }

  /**
   * Folds a batch in: `z` holds N vectors of width D (row-major), `indices` their rows. Then
   * moves every row whose N_k is below `deadThreshold` onto the vector `z[floor(u_k · N)]`
   * (N_k = 1, M_k = that vector), u from `uniforms` (K numbers in [0, 1)). Writes the new rows
   * into the codebook; returns the number of rows restarted.
   */
  update(
    z: ArrayLike<number>,
    indices: ArrayLike<number>,
    dead?: { threshold: number; uniforms: ArrayLike<number> },
  ): number {
    if (!this.#started) throw new Error('CodebookEma: call start() (or loadStateDict) first');
    const K = this.quantizer.numEmbeddings;
    const D = this.quantizer.embedDim;
    const n = indices.length;
    if (z.length !== n * D) {
      throw new Error(`CodebookEma: ${z.length} values for ${n} vectors of width ${D}`);
    }
    const counts = new Float64Array(K);
    const sums = new Float64Array(K * D);
    for (let i = 0; i < n; i++) {
      const k = indices[i]!;
      counts[k]!++;
      for (let d = 0; d < D; d++) sums[k * D + d]! += z[i * D + d]!;
    }
    const g = this.decay;
    for (let k = 0; k < K; k++) {
      this.clusterSize[k] = g * this.clusterSize[k]! + (1 - g) * counts[k]!;
      for (let d = 0; d < D; d++) {
        const j = k * D + d;
        this.embedSum[j] = g * this.embedSum[j]! + (1 - g) * sums[j]!;
      }
    }
    let restarted = 0;
    if (dead !== undefined && n > 0) {
      for (let k = 0; k < K; k++) {
        if (this.clusterSize[k]! >= dead.threshold) continue;
        const i = Math.min(n - 1, Math.floor(dead.uniforms[k]! * n));
        this.clusterSize[k] = 1;
        for (let d = 0; d < D; d++) this.embedSum[k * D + d] = z[i * D + d]!;
        restarted++;
      }
    }
    this.#write();
    return restarted;
  }

  #write(): void {
    const K = this.quantizer.numEmbeddings;
    const D = this.quantizer.embedDim;
    let total = 0;
    for (let k = 0; k < K; k++) total += this.clusterSize[k]!;
    const rows = new Float64Array(K * D);
    for (let k = 0; k < K; k++) {
      const smoothed = ((this.clusterSize[k]! + this.epsilon) / (total + K * this.epsilon)) * total;
      for (let d = 0; d < D; d++) rows[k * D + d] = this.embedSum[k * D + d]! / smoothed;
    }
    const w = this.quantizer.embedding.weight;
    const t = tensor(rows, [K, D], { dtype: w.dtype, backend: w.backend });
    w.setData(t);
    t.dispose();
  }

  /** The running sums as named float64 tensors on the CPU (`cluster_size`, `embed_sum`). */
  stateDict(): Map<string, Tensor> {
    if (!this.#started) throw new Error('CodebookEma: no state before start()');
    const K = this.quantizer.numEmbeddings;
    const D = this.quantizer.embedDim;
    const cpu = { dtype: 'float64', backend: cpuBackend() } as const;
    return new Map([
      ['cluster_size', tensor(this.clusterSize, [K], cpu)],
      ['embed_sum', tensor(this.embedSum, [K, D], cpu)],
    ]);
  }

  /** Restores the running sums (the codebook rows themselves come with the model's weights). */
  loadStateDict(sd: ReadonlyMap<string, Tensor>, source = 'codebook EMA state'): void {
    const K = this.quantizer.numEmbeddings;
    const D = this.quantizer.embedDim;
    const n = sd.get('cluster_size');
    const m = sd.get('embed_sum');
    if (n?.shape.join() !== `${K}` || m?.shape.join() !== `${K},${D}`) {
      throw new Error(
        `${source}: expected cluster_size [${K}] and embed_sum [${K}, ${D}], found ` +
          `${n ? fmtShapeOf(n) : 'no cluster_size'} and ${m ? fmtShapeOf(m) : 'no embed_sum'}`,
      );
    }
    this.clusterSize.set(n.dataSync());
    this.embedSum.set(m.dataSync());
    this.#started = true;
  }
}
