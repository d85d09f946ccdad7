/**
 * A ControlNet on the command line: `--controlnet DIR --control-image FILE [--control-scale S]`
 * for `sumi sample`. The ControlNet must fit the model (its config is the one it would have as a
 * copy of the model's encoder), and the condition image must be the size the ControlNet takes.
 */
import { readImage } from '../data/index.js';
import { tensor } from '../engine/index.js';
import {
  ControlledDenoiser,
  controlNetMismatch,
  type Denoiser,
  loadControlNet,
  UNet2DConditionModel,
  UNet2DModel,
} from '../nn/models/index.js';
import { type Args, CliError, type OptionSpec, UsageError } from './args.js';
import { EXIT } from './common.js';

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
    help: 'the ControlNet condition image (PNG/JPEG; an edge map for an edge ControlNet), used for every sample',
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
  let cn;
  try {
    cn = await loadControlNet(dir);
  } catch (e) {
    throw new CliError(
      `--controlnet ${dir}: ${e instanceof Error ? e.message : String(e)}`,
      EXIT.usage,
    );
  }
  const bad = controlNetMismatch(cn, model);
  if (bad.length > 0) {
    throw new CliError(
      `--controlnet ${dir} does not fit the ${model.className}: ${bad.join('; ')}`,
      EXIT.usage,
    );
  }
  let img;
  try {
    img = await readImage(file);
  } catch (e) {
    throw new CliError(
      `--control-image: ${e instanceof Error ? e.message : String(e)}`,
      EXIT.usage,
    );
  }
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
