/**
 * The classifier trainer's configuration: plain JSON (camelCase), saved in every checkpoint's
 * `trainer_state.json` so that a resumed run continues under exactly its settings. The classifier
 * (an EncoderClassifierModel config.json) and the diffusion schedule it learns to see through
 * (a DDPMScheduler scheduler_config.json) are diffusers configs nested inside it.
 */
import {
  between,
  bool,
  configToJson,
  ENCODER_CLASSIFIER_CLASS,
  ENCODER_CLASSIFIER_SCHEMA,
  int,
  jsonObject,
  listOf,
  nullable,
  probability,
  resolveConfig,
} from '../../nn/models/index.js';
import type { Dataset } from '../../data/index.js';
import { createScheduler } from '../samplers/index.js';
import { DATA_RULES, OPTIMIZER_DEFAULTS, OPTIMIZER_RULES, type OptimizerConfig } from './config.js';
import { checkSettings, type SettingsSchema, TrainConfigError } from './schema.js';
import type { LoopSettings } from './run-loop.js';

/** The classifier's folder inside a checkpoint or an exported model. */
export const CLASSIFIER_DIR = 'classifier';

export interface ClassifierTrainConfig extends OptimizerConfig {
  /** Dataset: 'mnist', 'mnist-full', 'fashion-mnist', 'emoji' or a folder of images (with class labels). */
  data: string;
  imageSize: number;
  channels: 1 | 3;
  numClasses: number;
  /** Trained on x_t at t ~ U{0..T−1} (for guidance); false: on clean images at t = 0. */
  noiseAware: boolean;
  /** EncoderClassifierModel config (resolved: every key). */
  model: Record<string, unknown>;
  /** The diffusion model's DDPMScheduler config (resolved), for noise-aware training; else null. */
  scheduler: Record<string, unknown> | null;
  /** λ of label smoothing (0: plain cross-entropy). */
  labelSmoothing: number;
  /** Largest random translation in pixels (0: none). */
  shift: number;
  /** Largest random rotation in degrees (0: none). */
  rotate: number;
  /** Random scaling by a factor in [1 − zoom, 1 + zoom] (0: none). */
  zoom: number;
  /** Random horizontal flips. */
  flip: boolean;
  /** Fraction of each class kept out of training for the held-out accuracy (0: none). */
  holdout: number;
  /** Timesteps at which the held-out accuracy is measured. */
  evalTimesteps: number[];
}

/** The input of `resolveClassifierConfig`: model keys and settings; the rest comes from the data. */
export interface ClassifierConfigInput {
  model?: Record<string, unknown>;
  /** The diffusion model's scheduler_config.json (noise-aware; DDPMScheduler defaults when empty). */
  scheduler?: Record<string, unknown>;
  train: Partial<Omit<ClassifierTrainConfig, 'model' | 'scheduler'>> & { data: string };
}

/** A small classifier for 28×28 digits: about 0.3 M parameters. */
export const DEFAULT_CLASSIFIER_MODEL: Readonly<Record<string, unknown>> = {
  block_out_channels: [32, 64, 64],
  down_block_types: ['DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'],
  layers_per_block: 1,
  attention_head_dim: 32,
  norm_num_groups: 8,
};

export const defaultClassifierTrainConfig: Omit<
  ClassifierTrainConfig,
  'data' | 'imageSize' | 'channels' | 'numClasses' | 'model' | 'scheduler' | 'evalTimesteps'
> = {
  noiseAware: true,
  steps: 2000,
  batchSize: 64,
  lr: 1e-3,
  ...OPTIMIZER_DEFAULTS,
  weightDecay: 0.05,
  labelSmoothing: 0,
  shift: 0,
  rotate: 0,
  zoom: 0,
  flip: false,
  holdout: 0,
  seed: 0,
};

/**
 * The classifier trainer's settings: the defaults, a rule for every key, and the check across
 * keys (a shift smaller than the image).
 */
export const CLASSIFIER_TRAIN_SCHEMA: SettingsSchema<ClassifierTrainConfig> = {
  defaults: defaultClassifierTrainConfig,
  rules: {
    ...DATA_RULES,
    numClasses: int(1),
    noiseAware: bool,
    model: jsonObject,
    scheduler: nullable(jsonObject),
    ...OPTIMIZER_RULES,
    labelSmoothing: probability,
    shift: int(0),
    rotate: between(0, 180, '[]'),
    zoom: probability,
    holdout: probability,
    evalTimesteps: listOf(int(0), 0),
  },
  check: (c) =>
    c.shift >= c.imageSize
      ? [`shift ${c.shift} must be smaller than the image (${c.imageSize})`]
      : [],
};

/**
 * The complete config for a labelled dataset: the model's sample_size, in_channels, num_classes,
 * time conditioning and T filled in from the data and the schedule, every key resolved; the
 * schedule resolved as a DDPMScheduler's (noise-aware only).
 */
export function resolveClassifierConfig(
  input: ClassifierConfigInput,
  dataset: Dataset,
): ClassifierTrainConfig {
  const t = input.train;
  if (dataset.numClasses === undefined) {
    throw new TrainConfigError(`${dataset.name} has no class labels; a classifier needs them`);
  }
  if (dataset.height !== dataset.width) {
    throw new TrainConfigError(
      `${dataset.name}: images are ${dataset.height}x${dataset.width}; square images only`,
    );
  }
  const noiseAware = t.noiseAware ?? defaultClassifierTrainConfig.noiseAware;
  let scheduler: Record<string, unknown> | null = null;
  let T: number | null = null;
  if (noiseAware) {
    const raw = { ...input.scheduler };
    delete raw._class_name;
    delete raw._diffusers_version;
    const ddpm = createScheduler('DDPMScheduler', raw);
    scheduler = { ...ddpm.toDiffusersConfig() };
    T = ddpm.alphasCumprod.length;
  }
  const modelIn: Record<string, unknown> = {
    ...DEFAULT_CLASSIFIER_MODEL,
    ...input.model,
    sample_size: dataset.height,
    in_channels: dataset.channels,
    num_classes: dataset.numClasses,
    time_conditioned: noiseAware,
    num_train_timesteps: T,
  };
  const resolved = resolveConfig(ENCODER_CLASSIFIER_SCHEMA, modelIn, 'classifier config').config;
  const model = JSON.parse(configToJson(ENCODER_CLASSIFIER_CLASS, resolved)) as Record<
    string,
    unknown
  >;
  const evalTimesteps =
    t.evalTimesteps ?? (T === null ? [0] : [0, 1, 2, 3].map((q) => (q * T) / 4));
  const bad = evalTimesteps.find((s) => !Number.isInteger(s) || s < 0 || (T !== null && s >= T));
  if (bad !== undefined || (!noiseAware && evalTimesteps.some((s) => s !== 0))) {
    throw new TrainConfigError(
      `evaluation timestep ${bad ?? evalTimesteps.find((s) => s !== 0)} must be ` +
        (T === null ? '0 for a clean classifier' : `an integer in 0..${T - 1}`),
    );
  }
  const config: ClassifierTrainConfig = {
    ...defaultClassifierTrainConfig,
    ...t,
    noiseAware,
    imageSize: dataset.height,
    channels: dataset.channels,
    numClasses: dataset.numClasses,
    model,
    scheduler,
    evalTimesteps,
  };
  return checkSettings(CLASSIFIER_TRAIN_SCHEMA, config);
}

/** Settings of a run that may change on resume (evalEvery: the held-out accuracy). */
export type ClassifierRunSettings = Required<LoopSettings>;

export const defaultClassifierRunSettings: ClassifierRunSettings = {
  saveEvery: 500,
  evalEvery: 0,
  logEvery: 50,
};
