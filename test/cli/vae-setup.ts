/**
 * The autoencoder CLI tests' tiny coder (widths 8/16, 2 latent channels, 4 groups): config.json
 * files of an AutoencoderKL and a VQModel written into a test folder.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TINY_CODER = {
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
  latent_channels: 2,
};

/** Writes `dir`/kl.json and `dir`/vq.json (16 codebook entries) and returns their paths. */
export function writeTinyCoders(dir: string): { kl: string; vq: string } {
  const kl = join(dir, 'kl.json');
  const vq = join(dir, 'vq.json');
  writeFileSync(kl, JSON.stringify({ _class_name: 'AutoencoderKL', ...TINY_CODER }));
  writeFileSync(
    vq,
    JSON.stringify({ _class_name: 'VQModel', ...TINY_CODER, num_vq_embeddings: 16 }),
  );
  return { kl, vq };
}
