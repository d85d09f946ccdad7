/** `sumi sample`: images from a trained model, as a PNG grid, optionally with the trajectory. */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';

import { concat, keep, slice, type Tensor, tidy } from '../engine/index.js';
import {
  checkClassifierFits,
  classifierGuidance,
  classifierScheduleMismatch,
  ConditionError,
  type DenoiseModel,
  type LoadedClassifier,
  loadClassifier,
  type ConditionValue,
  checkSamplingSettings,
  createSampler,
  DEFAULT_BATCH_SIZE,
  generateBatches,
  type LoadedPipeline,
  loadPipeline,
  MAX_GUIDANCE_SCALE,
  predictionTypeOf,
  SamplingOptionError,
  type SamplingSettings,
  stepX0,
} from '../diffusion/index.js';
import { gridFromValues, type RawImage, savePng, saveGif } from '../data/index.js';
import { checkEmptyOrAbsent, SampleFolderWriter } from '../eval/index.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  checkSamplerName,
  defineCommand,
  EXIT,
  formatDuration,
  REPLICAS_OPTION,
  samplerOptions,
  SEED_OPTION,
  selectBackend,
  weightsChoice,
  weightsOption,
  withTasks,
} from './common.js';
import { Progress } from './progress.js';
import { CONTROLNET_OPTIONS, withControlNet } from './controlnet.js';
import { applyLoras, describeLoras, LORA_OPTION, loraSpecs } from './lora.js';
import { sampleTextCommand } from './sample-text.js';

export const sampleSpec: CommandSpec = {
  name: 'sample',
  summary: 'Generate images from a trained model and write them as a PNG grid.',
  usage:
    'sumi sample --model <dir> [--sampler S] [--steps N] [--n 64] [--seed S] [--out grid.png] [options]',
  options: [
    {
      name: 'model',
      kind: 'string',
      arg: 'DIR',
      help: "a 'sumi train' output or checkpoint, or a diffusers DDPMPipeline / UNet2DModel folder",
    },
    ...samplerOptions('ddim', { help: 'sampler steps', default: '50' }),
    { name: 'n', kind: 'int', help: 'number of images', default: '64' },
    {
      name: 'batch-size',
      kind: 'int',
      arg: 'B',
      help: 'images generated at once (memory grows with B, not with --n; image k of a seed is the same for any B)',
      default: String(DEFAULT_BATCH_SIZE),
    },
    REPLICAS_OPTION,
    { name: 'nrow', kind: 'int', help: 'images per grid row', default: '√n' },
    {
      name: 'scale',
      kind: 'int',
      help: 'draw each pixel as an N×N block in the grid',
      default: '1',
    },
    SEED_OPTION,
    { name: 'out', kind: 'string', arg: 'FILE', help: 'PNG grid to write', default: 'samples.png' },
    {
      name: 'out-dir',
      kind: 'string',
      arg: 'DIR',
      help: 'also (or, without --out, only) write each image as a PNG with labels.json (seed, class or prompt per image), for external scorers',
    },
    {
      name: 'trajectory',
      kind: 'string',
      arg: 'FILE',
      help: 'also write x_t and predicted x0 over the steps: .gif (animation) or .png (strip)',
    },
    {
      name: 'class',
      kind: 'string',
      arg: 'K',
      help:
        'class of every image, by id or name, or "all" for one row of --n images per class ' +
        '(class-conditional models, and with --classifier; default: cycle through the classes)',
    },
    {
      name: 'prompt',
      kind: 'string',
      arg: 'TEXT',
      help: 'the prompt of every image (text-conditioned models)',
    },
    {
      name: 'prompt-file',
      kind: 'string',
      arg: 'FILE',
      help: 'one prompt per line: a row of --n images per prompt (text-conditioned models)',
    },
    {
      name: 'negative-prompt',
      kind: 'string',
      arg: 'TEXT',
      help: 'what guidance steers away from, instead of the empty prompt (text models, --guidance)',
    },
    {
      name: 'guidance',
      kind: 'number',
      arg: 'W',
      help: `classifier-free guidance scale w, 0 to ${MAX_GUIDANCE_SCALE}: ε_∅ + w (ε_c − ε_∅) (models trained with condition dropout)`,
      default: '1',
    },
    {
      name: 'guidance-rescale',
      kind: 'number',
      arg: 'φ',
      help: 'guidance rescale (Lin et al. 2023), 0 to 1',
      default: '0',
    },
    {
      name: 'classifier',
      kind: 'string',
      arg: 'DIR',
      help:
        "classifier guidance: a noise-aware classifier ('sumi train-classifier') steers every " +
        'image towards --class (any model, any sampler)',
    },
    {
      name: 'classifier-scale',
      kind: 'number',
      arg: 'S',
      help: 'classifier guidance scale s: ε̂ − s √(1−ᾱ_t) ∇ log p(y | x_t)',
      default: '1',
    },
    weightsOption(),
    LORA_OPTION,
    ...CONTROLNET_OPTIONS,
    BACKEND_OPTION,
    { name: 'quiet', kind: 'flag', help: 'print nothing but errors' },
  ],
};

/** Two images side by side with `gap` pixels of `fill` between them (same height and channels). */
export function sideBySide(a: RawImage, b: RawImage, gap = 4, fill = 255): RawImage {
  const c = a.channels;
  const width = a.width + gap + b.width;
  const height = Math.max(a.height, b.height);
  const data = new Uint8Array(width * height * c).fill(fill);
  for (const [img, left] of [
    [a, 0],
    [b, a.width + gap],
  ] as const) {
    for (let y = 0; y < img.height; y++) {
      data.set(
        img.data.subarray(y * img.width * c, (y + 1) * img.width * c),
        (y * width + left) * c,
      );
    }
  }
  return { width, height, channels: c, data };
}

/** x_t and x̂_0 per sampler step: the slices of the batches holding the first images. */
interface Frames {
  xt: Tensor[][];
  x0: Tensor[][];
}

/** One tensor per step: the batches' slices joined (the slices are left to `disposeFrames`). */
function joinFrames(frames: Frames): { xt: Tensor[]; x0: Tensor[] } {
  const join = (parts: Tensor[][]): Tensor[] =>
    parts.map((p) => (p.length === 1 ? p[0]! : keep(tidy(() => concat(p, 0)))));
  return { xt: join(frames.xt), x0: join(frames.x0) };
}

function disposeFrames(frames: Frames): void {
  for (const t of [...frames.xt, ...frames.x0].flat()) if (!t.isDisposed) t.dispose();
  frames.xt.length = 0;
  frames.x0.length = 0;
}

/** Indices of at most `k` columns spread over `n` steps, the last included. */
function pickColumns(n: number, k: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: k }, (_, i) => Math.round((i * (n - 1)) / (k - 1)));
}

async function writeTrajectory(
  path: string,
  frames: { xt: Tensor[]; x0: Tensor[] },
  shape: readonly number[],
): Promise<void> {
  const [k, c, h, w] = shape as [number, number, number, number];
  const read = async (ts: Tensor[]): Promise<Float32Array[]> =>
    Promise.all(ts.map(async (t) => Float32Array.from(await t.data())));
  const xt = await read(frames.xt);
  const x0 = await read(frames.x0);
  if (extname(path).toLowerCase() === '.gif') {
    const nrow = Math.ceil(Math.sqrt(k));
    const images = xt.map((v, i) =>
      sideBySide(gridFromValues(v, shape, { nrow }), gridFromValues(x0[i]!, shape, { nrow }), 6),
    );
    const delays = images.map((_, i) => (i === images.length - 1 ? 2000 : 80));
    await saveGif(path, images, { delayMs: delays });
    return;
  }
  // Strip: per image two rows (x_t, then x̂_0), one column per chosen step.
  const cols = pickColumns(xt.length, 10);
  const size = c * h * w;
  const values = new Float32Array(2 * k * cols.length * size);
  let at = 0;
  for (let img = 0; img < k; img++) {
    for (const src of [xt, x0]) {
      for (const col of cols) {
        values.set(src[col]!.subarray(img * size, (img + 1) * size), at);
        at += size;
      }
    }
  }
  await savePng(
    path,
    gridFromValues(values, [2 * k * cols.length, c, h, w], { nrow: cols.length }),
  );
}

/** Class ids of the images from --class: one id for all, "all" (n per class), or cycling. */
export function classChoice(
  cls: string | undefined,
  n: number,
  k: number,
  names: readonly string[] | undefined,
): { labels: number[]; nrow: number | undefined } {
  if (cls === 'all') {
    return { labels: Array.from({ length: n * k }, (_, i) => Math.floor(i / n)), nrow: n };
  }
  if (cls === undefined)
    return { labels: Array.from({ length: n }, (_, i) => i % k), nrow: undefined };
  const id = /^\d+$/.test(cls) ? Number(cls) : (names?.indexOf(cls) ?? -1);
  if (!(id >= 0 && id < k)) {
    throw new CliError(
      `--class ${cls}: not one of the classes 0..${k - 1}${names ? ` (${names.join(', ')})` : ''} or "all"`,
    );
  }
  return { labels: Array.from({ length: n }, () => id), nrow: undefined };
}

interface ImageConditions {
  /** What the denoiser is conditioned on, per image. */
  values: ConditionValue[];
  /** The classes classifier guidance steers to, per image (null without --classifier). */
  guideLabels: number[] | null;
  nrow: number | undefined;
}

/** The non-empty lines of --prompt-file (undefined without it). */
async function promptLines(file: string | undefined): Promise<string[] | undefined> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`--prompt-file ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** One condition per image (and classifier labels), from --class / --prompt / --classifier. */
export function imageConditions(
  p: LoadedPipeline,
  n: number,
  opts: {
    cls?: string;
    prompt?: string;
    /** One row of n images per prompt (--prompt-file). */
    prompts?: readonly string[];
    classifier?: LoadedClassifier | null;
  },
): ImageConditions {
  const kind = p.condition.kind;
  const { cls, prompt, prompts } = opts;
  if (prompts !== undefined) {
    if (prompt !== undefined) throw new UsageError('give --prompt or --prompt-file, not both');
    if (kind !== 'text') {
      throw new CliError('--prompt-file: the model is not text-conditioned; it takes no prompt');
    }
    if (prompts.length === 0) throw new CliError('--prompt-file: no prompts (no non-empty line)');
    if (cls !== undefined || (opts.classifier ?? null) !== null) {
      throw new UsageError('--prompt-file makes its own rows: drop --class and --classifier');
    }
    return {
      values: prompts.flatMap((q) => Array.from({ length: n }, () => q)),
      guideLabels: null,
      nrow: n,
    };
  }
  const guide = opts.classifier ?? null;
  if (prompt !== undefined && kind !== 'text') {
    throw new CliError(
      kind === 'class'
        ? '--prompt: the model is class-conditional, not text-conditioned; use --class'
        : '--prompt: the model is unconditional; it takes no prompt',
    );
  }
  if (kind === 'class') {
    const k = p.info?.numClasses ?? null;
    if (k === null)
      throw new CliError('the model is class-conditional but its number of classes is unknown');
    if (guide !== null && guide.classifier.numClasses !== k) {
      throw new CliError(`--classifier has ${guide.classifier.numClasses} classes, the model ${k}`);
    }
    const { labels, nrow } = classChoice(cls, n, k, p.info?.classNames);
    return { values: labels, guideLabels: guide !== null ? labels : null, nrow };
  }
  let guided: { labels: number[]; nrow: number | undefined } | null = null;
  if (guide !== null) {
    const names = guide.info?.classNames;
    guided = classChoice(cls, n, guide.classifier.numClasses, names);
  } else if (cls !== undefined) {
    throw new CliError(
      kind === 'text'
        ? '--class: the model is text-conditioned; use --prompt "..." (or --class with --classifier)'
        : `--class ${cls}: the model is not class-conditional (classifier guidance: add --classifier DIR)`,
    );
  }
  const count = guided?.labels.length ?? n;
  if (kind === 'text') {
    if (prompt === undefined)
      throw new CliError('the model is text-conditioned: give --prompt "..."');
    return {
      values: Array.from({ length: count }, () => prompt),
      guideLabels: guided?.labels ?? null,
      nrow: guided?.nrow,
    };
  }
  return {
    values: Array.from({ length: count }, () => null),
    guideLabels: guided?.labels ?? null,
    nrow: guided?.nrow,
  };
}

/** The option of each sampling setting. */
const SETTING_OPTION: Record<keyof SamplingSettings, string> = {
  eta: 'eta',
  guidanceScale: 'guidance',
  guidanceRescale: 'guidance-rescale',
  batchSize: 'batch-size',
  replicas: 'replicas',
};

async function sampleCmd(args: Args): Promise<number> {
  const dir = args.str('model');
  if (dir === undefined) throw new UsageError('--model <dir> is required');
  const scale = args.num('scale') ?? 1;
  if (scale < 1 || scale > 64) throw new UsageError(`--scale must be from 1 to 64, got ${scale}`);
  const samplerName = checkSamplerName(args.str('sampler') ?? 'ddim');
  const outDir = args.str('out-dir');
  const grid = outDir !== undefined && !args.has('out') ? null : (args.str('out') ?? 'samples.png');
  const out = grid ?? '';
  if (grid !== null && extname(out).toLowerCase() !== '.png')
    throw new UsageError(`--out must name a .png file, got '${out}'`);
  const traj = args.str('trajectory');
  if (traj !== undefined && !['.gif', '.png'].includes(extname(traj).toLowerCase())) {
    throw new UsageError(`--trajectory must name a .gif or .png file, got '${traj}'`);
  }
  const n = args.num('n') ?? 64;
  const steps = args.num('steps') ?? 50;
  if (n < 1) throw new UsageError('--n must be at least 1');
  if (steps < 1) throw new UsageError('--steps must be at least 1');
  const karras = args.flag('karras') === true;
  try {
    createSampler(samplerName, {}, { karras });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const guidance = args.num('guidance') ?? 1;
  const rescale = args.num('guidance-rescale') ?? 0;
  const eta = args.num('eta');
  const batchSize = args.num('batch-size') ?? DEFAULT_BATCH_SIZE;
  const replicas = args.num('replicas');
  try {
    checkSamplingSettings(samplerName, {
      eta,
      guidanceScale: guidance,
      guidanceRescale: rescale,
      batchSize,
      replicas,
    });
  } catch (e) {
    if (e instanceof SamplingOptionError) {
      throw new UsageError(`--${SETTING_OPTION[e.option]} ${e.problem}`);
    }
    throw e;
  }
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const weights = weightsChoice(args);
  const negativePrompt = args.str('negative-prompt');
  if (negativePrompt !== undefined && guidance === 1) {
    throw new UsageError('--negative-prompt acts through guidance: give --guidance W (W > 1)');
  }
  const classifierScale = args.num('classifier-scale') ?? 1;
  const classifierDir = args.str('classifier');
  if (classifierDir === undefined && args.has('classifier-scale')) {
    throw new UsageError('--classifier-scale needs --classifier DIR');
  }
  if (outDir !== undefined) {
    try {
      await checkEmptyOrAbsent(outDir);
    } catch (e) {
      throw new CliError(e instanceof Error ? e.message : String(e));
    }
  }
  const loraList = loraSpecs(args);
  const p = await loadPipeline(dir, { weights, latent: true });
  const vae = p.vae;
  if (vae !== null && classifierDir !== undefined) {
    throw new CliError(
      `--classifier: ${p.layout.root} is a latent model; classifier guidance needs a pixel model`,
    );
  }
  const loras = await applyLoras(p.model, loraList);
  const model = await withControlNet(p.model, args);
  const scheduler = createSampler(samplerName, p.schedulerConfig, { karras });
  const guide = classifierDir === undefined ? null : await loadClassifier(classifierDir);
  if (guide !== null) {
    try {
      checkClassifierFits(guide.classifier, p.model.sampleShape);
    } catch (e) {
      throw new CliError(
        `--classifier ${classifierDir}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const mismatch = classifierScheduleMismatch(guide, scheduler.alphasCumprod);
    if (mismatch !== null) throw new CliError(`--classifier ${classifierDir}: ${mismatch}`);
  }
  const {
    values,
    guideLabels,
    nrow: rowLength,
  } = imageConditions(p, n, {
    cls: args.str('class'),
    prompt: args.str('prompt'),
    prompts: await promptLines(args.str('prompt-file')),
    classifier: guide,
  });
  const total = values.length;
  const seed = args.num('seed') ?? 0;
  const predictionType = predictionTypeOf(p.schedulerConfig);
  // A latent model's samples are decoded to images of the vae's shape.
  const [c, h, w] = vae !== null ? vae.imageShape(p.model.sampleShape) : p.model.sampleShape;
  const size = c * h * w;
  const frame = (t: Tensor, upto: number): Tensor =>
    keep(tidy(() => (vae !== null ? vae.decode(slice(t, [0], [upto])) : slice(t, [0], [upto]))));
  // Only the finished images (C·H·W floats each) grow with --n; a batch is freed once read.
  const pixels = grid !== null ? new Float32Array(total * size) : null;
  const classes = guideLabels ?? values.map((v) => (typeof v === 'number' ? v : null));
  let folder: SampleFolderWriter | null = null;
  // Trajectory frames of the first k images, one list of batch slices per step.
  const frames: Frames = { xt: [], x0: [] };
  const k = Math.min(total, traj !== undefined && extname(traj).toLowerCase() === '.png' ? 8 : 16);
  const progress = new Progress(quiet);
  const t0 = performance.now();
  try {
    await generateBatches(model, scheduler, {
      seed,
      numInferenceSteps: steps,
      batchSize,
      ...(replicas !== undefined ? { replicas } : {}),
      eta,
      condition: p.condition,
      request: {
        values,
        negative: negativePrompt === undefined ? null : values.map(() => negativePrompt),
        guidanceScale: guidance,
      },
      guidanceRescale: rescale,
      ...(vae !== null ? { decode: (z: Tensor) => vae.decode(z) } : {}),
      ...(guide !== null && guideLabels !== null
        ? {
            wrap: (denoise: DenoiseModel, batch) =>
              classifierGuidance(denoise, {
                classifier: guide.classifier,
                labels: guideLabels.slice(batch.start, batch.start + batch.size),
                scale: classifierScale,
                alphasCumprod: scheduler.alphasCumprod,
                predictionType,
              }),
          }
        : {}),
      onStep: (info, batch) => {
        if (traj !== undefined && batch.start < k) {
          const upto = Math.min(batch.size, k - batch.start);
          (frames.xt[info.i] ??= []).push(frame(info.sample, upto));
          (frames.x0[info.i] ??= []).push(frame(stepX0(scheduler, predictionType, info), upto));
        }
      },
      onProgress: (pr, batch) => {
        const of = batch.batches > 1 ? `batch ${batch.index + 1}/${batch.batches}` : undefined;
        progress.update(
          'sampling steps',
          batch.index * pr.total + pr.step,
          batch.batches * pr.total,
          of,
        );
      },
      onBatch: async (images, batch) => {
        const v = Float32Array.from(await images.data());
        pixels?.set(v, batch.start * size);
        if (outDir !== undefined) {
          folder ??= await SampleFolderWriter.create(outDir);
          const end = batch.start + batch.size;
          await folder.add(
            v,
            images.shape,
            values.slice(batch.start, end),
            classes.slice(batch.start, end),
          );
        }
      },
    });
  } catch (e) {
    disposeFrames(frames);
    if (e instanceof ConditionError) throw new CliError(e.message);
    throw e;
  }
  progress.clear();
  const secs = (performance.now() - t0) / 1000;
  try {
    const nrow = rowLength ?? args.num('nrow');
    if (grid !== null && pixels !== null) {
      await savePng(
        grid,
        gridFromValues(pixels, [total, c, h, w], nrow !== undefined ? { nrow, scale } : { scale }),
      );
    }
    if (folder !== null) {
      await (folder as SampleFolderWriter).finish(seed, {
        model: p.layout.root,
        sampler: samplerName,
        steps,
        guidance,
        guidanceRescale: rescale,
      });
    }
    if (traj !== undefined) {
      const joined = joinFrames(frames);
      try {
        await writeTrajectory(traj, joined, [k, c, h, w]);
      } finally {
        for (const t of [...joined.xt, ...joined.x0]) if (!t.isDisposed) t.dispose();
      }
    }
  } finally {
    disposeFrames(frames);
  }
  if (!quiet) {
    console.log(
      `${[grid, outDir].filter((o) => o !== null && o !== undefined).join(' and ')}: ${total} images, ${samplerName} ${steps} steps, ${p.weights === 'ema' ? 'EMA' : 'model'} weights ` +
        `of ${p.layout.root}` +
        (vae !== null ? ` decoded by its ${vae.spec.vaeClass}` : '') +
        (loras.length > 0 ? ` with LoRA ${describeLoras(loraList, loras)}` : '') +
        (model !== p.model
          ? ` with ControlNet ${args.str('controlnet')} on ${args.str('control-image')} (scale ${args.num('control-scale') ?? 1})`
          : '') +
        `, on ${backend.name} in ${formatDuration(secs)}` +
        (traj !== undefined ? `; trajectory ${traj}` : ''),
    );
  }
  return EXIT.ok;
}

/** `sumi sample`; `--task` values with their own command (and options) are in the map. */
export const sampleCommand = withTasks(defineCommand(sampleSpec, sampleCmd), {
  text: sampleTextCommand,
});
