/**
 * What the latent diffusion tests share: tiny random autoencoder folders (an AutoencoderKL and a
 * VQModel turning 8×8 gray images into 2×4×4 latents) saved as diffusers writes them, and a folder
 * of 16 gray 8×8 PNG images.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { encodePng } from '../../src/data/index.js';
import { Generator } from '../../src/engine/index.js';
import { TINY_UNET } from '../../src/eval/test-models.js';
import { AutoencoderKL, type CoderConfig, saveModel, VQModel } from '../../src/nn/models/index.js';

const CODER: Partial<CoderConfig> = {
  in_channels: 1,
  out_channels: 1,
  latent_channels: 2,
  sample_size: 8,
  block_out_channels: [8, 8],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
};

/** A random AutoencoderKL folder (×2 downsampling, 2 latent channels); returns its path. */
export async function writeTinyKlVae(
  dir: string,
  opts: { seed?: number; scalingFactor?: number; shiftFactor?: number | null } = {},
): Promise<string> {
  const vae = new AutoencoderKL(
    { ...CODER, scaling_factor: opts.scalingFactor ?? 0.8, shift_factor: opts.shiftFactor ?? null },
    { generator: new Generator(opts.seed ?? 1) },
  );
  await saveModel(vae, dir);
  return dir;
}

/** A random VQModel folder (×2 downsampling, 2-wide codebook of 16 rows); returns its path. */
export async function writeTinyVqVae(dir: string, seed = 2): Promise<string> {
  const vae = new VQModel(
    { ...CODER, num_vq_embeddings: 16, scaling_factor: 1.5 },
    { generator: new Generator(seed) },
  );
  await saveModel(vae, dir);
  return dir;
}

/** A folder of `n` gray 8×8 PNGs (fixed patterns); returns its path. */
export async function writeImageFolder(dir: string, n = 16, salt = 0): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let k = 0; k < n; k++) {
    const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + k * 71 + salt * 13) % 256);
    await writeFile(
      join(dir, `img-${String(k).padStart(2, '0')}.png`),
      encodePng({ width: 8, height: 8, channels: 1, data }),
    );
  }
  return dir;
}

/** The tiny models' 2-level UNet2DModel (no attention) on 2×4×4 latents. */
export const TINY_LATENT_UNET = {
  _class_name: 'UNet2DModel',
  sample_size: 4,
  in_channels: 2,
  out_channels: 2,
  ...TINY_UNET,
};
