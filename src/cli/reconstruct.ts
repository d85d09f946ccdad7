/**
 * `sumi reconstruct`: one image through an autoencoder and back (posterior mean for
 * AutoencoderKL, quantized latents for VQModel), written as a PNG, with the PSNR / SSIM of the
 * round trip. The image must have the autoencoder's size; gray images go to RGB autoencoders as
 * three equal channels, and transparent pixels are composited over white as in the datasets.
 */
import { existsSync } from 'node:fs';

import { imageToPlanes, planesToImage, readImage, savePng } from '../data/index.js';
import { loadAutoencoder, reconstruct } from '../diffusion/index.js';
import { tensor } from '../engine/index.js';
import { imageQuality } from '../eval/index.js';
import { CliError, type CommandSpec, UsageError } from './args.js';
import { BACKEND_OPTION, defineCommand, EXIT, selectBackend, VAE_OPTION } from './common.js';

export const reconstructSpec: CommandSpec = {
  name: 'reconstruct',
  summary: 'Encode and decode an image with an autoencoder (AutoencoderKL or VQModel).',
  usage: 'sumi reconstruct --vae <dir> --in <image.png|jpg> --out <recon.png>',
  options: [
    VAE_OPTION,
    { name: 'in', kind: 'string', arg: 'IMAGE', help: 'a PNG or JPEG of the autoencoder’s size' },
    { name: 'out', kind: 'string', arg: 'PNG', help: 'where the reconstruction goes' },
    { name: 'force', kind: 'flag', help: 'overwrite --out if it exists' },
    BACKEND_OPTION,
  ],
};

export const reconstructCommand = defineCommand(reconstructSpec, async (args) => {
  const vae = args.required('vae');
  const input = args.required('in');
  const out = args.required('out');
  if (existsSync(out) && args.flag('force') !== true) {
    throw new UsageError(`${out} exists; pass --force to overwrite it`);
  }
  await selectBackend(args.str('backend'));
  const { model, dir } = await loadAutoencoder(vae).catch((e: unknown) => {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage);
  });
  const image = await readImage(input).catch((e: unknown) => {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage);
  });
  const size = model.config.sample_size;
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  const c = model.config.in_channels;
  if (image.height !== h || image.width !== w) {
    throw new UsageError(
      `${input} is ${image.width}x${image.height}; the autoencoder in ${dir} works on ${w}x${h} images`,
    );
  }
  if (c !== 1 && c !== 3) {
    throw new CliError(`${dir}: in_channels ${c}; images have 1 or 3 channels`, EXIT.usage);
  }
  if (c === 1 && image.channels >= 3) {
    throw new UsageError(`${input} is a colour image; the autoencoder in ${dir} takes gray images`);
  }
  const planes = imageToPlanes(image, c).map((v) => 2 * v - 1);
  const x = tensor(planes, [1, c, h, w]);
  const r = reconstruct(model, x);
  const y = (await r.images.data()) as Float32Array;
  x.dispose();
  r.images.dispose();
  r.indices?.dispose();
  await savePng(out, planesToImage(y, c, h, w, [-1, 1]));
  const q = imageQuality(planes, y, [c, h, w]);
  console.log(
    `${out}: ${input} through ${dir} (${model.className}): PSNR ${q.psnr.toFixed(2)} dB` +
      (q.ssim !== null ? `, SSIM ${q.ssim.toFixed(4)}` : ''),
  );
  return EXIT.ok;
});
