/** `sumi export`: a sample-ready model folder (one set of weights, no trainer state) from a checkpoint. */
import { existsSync } from 'node:fs';

import { join } from 'node:path';

import { exportClassifier, exportVae, loadPipeline, savePipeline } from '../diffusion/index.js';
import type { Args, CommandSpec } from './args.js';
import {
  checkOutFolderEmpty,
  defineCommand,
  EXIT,
  modelCopyArgs,
  modelCopyOptions,
} from './common.js';

export const exportSpec: CommandSpec = {
  name: 'export',
  summary:
    'Write a sample-ready pipeline folder (unet/, scheduler/, sumi.json; text_encoder/ and tokenizer/ of text models), classifier folder, or autoencoder folder (of sumi train-vae) from a checkpoint.',
  usage: 'sumi export --model <dir> --out <dir> [--weights auto|ema|model] [--dtype f32|f16]',
  options: [
    {
      name: 'model',
      kind: 'string',
      arg: 'DIR',
      help: "a 'sumi train', 'train-classifier' or 'train-vae' output or checkpoint",
    },
    { name: 'out', kind: 'string', arg: 'DIR', help: 'the folder to write' },
    ...modelCopyOptions({
      weights: 'auto (EMA when present), ema, or model',
      dtype: 'storage of the weights (f16 halves the size)',
    }),
  ],
};

/** A 'sumi train-vae' output or its checkpoint (vae/ without a denoiser). */
function isVaeRun(dir: string): boolean {
  const roots = [dir, join(dir, 'checkpoint')];
  return roots.some(
    (r) => existsSync(join(r, 'vae', 'config.json')) && !existsSync(join(r, 'unet', 'config.json')),
  );
}

/** A 'sumi train-classifier' output, checkpoint or exported classifier folder. */
function isClassifierDir(dir: string): boolean {
  const roots = [dir, join(dir, 'checkpoint'), join(dir, 'checkpoint.old')];
  return roots.some((r) => existsSync(join(r, 'classifier', 'config.json')));
}

async function exportCmd(args: Args): Promise<number> {
  const { dir, out, weights, dtype } = modelCopyArgs(args);
  checkOutFolderEmpty(args, out);
  if (isClassifierDir(dir)) {
    const c = await exportClassifier(dir, out, { dtype });
    console.log(`${out}: the classifier of ${c.root}`);
    return EXIT.ok;
  }
  if (isVaeRun(dir)) {
    const v = await exportVae(dir, out, { dtype });
    console.log(`${out}: the ${v.loaded.vae.className} of ${v.loaded.dir}`);
    return EXIT.ok;
  }
  // Any model: an upscaler or an inpainting model is exported like one that generates.
  const p = await loadPipeline(dir, {
    weights,
    tasks: ['generate', 'upscale', 'inpaint'],
    latent: true,
  });
  await savePipeline(p, out, { dtype });
  console.log(`${out}: ${p.weights === 'ema' ? 'EMA' : 'model'} weights of ${p.layout.root}`);
  return EXIT.ok;
}

export const exportCommand = defineCommand(exportSpec, exportCmd);
