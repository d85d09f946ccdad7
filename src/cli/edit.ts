/**
 * `sumi edit`: applications of a trained model to an existing image. Subcommands:
 *   img2img      SDEdit: noise the image to strength·T, sample back (any sampler);
 *   inpaint      repaint where a mask is white: any model by mask blending with RePaint
 *                resampling (--jumps, --resample), or a model trained with --task inpaint;
 *   invert       DDIM inversion to the noise x_T (safetensors), optionally reconstructed;
 *   reconstruct  DDIM sampling from an inverted noise file, under its condition or another;
 *   upscale      SR3 super-resolution with a model trained by `sumi train --task upscale`.
 * img2img, inpaint (by mask blending), invert and reconstruct take a latent model too: the image
 * is encoded by its vae/ and the result decoded.
 * The pipelines are in src/diffusion/editing; docs/editing.md shows and measures them.
 */
import {
  checkResampling,
  checkResamplingSampler,
  createSampler,
  disposeConditioning,
  EditInputError,
  encodeConditions,
  img2img,
  img2imgStartIndex,
  inpaint,
  inpaintWithModel,
  type KnownNoise,
  latentMask,
  modelTaskOf,
  repaintModelCalls,
  repaintSchedule,
} from '../diffusion/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { commandGroup, defineCommand, EXIT, selectBackend } from './common.js';
import {
  asEditInputErrors,
  CONDITION_OPTIONS,
  editCondition,
  editDenoiser,
  editImageShape,
  editInputs,
  editNoise,
  IMAGE_OPTION,
  inpaintingImageShape,
  latentNote,
  loadEditModel,
  MODEL_OPTION,
  readEditImage,
  readEditMask,
  OUT_OPTION,
  posteriorNoise,
  posteriorOption,
  SAMPLING_OPTIONS,
  saveEditResult,
  TAIL_OPTIONS,
  weightsAndTime,
} from './edit-common.js';
import { Progress } from './progress.js';
import { invertCommand, reconstructCommand } from './edit-invert.js';
import { upscaleCommand } from './edit-upscale.js';
import type { Command } from './main.js';

const img2imgSpec: CommandSpec = {
  name: 'edit img2img',
  summary: 'SDEdit: noise an image part of the way (--strength) and sample back from there.',
  usage:
    'sumi edit img2img --model <dir> --image in.png --strength 0.6 [--class K | --prompt TEXT] ' +
    '[--guidance W] [--sampler S] [--steps N] [--seed S] --out out.png',
  notes: [
    'Of the N-step schedule the last ⌊N·strength⌋ steps run, from the image pushed through the ' +
      'forward process to their first timestep (as diffusers). Strength 1 is plain sampling from ' +
      'the seed: the same image as `sumi sample --n 1 --seed S` with the same settings.',
    'A latent model runs on the image encoded by its vae/ (an AutoencoderKL: a posterior sample, ' +
      'as diffusers, or --posterior mean) and decodes the result.',
  ],
  options: [
    MODEL_OPTION,
    IMAGE_OPTION,
    {
      name: 'strength',
      kind: 'number',
      arg: 'S',
      help: 'how much of the schedule runs, in [0, 1] (0: the image, 1: a new sample)',
      default: '0.8',
    },
    ...SAMPLING_OPTIONS,
    ...CONDITION_OPTIONS,
    posteriorOption('sample'),
    OUT_OPTION,
    ...TAIL_OPTIONS,
  ],
};

const inpaintSpec: CommandSpec = {
  name: 'edit inpaint',
  summary: 'Repaint where a mask is white, keeping the rest of the image exactly.',
  usage:
    'sumi edit inpaint --model <dir> --image in.png --mask mask.png [--jumps J --resample R] ' +
    '[--known-noise fresh|fixed] [--class K | --prompt TEXT] [--sampler S] [--steps N] [--seed S] ' +
    '--out out.png',
  notes: [
    "A model trained with 'sumi train --task inpaint' sees the masked image and the mask and " +
      'fills in the rest itself (no mask blending: --jumps, --resample and --known-noise are not ' +
      'its settings).',
    'Any other model: after every step the kept region is the image noised to the new timestep (mask blending). ' +
      'With --resample R > 1 (RePaint), every J-th step from the end goes back up J steps and ' +
      'down again, R − 1 times, which lets the repainted region agree with the kept one; it ' +
      'needs the ddpm or ddim sampler and costs about R times the model calls.',
    'A latent model blends its latents: a latent cell is repainted where any pixel of its block ' +
      'is, and the kept pixels of the decoded image are pasted back from the input ' +
      '(--no-paste-known: the decoded image as it is). Inpainting-trained latent models are not ' +
      'supported.',
  ],
  options: [
    MODEL_OPTION,
    IMAGE_OPTION,
    {
      name: 'mask',
      kind: 'string',
      arg: 'FILE',
      help: 'gray PNG of the image size: white = repaint, black = keep',
    },
    ...SAMPLING_OPTIONS,
    {
      name: 'jumps',
      kind: 'int',
      arg: 'J',
      help: 'RePaint jump length: steps between resampling points and the size of a jump back',
      default: '10',
    },
    {
      name: 'resample',
      kind: 'int',
      arg: 'R',
      help: 'RePaint: passes through each resampling point (1: plain mask blending)',
      default: '1',
    },
    {
      name: 'known-noise',
      kind: 'string',
      choices: ['fresh', 'fixed'],
      help:
        "the ε that noises the kept region at each step: a fresh draw (RePaint's) or x_T's " +
        "throughout (diffusers' inpainting pipelines)",
      default: 'fresh',
    },
    {
      name: 'paste-known',
      kind: 'flag',
      help: "a latent model: the kept pixels of the result are the input's (its vae cannot keep them exactly)",
      default: 'on',
    },
    posteriorOption('sample'),
    ...CONDITION_OPTIONS,
    OUT_OPTION,
    ...TAIL_OPTIONS,
  ],
};

async function img2imgCmd(args: Args): Promise<number> {
  const { out, image: imagePath, s } = editInputs(args, ['image']);
  const strength = args.num('strength') ?? 0.8;
  await asEditInputErrors(() => img2imgStartIndex(s.steps, strength));
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, ['generate'], { latent: true });
  const posterior = posteriorNoise(p, args, s.seed, 'sample');
  const image = await readEditImage(p, imagePath);
  const value = editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') });
  const scheduler = createSampler(s.sampler, p.schedulerConfig, { karras: s.karras });
  const from = img2imgStartIndex(s.steps, strength, scheduler.order);
  const t0 = performance.now();
  const progress = new Progress(quiet);
  const { model, dispose } = await asEditInputErrors(() => editDenoiser(p, value, s.guidance));
  let edited;
  try {
    edited = img2img(model, scheduler, image, {
      strength,
      numInferenceSteps: s.steps,
      noise: editNoise(p, s.seed),
      stepOptions: s.eta !== undefined ? { eta: s.eta } : {},
      guidanceScale: s.guidance,
      onStep: (info) =>
        progress.update('img2img', info.i - from + 1, scheduler.timesteps.length - from),
      vae: p.vae,
      ...(posterior !== undefined ? { posteriorNoise: posterior } : {}),
    });
  } finally {
    dispose();
    image.dispose();
  }
  await saveEditResult(out, edited, progress);
  if (!quiet && strength === 0) {
    console.log(`${out}: ${imagePath} at strength 0: the image itself (no step runs)`);
  } else if (!quiet) {
    const ran = scheduler.timesteps.length - from;
    console.log(
      `${out}: ${imagePath} at strength ${strength}: ${ran} of ${scheduler.timesteps.length} ${s.sampler} ` +
        `steps from t = ${scheduler.timesteps[from]}, seed ${s.seed}${latentNote(p, posterior)}, ` +
        weightsAndTime(p, backend, t0),
    );
  }
  return EXIT.ok;
}

async function inpaintCmd(args: Args): Promise<number> {
  const { out, image: imagePath, mask: maskPath, s } = editInputs(args, ['image', 'mask']);
  const resample = args.num('resample') ?? 1;
  const jumps = args.num('jumps') ?? 10;
  const knownNoise = (args.str('known-noise') ?? 'fresh') as KnownNoise;
  if (args.has('jumps') && resample === 1) {
    throw new UsageError('--jumps sets RePaint resampling: give --resample R (R > 1) with it');
  }
  await asEditInputErrors(() => {
    checkResampling(s.steps, jumps, resample);
    if (resample > 1) checkResamplingSampler(createSampler(s.sampler, {}));
  });
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, ['generate', 'inpaint'], { latent: true });
  const trained = modelTaskOf(p.info) === 'inpaint';
  if (args.has('paste-known') && p.vae === null) {
    throw new EditInputError(
      `--paste-known is for latent models; ${p.layout.root} works on pixels and keeps them exactly`,
    );
  }
  const posterior = posteriorNoise(p, args, s.seed, 'sample');
  if (trained) {
    const blending = ['jumps', 'resample', 'known-noise'].find((o) => args.has(o));
    if (blending !== undefined) {
      throw new UsageError(
        `--${blending} is a setting of mask blending; ${p.layout.root} is an inpainting model, ` +
          'which sees the mask itself',
      );
    }
  }
  const shape = trained ? inpaintingImageShape(p) : editImageShape(p);
  const image = await readEditImage(p, imagePath, shape);
  let mask;
  try {
    mask = await readEditMask(p, maskPath);
  } catch (e) {
    image.dispose();
    throw e;
  }
  const repainted = Array.from(await mask.data()).reduce((a, b) => a + b, 0);
  const f = p.vae?.spec.downsampleFactor ?? 1;
  const cells = p.vae === null ? null : latentMask(mask, f);
  const repaintedCells =
    cells === null ? 0 : Array.from(await cells.data()).reduce((a, b) => a + b, 0);
  cells?.dispose();
  const value = editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') });
  const scheduler = createSampler(s.sampler, p.schedulerConfig, { karras: s.karras });
  const calls = resample > 1 ? repaintModelCalls(repaintSchedule(s.steps, jumps, resample)) : null;
  const t0 = performance.now();
  const progress = new Progress(quiet);
  let done = 0;
  const sampling = {
    numInferenceSteps: s.steps,
    noise: editNoise(p, s.seed, trained ? shape : p.model.sampleShape),
    stepOptions: s.eta !== undefined ? { eta: s.eta } : {},
    guidanceScale: s.guidance,
    onStep: () => progress.update('inpaint', ++done, calls ?? scheduler.timesteps.length),
  };
  let result;
  try {
    if (trained) {
      const { cond, uncond } = await asEditInputErrors(() =>
        encodeConditions(p.condition, { values: [value], guidanceScale: s.guidance }, backend),
      );
      try {
        result = inpaintWithModel(p.model, scheduler, image, {
          ...sampling,
          mask,
          guidance: { cond, uncond, scale: s.guidance },
        });
      } finally {
        disposeConditioning(cond);
        if (uncond !== null) disposeConditioning(uncond);
      }
    } else {
      const { model, dispose } = await asEditInputErrors(() => editDenoiser(p, value, s.guidance));
      try {
        result = inpaint(model, scheduler, image, {
          ...sampling,
          mask,
          jumpLength: jumps,
          resample,
          knownNoise,
          vae: p.vae,
          pasteKnown: args.flag('paste-known') !== false,
          ...(posterior !== undefined ? { posteriorNoise: posterior } : {}),
        });
      } finally {
        dispose();
      }
    }
  } finally {
    image.dispose();
    mask.dispose();
  }
  await saveEditResult(out, result, progress);
  if (!quiet) {
    const [, h, w] = shape;
    console.log(
      `${out}: ${imagePath} repainted where ${maskPath} is white (${repainted} of ${h * w} pixels), ` +
        `${s.sampler} ${s.steps} steps` +
        (trained ? ', inpainting model' : '') +
        (resample > 1
          ? `, RePaint jumps ${jumps} × resample ${resample} (${calls} model calls)`
          : '') +
        (knownNoise === 'fixed' ? ", kept region noised with x_T's ε" : '') +
        (p.vae !== null
          ? `, ${repaintedCells} of ${(h / f) * (w / f)} latent cells repainted (any pixel of ` +
            `their ${f}x${f} block)` +
            (args.flag('paste-known') === false ? '' : ', kept pixels pasted back')
          : '') +
        `, seed ${s.seed}${latentNote(p, posterior)}, ` +
        weightsAndTime(p, backend, t0),
    );
  }
  return EXIT.ok;
}

const subcommands: Record<string, Command> = {
  img2img: defineCommand(img2imgSpec, (a) => asEditInputErrors(() => img2imgCmd(a))),
  inpaint: defineCommand(inpaintSpec, (a) => asEditInputErrors(() => inpaintCmd(a))),
  invert: invertCommand,
  reconstruct: reconstructCommand,
  upscale: upscaleCommand,
};

export const editCommand: Command = commandGroup({
  name: 'edit',
  summary: 'Edit an image: img2img (SDEdit), inpainting (RePaint), DDIM inversion, SR3 upscaling.',
  intro: 'Edit an existing image with a trained model (docs/editing.md):',
  subcommands,
});
