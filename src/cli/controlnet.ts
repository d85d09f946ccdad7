/**
 * ControlNets on the command line: `--controlnet DIR --control-image FILE [--control-scale S]`
 * for `sumi sample`, and `sumi controlnet map`, which makes the condition image of an image file.
 * The ControlNet must fit the model (its config is the one it would have as a copy of the model's
 * encoder), and the condition image must be the size the ControlNet takes.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, extname } from 'node:path';

import { encodePng, type RawImage, readImage } from '../data/index.js';
import { CONTROL_KINDS, type ControlKind, controlMap } from '../diffusion/index.js';
import { tensor } from '../engine/index.js';
import {
  ControlledDenoiser,
  controlNetMismatch,
  type Denoiser,
  loadControlNet,
  UNet2DConditionModel,
  UNet2DModel,
  writeFileAtomic,
} from '../nn/models/index.js';
import { type Args, CliError, type CommandSpec, type OptionSpec, UsageError } from './args.js';
import { commandGroup, defineCommand, EXIT, message, readOptionInput } from './common.js';
import { channelsOption } from './train-options.js';

export const CONTROLNET_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'controlnet',
    kind: 'string',
    arg: 'DIR',
    help: "steer the model with a ControlNet (diffusers' ControlNet folder); needs --control-image",
  },
  {
    name: 'control-image',
    kind: 'string',
    arg: 'FILE',
    help:
      'the ControlNet condition image (PNG/JPEG; sumi controlnet map makes it from an image), ' +
      'used for every sample',
  },
  {
    name: 'control-scale',
    kind: 'number',
    arg: 'S',
    help: "scale of the ControlNet's residuals (diffusers' controlnet_conditioning_scale)",
    default: '1',
  },
];

/**
 * The model steered by --controlnet with --control-image (the model itself without them). Options
 * without their partner are UsageErrors; a bad ControlNet or image is one line naming the option,
 * the file and what differs (exit 2).
 */
export async function withControlNet(model: Denoiser, args: Args): Promise<Denoiser> {
  const dir = args.str('controlnet');
  const file = args.str('control-image');
  const scale = args.num('control-scale');
  if (dir === undefined) {
    if (file !== undefined || scale !== undefined) {
      throw new UsageError(
        `--${file !== undefined ? 'control-image' : 'control-scale'} needs --controlnet DIR`,
      );
    }
    return model;
  }
  if (file === undefined) throw new UsageError('--controlnet needs --control-image FILE');
  if (scale !== undefined && !Number.isFinite(scale)) {
    throw new UsageError(`--control-scale must be a number, got ${scale}`);
  }
  if (!(model instanceof UNet2DModel || model instanceof UNet2DConditionModel)) {
    throw new CliError(
      `--controlnet: a ${model.className} has no encoder for a ControlNet`,
      EXIT.usage,
    );
  }
  const cn = await readOptionInput(`--controlnet ${dir}`, () => loadControlNet(dir));
  const bad = controlNetMismatch(cn, model);
  if (bad.length > 0) {
    throw new CliError(
      `--controlnet ${dir} does not fit the ${model.className}: ${bad.join('; ')}`,
      EXIT.usage,
    );
  }
  const img = await readOptionInput('--control-image', () => readImage(file));
  const [, h, w] = model.sampleShape;
  const [c, ch, cw] = cn.conditionShape(h, w);
  if (img.height !== ch || img.width !== cw) {
    throw new CliError(
      `--control-image ${file} is ${img.width}x${img.height}; the ControlNet takes ${cw}x${ch} ` +
        `condition images (for the model's ${w}x${h} samples)`,
      EXIT.usage,
    );
  }
  const max = img.data instanceof Uint16Array ? 65535 : 255;
  // Grey from the colour channels (alpha ignored), or the grey repeated, as the ControlNet wants.
  const colour = img.channels >= 3 ? 3 : 1;
  const planes = new Float32Array(c * ch * cw);
  for (let i = 0; i < ch * cw; i++) {
    let grey = 0;
    for (let k = 0; k < colour; k++) grey += img.data[i * img.channels + k]! / max / colour;
    for (let k = 0; k < c; k++) {
      planes[k * ch * cw + i] =
        c === colour && colour === 3 ? img.data[i * img.channels + k]! / max : grey;
    }
  }
  const w0 = model.parameters()[0]!;
  const image = tensor(
    w0.dtype === 'float64' ? Float64Array.from(planes) : planes,
    [1, c, ch, cw],
    { dtype: w0.dtype === 'float64' ? 'float64' : 'float32', backend: w0.backend },
  );
  await cn.to({ backend: w0.backend, dtype: w0.dtype });
  return new ControlledDenoiser(model, cn, scale ?? 1, image);
}

export const controlnetMapSpec: CommandSpec = {
  name: 'controlnet map',
  summary: 'Make the condition image of an image file, as a ControlNet training run makes it.',
  usage:
    'sumi controlnet map [--control edges|canny|mask] [--channels C] [--image-size S] IN OUT.png',
  positionals: ['IN', 'OUT.png'],
  options: [
    {
      name: 'control',
      kind: 'string',
      arg: 'KIND',
      choices: CONTROL_KINDS,
      help:
        "the kind of the ControlNet's condition images ('edges': the Sobel edge map; 'canny': " +
        "the Canny edge map, 1 px wide; 'mask': the foreground mask)",
      default: 'edges',
    },
    {
      name: 'channels',
      kind: 'int',
      arg: 'C',
      help: "the model's image channels, 1 (an RGB image's BT.601 luma) or 3 (default: the image's)",
    },
    {
      name: 'image-size',
      kind: 'int',
      arg: 'S',
      help: 'resize to cover S×S and centre-crop, as the training data (default: the image size)',
    },
  ],
  notes: [
    'IN is a PNG or JPEG (gray or RGB; transparent pixels over white). OUT.png gets the map that\n' +
      'sumi train --controlnet --control KIND computes from IN as a training image of a model of C\n' +
      'channels at size S: one gray channel, white (255) on the map, black elsewhere; it is\n' +
      'written atomically. Use it as sumi sample --controlnet DIR --control-image OUT.png. See\n' +
      'docs/adapters.md.',
  ],
};

/** --image-size (≥ 1), or undefined. */
function imageSizeOf(args: Args): number | undefined {
  const size = args.num('image-size');
  if (size !== undefined && size < 1) {
    throw new UsageError(`--image-size must be at least 1, got ${size}`);
  }
  return size;
}

/** The image at `path`; a missing, unreadable or undecodable file is one line with exit 2. */
async function readMapInput(path: string): Promise<RawImage> {
  const st = await stat(path).catch(() => null);
  if (st === null) throw new CliError(`${path}: no such file`, EXIT.usage);
  if (st.isDirectory()) throw new CliError(`${path} is a folder, not an image`, EXIT.usage);
  try {
    return await readImage(path);
  } catch (e) {
    throw new CliError(message(e), EXIT.usage);
  }
}

async function mapCmd(args: Args): Promise<number> {
  const [input, out] = args.parsed.positionals as [string, string];
  const kind = (args.str('control') ?? 'edges') as ControlKind;
  const channels = channelsOption(args);
  const size = imageSizeOf(args);
  if (extname(out).toLowerCase() !== '.png') {
    throw new UsageError(`OUT must name a .png file, got '${out}'`);
  }
  if ((await stat(out).catch(() => null))?.isDirectory() === true) {
    throw new CliError(`${out} is a folder; OUT.png must name a file`, EXIT.usage);
  }
  const img = await readMapInput(input);
  const map = controlMap(kind, img, { channels, size });
  await mkdir(dirname(out), { recursive: true });
  await writeFileAtomic(out, encodePng(map));
  const on = map.data.reduce((n, v) => n + (v > 0 ? 1 : 0), 0);
  const { width: w, height: h } = map;
  console.log(`${out}: the ${kind} condition image of ${input}, ${w}x${h}, ${on} pixels white`);
  return EXIT.ok;
}

export const controlnetCommand = commandGroup({
  name: 'controlnet',
  summary: 'ControlNets: make the condition image of an image file.',
  intro:
    'ControlNets (diffusers ControlNet folders); train them with sumi train --controlnet --base DIR\n' +
    '--control KIND, sample with them with sumi sample --controlnet DIR --control-image FILE.',
  subcommands: { map: defineCommand(controlnetMapSpec, mapCmd) },
});
