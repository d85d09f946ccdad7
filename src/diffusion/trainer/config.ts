/**
 * The training configuration: plain JSON (camelCase), saved in every checkpoint's
 * `trainer_state.json` so that `--resume` continues under exactly the settings it started with.
 * The model and the noise schedule are diffusers configs (`UNet2DModel` config.json and
 * `DDPMScheduler` scheduler_config.json, snake_case) nested inside it.
 *
 * A config file (`--config`, or a preset) is either a bare UNet2DModel config.json
 * (`_class_name` at the top) or `{ "model": {...}, "scheduler": {...}, "train": {...} }`, where
 * `train` holds TrainConfig / RunSettings keys (camelCase, snake_case or kebab-case). A text
 * model adds `"text_encoder": {...}` (transformers' CLIPTextConfig keys; vocabulary size and
 * special token ids come from the captions' tokenizer).
 *
 * Every key is checked by TRAIN_SCHEMA's rule for it (the rule vocabulary of the model configs,
 * nn/models/config.ts, through trainer/schema.ts); the OptimizerConfig keys by OPTIMIZER_RULES,
 * the table the autoencoder and classifier trainers share.
 */
import type { Dataset } from '../../data/index.js';
import type { EmaWarmup, ScheduleName } from '../../nn/index.js';
import {
  checkInpaintSettings,
  type InpaintSettings,
  MASK_KINDS,
} from '../editing/inpaint-model.js';
import { UPSCALE_FACTORS, type UpscaleSettings } from '../editing/upscale.js';
import { CONTROL_KINDS, type ControlKind } from '../control.js';
import type { PredictionType } from '../forward.js';
import type { BetaSchedule } from '../schedule.js';
import type { ModelVarType } from '../vlb.js';
import type { LatentSettings } from '../latent/vae.js';
import { snakeToCamel } from '../samplers/config.js';
import {
  between,
  bool,
  expecting,
  int,
  jsonObject,
  listOf,
  nonEmptyString,
  nonNegative,
  nullable,
  oneOf,
  positive,
  probability,
  type Rule,
  seedInteger,
} from '../../nn/models/config.js';
import {
  checkValues,
  type SettingsRules,
  type SettingsSchema,
  settingsProblems,
  TrainConfigError,
} from './schema.js';

export { TrainConfigError };
export type { SettingsRules, SettingsSchema };

/**
 * The optimization settings every trainer's config holds: the step count and batch, AdamW and its
 * learning-rate schedule (warmup, then the decay to minLr), gradient clipping, and the seed of
 * every random stream.
 */
export interface OptimizerConfig {
  /** Total optimizer steps. */
  steps: number;
  batchSize: number;
  /** The peak learning rate. */
  lr: number;
  lrSchedule: ScheduleName;
  warmupSteps: number;
  minLr: number;
  weightDecay: number;
  adamBetas: [number, number];
  adamEps: number;
  /** Global gradient-norm clipping (null: off). */
  maxGradNorm: number | null;
  seed: number;
}

/**
 * The AdamW, schedule and clipping defaults of the diffusion, classifier and autoencoder trainers
 * (each sets its own steps, batch and peak rate, and may override one of these).
 */
export const OPTIMIZER_DEFAULTS: Pick<
  OptimizerConfig,
  'lrSchedule' | 'warmupSteps' | 'minLr' | 'weightDecay' | 'adamBetas' | 'adamEps' | 'maxGradNorm'
> = {
  lrSchedule: 'cosine',
  warmupSteps: 100,
  minLr: 0,
  weightDecay: 0,
  adamBetas: [0.9, 0.999],
  adamEps: 1e-8,
  maxGradNorm: 1,
};

export interface TrainConfig extends OptimizerConfig {
  /** Dataset: 'mnist', 'mnist-full', 'fashion-mnist', 'emoji' or the path of a folder of images. */
  data: string;
  /**
   * Image side in pixels (resolved: the model's sample_size; a latent run's images are
   * downsampling factor × the latents' side).
   */
  imageSize: number;
  /** 1 or 3: the images' channels (resolved: the model's in_channels, or the vae's). */
  channels: 1 | 3;
  /** Random horizontal flips. */
  flip: boolean;
  /** Class-conditional (needs a labelled dataset); the model gets num_classes + 1 embeddings. */
  classCond: boolean;
  /**
   * Probability of replacing the condition (label or caption) by the null condition ∅, the null
   * class or the empty prompt (classifier-free guidance).
   */
  labelDropout: number;
  /** Text-conditional: captions through a text encoder and cross-attention. */
  textCond: boolean;
  /** transformers CLIPTextConfig of the text encoder (resolved: vocab_size from the tokenizer). */
  textEncoder: Record<string, unknown> | null;
  /** Tokens per caption, start and end tokens included. */
  maxTokens: number;
  /**
   * SR3 super-resolution (editing/upscale.ts): the model learns x given its low resolution
   * (factor × factor block means, bicubic-upsampled and joined to x_t: in_channels 2C), noised at
   * level σ_a. Absent or null: the model generates from nothing but its condition.
   */
  upscale?: UpscaleSettings | null;
  /**
   * Inpainting (editing/inpaint-model.ts): the model learns x given x ⊙ (1 − m) and a random mask
   * m of the listed kinds per image, joined to x_t (in_channels 2C + 1). Absent or null: no mask.
   */
  inpaint?: InpaintSettings | null;
  /**
   * Latent diffusion (Rombach et al. 2022): the denoiser trains on scaling_factor · (z − shift)
   * of the images' latents under the run's autoencoder (`--vae`), whose copy the checkpoint
   * carries in vae/. Absent or null: the denoiser trains on pixels.
   */
  latent?: LatentSettings | null;
  /** diffusers UNet2DModel config (resolved: every key). */
  model: Record<string, unknown>;
  /** diffusers DDPMScheduler config: beta schedule, prediction_type, ... (resolved). */
  scheduler: Record<string, unknown>;
  /** Min-SNR-γ loss weighting (null: plain L_simple). */
  snrGamma: number | null;
  /** Maximum EMA decay (null: no EMA). */
  emaDecay: number | null;
  emaWarmup: EmaWarmup;
  emaPower: number;
  emaInvGamma: number;
  emaUpdateAfterStep: number;
  /**
   * Micro-batches per step: the batch is split into this many parts whose gradients accumulate
   * in order, computed side by side on CPU cores by replicas of the model where they can be
   * (replica.ts); the same weights either way. Absent in checkpoints from before the setting
   * (read as 1: whole batches).
   */
  microBatches?: number;
  /**
   * LoRA fine-tuning (Hu et al. 2021) of a base model: its denoiser is loaded and frozen, and
   * only the adapters train (absent or null: every weight trains, from initial weights).
   */
  lora?: LoraTrainConfig | null;
  /**
   * ControlNet training (Zhang et al. 2023) on a base model: its denoiser is loaded and frozen,
   * and a ControlNet copied from its encoder trains on condition images computed from the data
   * (absent or null: no ControlNet).
   */
  controlnet?: ControlNetTrainConfig | null;
  /**
   * DreamBooth (Ruiz et al. 2022) on a text-to-image base: the images of `data` (the instance
   * images) train with the instance prompt, class images sampled from the base with the class
   * prompt with the prior-preservation loss, the base's tokenizer and text encoder frozen. The
   * denoiser trains fully, or through `lora` adapters (absent or null: not a DreamBooth run).
   */
  dreambooth?: DreamBoothTrainConfig | null;
  /**
   * A new run started from another model's weights (`sumi train --init DIR`, init.ts): the
   * model, scheduler and text encoder configs are that pipeline folder's, and every trained
   * weight (the denoiser's, its text encoder's) starts as the folder's, its EMA too; the optimizer
   * starts fresh (absent or null: initial weights from stream (seed, 'init')).
   */
  init?: InitTrainConfig | null;
}

/** The model a run started from (`--init`): its folder and the weights files it was loaded from. */
export interface InitTrainConfig {
  /** The pipeline folder as given. */
  dir: string;
  /** The denoiser's weights file, then its text encoder's (a text model), with their sha256. */
  weights: { path: string; sha256: string }[];
}

/** What a DreamBooth run trains on besides its instance images (dreambooth.ts). */
export interface DreamBoothTrainConfig {
  /** The base model folder (a text-to-image pipeline, as `sumi sample --model` takes it). */
  base: string;
  /** The prompt of the instance images, with the rare identifier ("a sks digit"). */
  instancePrompt: string;
  /** The prompt of the class images ("a digit"); null: no class images, no prior loss. */
  classPrompt: string | null;
  /** λ of L = L_instance + λ L_prior (0: no class images). */
  priorLossWeight: number;
  /** How many class images the base samples. */
  numClassImages: number;
  /** How they are sampled: a sampler (CLI name), its steps and the guidance scale. */
  prior: { sampler: string; steps: number; guidance: number };
}

/** What a ControlNet run conditions on and how its condition embedding is shaped. */
export interface ControlNetTrainConfig {
  /** The base model folder (as `sumi sample --model` takes it). */
  base: string;
  /** The condition image computed from each training image (diffusion/control.ts). */
  control: ControlKind;
  /** Channels of the condition embedding's blocks (each after the first halves the size). */
  conditioningEmbeddingOutChannels: number[];
}

/** What a LoRA run adapts and how. */
export interface LoraTrainConfig {
  /** The base model folder (as `sumi sample --model` takes it). */
  base: string;
  rank: number;
  /** α; the adapters' product is scaled by α/r. */
  alpha: number;
  /** Target module names (peft's rule: a path or its last components). */
  targets: string[];
}

/** How a run reports and saves; may change between a run and its resumption. */
export interface RunSettings {
  /** Checkpoint every this many steps (0: only at the end). */
  saveEvery: number;
  /** Sample grid every this many steps (0: never). */
  sampleEvery: number;
  sampleCount: number;
  sampleSteps: number;
  /** Sampler of the grids (a CLI name: ddim, euler, ...). */
  sampler: string;
  /** Metrics line every this many steps. */
  logEvery: number;
}

export const defaultTrainConfig: Omit<TrainConfig, 'data' | 'imageSize' | 'channels' | 'model'> = {
  flip: false,
  classCond: false,
  labelDropout: 0.1,
  textCond: false,
  textEncoder: null,
  maxTokens: 16,
  scheduler: {},
  steps: 1000,
  batchSize: 64,
  lr: 2e-4,
  ...OPTIMIZER_DEFAULTS,
  snrGamma: null,
  emaDecay: 0.999,
  emaWarmup: 'power',
  emaPower: 3 / 4,
  emaInvGamma: 1,
  emaUpdateAfterStep: 0,
  seed: 0,
};

export const defaultRunSettings: RunSettings = {
  saveEvery: 500,
  sampleEvery: 1000,
  sampleCount: 16,
  sampleSteps: 25,
  sampler: 'ddim',
  logEvery: 50,
};

/** What a config file or preset contributes to a trainer whose settings are C. */
export interface ConfigSource<C> {
  model: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  train: Partial<C>;
}

/** What a config file or preset contributes to the diffusion trainer. */
export type TrainConfigSource = ConfigSource<TrainConfig & RunSettings>;

/** What each OptimizerConfig key accepts: one table for every trainer. */
export const OPTIMIZER_RULES: SettingsRules<OptimizerConfig> = {
  steps: int(1),
  batchSize: int(1),
  lr: nonNegative,
  lrSchedule: oneOf(['constant', 'constant_with_warmup', 'cosine', 'linear']),
  warmupSteps: int(0),
  minLr: nonNegative,
  weightDecay: nonNegative,
  adamBetas: expecting(
    'two numbers in [0, 1)',
    (v) => Array.isArray(v) && v.length === 2 && v.every((b) => probability(b) === null),
  ),
  adamEps: nonNegative,
  maxGradNorm: nullable(positive),
  seed: seedInteger,
};

/**
 * What is wrong with the OptimizerConfig keys of a trainer's config, one line each (none: an
 * empty list); the trainer adds the problems of its own keys.
 */
export function optimizerProblems(c: OptimizerConfig): string[] {
  const values: Record<string, unknown> = {};
  for (const k of Object.keys(OPTIMIZER_RULES) as (keyof OptimizerConfig)[]) values[k] = c[k];
  return settingsProblems(OPTIMIZER_RULES, values);
}

/** Refuses a dataset whose images are not the config's channels × imageSize × imageSize. */
export function checkImageShape(
  dataset: Pick<Dataset, 'name' | 'channels' | 'height' | 'width'>,
  config: { readonly imageSize: number; readonly channels: number },
): void {
  if (dataset.height !== config.imageSize || dataset.channels !== config.channels) {
    throw new TrainConfigError(
      `${dataset.name}: images are ${dataset.channels}x${dataset.height}x${dataset.width}, ` +
        `the config wants ${config.channels}x${config.imageSize}x${config.imageSize}`,
    );
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether `v` passes `rule`. */
const passes = (rule: Rule, v: unknown): boolean => rule(v) === null;

/** What the data keys every trainer's config holds accept. */
export const DATA_RULES: SettingsRules<
  Pick<TrainConfig, 'data' | 'imageSize' | 'channels' | 'flip'>
> = {
  data: nonEmptyString,
  imageSize: int(1),
  channels: expecting('1 or 3', (v) => v === 1 || v === 3),
  flip: bool,
};

const TRAIN_RULES: SettingsRules<TrainConfig & RunSettings> = {
  ...DATA_RULES,
  classCond: bool,
  labelDropout: probability,
  textCond: bool,
  textEncoder: nullable(jsonObject),
  maxTokens: int(3),
  upscale: nullable(
    expecting(
      `{ factor: ${UPSCALE_FACTORS.join(' or ')}, noiseAugmentation: a number in [0, 1) }`,
      (v) =>
        isObject(v) &&
        Object.keys(v).every((k) => k === 'factor' || k === 'noiseAugmentation') &&
        typeof v.factor === 'number' &&
        UPSCALE_FACTORS.includes(v.factor) &&
        passes(probability, v.noiseAugmentation),
    ),
  ),
  inpaint: nullable(
    expecting(`{ masks: one or more of ${MASK_KINDS.join(', ')} }`, (v) => {
      if (!isObject(v) || !Object.keys(v).every((k) => k === 'masks')) return false;
      try {
        checkInpaintSettings(v as unknown as InpaintSettings);
        return true;
      } catch {
        return false;
      }
    }),
  ),
  latent: nullable(
    expecting(
      '{ vae, kind: kl | vq, vaeClass, scalingFactor > 0, shiftFactor, vaeSha256, shape: [c, h, w] }',
      (v) =>
        isObject(v) &&
        passes(nonEmptyString, v.vae) &&
        (v.kind === 'kl' || v.kind === 'vq') &&
        passes(positive, v.scalingFactor) &&
        (v.shiftFactor === null || typeof v.shiftFactor === 'number') &&
        passes(nonEmptyString, v.vaeSha256) &&
        Array.isArray(v.shape) &&
        v.shape.length === 3 &&
        v.shape.every((n) => passes(int(1), n)),
    ),
  ),
  model: jsonObject,
  scheduler: jsonObject,
  ...OPTIMIZER_RULES,
  snrGamma: nullable(positive),
  emaDecay: nullable(between(0, 1, '[]')),
  emaWarmup: oneOf(['power', 'ratio', 'none']),
  emaPower: positive,
  emaInvGamma: positive,
  emaUpdateAfterStep: int(0),
  microBatches: int(1),
  lora: nullable(
    expecting(
      '{ base, rank ≥ 1, alpha > 0, targets: [names] }',
      (v) =>
        isObject(v) &&
        passes(nonEmptyString, v.base) &&
        passes(int(1), v.rank) &&
        passes(positive, v.alpha) &&
        passes(listOf(nonEmptyString), v.targets),
    ),
  ),
  controlnet: nullable(
    expecting(
      `{ base, control: ${CONTROL_KINDS.join(' | ')}, conditioningEmbeddingOutChannels: [n ≥ 1] }`,
      (v) =>
        isObject(v) &&
        passes(nonEmptyString, v.base) &&
        (CONTROL_KINDS as readonly unknown[]).includes(v.control) &&
        passes(listOf(int(1)), v.conditioningEmbeddingOutChannels),
    ),
  ),
  dreambooth: nullable(
    expecting(
      '{ base, instancePrompt, classPrompt (or null), priorLossWeight ≥ 0, numClassImages ≥ 1, prior: { sampler, steps ≥ 1, guidance ≥ 0 } }',
      (v) =>
        isObject(v) &&
        passes(nonEmptyString, v.base) &&
        passes(nonEmptyString, v.instancePrompt) &&
        passes(nullable(nonEmptyString), v.classPrompt) &&
        passes(nonNegative, v.priorLossWeight) &&
        passes(int(1), v.numClassImages) &&
        isObject(v.prior) &&
        passes(nonEmptyString, v.prior.sampler) &&
        passes(int(1), v.prior.steps) &&
        typeof v.prior.guidance === 'number' &&
        v.prior.guidance >= 0,
    ),
  ),
  init: nullable(
    expecting(
      '{ dir, weights: [{ path, sha256 }] }',
      (v) =>
        isObject(v) &&
        passes(nonEmptyString, v.dir) &&
        passes(
          listOf(
            expecting(
              '{ path, sha256 }',
              (w) =>
                isObject(w) && passes(nonEmptyString, w.path) && passes(nonEmptyString, w.sha256),
            ),
          ),
          v.weights,
        ),
    ),
  ),
  saveEvery: int(0),
  sampleEvery: int(0),
  sampleCount: int(1),
  sampleSteps: int(1),
  sampler: nonEmptyString,
  logEvery: int(1),
};

/**
 * The diffusion trainer's settings: the defaults of the keys that have one and a rule for every
 * key (the checks across keys are resolveTrainConfig's, which knows the data and the model).
 */
export const TRAIN_SCHEMA: SettingsSchema<TrainConfig & RunSettings> = {
  defaults: { ...defaultTrainConfig, ...defaultRunSettings },
  rules: TRAIN_RULES,
};

/** The keys a `train` section (or a CLI override) may set. */
export const TRAIN_KEYS = Object.keys(TRAIN_RULES) as (keyof TrainConfig | keyof RunSettings)[];

/**
 * Checks a partial config (keys camelCase already): every unknown key and bad value in one error.
 */
export function checkTrainValues(
  values: Readonly<Record<string, unknown>>,
  source: string,
): Partial<TrainConfig & RunSettings> {
  return checkValues(TRAIN_RULES, values, source);
}

/** Reads a parsed config file or preset for the diffusion trainer (see the module comment). */
export function parseTrainConfigSource(json: unknown, source: string): TrainConfigSource {
  return parseConfigSource(json, source, TRAIN_RULES);
}

/**
 * Reads a parsed config file or preset for the trainer whose settings `rules` checks: the layout
 * of the module comment, its `train` section (keys in any case, made camelCase) checked against
 * the rules of the trainer that reads it. `checkModel` (throwing) sees the model config first, so
 * that a config for another kind of model is named as such before its `train` keys are.
 */
export function parseConfigSource<C>(
  json: unknown,
  source: string,
  rules: SettingsRules<C>,
  checkModel?: (model: Record<string, unknown>) => void,
): ConfigSource<C> {
  if (!isObject(json)) throw new TrainConfigError(`${source}: expected a JSON object`);
  if (typeof json._class_name === 'string') {
    checkModel?.(json);
    return { model: json, scheduler: {}, train: {} };
  }
  const allowed = new Set([
    'model',
    'unet',
    'scheduler',
    'text_encoder',
    'train',
    'training',
    'name',
    'description',
  ]);
  const unknown = Object.keys(json).filter((k) => !allowed.has(k) && !k.startsWith('_'));
  if (unknown.length > 0) {
    throw new TrainConfigError(
      `${source}: unknown key(s) ${unknown.join(', ')} (expected a UNet2DModel config.json, or ` +
        '{"model": {...}, "scheduler": {...}, "train": {...}})',
    );
  }
  const model = json.model ?? json.unet;
  if (!isObject(model))
    throw new TrainConfigError(`${source}: "model" must be a UNet2DModel config object`);
  checkModel?.(model);
  const scheduler = json.scheduler ?? {};
  if (!isObject(scheduler)) throw new TrainConfigError(`${source}: "scheduler" must be an object`);
  const trainRaw = json.train ?? json.training ?? {};
  if (!isObject(trainRaw)) throw new TrainConfigError(`${source}: "train" must be an object`);
  const train: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(trainRaw)) train[snakeToCamel(k)] = v;
  const textEncoder = json.text_encoder;
  if (textEncoder !== undefined) {
    if (!isObject(textEncoder)) {
      throw new TrainConfigError(`${source}: "text_encoder" must be a CLIPTextConfig object`);
    }
    if (!Object.hasOwn(rules, 'textEncoder')) {
      throw new TrainConfigError(`${source}: "text_encoder": this trainer has no text encoder`);
    }
    train.textEncoder ??= textEncoder;
  }
  return { model, scheduler, train: checkValues(rules, train, `${source} "train"`) };
}

/** CLI spellings of the parameterization and the beta schedule. */
export function parsePredictionType(v: string): PredictionType {
  const m: Record<string, PredictionType> = {
    epsilon: 'epsilon',
    eps: 'epsilon',
    sample: 'sample',
    x0: 'sample',
    v: 'v_prediction',
    v_prediction: 'v_prediction',
    'v-prediction': 'v_prediction',
  };
  const r = m[v.toLowerCase()];
  if (r === undefined) {
    throw new TrainConfigError(
      `unknown prediction type '${v}' (epsilon|eps, sample|x0, v|v_prediction)`,
    );
  }
  return r;
}

export function parseBetaSchedule(v: string): BetaSchedule {
  const m: Record<string, BetaSchedule> = {
    linear: 'linear',
    scaled_linear: 'scaled_linear',
    'scaled-linear': 'scaled_linear',
    cosine: 'squaredcos_cap_v2',
    squaredcos_cap_v2: 'squaredcos_cap_v2',
    sigmoid: 'sigmoid',
  };
  const r = m[v.toLowerCase()];
  if (r === undefined) {
    throw new TrainConfigError(`unknown schedule '${v}' (linear, scaled_linear, cosine, sigmoid)`);
  }
  return r;
}

/** CLI spellings of the variance of p_θ(x_{t−1} | x_t) (diffusers' `variance_type`). */
export function parseVarianceType(v: string): 'fixed_small' | 'fixed_large' | 'learned_range' {
  const m: Record<string, 'fixed_small' | 'fixed_large' | 'learned_range'> = {
    fixed_small: 'fixed_small',
    'fixed-small': 'fixed_small',
    fixed_large: 'fixed_large',
    'fixed-large': 'fixed_large',
    learned_range: 'learned_range',
    'learned-range': 'learned_range',
  };
  const r = m[v.toLowerCase()];
  if (r === undefined) {
    throw new TrainConfigError(`unknown variance '${v}' (learned_range, fixed_small, fixed_large)`);
  }
  return r;
}

/**
 * The variance type a scheduler config trains with: fixed variances (β̃_t, β_t) train on
 * L_simple; `learned_range` (Σ_θ interpolated between β̃_t and β_t in the log domain, improved
 * DDPM eq. 15) on L_hybrid = L_simple + λ L_vlb with a model of 2C output channels. diffusers'
 * `learned` reads the variance channels as σ² itself, whose log is undefined wherever the network
 * outputs a value ≤ 0 (a freshly initialized U-Net gets a NaN loss at once): it is refused, as is
 * every other value.
 */
export function trainedVarianceType(variance: unknown): ModelVarType {
  switch (variance) {
    case undefined:
    case 'fixed_small':
    case 'fixed_small_log':
      return 'fixed_small';
    case 'fixed_large':
      return 'fixed_large';
    case 'learned_range':
      return 'learned_range';
    case 'learned':
      throw new TrainConfigError(
        "variance_type 'learned' makes the model output σ² itself, and log σ² is undefined " +
          "wherever it outputs a value <= 0; train 'learned_range' (the same sampler reads it)",
      );
    default:
      throw new TrainConfigError(
        `variance_type ${JSON.stringify(variance)}: training supports fixed_small, fixed_small_log, ` +
          'fixed_large and learned_range',
      );
  }
}
