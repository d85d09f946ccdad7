/**
 * `sumi edit upscale`: SR3 super-resolution with a model trained by `sumi train --task upscale`.
 * The image must be exactly the model's size divided by its factor; it is bicubic-upsampled,
 * noised at the model's augmentation level, joined to x_t, and sampled to the model's size.
 */
import {
  checkUpscaleSettings,
  createSampler,
  disposeConditioning,
  EditInputError,
  ImageNoise,
  imageToSample,
  upscale,
} from '../diffusion/index.js';
import { readImage } from '../data/index.js';
import { type Tensor, tensor } from '../engine/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import {
  asEditInputErrors,
  CONDITION_OPTIONS,
  editCondition,
  inputError,
  loadEditModel,
  OUT_OPTION,
  outputPath,
  progressLine,
  requiredFile,
  SAMPLING_OPTIONS,
  samplingSettings,
  TAIL_OPTIONS,
  writeEditPng,
} from './edit-common.js';

const upscaleSpec: CommandSpec = {
  name: 'edit upscale',
  summary: "SR3 super-resolution: an image at 1/factor of an upscaler's size, brought up to it.",
  usage:
    'sumi edit upscale --model <dir> --image small.png [--sampler S] [--steps N] [--seed S] ' +
    '[--class K | --prompt TEXT] --out out.png',
  notes: [
    "The model is one trained with 'sumi train --task upscale --factor F'; its sumi.json holds F " +
      'and the noise augmentation σ_a, which sampling uses as training did. The image is its ' +
      'size / F (a 28x28 upscaler ×2 takes 14x14), gray or RGB as the model.',
  ],
  options: [
    {
      name: 'model',
      kind: 'string',
      arg: 'DIR',
      help: "an upscaler trained with 'sumi train --task upscale'",
    },
    {
      name: 'image',
      kind: 'string',
      arg: 'FILE',
      help: "PNG or JPEG of the model's size / factor",
    },
    ...SAMPLING_OPTIONS,
    ...CONDITION_OPTIONS,
    OUT_OPTION,
    ...TAIL_OPTIONS,
  ],
};

async function upscaleCmd(args: Args): Promise<number> {
  const out = outputPath(args, 'out', ['.png']);
  const imagePath = requiredFile(args, 'image');
  const s = samplingSettings(args);
  if (s.guidance !== 1) {
    throw new UsageError(`--guidance ${s.guidance}: an upscaler samples without guidance`);
  }
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, { upscaler: true });
  const settings = p.info!.upscale!;
  checkUpscaleSettings(settings);
  const [inCh, H, W] = p.model.sampleShape;
  const c = p.info?.channels ?? inCh / 2;
  if (inCh !== 2 * c) {
    throw new EditInputError(
      `${p.layout.root}: the model takes ${inCh} input channels; an upscaler of ${c}-channel ` +
        `images takes ${2 * c}`,
    );
  }
  const f = settings.factor;
  const w = p.model.parameters()[0]!;
  const opts = { dtype: w.dtype, backend: w.backend };
  let low: Tensor;
  try {
    const planes = imageToSample(await readImage(imagePath), [c, H / f, W / f], imagePath);
    low = tensor(planes, [1, c, H / f, W / f], opts);
  } catch (e) {
    return inputError(e);
  }
  const value = editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') });
  const cond = p.condition.encode([value], w.backend);
  const scheduler = createSampler(s.sampler, p.schedulerConfig, { karras: s.karras });
  const noise = new ImageNoise(s.seed, 0, 1, [c, H, W], {
    backend: w.backend,
    dtype: w.dtype === 'float64' ? 'float64' : 'float32',
  });
  const t0 = performance.now();
  const progress = progressLine(quiet, 'upscale');
  let high: Tensor;
  try {
    high = upscale(p.model, scheduler, low, {
      ...settings,
      numInferenceSteps: s.steps,
      noise: () => noise.next(),
      stepOptions: s.eta !== undefined ? { eta: s.eta } : {},
      cond,
      onStep: (info) => progress.tick(info.i + 1, scheduler.timesteps.length),
    });
  } finally {
    low.dispose();
    disposeConditioning(cond);
  }
  progress.clear();
  try {
    await writeEditPng(out, high);
  } finally {
    high.dispose();
  }
  if (!quiet) {
    console.log(
      `${out}: ${imagePath} (${W / f}x${H / f}) upscaled ×${f} to ${W}x${H}, ${s.sampler} ` +
        `${s.steps} steps, σ_a ${settings.noiseAugmentation}, seed ${s.seed}, ` +
        `${p.weights === 'ema' ? 'EMA' : 'model'} weights of ${p.layout.root}, on ${backend.name} ` +
        `in ${formatDuration((performance.now() - t0) / 1000)}`,
    );
  }
  return EXIT.ok;
}

export const upscaleCommand = defineCommand(upscaleSpec, (a) =>
  asEditInputErrors(() => upscaleCmd(a)),
);
