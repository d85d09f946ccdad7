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
  upscale,
} from '../diffusion/index.js';
import type { Tensor } from '../engine/index.js';
import type { Args, CommandSpec } from './args.js';
import { defineCommand, EXIT, selectBackend } from './common.js';
import {
  asEditInputErrors,
  CLASS_PROMPT_OPTIONS,
  editCondition,
  editInputs,
  editNoise,
  loadEditModel,
  OUT_OPTION,
  readEditImage,
  SAMPLING_OPTIONS,
  saveEditResult,
  TAIL_OPTIONS,
  weightsAndTime,
} from './edit-common.js';
import { Progress } from './progress.js';

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
    ...CLASS_PROMPT_OPTIONS,
    OUT_OPTION,
    ...TAIL_OPTIONS,
  ],
};

async function upscaleCmd(args: Args): Promise<number> {
  // An upscaler samples without guidance: there is no --guidance, so w is 1.
  const { out, image: imagePath, s } = editInputs(args, ['image']);
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, ['upscale']);
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
  const low = await readEditImage(p, imagePath, [c, H / f, W / f]);
  const value = editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') });
  const cond = p.condition.encode([value], low.backend);
  const scheduler = createSampler(s.sampler, p.schedulerConfig, { karras: s.karras });
  const t0 = performance.now();
  const progress = new Progress(quiet);
  let high: Tensor;
  try {
    high = upscale(p.model, scheduler, low, {
      ...settings,
      numInferenceSteps: s.steps,
      noise: editNoise(p, s.seed, [c, H, W]),
      stepOptions: s.eta !== undefined ? { eta: s.eta } : {},
      cond,
      onStep: (info) => progress.update('upscale', info.i + 1, scheduler.timesteps.length),
    });
  } finally {
    low.dispose();
    disposeConditioning(cond);
  }
  await saveEditResult(out, high, progress);
  if (!quiet) {
    console.log(
      `${out}: ${imagePath} (${W / f}x${H / f}) upscaled ×${f} to ${W}x${H}, ${s.sampler} ` +
        `${s.steps} steps, σ_a ${settings.noiseAugmentation}, seed ${s.seed}, ` +
        weightsAndTime(p, backend, t0),
    );
  }
  return EXIT.ok;
}

export const upscaleCommand = defineCommand(upscaleSpec, (a) =>
  asEditInputErrors(() => upscaleCmd(a)),
);
