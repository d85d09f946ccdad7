/**
 * The autoencoder of latent diffusion (Rombach et al. 2022): what a diffusers vae folder
 * (AutoencoderKL or VQModel) says about its latents, encoding images into them and decoding the
 * denoiser's samples back to pixels. The denoiser works on u = scaling_factor · (z − shift_factor);
 * decoding takes x = D(u / scaling_factor + shift_factor). An AutoencoderKL's z is a draw of its
 * posterior N(μ, σ²); a VQModel's is its unquantized latent h (after quant_conv), which the
 * decoder quantizes.
 */
import { add, clamp, mul, noGrad, type Tensor, tidy } from '../../engine/index.js';
import { AutoencoderKL } from '../../nn/models/autoencoder-kl.js';
import { ConfigError } from '../../nn/models/config.js';
import { CONFIG_NAME, modelFromBytes, parseConfigJson } from '../../nn/models/create.js';
import { VQModel } from '../../nn/models/vq-model.js';

/** The folder a latent pipeline keeps its autoencoder in. */
export const LATENT_VAE_DIR = 'vae';

/** 'kl': an AutoencoderKL (posterior mean and log-variance); 'vq': a VQModel (unquantized h). */
export type LatentKind = 'kl' | 'vq';

/** An autoencoder whose latents a denoiser can train on. */
export type LatentVae = AutoencoderKL | VQModel;

/** A vae folder or a latent cache that cannot be used as it is (one line naming the problem). */
export class LatentError extends Error {
  override name = 'LatentError';
}

/** What a latent run records of its autoencoder (TrainConfig.latent, sumi.json `latent`). */
export interface LatentSettings {
  /** The vae folder the run was started with (as given). */
  vae: string;
  kind: LatentKind;
  vaeClass: 'AutoencoderKL' | 'VQModel';
  scalingFactor: number;
  /** null: no shift (diffusers' default, and every VQModel). */
  shiftFactor: number | null;
  /** sha256 (hex) of the vae's weights file. */
  vaeSha256: string;
  /** The denoiser's sample: [channels, height, width] of the latents. */
  shape: [number, number, number];
}

/** The latent geometry and scaling of an autoencoder. */
export interface LatentSpec {
  kind: LatentKind;
  vaeClass: 'AutoencoderKL' | 'VQModel';
  /** Channels of the images it encodes (its in_channels). */
  imageChannels: number;
  /** Channels of the diffusion latents (latent_channels; a VQModel's vq_embed_dim when set). */
  latentChannels: number;
  /** Image side / latent side: 2^(levels − 1). */
  downsampleFactor: number;
  scalingFactor: number;
  shiftFactor: number | null;
}

/** The spec of a loaded autoencoder; `raw` is its config.json as read (`source` names it). */
export function latentSpecOf(
  vae: LatentVae,
  raw: Readonly<Record<string, unknown>>,
  source: string,
): LatentSpec {
  const sf = raw.scaling_factor;
  if (typeof sf !== 'number' || !(sf > 0) || !Number.isFinite(sf)) {
    throw new LatentError(
      `${source}: ${sf === undefined ? 'no scaling_factor' : `scaling_factor ${JSON.stringify(sf)} is not a positive number`}` +
        ' (latent diffusion trains on scaling_factor · z; set it to 1 / std of the encoded latents)',
    );
  }
  const levels = vae.config.block_out_channels.length;
  if (vae instanceof AutoencoderKL) {
    const shift = vae.config.shift_factor;
    return {
      kind: 'kl',
      vaeClass: 'AutoencoderKL',
      imageChannels: vae.config.in_channels,
      latentChannels: vae.config.latent_channels,
      downsampleFactor: 2 ** (levels - 1),
      scalingFactor: sf,
      shiftFactor: shift,
    };
  }
  return {
    kind: 'vq',
    vaeClass: 'VQModel',
    imageChannels: vae.config.in_channels,
    latentChannels: vae.config.vq_embed_dim ?? vae.config.latent_channels,
    downsampleFactor: 2 ** (levels - 1),
    scalingFactor: sf,
    shiftFactor: null,
  };
}

/**
 * Images [B, C, H, W] in [−1, 1] → the latents' parameters [B, c, H/f, W/f]: an AutoencoderKL's
 * posterior mean and log-variance (clamped to [−30, 20] as diffusers does), a VQModel's
 * unquantized latents (logvar null).
 */
export function encodeImages(vae: LatentVae, x: Tensor): { mean: Tensor; logvar: Tensor | null } {
  return noGrad((): { mean: Tensor; logvar: Tensor | null } => {
    if (vae instanceof VQModel) return { mean: vae.encode(x), logvar: null };
    return tidy(() => {
      const posterior = vae.encode(x);
      return { mean: posterior.mean, logvar: posterior.logvar };
    });
  });
}

/**
 * Samples of the denoiser (u = scaling_factor · (z − shift)) → images [B, C, H, W] clamped to
 * [−1, 1]: x = D(u / scaling_factor + shift). A VQModel's decoder quantizes first.
 */
export function decodeLatents(vae: LatentVae, spec: LatentSpec, u: Tensor): Tensor {
  return noGrad(() =>
    tidy(() => {
      let z = mul(u, 1 / spec.scalingFactor);
      if (spec.shiftFactor !== null) z = add(z, spec.shiftFactor);
      const x = vae instanceof VQModel ? vae.decode(z).sample : vae.decode(z);
      return clamp(x, -1, 1);
    }),
  );
}

/** An autoencoder with its spec: decodes a latent denoiser's samples to pixels. */
export class LatentDecoder {
  constructor(
    readonly vae: LatentVae,
    readonly spec: LatentSpec,
  ) {}

  /** Images [B, C, H·f, W·f] in [−1, 1] from denoiser samples [B, c, H, W]. */
  decode(u: Tensor): Tensor {
    return decodeLatents(this.vae, this.spec, u);
  }

  /** The image shape [C, H·f, W·f] of a latent shape [c, H, W]. */
  imageShape(latent: readonly number[]): [number, number, number] {
    const f = this.spec.downsampleFactor;
    return [this.vae.config.out_channels, latent[1]! * f, latent[2]! * f];
  }
}

/** An autoencoder built from its files' bytes: the model (eval mode), its spec, its config. */
export interface VaeFromBytes {
  vae: LatentVae;
  spec: LatentSpec;
  /** config.json as read (every key the file has). */
  config: Record<string, unknown>;
}

/**
 * A vae folder's config.json (bytes; `source` the folder), checked to be an AutoencoderKL or a
 * VQModel with a scaling_factor: otherwise a LatentError naming the file.
 */
export function parseVaeConfig(configBytes: Uint8Array, source: string): Record<string, unknown> {
  const configPath = `${source}/${CONFIG_NAME}`;
  let config: Record<string, unknown>;
  try {
    config = parseConfigJson(configBytes, configPath);
  } catch (e) {
    if (e instanceof ConfigError) throw new LatentError(e.message);
    throw e;
  }
  const cls = config._class_name;
  if (cls !== 'AutoencoderKL' && cls !== 'VQModel') {
    throw new LatentError(
      `${configPath}: a ${JSON.stringify(cls)}; latent diffusion needs an AutoencoderKL or a VQModel`,
    );
  }
  if (config.scaling_factor === undefined) {
    throw new LatentError(
      `${configPath}: no scaling_factor (latent diffusion trains on scaling_factor · z; set it to ` +
        '1 / std of the encoded latents, as sumi train-vae does)',
    );
  }
  return config;
}

/**
 * A latent pipeline's autoencoder from the bytes of its config.json and
 * diffusion_pytorch_model.safetensors (fetched, say; `loadVae` reads a folder); `source` (the vae
 * folder) names them in errors. A config that `parseVaeConfig` refuses, or weights that do not
 * fit it, are a LatentError naming the file.
 */
export async function vaeFromBytes(
  configBytes: Uint8Array,
  weights: Uint8Array,
  source: string,
): Promise<VaeFromBytes> {
  const configPath = `${source}/${CONFIG_NAME}`;
  const config = parseVaeConfig(configBytes, source);
  let model;
  try {
    model = await modelFromBytes(configBytes, weights, source);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // Config errors name the class, not the file: add the file.
    const named = e instanceof ConfigError && !message.includes(source);
    throw new LatentError(named ? `${configPath}: ${message}` : message);
  }
  if (!(model instanceof AutoencoderKL || model instanceof VQModel)) {
    throw new LatentError(`${configPath}: not an autoencoder`);
  }
  return { vae: model, spec: latentSpecOf(model, config, configPath), config };
}

/**
 * Checks that a denoiser's samples [C, H, W] are the autoencoder's latents (C its latent
 * channels): a LatentError naming `source` (the vae folder) and both counts.
 */
export function checkLatentDenoiser(
  spec: LatentSpec,
  denoiser: { readonly sampleShape: readonly number[] },
  source: string,
): void {
  const c = denoiser.sampleShape[0];
  if (c !== spec.latentChannels) {
    throw new LatentError(
      `${source}: the vae's latents have ${spec.latentChannels} channels, the U-Net's samples ${c}`,
    );
  }
}
