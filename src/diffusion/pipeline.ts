/**
 * Generating images from a trained model directory: find the weights (EMA or not) and the
 * scheduler config in a `sumi train` checkpoint, a diffusers DDPMPipeline folder or a bare
 * UNet2DModel folder; build any sampler over the training schedule; run the reverse process
 * (optionally class-conditional, with classifier-free guidance through the null class).
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import {
  type Backend,
  concat,
  Generator,
  noGrad,
  randn,
  slice,
  type Tensor,
  tensor,
  add,
  mul,
  sub,
} from '../engine/index.js';
import { CONFIG_NAME, ConfigError, loadModel, UNet2DModel } from '../nn/models/index.js';
import { predictedOriginalSample, type PredictionType } from './forward.js';
import {
  type Scheduler,
  createScheduler,
  sample,
  schedulerSpec,
  type StepInfo,
} from './samplers/index.js';

/** `sumi.json`: what sampling needs beyond the diffusers files. */
export interface ModelInfo {
  format: 'sumi-model';
  version: 1;
  imageSize: number;
  channels: number;
  /** Classes of a class-conditional model (null: unconditional). */
  numClasses: number | null;
  /** Class id of "no class" (classifier-free guidance), num_classes; null when absent. */
  nullClassId: number | null;
  classNames?: string[];
  data?: string;
  /** Training step of the weights. */
  step?: number;
  /** The command that trained the model, and its arguments after `sumi train`. */
  command?: string;
  trainArgs?: string[];
}

export interface ModelDirLayout {
  /** The directory holding the model (a checkpoint inside a training output dir, say). */
  root: string;
  unetDir: string;
  emaDir: string | null;
  schedulerConfigPath: string | null;
  info: ModelInfo | null;
}

export class ModelDirError extends Error {
  override name = 'ModelDirError';
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelDirError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelDirError(
      `${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
}

/**
 * Where the parts of a model directory are. Accepts a training output directory (uses its
 * `checkpoint/`, or `checkpoint.old/` after an interrupted save), a checkpoint or diffusers
 * DDPMPipeline folder (`unet/`, `unet_ema/`, `scheduler/`), or a UNet2DModel folder
 * (`config.json` + weights, with `scheduler_config.json` beside it or in `../scheduler/`).
 */
export async function resolveModelDir(dir: string): Promise<ModelDirLayout> {
  if (!(await isDir(dir))) throw new ModelDirError(`model directory '${dir}' does not exist`);
  let root = dir;
  for (const sub of ['checkpoint', 'checkpoint.old']) {
    if (await isDir(join(dir, sub, 'unet'))) {
      root = join(dir, sub);
      break;
    }
  }
  let unetDir: string;
  let schedulerCandidates: string[];
  if (await isDir(join(root, 'unet'))) {
    unetDir = join(root, 'unet');
    schedulerCandidates = [join(root, 'scheduler', 'scheduler_config.json')];
  } else if (await isFile(join(root, CONFIG_NAME))) {
    unetDir = root;
    schedulerCandidates = [
      join(root, 'scheduler_config.json'),
      join(root, 'scheduler', 'scheduler_config.json'),
      join(dirname(root), 'scheduler', 'scheduler_config.json'),
    ];
  } else {
    throw new ModelDirError(
      `${dir}: not a model directory: found neither unet/config.json (a 'sumi train' ` +
        `checkpoint or a diffusers DDPMPipeline folder) nor config.json (a UNet2DModel folder)`,
    );
  }
  if (!(await isFile(join(unetDir, CONFIG_NAME)))) {
    throw new ModelDirError(`${unetDir}: missing ${CONFIG_NAME}`);
  }
  let schedulerConfigPath: string | null = null;
  for (const c of schedulerCandidates) {
    if (await isFile(c)) {
      schedulerConfigPath = c;
      break;
    }
  }
  const emaDir = unetDir !== root ? join(root, 'unet_ema') : null;
  const infoPath = join(root, 'sumi.json');
  const info = (await isFile(infoPath)) ? ((await readJson(infoPath)) as ModelInfo) : null;
  return {
    root,
    unetDir,
    emaDir: emaDir !== null && (await isDir(emaDir)) ? emaDir : null,
    schedulerConfigPath,
    info,
  };
}

export type WeightsChoice = 'auto' | 'ema' | 'model';

export interface LoadedPipeline {
  model: UNet2DModel;
  /** The diffusers scheduler config of training (DDPMScheduler defaults when the folder has none). */
  schedulerConfig: Record<string, unknown>;
  info: ModelInfo | null;
  /** Which weights were loaded. */
  weights: 'ema' | 'model';
  layout: ModelDirLayout;
}

/** Loads a model directory for sampling (see `resolveModelDir`); EMA weights when present. */
export async function loadPipeline(
  dir: string,
  opts: { weights?: WeightsChoice; backend?: Backend } = {},
): Promise<LoadedPipeline> {
  const layout = await resolveModelDir(dir);
  const choice = opts.weights ?? 'auto';
  if (choice === 'ema' && layout.emaDir === null) {
    throw new ModelDirError(
      `${layout.root}: has no EMA weights (unet_ema/); use the model weights`,
    );
  }
  const useEma = choice !== 'model' && layout.emaDir !== null;
  const from = useEma ? layout.emaDir! : layout.unetDir;
  let model: UNet2DModel;
  try {
    model = await loadModel(from, { as: UNet2DModel, backend: opts.backend });
  } catch (e) {
    // Config errors name the class, not the file: add the file.
    if (e instanceof ConfigError && !e.message.includes(from)) {
      throw new ModelDirError(`${join(from, CONFIG_NAME)}: ${e.message}`);
    }
    throw e;
  }
  model.eval();
  let schedulerConfig: Record<string, unknown> = {};
  if (layout.schedulerConfigPath !== null) {
    const json = await readJson(layout.schedulerConfigPath);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new ModelDirError(`${layout.schedulerConfigPath}: expected a JSON object`);
    }
    schedulerConfig = json as Record<string, unknown>;
  }
  return { model, schedulerConfig, info: layout.info, weights: useEma ? 'ema' : 'model', layout };
}

/**
 * A sampler (CLI name or diffusers class) over the training schedule of `schedulerConfig`.
 * `karras`: Karras et al. sigmas, for the samplers that have them.
 */
export function createSampler(
  name: string,
  schedulerConfig: Readonly<Record<string, unknown>>,
  opts: { karras?: boolean } = {},
): Scheduler {
  const config: Record<string, unknown> = { ...schedulerConfig };
  delete config._class_name;
  delete config._diffusers_version;
  if (opts.karras === true) {
    if (!Object.hasOwn(schedulerSpec(name).defaults, 'useKarrasSigmas')) {
      throw new Error(
        `sampler '${name}' has no Karras sigmas (euler, heun, lms, dpmpp-2m, dpmpp-2m-sde, unipc have)`,
      );
    }
    config.use_karras_sigmas = true;
  }
  return createScheduler(name, config);
}

export function predictionTypeOf(
  schedulerConfig: Readonly<Record<string, unknown>>,
): PredictionType {
  const p = schedulerConfig.prediction_type ?? 'epsilon';
  if (p !== 'epsilon' && p !== 'sample' && p !== 'v_prediction') {
    throw new ModelDirError(`unsupported prediction_type ${JSON.stringify(p)}`);
  }
  return p;
}

export interface GenerateOptions {
  /** Number of images. */
  n: number;
  seed: number;
  numInferenceSteps: number;
  /** DDIM's η (0 deterministic). */
  eta?: number;
  /** One class id per image for class-conditional models. */
  classLabels?: readonly number[] | null;
  /** Classifier-free guidance scale (1: none); needs `nullClassId`. */
  guidanceScale?: number;
  nullClassId?: number | null;
  /** Called after every sampler step (see `sample`). */
  onStep?: (info: StepInfo) => void;
}

/**
 * Runs the reverse process for `n` images of the model's size: x_T ~ N(0, I) from Philox stream
 * `seed` (the sampler's noise continues the same stream), returns x_0 [n, C, H, W] in about
 * [-1, 1].
 */
export function generate(model: UNet2DModel, scheduler: Scheduler, opts: GenerateOptions): Tensor {
  const c = model.config;
  const size = c.sample_size;
  if (size === null) throw new ModelDirError('the model config has no sample_size');
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  const p = model.convIn.weight;
  const generator = new Generator(opts.seed);
  const labels = opts.classLabels ?? null;
  const classed = model.classEmbedding !== null;
  if (classed && labels === null)
    throw new Error('this model is class-conditional: give class labels');
  if (!classed && labels !== null) throw new Error('this model is not class-conditional');
  if (labels !== null && labels.length !== opts.n) {
    throw new Error(`${labels.length} class labels for ${opts.n} images`);
  }
  const scale = opts.guidanceScale ?? 1;
  if (
    scale !== 1 &&
    (labels === null || opts.nullClassId === null || opts.nullClassId === undefined)
  ) {
    throw new Error('guidance needs a class-conditional model trained with a null class');
  }
  return noGrad(() => {
    const xT = randn([opts.n, c.in_channels, h, w], {
      generator,
      backend: p.backend,
      dtype: p.dtype,
    });
    const ids = (v: readonly number[]): Tensor =>
      tensor(Int32Array.from(v), [v.length], { dtype: 'int32', backend: p.backend });
    const denoise =
      labels === null
        ? (x: Tensor, t: number) => model.forward(x, t)
        : scale === 1
          ? (x: Tensor, t: number) => model.forward(x, t, { classLabels: ids(labels) })
          : (x: Tensor, t: number) => {
              const both = model.forward(concat([x, x], 0), t, {
                classLabels: ids([...labels, ...labels.map(() => opts.nullClassId!)]),
              });
              const n = opts.n;
              const cond = slice(both, [0], [n]);
              const uncond = slice(both, [n], [2 * n]);
              return add(uncond, mul(sub(cond, uncond), scale));
            };
    const out = sample(scheduler, denoise, xT, {
      numInferenceSteps: opts.numInferenceSteps,
      generator,
      stepOptions: opts.eta !== undefined ? { eta: opts.eta } : {},
      onStep: opts.onStep,
    });
    xT.dispose();
    return out;
  });
}

/**
 * x̂_0 of a sampler step: the sampler's own prediction, or (PNDM, UniPC, which form none) the
 * model output converted at ᾱ of the nearest training timestep.
 */
export function stepX0(
  scheduler: Scheduler,
  predictionType: PredictionType,
  info: StepInfo,
): Tensor {
  if (info.predOriginalSample !== null) return info.predOriginalSample;
  const acp = scheduler.alphasCumprod;
  const i = Math.min(acp.length - 1, Math.max(0, Math.round(info.t)));
  const a = acp[i]!;
  return predictedOriginalSample(
    predictionType,
    info.modelOutput,
    info.modelInput,
    Math.sqrt(a),
    Math.sqrt(1 - a),
  );
}
