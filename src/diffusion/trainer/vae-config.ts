/**
 * The autoencoder trainer's configuration: plain JSON (camelCase), saved in every checkpoint's
 * `trainer_state.json` so that a resumed run continues under exactly its settings. The
 * autoencoder itself is a diffusers config (AutoencoderKL for `kind: 'kl'`, VQModel for
 * `kind: 'vq'`) nested inside it, every key resolved.
 */
import {
  AUTOENCODER_KL_SCHEMA,
  between,
  checkPatchDiscriminator,
  configToJson,
  expecting,
  int,
  jsonObject,
  nonEmptyString,
  nonNegative,
  nullable,
  oneOf,
  PATCH_DISCRIMINATOR_DEFAULTS,
  type PatchDiscriminatorConfig,
  positive,
  probability,
  resolveConfig,
  VQ_MODEL_SCHEMA,
} from '../../nn/models/index.js';
import type { Dataset } from '../../data/index.js';
import { DATA_RULES, OPTIMIZER_DEFAULTS, OPTIMIZER_RULES, type OptimizerConfig } from './config.js';
import { checkSettings, type SettingsSchema, TrainConfigError } from './schema.js';
import type { LoopSettings } from './run-loop.js';

/** The autoencoder's folder inside a checkpoint (diffusers' name in a pipeline folder). */
export const VAE_DIR = 'vae';
/** The discriminator's weights and optimizer inside a checkpoint (not part of the autoencoder). */
export const DISCRIMINATOR_FILE = 'discriminator.safetensors';
export const DISCRIMINATOR_OPTIMIZER_FILE = 'discriminator_optimizer.safetensors';
/** The EMA codebook's running cluster sizes and sums. */
export const CODEBOOK_EMA_FILE = 'codebook_ema.safetensors';

export type AutoencoderKind = 'kl' | 'vq';
export const AUTOENCODER_KINDS: readonly AutoencoderKind[] = ['kl', 'vq'];

/** The diffusers class each kind trains. */
export const AUTOENCODER_CLASS: Record<AutoencoderKind, 'AutoencoderKL' | 'VQModel'> = {
  kl: 'AutoencoderKL',
  vq: 'VQModel',
};

export interface VaeTrainConfig extends OptimizerConfig {
  kind: AutoencoderKind;
  /** Dataset: 'mnist', 'mnist-full', 'fashion-mnist', 'emoji' or a folder of images. */
  data: string;
  imageSize: number;
  channels: 1 | 3;
  /** AutoencoderKL or VQModel config (resolved: every key). */
  model: Record<string, unknown>;
  /** Random horizontal flips. */
  flip: boolean;
  /** Weights of the mean absolute and mean squared reconstruction errors. */
  l1Weight: number;
  mseWeight: number;
  /** KL kind: weight of KL(q(z|x) ‖ N(0, I)) (summed over the latent, averaged over the batch). */
  klWeight: number;
  /** VQ kind: β of the commitment term. */
  vqBeta: number;
  /** VQ kind: the codebook follows an EMA of its assigned encoder outputs (decay), or null. */
  emaCodebook: number | null;
  /**
   * VQ kind with an EMA codebook: entries whose running cluster size falls below this are moved
   * onto a random encoder output of the batch (null: never).
   */
  deadCodeThreshold: number | null;
  /** VQ kind: codebook usage is counted over this many recent batches. */
  usageWindow: number;
  /** Step at which the patch discriminator and the adversarial loss start (null: never). */
  discStart: number | null;
  /** Weight of the generator's hinge loss once the discriminator is on. */
  discWeight: number;
  /** The discriminator's AdamW learning rate (constant). */
  discLr: number;
  discriminator: PatchDiscriminatorConfig;
  /** Fraction of the images kept out of training for the held-out metrics (0: none). */
  holdout: number;
  /** Images of the held-out split measured at most (0: all). */
  evalImages: number;
  /** The scaling factor is 1/std of the latents of the first this many training batches. */
  scalingBatches: number;
  /**
   * The autoencoder folder whose weights the run started from (fine-tuning; its config is the
   * model's), with the sha256 of its weights file; null: weights from stream (seed, 'init').
   */
  init: VaeInit | null;
}

/** Where a fine-tuning run's starting weights came from. */
export interface VaeInit {
  /** The folder holding config.json and the weights. */
  vae: string;
  /** sha256 (hex) of its diffusion_pytorch_model.safetensors. */
  sha256: string;
}

/** The input of `resolveVaeConfig`: model keys and settings; the rest comes from the data. */
export interface VaeConfigInput {
  model?: Record<string, unknown>;
  train: Partial<Omit<VaeTrainConfig, 'model'>> & { data: string };
}

/**
 * The default coder of both kinds (the `vae-emoji` / `vq-emoji` presets): widths 32/64/64, three
 * levels (×4 downsampling), 4 latent channels, GroupNorm of 8 groups.
 */
export const DEFAULT_AUTOENCODER_MODEL: Readonly<Record<string, unknown>> = {
  block_out_channels: [32, 64, 64],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 8,
  scaling_factor: 1,
};

export const defaultVaeTrainConfig: Omit<
  VaeTrainConfig,
  'kind' | 'data' | 'imageSize' | 'channels' | 'model'
> = {
  steps: 5000,
  batchSize: 16,
  lr: 3e-4,
  ...OPTIMIZER_DEFAULTS,
  flip: false,
  l1Weight: 1,
  mseWeight: 1,
  klWeight: 1e-6,
  vqBeta: 0.25,
  emaCodebook: null,
  deadCodeThreshold: null,
  usageWindow: 100,
  discStart: null,
  discWeight: 0.1,
  discLr: 2e-4,
  discriminator: { ...PATCH_DISCRIMINATOR_DEFAULTS, numLayers: 2 },
  holdout: 0.05,
  evalImages: 0,
  scalingBatches: 8,
  init: null,
  seed: 0,
};

/**
 * The autoencoder trainer's settings: the defaults, a rule for every key, and the checks across
 * keys (which losses and codebook settings go together, the discriminator against the image size).
 */
export const VAE_TRAIN_SCHEMA: SettingsSchema<VaeTrainConfig> = {
  defaults: defaultVaeTrainConfig,
  rules: {
    kind: oneOf(AUTOENCODER_KINDS),
    ...DATA_RULES,
    model: jsonObject,
    ...OPTIMIZER_RULES,
    l1Weight: nonNegative,
    mseWeight: nonNegative,
    klWeight: nonNegative,
    vqBeta: nonNegative,
    emaCodebook: nullable(between(0, 1, '()')),
    deadCodeThreshold: nullable(positive),
    usageWindow: int(1),
    discStart: nullable(int(0)),
    discWeight: nonNegative,
    discLr: positive,
    discriminator: jsonObject,
    holdout: probability,
    evalImages: int(0),
    scalingBatches: int(1),
    init: nullable(
      expecting('{ vae, sha256: 64 hex digits }', (v) => {
        const i = v as Partial<VaeInit>;
        return (
          jsonObject(v) === null &&
          nonEmptyString(i.vae) === null &&
          typeof i.sha256 === 'string' &&
          /^[0-9a-f]{64}$/.test(i.sha256)
        );
      }),
    ),
  },
  check: (c) => {
    const problems: string[] = [];
    if (!(c.l1Weight + c.mseWeight > 0)) problems.push('l1Weight + mseWeight must be > 0');
    if (c.kind === 'kl' && (c.emaCodebook !== null || c.deadCodeThreshold !== null)) {
      problems.push('emaCodebook and deadCodeThreshold are for the vq kind');
    }
    if (c.deadCodeThreshold !== null && c.emaCodebook === null) {
      problems.push('deadCodeThreshold needs an EMA codebook (emaCodebook)');
    }
    if (c.discStart !== null) {
      problems.push(
        ...checkPatchDiscriminator(c.discriminator, c.imageSize).map((p) => `discriminator: ${p}`),
      );
    }
    return problems;
  },
};

/**
 * The complete config for a dataset: the model's class from the kind, its sample_size and
 * channels from the data, every key resolved. A model config of the other kind (or not an
 * autoencoder at all) is an error naming both.
 */
export function resolveVaeConfig(input: VaeConfigInput, dataset: Dataset): VaeTrainConfig {
  const t = input.train;
  const raw = { ...input.model };
  const kind = autoencoderKindOf(raw, t.kind);
  const className = AUTOENCODER_CLASS[kind];
  if (dataset.height !== dataset.width) {
    throw new TrainConfigError(
      `${dataset.name}: images are ${dataset.height}x${dataset.width}; square images only`,
    );
  }
  delete raw._class_name;
  delete raw._diffusers_version;
  const modelIn: Record<string, unknown> = {
    ...DEFAULT_AUTOENCODER_MODEL,
    ...raw,
    sample_size: dataset.height,
    in_channels: dataset.channels,
    out_channels: dataset.channels,
  };
  const where = `${className} config`;
  const resolved =
    kind === 'kl'
      ? resolveConfig(AUTOENCODER_KL_SCHEMA, modelIn, where).config
      : resolveConfig(VQ_MODEL_SCHEMA, modelIn, where).config;
  const factor = 2 ** (resolved.block_out_channels.length - 1);
  if (dataset.height % factor !== 0) {
    throw new TrainConfigError(
      `${dataset.name}: ${dataset.height}x${dataset.width} images do not divide by the ` +
        `autoencoder's downsampling factor ${factor} (${resolved.block_out_channels.length} levels)`,
    );
  }
  const model = JSON.parse(configToJson(className, resolved)) as Record<string, unknown>;
  const config: VaeTrainConfig = {
    ...defaultVaeTrainConfig,
    ...t,
    discriminator: {
      ...defaultVaeTrainConfig.discriminator,
      ...t.discriminator,
      inChannels: dataset.channels,
    },
    kind,
    imageSize: dataset.height,
    channels: dataset.channels,
    model,
  };
  return checkSettings(VAE_TRAIN_SCHEMA, config);
}

/**
 * The kind a model config trains as: `kind` when given, else the one of its `_class_name` (kl
 * without one). A config of the other kind, or not an autoencoder at all, is an error naming both.
 */
export function autoencoderKindOf(
  model: Readonly<Record<string, unknown>>,
  kind?: AutoencoderKind,
): AutoencoderKind {
  const given =
    model._class_name === undefined
      ? undefined
      : typeof model._class_name === 'string'
        ? model._class_name
        : JSON.stringify(model._class_name);
  const k: AutoencoderKind =
    kind ?? (given === 'VQModel' ? 'vq' : given === 'AutoencoderKL' ? 'kl' : 'kl');
  if (!AUTOENCODER_KINDS.includes(k)) {
    throw new TrainConfigError(`unknown autoencoder kind '${String(k)}': expected kl or vq`);
  }
  const className = AUTOENCODER_CLASS[k];
  if (given !== undefined && given !== className) {
    const what =
      given === 'AutoencoderKL' || given === 'VQModel'
        ? `the ${k} kind trains ${article(className)} ${className}`
        : 'train-vae trains an AutoencoderKL (--kind kl) or a VQModel (--kind vq)';
    throw new TrainConfigError(`the model config is ${article(given)} ${given}; ${what}`);
  }
  return k;
}

/** The article of a class name (an AutoencoderKL, a UNet2DModel, a VQModel). */
function article(word: string): string {
  return /^[AEIO]/i.test(word) ? 'an' : 'a';
}

/** Settings of a run that may change on resume. */
export type VaeRunSettings = Required<LoopSettings>;

export const defaultVaeRunSettings: VaeRunSettings = {
  saveEvery: 500,
  evalEvery: 0,
  logEvery: 50,
};
