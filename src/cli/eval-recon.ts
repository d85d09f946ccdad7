/**
 * `sumi eval recon`: how well an autoencoder reconstructs images: PSNR (mean ± standard error)
 * and SSIM of its reconstructions (posterior mean for AutoencoderKL, quantized latents for
 * VQModel), the codebook's usage and perplexity (VQModel), and with `--grid` a PNG of originals
 * over reconstructions. By default it measures the held-out split of the train-vae run that
 * wrote the autoencoder (its data, size, fraction and seed, from trainer_state.json).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import {
  type Dataset,
  ImageFileDataset,
  loadDataset,
  savePng,
  subsetDataset,
} from '../data/index.js';
import {
  evaluateReconstruction,
  imageHoldoutSplit,
  loadAutoencoder,
  readVaeTrainerState,
  type VaeTrainerState,
} from '../diffusion/index.js';
import { tensor } from '../engine/index.js';
import { imageQuality, SSIM_WINDOW } from '../eval/index.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import { EXIT, selectBackend, VAE_OPTION } from './common.js';
import { COMMON_TAIL, toJson } from './eval-common.js';
import { Progress } from './progress.js';

export const reconSpec: CommandSpec = {
  name: 'eval recon',
  summary: "PSNR, SSIM and codebook usage of an autoencoder's reconstructions.",
  usage:
    'sumi eval recon --vae <dir> [--data D] [--image-size S] [--holdout F] [--n N] [--grid out.png]',
  options: [
    VAE_OPTION,
    {
      name: 'data',
      kind: 'string',
      arg: 'D',
      help: "mnist, mnist-full, fashion-mnist, emoji or a folder (default: the autoencoder's training data)",
    },
    { name: 'image-size', kind: 'int', arg: 'S', help: "image size (must be the autoencoder's)" },
    {
      name: 'holdout',
      kind: 'number',
      arg: 'F',
      help: "measure the held-out split of fraction F (default: the training run's; 0: all images)",
    },
    { name: 'seed', kind: 'int', arg: 'S', help: "seed of the split (default: the run's, else 0)" },
    { name: 'n', kind: 'int', help: 'images measured at most (default: all of the split)' },
    { name: 'batch', kind: 'int', arg: 'B', help: 'images per batch', default: '32' },
    {
      name: 'grid',
      kind: 'string',
      arg: 'PNG',
      help: 'write the first 16 originals (top) and their reconstructions (bottom) as a PNG',
    },
    ...COMMON_TAIL,
  ],
};

/** The train-vae state beside an autoencoder folder (…/checkpoint/vae → …/checkpoint), if any. */
async function runStateOf(vaeDir: string): Promise<VaeTrainerState | null> {
  const parent = join(vaeDir, '..');
  if (!existsSync(join(parent, 'trainer_state.json'))) return null;
  try {
    return await readVaeTrainerState(parent);
  } catch {
    return null;
  }
}

export async function reconCommand(args: Args): Promise<number> {
  const vaeArg = args.str('vae');
  if (vaeArg === undefined) throw new UsageError('--vae <dir> is required');
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true);
  const n = args.num('n');
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) {
    throw new UsageError(`--n must be at least 1, got ${n}`);
  }
  const batch = args.num('batch') ?? 32;
  if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`--batch must be at least 1`);
  const holdoutArg = args.num('holdout');
  if (holdoutArg !== undefined && !(holdoutArg >= 0 && holdoutArg < 1)) {
    throw new UsageError(`--holdout must be in [0, 1), got ${holdoutArg}`);
  }
  await selectBackend(args.str('backend'));
  const { model, dir } = await loadAutoencoder(vaeArg).catch((e: unknown) => {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage);
  });
  const run = await runStateOf(dir);
  const size = model.config.sample_size;
  const side = typeof size === 'number' ? size : size[0];
  const channels = model.config.in_channels;
  if (args.num('image-size') !== undefined && args.num('image-size') !== side) {
    throw new UsageError(
      `--image-size ${args.num('image-size')}: ${dir} works on ${side}x${side} images`,
    );
  }
  if (channels !== 1 && channels !== 3) {
    throw new CliError(`${dir}: in_channels ${channels}; images have 1 or 3 channels`, EXIT.usage);
  }
  const spec = args.str('data') ?? run?.config.data;
  if (spec === undefined)
    throw new UsageError('give --data: the autoencoder does not name its data');
  let ds: Dataset;
  try {
    ds = loadDataset(spec, { size: side, channels });
    if (ds instanceof ImageFileDataset) ds.preload();
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const sameRun = run !== null && spec === run.config.data;
  const fraction = holdoutArg ?? (sameRun ? run.config.holdout : 0);
  const seed = args.num('seed') ?? (sameRun ? run.config.seed : 0);
  const split = fraction > 0 ? imageHoldoutSplit(ds.length, fraction, seed).heldOut : null;
  const set = split === null ? ds : subsetDataset(ds, split);
  const count = Math.min(set.length, n ?? set.length);
  const gridCount = Math.min(16, count);
  const size3 = channels * side * side;
  const originals = new Float32Array(gridCount * size3);
  const recons = new Float32Array(gridCount * size3);
  let kept = 0;
  let done = 0;
  const t0 = performance.now();
  const scores = await evaluateReconstruction(model, set, {
    batchSize: batch,
    limit: count,
    measure: imageQuality,
    onBatch: (x, y, k) => {
      const take = Math.min(k, gridCount - kept);
      if (take > 0) {
        originals.set(x.subarray(0, take * size3), kept * size3);
        recons.set(y.subarray(0, take * size3), kept * size3);
        kept += take;
      }
      done += k;
      progress.update('reconstructing', done, count);
    },
  });
  progress.clear();
  const gridPath = args.str('grid');
  if (gridPath !== undefined) {
    const both = new Float32Array(2 * gridCount * size3);
    both.set(originals, 0);
    both.set(recons, gridCount * size3);
    const t = tensor(both, [2 * gridCount, channels, side, side]);
    try {
      await savePng(gridPath, t, { nrow: gridCount });
    } finally {
      t.dispose();
    }
  }
  const what =
    split === null
      ? `${ds.name} (${count} images)`
      : `${ds.name}, held-out split ${fraction} seed ${seed} (${count} images)`;
  if (json) {
    console.log(
      toJson({
        format: 'sumi-eval',
        version: 1,
        command: 'recon',
        vae: { path: dir, className: model.className },
        data: { name: ds.name, holdout: fraction, seed, count },
        results: scores,
        seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
        ...(gridPath !== undefined ? { grid: gridPath } : {}),
      }),
    );
    return EXIT.ok;
  }
  console.log(`${dir} (${model.className}) on ${what}:`);
  console.log(`  PSNR  ${scores.psnr!.toFixed(2)} ± ${scores.psnrStderr!.toFixed(2)} dB`);
  if (scores.ssim !== null) {
    console.log(`  SSIM  ${scores.ssim.toFixed(4)} ± ${scores.ssimStderr!.toFixed(4)}`);
  } else {
    console.log(`  SSIM  - (images smaller than the ${SSIM_WINDOW}x${SSIM_WINDOW} window)`);
  }
  console.log(`  L1    ${scores.l1.toFixed(4)}   MSE ${scores.mse.toFixed(5)}`);
  if (scores.codebookUsage !== null) {
    console.log(
      `  codebook ${(100 * scores.codebookUsage).toFixed(1)}% used, perplexity ${scores.perplexity!.toFixed(1)}`,
    );
  }
  if (gridPath !== undefined) console.log(`  grid: ${gridPath}`);
  return EXIT.ok;
}
