/**
 * What the latent editing tests share: a latent pipeline folder as `sumi train --vae` writes one
 * (unet/, vae/, scheduler/, sumi.json), with a random U-Net on the 2×4×4 latents of a tiny random
 * autoencoder of 8×8 gray images, without training it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Generator } from '../../src/engine/index.js';
import { createModel, saveModel } from '../../src/nn/models/index.js';
import { TINY_LATENT_UNET, writeTinyKlVae, writeTinyVqVae } from './latent-setup.js';

export interface LatentPipelineOptions {
  /** Classes of a class-conditional U-Net (with a null class); default unconditional. */
  classes?: number;
  /** A VQModel instead of an AutoencoderKL (shift 0.1). */
  vq?: boolean;
  /** A U-Net trained to inpaint: in_channels 2c + 1 and sumi.json `inpaint`. */
  inpaint?: boolean;
  seed?: number;
}

/** Writes the pipeline folder `dir` (see the module comment); returns its path. */
export async function writeLatentPipeline(
  dir: string,
  opts: LatentPipelineOptions = {},
): Promise<string> {
  const k = opts.classes ?? null;
  const unet = createModel(
    {
      ...TINY_LATENT_UNET,
      ...(k !== null ? { num_class_embeds: k + 1 } : {}),
      ...(opts.inpaint === true ? { in_channels: 5 } : {}),
    },
    { generator: new Generator(opts.seed ?? 3) },
  );
  await saveModel(unet, join(dir, 'unet'));
  const vaeDir = join(dir, 'vae');
  await (opts.vq === true ? writeTinyVqVae(vaeDir) : writeTinyKlVae(vaeDir, { shiftFactor: 0.1 }));
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await writeFile(
    join(dir, 'scheduler', 'scheduler_config.json'),
    JSON.stringify({ _class_name: 'DDPMScheduler', num_train_timesteps: 100 }),
  );
  await writeFile(
    join(dir, 'sumi.json'),
    JSON.stringify({
      format: 'sumi-model',
      version: 1,
      imageSize: 8,
      channels: 1,
      conditioning: k !== null ? 'class' : 'none',
      conditionDropout: k !== null ? 0.1 : 0,
      numClasses: k,
      nullClassId: k,
      ...(opts.inpaint === true ? { inpaint: { masks: ['rectangle'] } } : {}),
    }),
  );
  return dir;
}
