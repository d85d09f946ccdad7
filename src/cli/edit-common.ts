/**
 * What the `sumi edit` subcommands share: their common options, the model and its one condition,
 * the input image (and mask) checked against the model (against its vae's image size on a latent
 * model), the image's noise (and its latents' posterior noise), and writing the result. Input errors (image, mask, ranges) exit 2 with one line; nothing is written before the
 * run has finished.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, extname } from 'node:path';

import {
  checkSamplingSettings,
  ConditionError,
  conditionedModel,
  type ConditionValue,
  createSampler,
  type DenoiseModel,
  EditInputError,
  ImageNoise,
  imageToSample,
  inpaintingChannels,
  type LoadedPipeline,
  loadPipeline,
  MAX_GUIDANCE_SCALE,
  maskFromImage,
  type ModelTask,
  SamplingOptionError,
  streamSeed,
} from '../diffusion/index.js';
import { encodePng, planesToImage, readImage } from '../data/index.js';
import { type Backend, type Tensor, tensor } from '../engine/index.js';
import { writeFileAtomic } from '../nn/models/index.js';
import { type Args, CliError, type OptionSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  checkSamplerName,
  EXIT,
  formatDuration,
  samplerOptions,
  SEED_OPTION,
} from './common.js';
import type { Progress } from './progress.js';
import { classChoice } from './sample.js';

export const MODEL_OPTION: OptionSpec = {
  name: 'model',
  kind: 'string',
  arg: 'DIR',
  help:
    "a 'sumi train' output or checkpoint (a latent one too), or a diffusers DDPMPipeline / " +
    'UNet2DModel folder',
};

export const IMAGE_OPTION: OptionSpec = {
  name: 'image',
  kind: 'string',
  arg: 'FILE',
  help: "PNG or JPEG of exactly the model's size and channels (gray for 1, RGB for 3)",
};

/** --class / --prompt. */
export const CLASS_PROMPT_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'class',
    kind: 'string',
    arg: 'K',
    help: 'the class, by id or name (class-conditional models; default: the null class ∅)',
  },
  {
    name: 'prompt',
    kind: 'string',
    arg: 'TEXT',
    help: 'the prompt (text-conditioned models; default: the empty prompt ∅)',
  },
];

/** --class / --prompt / --guidance. */
export const CONDITION_OPTIONS: readonly OptionSpec[] = [
  ...CLASS_PROMPT_OPTIONS,
  {
    name: 'guidance',
    kind: 'number',
    arg: 'W',
    help: `classifier-free guidance scale w, 0 to ${MAX_GUIDANCE_SCALE} (models trained with condition dropout)`,
    default: '1',
  },
];

export const TAIL_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'weights',
    kind: 'string',
    arg: 'W',
    choices: ['auto', 'ema', 'model'],
    help: 'auto (EMA when the checkpoint has it), ema, or model',
    default: 'auto',
  },
  BACKEND_OPTION,
  { name: 'quiet', kind: 'flag', help: 'print nothing but errors' },
];

/** An input error as the CLI reports it: one line, exit 2. */
export function inputError(e: unknown): never {
  throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage);
}

/** Runs `fn`, reporting EditInputErrors and ConditionErrors as input errors (exit 2). */
export async function asEditInputErrors<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof EditInputError || e instanceof ConditionError) inputError(e);
    throw e;
  }
}

/** --NAME FILE, required, ending in one of `exts`. */
export function outputPath(args: Args, name: string, exts: readonly string[]): string {
  const path = args.str(name);
  if (path === undefined) throw new UsageError(`--${name} FILE is required`);
  if (!exts.includes(extname(path).toLowerCase())) {
    throw new UsageError(`--${name} must name a ${exts.join(' or ')} file, got '${path}'`);
  }
  return path;
}

/** --steps (≥ 1). */
export function stepsOf(args: Args, fallback: number): number {
  const steps = args.num('steps') ?? fallback;
  if (steps < 1) throw new UsageError(`--steps must be at least 1, got ${steps}`);
  return steps;
}

/** --sampler, checked against the registry. */
export function samplerOf(args: Args): string {
  return checkSamplerName(args.str('sampler') ?? 'ddim');
}

/** --guidance in [0, MAX_GUIDANCE_SCALE]. */
export function guidanceOf(args: Args): number {
  const w = args.num('guidance') ?? 1;
  if (!(w >= 0 && w <= MAX_GUIDANCE_SCALE)) {
    throw new UsageError(`--guidance must be from 0 to ${MAX_GUIDANCE_SCALE}, got ${w}`);
  }
  return w;
}

/** --sampler, --steps, --karras, --eta, --seed. */
export const SAMPLING_OPTIONS: readonly OptionSpec[] = [
  ...samplerOptions('ddim', { help: 'sampler steps of the whole schedule', default: '50' }),
  SEED_OPTION,
];

/** The sampler settings of the subcommands that sample: name, steps, η, guidance, Karras. */
export function samplingSettings(args: Args): {
  sampler: string;
  steps: number;
  eta: number | undefined;
  guidance: number;
  karras: boolean;
  seed: number;
} {
  const sampler = samplerOf(args);
  const steps = stepsOf(args, 50);
  const eta = args.num('eta');
  const guidance = guidanceOf(args);
  const karras = args.flag('karras') === true;
  try {
    checkSamplingSettings(sampler, { eta, guidanceScale: guidance });
  } catch (e) {
    if (!(e instanceof SamplingOptionError)) throw e;
    throw new UsageError(`--${e.option === 'eta' ? 'eta' : 'guidance'}: ${e.message}`);
  }
  try {
    createSampler(sampler, {}, { karras });
  } catch (e) {
    throw new UsageError(`--karras: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { sampler, steps, eta, guidance, karras, seed: args.num('seed') ?? 0 };
}

export const OUT_OPTION: OptionSpec = {
  name: 'out',
  kind: 'string',
  arg: 'FILE',
  help: 'the edited image (PNG)',
};

/** --NAME FILE, required. */
export function requiredFile(args: Args, name: string): string {
  const v = args.str(name);
  if (v === undefined) throw new UsageError(`--${name} FILE is required`);
  return v;
}

/**
 * What the image-to-image subcommands read first, in this order: --out (a PNG), the input files
 * named `names` (each required, under its name), and the sampler settings `s`.
 */
export function editInputs<const N extends string>(
  args: Args,
  names: readonly N[],
): Record<N, string> & { out: string; s: ReturnType<typeof samplingSettings> } {
  const out = outputPath(args, 'out', ['.png']);
  const files = Object.fromEntries(names.map((name) => [name, requiredFile(args, name)]));
  return { ...(files as Record<N, string>), out, s: samplingSettings(args) };
}

/**
 * The model of --model, refused unless its task is one of `tasks` (default: generate); a latent
 * model (vae/) is loaded with its autoencoder when the subcommand takes one (`latent`), else
 * refused.
 */
export async function loadEditModel(
  args: Args,
  tasks: readonly ModelTask[] = ['generate'],
  opts: { latent?: boolean } = {},
): Promise<LoadedPipeline> {
  const dir = args.str('model');
  if (dir === undefined) throw new UsageError('--model <dir> is required');
  const weights = (args.str('weights') ?? 'auto') as 'auto' | 'ema' | 'model';
  return loadPipeline(dir, { weights, tasks, latent: opts.latent === true });
}

/** [C, H, W] of the images the model edits: its sample shape, or its vae's images of it. */
export function editImageShape(p: LoadedPipeline): readonly [number, number, number] {
  return p.vae !== null ? p.vae.imageShape(p.model.sampleShape) : p.model.sampleShape;
}

/** --posterior (img2img, inpaint, invert of a latent model). */
export function posteriorOption(fallback: 'mean' | 'sample'): OptionSpec {
  return {
    name: 'posterior',
    kind: 'string',
    choices: ['mean', 'sample'],
    help:
      "a latent model with an AutoencoderKL: encode the image as its posterior's mean, or a " +
      "sample of it (ε from stream (seed, 'latent'))",
    default: fallback,
  };
}

/**
 * The ε source of the latents' posterior sample (--posterior sample): image 0 of the stream
 * (seed, 'latent') at the latents' shape, apart from the seed's sampling noise; undefined for the
 * mean. --posterior is refused for a pixel model and for a VQModel, which has no posterior.
 */
export function posteriorNoise(
  p: LoadedPipeline,
  args: Args,
  seed: number,
  fallback: 'mean' | 'sample',
): (() => Tensor) | undefined {
  if (p.vae === null || p.vae.spec.kind !== 'kl') {
    if (args.has('posterior')) {
      throw new EditInputError(
        `--posterior: ${p.layout.root} ${p.vae === null ? 'is a pixel model' : 'has a VQModel, which has no posterior'}; ` +
          'it is for a latent model with an AutoencoderKL',
      );
    }
    return undefined;
  }
  if ((args.str('posterior') ?? fallback) === 'mean') return undefined;
  return editNoise(p, streamSeed(seed, 'latent'));
}

/**
 * [C, H, W] of an inpainting model's images: x_t's channels C of its 2C + 1 input channels (x_t,
 * the masked image, the mask).
 */
export function inpaintingImageShape(p: LoadedPipeline): [number, number, number] {
  const [inCh, h, w] = p.model.sampleShape;
  const c = p.info?.channels ?? (inCh - 1) / 2;
  if (inpaintingChannels(c) !== inCh) {
    throw new EditInputError(
      `${p.layout.root}: the model takes ${inCh} input channels; an inpainting model of ` +
        `${c}-channel images takes ${inpaintingChannels(c)} (x_t, the masked image, the mask)`,
    );
  }
  return [c, h, w];
}

/**
 * The image's condition from --class / --prompt (given: from `fallback`, e.g. an inversion's):
 * a class id, a prompt, or null (∅, which an unguided conditional model needs a null condition
 * for).
 */
export function editCondition(
  p: LoadedPipeline,
  opts: { cls?: string; prompt?: string },
): ConditionValue {
  const kind = p.condition.kind;
  const { cls, prompt } = opts;
  if (cls !== undefined && kind !== 'class') {
    throw new UsageError(
      kind === 'text'
        ? '--class: the model is text-conditioned; use --prompt "..."'
        : `--class ${cls}: the model is unconditional; it takes no class`,
    );
  }
  if (prompt !== undefined && kind !== 'text') {
    throw new UsageError(
      kind === 'class'
        ? '--prompt: the model is class-conditional, not text-conditioned; use --class'
        : '--prompt: the model is unconditional; it takes no prompt',
    );
  }
  if (kind === 'class' && cls !== undefined) {
    const k = p.info?.numClasses ?? null;
    if (k === null) {
      throw new CliError('the model is class-conditional but its number of classes is unknown');
    }
    return classChoice(cls, 1, k, p.info?.classNames).labels[0]!;
  }
  if (kind === 'text' && prompt !== undefined) return prompt;
  if (kind !== 'none' && !p.condition.hasNull) {
    throw new UsageError(
      `the model is ${kind === 'class' ? 'class-conditional: give --class K' : 'text-conditioned: give --prompt "..."'} ` +
        '(it was trained without a null condition)',
    );
  }
  return null;
}

/**
 * The sampler callback of one image under `value` with guidance w, and a function that frees
 * its conditioning.
 */
export function editDenoiser(
  p: LoadedPipeline,
  value: ConditionValue,
  guidance: number,
): { model: DenoiseModel; dispose: () => void } {
  return conditionedModel(p.model, p.condition, [value], guidance);
}

function modelTensor(p: LoadedPipeline, values: Float32Array, shape: readonly number[]): Tensor {
  const w = p.model.parameters()[0]!;
  return tensor(values, shape, { dtype: w.dtype, backend: w.backend });
}

/**
 * The image of --image as [1, C, H, W] in [−1, 1], checked against `shape` [C, H, W] (default:
 * the images the model edits, `editImageShape`).
 */
export async function readEditImage(
  p: LoadedPipeline,
  path: string,
  shape: readonly [number, number, number] = editImageShape(p),
): Promise<Tensor> {
  try {
    return modelTensor(p, imageToSample(await readImage(path), shape, path), [1, ...shape]);
  } catch (e) {
    return inputError(e);
  }
}

/** The mask of --mask as [1, 1, H, W] (1: repaint), checked against the images' size. */
export async function readEditMask(p: LoadedPipeline, path: string): Promise<Tensor> {
  const [, h, w] = editImageShape(p);
  try {
    return modelTensor(p, maskFromImage(await readImage(path), [h, w], path), [1, 1, h, w]);
  } catch (e) {
    return inputError(e);
  }
}

/**
 * The Gaussian draws of image 0 of `seed` (as `sumi sample` draws them) of `shape` [C, H, W]
 * (default: the model's sample shape).
 */
export function editNoise(
  p: LoadedPipeline,
  seed: number,
  shape: readonly [number, number, number] = p.model.sampleShape,
): () => Tensor {
  const w = p.model.parameters()[0]!;
  const noise = new ImageNoise(seed, 0, 1, shape, {
    backend: w.backend,
    dtype: w.dtype === 'float64' ? 'float64' : 'float32',
  });
  return () => noise.next();
}

/** Writes x [1, C, H, W] in [−1, 1] as a PNG, atomically. */
export async function writeEditPng(path: string, x: Tensor): Promise<void> {
  const [, c, h, w] = x.shape as [number, number, number, number];
  const values = await x.data();
  if (c !== 1 && c !== 3) throw new CliError(`cannot write a ${c}-channel image as PNG`);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, encodePng(planesToImage(values, c, h, w, [-1, 1])));
}

/** The end of an edit: clears the progress line, writes `x` as the PNG `path` and frees it. */
export async function saveEditResult(path: string, x: Tensor, progress: Progress): Promise<void> {
  progress.clear();
  try {
    await writeEditPng(path, x);
  } finally {
    x.dispose();
  }
}

/** `EMA weights of <model>, on cpu in 1.2s`: what an edit ran with, and how long since `t0`. */
export function weightsAndTime(p: LoadedPipeline, backend: Backend, t0: number): string {
  return (
    `${p.weights === 'ema' ? 'EMA' : 'model'} weights of ${p.layout.root}, on ${backend.name} ` +
    `in ${formatDuration((performance.now() - t0) / 1000)}`
  );
}

/** `, through its AutoencoderKL (posterior sample)` of a latent model; '' of a pixel one. */
export function latentNote(p: LoadedPipeline, posterior: (() => Tensor) | undefined): string {
  if (p.vae === null) return '';
  const how =
    p.vae.spec.kind !== 'kl'
      ? ''
      : posterior !== undefined
        ? ' (posterior sample)'
        : ' (posterior mean)';
  return `, through its ${p.vae.spec.vaeClass}${how}`;
}
