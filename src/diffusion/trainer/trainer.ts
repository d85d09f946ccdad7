/**
 * The trainer: DDPM's Algorithm 1 (Ho et al. 2020) on any denoiser (UNet2DModel,
 * UNet2DConditionModel), one optimizer step at a time, with everything a run needs to be saved
 * and resumed bit for bit.
 *
 * Step s:  x_0 = batch s of the DataLoader;  t_b = ⌊u_b T⌋ with u from stream (seed, 'timesteps', s);
 *          ε from stream (seed, 'noise', s);  x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε;
 *          c_b = τ(y_b) from the condition source (nothing, the class, a caption's encoding);
 *          loss = mean_b w_b ‖model(x_t, t, c) − target‖² (target ε, x_0 or v; w: min-SNR-γ or 1);
 *          with a learned variance (variance_type learned_range, 2C output channels) the hybrid
 *          loss of improved DDPM: + λ T L_vlb term at t, with the mean part detached (losses.ts);
 *          backward; clip the global gradient norm; AdamW at lr(s) (warmup + cosine); EMA.
 * The condition y_b is replaced by the null condition ∅ (null class, empty prompt) with
 * probability p, drawn from stream (seed, 'labels', s); a caption is picked among a sample's
 * candidates by stream (seed, 'captions', s). The condition source's own modules (a text
 * encoder) train jointly with the denoiser. Dropout layers draw from their own streams at
 * offsets fixed by s. A non-finite loss or gradient norm stops before the update
 * (NonFiniteError); a checkpoint is never written from non-finite weights.
 *
 * LoRA runs (config.lora) fine-tune a base model: its denoiser is frozen (no gradients, no
 * optimizer state) and only the adapters on the target layers train; they are what the
 * checkpoint holds, beside `pytorch_lora_weights.safetensors` in diffusers' format.
 *
 * ControlNet runs (config.controlnet) freeze the base likewise and train a ControlNetModel copied
 * from its encoder; each batch's condition images are computed from x_0 (control.ts), and the
 * loss is the base's under the ControlNet's residuals. The checkpoint holds `controlnet/`
 * (diffusers' ControlNet folder) instead of `unet/`.
 *
 * DreamBooth runs (config.dreambooth) fine-tune a text-to-image base on a few instance images:
 * each step's batch is B instance images with the instance prompt, then B class images (sampled
 * from the base before training) with the class prompt, and the loss is the instance half's plus
 * λ times the class half's (dreambooth.ts). The base's text encoder is frozen; the denoiser trains
 * fully (the checkpoint is a pipeline folder with the base's text encoder and tokenizer) or
 * through LoRA adapters.
 */
import { join } from 'node:path';

import {
  type Backend,
  concat,
  cpuBackend,
  defaultBackend,
  full,
  Generator,
  noGrad,
  rand,
  randn,
  reshape,
  setCpuHelperThreads,
  slice,
  tensor,
  type Tensor,
  tidy,
} from '../../engine/index.js';
import {
  type AdamW,
  disposeAll,
  EMA,
  freezeParameters,
  injectLora,
  LORA_WEIGHTS_NAME,
  type LoraNetwork,
  loadModule,
  loadTensors,
  type LrSchedule,
  serializeLora,
  tensorsToWrite,
} from '../../nn/index.js';
import {
  type AnyDiffusersModel,
  type Conditioning,
  configToJson,
  createModel,
  type Denoiser,
  DIFFUSERS_VERSION,
  resolveConfig,
  ControlledDenoiser,
  ControlNetModel,
  UNET_2D_CONDITION_SCHEMA,
  UNET_2D_SCHEMA,
  UNet2DConditionModel,
  UNet2DModel,
  WEIGHTS_NAME,
  CONFIG_NAME,
} from '../../nn/models/index.js';
import type { Module } from '../../nn/index.js';
import type {
  Batch,
  DataLoader as DataLoaderType,
  Dataset,
  WordLevelTokenizer,
} from '../../data/index.js';
import { DataLoader } from '../../data/index.js';
import { controlImages, controlOfPlanes } from '../control.js';
import type { PredictionType } from '../forward.js';
import {
  classConditioning,
  type ConditionSource,
  type ConditionValue,
  disposeConditioning,
  unconditional,
} from '../conditioning.js';
import {
  createSampler,
  encodeConditions,
  generate,
  type ModelInfo,
  pipelineIndex,
  predictionTypeOf,
} from '../pipeline.js';
import {
  createTextConditioning,
  resolveTextEncoderConfig,
  type TextConditioningSetup,
} from '../text-conditioning.js';
import {
  inpaintingChannels,
  inpaintingCondition,
  inpaintWithModel,
  MASK_DRAWS,
  randomMask,
} from '../editing/inpaint-model.js';
import { downsampleBox, upscale, upscaleCondition } from '../editing/upscale.js';
import { createScheduler, ImageNoise, type Scheduler } from '../samplers/index.js';
import { makeSchedule, type NoiseSchedule } from '../schedule.js';
import type { ModelVarType } from '../vlb.js';
import type { LatentSettings } from '../latent/vae.js';
import {
  type CheckpointFile,
  jsonBytes,
  MODEL_INDEX,
  OPTIMIZER_FILE,
  SCHEDULER_CONFIG,
  SUMI_INFO,
  TRAINER_STATE,
  LORA_ADAPTER_FILE,
  UNET_DIR,
  UNET_LORA_DIR,
  CONTROLNET_DIR,
} from './checkpoint.js';
import {
  createOptimizer,
  dataPosition,
  finiteWeights,
  loadOptimizerState,
  modelFolderFiles,
  optimizerStateBytes,
  readStateFile,
  rngState,
  runInfo,
  type RunRecord,
  runState,
} from './checkpoint-parts.js';
import {
  checkImageShape,
  defaultTrainConfig,
  type RunSettings,
  type TrainConfig,
  TrainConfigError,
  trainedVarianceType,
} from './config.js';
import { DREAMBOOTH_BATCH_SIZE, DreamBoothInputError, hasClassImages } from './dreambooth.js';
import { DropoutStreams, streamSeed } from './streams.js';
import type { LatentCache } from '../latent/cache.js';
import { decodeLatents, type LatentSpec } from '../latent/vae.js';
import { LATENT_VAE_DIR, type LoadedVae } from '../latent/vae-fs.js';
import { microBatchRanges, Replica, replicaCount } from './replica.js';
import {
  clipGradients,
  microBatchLoss,
  NonFiniteError,
  trainingTimesteps,
  updateIfFinite,
} from '../train-step.js';

/** A float32 image tensor's values and shape, as a replica job carries them. */
function hostImage(x: Tensor): { data: Float32Array; shape: number[] } {
  return { data: x.dataSync() as Float32Array, shape: [...x.shape] };
}

export { NonFiniteError };

export interface StepStats {
  /** Steps completed (the step just taken is step − 1, 0-based). */
  step: number;
  loss: number;
  /** The global gradient norm before clipping (null when clipping is off). */
  gradNorm: number | null;
  lr: number;
  emaDecay: number | null;
  epoch: number;
}

/** What `trainer_state.json` holds. */
export interface TrainerState {
  format: 'sumi-trainer-state';
  version: 1;
  /** Optimizer steps completed; the next step to run. */
  step: number;
  config: TrainConfig;
  ema: { optimizationStep: number; decay: number | null } | null;
  /** Counter-based streams: every draw of step s is keyed by (seed, purpose, s). */
  rng: { generator: 'philox4x32-10'; seed: number; nextStep: number };
  data: {
    name: string;
    length: number;
    batchSize: number;
    stepsPerEpoch: number;
    epoch: number;
    /** Index of the next sample within the epoch's order. */
    position: number;
  };
  classes: { numClasses: number; nullClassId: number; names?: string[] } | null;
  elapsedSeconds: number;
  backend: string;
  /** How the run reports and saves (restored on resume unless overridden). */
  run?: RunSettings;
  /** `sumi train` arguments that retrain this model from scratch. */
  trainArgs?: string[];
  /** A LoRA run's base: the weights file it trains against and that file's sha256. */
  baseWeights?: BaseWeights;
  /** A DreamBooth run's class images: how many, and the sha256 of their pixels. */
  classImages?: { count: number; sha256: string };
}

/** A weights file and its sha256 (hex). */
export interface BaseWeights {
  path: string;
  sha256: string;
}

/** The frozen base of a LoRA, ControlNet or DreamBooth run (setup.ts `loadLoraBase`). */
export interface LoraBase {
  /** Its denoiser, loaded; the run's config.model is its config. */
  model: AnyDiffusersModel & Denoiser;
  /** The file its weights were loaded from. */
  weights: BaseWeights;
  /** DreamBooth: the base's tokenizer and text encoder (frozen), which read the prompts. */
  condition?: ConditionSource;
  /** DreamBooth: the condition dropout the base was trained with (its sumi.json's). */
  conditionDropout?: number;
  /** DreamBooth: the text encoder's weights file. */
  textEncoderWeights?: BaseWeights;
  /** DreamBooth: the class images sampled from the base, and the sha256 of their pixels. */
  classImages?: { dataset: Dataset; sha256: string };
}

/** A latent run's autoencoder and the latents of its images (setup.ts `openLatentSource`). */
export interface LatentSource {
  vae: LoadedVae;
  cache: LatentCache;
}

/** What a checkpoint records besides the training state proper. */
export type CheckpointMeta = RunRecord<RunSettings>;

/** Inputs of `resolveTrainConfig`: a config source with overrides merged into `train`. */
export interface TrainConfigInput {
  model: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  train: Partial<TrainConfig> & { data: string };
}

/**
 * Image size and channels to load the dataset with (undefined: the dataset's own). A latent run
 * (`vae`) loads images of the vae's channels at sample_size × its downsampling factor.
 */
export function datasetShapeFor(
  input: TrainConfigInput,
  vae?: LatentSpec,
): { size?: number; channels?: 1 | 3 } {
  const m = input.model;
  const sampleSize = typeof m.sample_size === 'number' ? m.sample_size : undefined;
  if (vae !== undefined) {
    const ch = vae.imageChannels === 1 || vae.imageChannels === 3 ? vae.imageChannels : undefined;
    return {
      size:
        input.train.imageSize ??
        (sampleSize === undefined ? undefined : sampleSize * vae.downsampleFactor),
      channels: input.train.channels ?? ch,
    };
  }
  // An upscaler's or inpainting model's in_channels also count the image joined to x_t.
  const joined = (input.train.upscale ?? null) !== null || (input.train.inpaint ?? null) !== null;
  const inCh = !joined && (m.in_channels === 1 || m.in_channels === 3) ? m.in_channels : undefined;
  return { size: input.train.imageSize ?? sampleSize, channels: input.train.channels ?? inCh };
}

/**
 * The complete config for a dataset: image size and channels from the data, the model config
 * (a UNet2DModel, or a UNet2DConditionModel for text) with sample_size, in/out_channels,
 * num_class_embeds and cross_attention_dim filled in and every key resolved, the text encoder's
 * config (vocabulary size from the captions' tokenizer), the scheduler config resolved as a
 * DDPMScheduler's.
 */
export function resolveTrainConfig(
  input: TrainConfigInput,
  dataset: Dataset,
  vae?: LatentVaeInput,
): TrainConfig {
  const t = input.train;
  if (dataset.height !== dataset.width) {
    throw new TrainConfigError(
      `${dataset.name}: images are ${dataset.height}x${dataset.width}; square images only`,
    );
  }
  const textCond = t.textCond ?? Boolean(t.dreambooth);
  if (t.dreambooth) checkDreamBoothSettings(t, dataset, textCond);
  const classCond = t.classCond ?? typeof input.model.num_class_embeds === 'number';
  const className = input.model._class_name ?? (textCond ? 'UNet2DConditionModel' : 'UNet2DModel');
  if (className !== 'UNet2DModel' && className !== 'UNet2DConditionModel') {
    throw new TrainConfigError(
      `the model is a ${JSON.stringify(className)}; training supports UNet2DModel and UNet2DConditionModel`,
    );
  }
  const schedulerIn = { ...input.scheduler };
  delete schedulerIn._class_name;
  delete schedulerIn._diffusers_version;
  // Latents are not in [−1, 1]: clip_sample (true by default, for pixels) would clip most of a
  // latent x̂_0 in the DDPM and DDIM steps. A latent run samples without it, as Stable
  // Diffusion's schedulers do; asking for it is refused rather than quietly dropped.
  if (vae !== undefined) {
    if (schedulerIn.clip_sample === true) {
      throw new TrainConfigError(
        'clip_sample clips x̂_0 to the pixel range [−1, 1]; latents are not in it: a latent run needs clip_sample false',
      );
    }
    schedulerIn.clip_sample = false;
  }
  const ddpm = createScheduler('DDPMScheduler', schedulerIn);
  const { _class_name, ...rest } = ddpm.toDiffusersConfig();
  const scheduler: Record<string, unknown> = {
    _class_name,
    _diffusers_version: DIFFUSERS_VERSION,
    ...rest,
  };
  // Zero terminal SNR makes ᾱ_{T−1} = 0: x_t = ε there, and x̂_0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t
  // has no value; Lin et al. (2024) train v (or x_0) instead.
  if (scheduler.rescale_betas_zero_snr === true && scheduler.prediction_type === 'epsilon') {
    throw new TrainConfigError(
      'rescale_betas_zero_snr makes ᾱ_T = 0, where an ε-prediction gives no x̂_0; ' +
        'train v_prediction (or sample) with it',
    );
  }
  if (t.upscale && t.inpaint) {
    throw new TrainConfigError('a model either upscales or inpaints, not both');
  }
  // A learned Σ_θ adds C output channels: [mean part; variance part].
  const learned = trainedVarianceType(scheduler.variance_type) === 'learned_range';
  const latent = vae === undefined ? null : latentSettingsFor(input, dataset, vae);
  // A pixel model's in_channels are its images' (a gray model may be given --channels 3, which
  // then sets them); any other count is a latent model's, and is never quietly changed.
  const given = input.model.in_channels;
  const imageChannels = given === 1 || given === 3;
  if (
    latent === null &&
    !t.upscale &&
    !t.inpaint &&
    typeof given === 'number' &&
    given !== dataset.channels &&
    !(imageChannels && t.channels !== undefined)
  ) {
    throw new TrainConfigError(
      `the model's in_channels is ${given} but ${dataset.name} images have ${dataset.channels} ` +
        `channel${dataset.channels === 1 ? '' : 's'}: a pixel model takes the images' channels; ` +
        `for a latent model of ${given} channels pass --vae DIR (an AutoencoderKL or VQModel folder)`,
    );
  }
  // A latent run's denoiser sees c × h × w latents; a pixel run's the images.
  const [c, side] =
    latent === null ? [dataset.channels, dataset.height] : [latent.shape[0], latent.shape[1]];
  const model: Record<string, unknown> = {
    ...input.model,
    _class_name: className,
    sample_size: side,
    // SR3 joins the upsampled low resolution (C channels) to x_t; inpainting the masked image
    // and the mask (C + 1).
    in_channels: t.upscale ? 2 * c : t.inpaint ? inpaintingChannels(c) : c,
    out_channels: learned ? 2 * c : c,
  };
  if (classCond) {
    if (dataset.numClasses === undefined) {
      throw new TrainConfigError(
        `${dataset.name} has no class labels; class conditioning needs them`,
      );
    }
    model.num_class_embeds = dataset.numClasses + 1; // the last id is the null class
    model.class_embed_type = null;
  } else {
    model.num_class_embeds = null;
  }
  let textEncoder: Record<string, unknown> | null = null;
  if (textCond) {
    if (className !== 'UNet2DConditionModel') {
      throw new TrainConfigError(
        'text conditioning needs a UNet2DConditionModel (cross-attention); the model is a UNet2DModel',
      );
    }
    if (t.dreambooth || t.init) {
      // The base's (or the --init model's) text encoder: its config, and the U-Net's width for it.
      textEncoder = t.textEncoder ?? null;
    } else {
      const setup = prepareText(t, dataset);
      textEncoder = setup.encoderConfig;
      model.cross_attention_dim = setup.hiddenSize;
    }
  } else if (className === 'UNet2DConditionModel') {
    const probe = resolveConfig(UNET_2D_CONDITION_SCHEMA, model, 'model config').config;
    const hasCross =
      probe.mid_block_type === 'UNetMidBlock2DCrossAttn' ||
      probe.down_block_types.includes('CrossAttnDownBlock2D') ||
      probe.up_block_types.includes('CrossAttnUpBlock2D');
    if (hasCross) {
      throw new TrainConfigError(
        'the UNet2DConditionModel has cross-attention blocks: train it with text conditioning (--text)',
      );
    }
  }
  const unet =
    className === 'UNet2DModel'
      ? resolveConfig(UNET_2D_SCHEMA, model, 'model config').config
      : resolveConfig(UNET_2D_CONDITION_SCHEMA, model, 'model config').config;
  const levels = unet.block_out_channels.length;
  if (side % 2 ** (levels - 1) !== 0) {
    throw new TrainConfigError(
      `${latent === null ? 'image' : 'latent'} size ${side} is not divisible by ${2 ** (levels - 1)} (the model has ${levels} levels)`,
    );
  }
  const factor = t.upscale?.factor ?? 1;
  if (dataset.height % factor !== 0) {
    throw new TrainConfigError(
      `image size ${dataset.height} is not divisible by the upscaling factor ${factor}`,
    );
  }
  const resolvedModel = JSON.parse(configToJson(className, unet)) as Record<string, unknown>;
  return {
    ...defaultTrainConfig,
    // Two micro-batches on the CPU, computed on two cores (replica.ts); one on a GPU, and for
    // LoRA runs, whose adapters the replicas do not carry.
    microBatches:
      defaultBackend().name === 'cpu' && !t.lora && !t.controlnet && !t.dreambooth ? 2 : 1,
    ...t,
    // A DreamBooth batch keeps its prompts (the null prompt is the base's), and a few instance
    // images make a small batch.
    ...(t.dreambooth ? { labelDropout: 0, batchSize: t.batchSize ?? DREAMBOOTH_BATCH_SIZE } : {}),
    ...(latent !== null ? { latent } : {}),
    imageSize: dataset.height,
    channels: dataset.channels,
    classCond,
    textCond,
    textEncoder,
    model: resolvedModel,
    scheduler,
  };
}

/** What `resolveTrainConfig` needs of a latent run's autoencoder. */
export interface LatentVaeInput {
  /** The folder as given. */
  dir: string;
  spec: LatentSpec;
  /** sha256 of its weights file. */
  sha256: string;
}

/**
 * The latent settings of a run on `vae`: its images must have the vae's channels and a side its
 * downsampling factor divides; a model config that gives in_channels must give the latents'.
 * Upscaling, inpainting, LoRA and ControlNet runs stay in pixel space.
 */
function latentSettingsFor(
  input: TrainConfigInput,
  dataset: Dataset,
  vae: LatentVaeInput,
): LatentSettings {
  const t = input.train;
  const what = t.upscale
    ? 'an upscaler (--task upscale)'
    : t.inpaint
      ? 'an inpainting model (--task inpaint)'
      : t.lora
        ? 'LoRA adapters'
        : t.controlnet
          ? 'a ControlNet'
          : t.dreambooth
            ? 'DreamBooth'
            : null;
  if (what !== null) {
    throw new TrainConfigError(
      `--vae: latent diffusion does not train ${what}; those run on pixels`,
    );
  }
  const s = vae.spec;
  if (dataset.channels !== s.imageChannels) {
    throw new TrainConfigError(
      `the vae ${vae.dir} encodes ${s.imageChannels}-channel images; ${dataset.name} is loaded with ${dataset.channels}`,
    );
  }
  const f = s.downsampleFactor;
  if (dataset.height % f !== 0) {
    throw new TrainConfigError(
      `image size ${dataset.height} is not divisible by the vae's downsampling factor ${f}`,
    );
  }
  const given = input.model.in_channels;
  const latentName = s.kind === 'vq' ? 'vq_embed_dim' : 'latent_channels';
  if (typeof given === 'number' && given !== s.latentChannels) {
    throw new TrainConfigError(
      `the U-Net's in_channels is ${given} but the vae ${vae.dir} makes ${s.latentChannels}-channel latents ` +
        `(its ${latentName}): they must be equal`,
    );
  }
  const side = dataset.height / f;
  return {
    vae: vae.dir,
    kind: s.kind,
    vaeClass: s.vaeClass,
    scalingFactor: s.scalingFactor,
    shiftFactor: s.shiftFactor,
    vaeSha256: vae.sha256,
    shape: [s.latentChannels, side, side],
  };
}

/**
 * Refuses DreamBooth settings the run cannot take: a batch larger than the instance images or
 * than the class images, more than one micro-batch (the step's two parts are its instance and
 * class halves), condition dropout, a base without a text encoder config.
 */
function checkDreamBoothSettings(
  t: Partial<TrainConfig>,
  dataset: Dataset,
  textCond: boolean,
): void {
  const d = t.dreambooth!;
  const b = t.batchSize ?? DREAMBOOTH_BATCH_SIZE;
  const problems: string[] = [];
  if (!textCond) problems.push('DreamBooth trains a text-conditioned model (textCond)');
  if ((t.textEncoder ?? null) === null) {
    problems.push(`the base ${d.base} gives no text encoder config`);
  }
  if (b > dataset.length) {
    problems.push(`a batch of ${b} instance images, but ${dataset.name} has ${dataset.length}`);
  }
  if (hasClassImages(d) && d.numClassImages < b) {
    problems.push(`a batch of ${b} class images, but only ${d.numClassImages} are sampled`);
  }
  if ((t.microBatches ?? 1) !== 1) {
    problems.push('DreamBooth runs one micro-batch (its instance and class halves are the parts)');
  }
  if ((t.labelDropout ?? 0) !== 0) {
    problems.push('DreamBooth keeps every prompt: no condition dropout');
  }
  if (problems.length > 0) throw new DreamBoothInputError(problems.join('; '));
}

/** The tokenizer and text encoder config of a text-conditioned run (no weights yet). */
function prepareText(
  t: Partial<TrainConfig>,
  dataset: Dataset,
): { encoderConfig: Record<string, unknown>; hiddenSize: number } {
  const setup: TextConditioningSetup = {
    dataset,
    encoderConfig: t.textEncoder ?? {},
    maxTokens: t.maxTokens ?? defaultTrainConfig.maxTokens,
  };
  const { encoderConfig, hiddenSize } = resolveTextEncoderConfig(setup);
  return { encoderConfig, hiddenSize };
}

/** A trained part of the pipeline: the denoiser ('unet') or a condition source's module. */
interface Component {
  readonly name: string;
  readonly module: Module & { configJson(): string };
  readonly weightsName: string;
  readonly ema: EMA | null;
  /** Prefix of its parameters' names in the optimizer state ('' for the denoiser). */
  readonly prefix: string;
}

/**
 * The condition source a config trains: none, the dataset's classes, or its captions (read with
 * `tokenizer` when given: the vocabulary of the model a run continues).
 */
function conditionSourceFor(
  config: TrainConfig,
  dataset: Dataset,
  tokenizer: WordLevelTokenizer | undefined,
): ConditionSource {
  if (config.textCond) {
    return createTextConditioning(
      {
        dataset,
        encoderConfig: config.textEncoder ?? {},
        maxTokens: config.maxTokens,
        ...(tokenizer !== undefined ? { tokenizer } : {}),
      },
      {
        generator: new Generator(streamSeed(config.seed, 'text_encoder_init')),
        hasNull: config.labelDropout > 0,
      },
    );
  }
  if (config.classCond) {
    return classConditioning({
      numClasses: dataset.numClasses!,
      nullClassId: dataset.numClasses!,
      ...(dataset.classNames ? { classNames: dataset.classNames } : {}),
    });
  }
  return unconditional();
}

export class Trainer {
  readonly config: TrainConfig;
  readonly dataset: Dataset;
  readonly model: AnyDiffusersModel & Denoiser;
  /** What the denoiser is conditioned on; its modules train with the denoiser. */
  readonly condition: ConditionSource;
  readonly optimizer: AdamW;
  /** The EMA of the trained weights: the denoiser's, or the LoRA adapters'. */
  readonly ema: EMA | null;
  /** The adapters a LoRA run trains (null: the denoiser itself trains). */
  readonly lora: LoraNetwork | null;
  /** The ControlNet a ControlNet run trains (null: not a ControlNet run). */
  readonly controlnet: ControlNetModel | null;
  /** What the loss and previews run: the denoiser, or the base steered by the ControlNet. */
  readonly #denoiser: Denoiser;
  /** The weights file of a LoRA run's base (null: not a LoRA run). */
  readonly baseWeights: BaseWeights | null;
  /** A DreamBooth run's class images, in their own order (null: none). */
  readonly priorLoader: DataLoaderType | null;
  /** The sha256 of their pixels. */
  readonly #classImagesSha256: string | null;
  /** The condition dropout a DreamBooth run's base was trained with. */
  readonly #baseConditionDropout: number | null;
  /** A latent run's autoencoder and cached latents (null: the denoiser trains on pixels). */
  readonly latent: LatentSource | null;
  readonly loader: DataLoaderType;
  readonly schedule: NoiseSchedule;
  readonly predictionType: PredictionType;
  /** p_θ's variance: fixed (L_simple), or learned_range (L_hybrid, 2C output channels). */
  readonly varianceType: ModelVarType;
  readonly classes: { numClasses: number; nullClassId: number; names?: string[] } | null;
  /** Optimizer steps completed. */
  step = 0;
  /** Seconds spent in earlier runs of this training (from the checkpoint). */
  elapsedBefore = 0;
  /** The learning rate of each step. */
  readonly lrAt: LrSchedule;
  readonly #dropouts: DropoutStreams;
  readonly #components: Component[];
  /** Micro-batches per step (checkpoints from before the setting ran whole batches). */
  readonly #microBatches: number;
  /** Replicas computing micro-batches 1.. on other cores; null until the first step. */
  #replicas: Replica[] | null = null;
  /** The denoiser's parameters, in the replicas' order. */
  #replicaParams: Tensor[] = [];

  /**
   * A fresh trainer (initial weights from stream (seed, 'init')) for a resolved config. Parameters,
   * optimizer state and batches live on the default backend (set it first). A LoRA run takes its
   * loaded base (whose denoiser's config must be config.model) and adapters from stream
   * (seed, 'lora_init'). A run that continues a model (config.init) is built as a fresh one, with
   * `opts.tokenizer` (that model's vocabulary) for a text model; `loadInitWeights` then brings in
   * the model's weights.
   */
  constructor(
    config: TrainConfig,
    dataset: Dataset,
    base?: LoraBase,
    latent?: LatentSource,
    opts: { tokenizer?: WordLevelTokenizer } = {},
  ) {
    checkImageShape(dataset, config);
    this.latent = checkLatentSource(config, dataset, latent);
    this.config = config;
    this.dataset = dataset;
    this.varianceType = trainedVarianceType(config.scheduler.variance_type);
    const c = config.latent ? config.latent.shape[0] : config.channels;
    const outChannels = this.varianceType === 'learned_range' ? 2 * c : c;
    if (config.model.out_channels !== outChannels) {
      throw new TrainConfigError(
        `variance_type ${String(config.scheduler.variance_type)} needs out_channels ${outChannels}, ` +
          `the model has ${String(config.model.out_channels)}`,
      );
    }
    const s = config.seed;
    const db = config.dreambooth ?? null;
    if ((base !== undefined) !== Boolean(config.lora || config.controlnet || db)) {
      throw new TrainConfigError(
        'a base model goes with a LoRA, ControlNet or DreamBooth config, and only with one',
      );
    }
    if (db !== null && base?.condition === undefined) {
      throw new TrainConfigError("a DreamBooth run reads its prompts with the base's text encoder");
    }
    const prior = db !== null && hasClassImages(db);
    if (prior !== (base?.classImages !== undefined)) {
      throw new TrainConfigError(
        'class images go with a DreamBooth run that has a class prompt and λ > 0, and only with one',
      );
    }
    if (config.init && (base !== undefined || (config.textCond && opts.tokenizer === undefined))) {
      throw new TrainConfigError(
        'a run from --init weights has no base model, and a text one reads with its tokenizer',
      );
    }
    this.baseWeights = base?.weights ?? null;
    const model =
      base?.model ??
      createModel(config.model, {
        generator: new Generator(streamSeed(s, 'init')),
        dropoutSeed: streamSeed(s, 'dropout') % 2 ** 32,
      });
    if (!('denoise' in model)) {
      throw new TrainConfigError(`a ${model.className} is not a denoiser`);
    }
    this.model = model;
    // DreamBooth reads the prompts with the base's tokenizer and text encoder (frozen by setup).
    this.condition = base?.condition ?? conditionSourceFor(config, dataset, opts.tokenizer);
    this.priorLoader =
      base?.classImages === undefined
        ? null
        : new DataLoader(base.classImages.dataset, {
            batchSize: config.batchSize,
            seed: streamSeed(s, 'prior_data'),
            flip: config.flip,
          });
    this.#classImagesSha256 = base?.classImages?.sha256 ?? null;
    this.#baseConditionDropout = base?.conditionDropout ?? null;
    this.lora = null;
    if (config.lora) {
      freezeParameters(model);
      for (const c of this.condition.components) freezeParameters(c.module);
      const { rank, alpha, targets } = config.lora;
      const generator = new Generator(streamSeed(s, 'lora_init'));
      this.lora = injectLora(model, { rank, alpha, targets, generator });
    }
    this.controlnet = null;
    if (config.controlnet) {
      if (!(model instanceof UNet2DModel || model instanceof UNet2DConditionModel)) {
        throw new TrainConfigError(
          `a ${(model as Denoiser).className} has no encoder for a ControlNet`,
        );
      }
      freezeParameters(model);
      this.controlnet = ControlNetModel.fromUNet(model, {
        conditioningChannels: 1,
        conditioningEmbeddingOutChannels: config.controlnet.conditioningEmbeddingOutChannels,
        generator: new Generator(streamSeed(s, 'init')),
      });
    }
    this.#denoiser =
      this.controlnet === null ? model : new ControlledDenoiser(model, this.controlnet);
    const emaOf = (m: Module): EMA | null =>
      config.emaDecay === null
        ? null
        : new EMA(m, {
            decay: config.emaDecay,
            warmup: config.emaWarmup,
            power: config.emaPower,
            invGamma: config.emaInvGamma,
            updateAfterStep: config.emaUpdateAfterStep,
          });
    const lora = this.lora;
    const cnet = this.controlnet;
    this.#components = cnet
      ? [
          {
            name: CONTROLNET_DIR,
            module: cnet,
            weightsName: WEIGHTS_NAME,
            ema: emaOf(cnet),
            prefix: '',
          },
        ]
      : lora
        ? [
            {
              name: UNET_LORA_DIR,
              module: lora,
              weightsName: LORA_ADAPTER_FILE,
              ema: emaOf(lora),
              prefix: '',
            },
          ]
        : [
            {
              name: UNET_DIR,
              module: model,
              weightsName: WEIGHTS_NAME,
              ema: emaOf(model),
              prefix: '',
            },
            // A DreamBooth run's text encoder is the base's, frozen: saved, never trained.
            ...(db !== null ? [] : this.condition.components).map((c) => ({
              name: c.name,
              module: c.module,
              weightsName: c.weightsName,
              ema: emaOf(c.module),
              prefix: `${c.name}.`,
            })),
          ];
    // A loaded base is in eval mode; a DreamBooth run trains its denoiser itself.
    if (db !== null && lora === null) model.train(true);
    this.ema = this.#components[0]!.ema;
    this.#dropouts = new DropoutStreams(this.#components.map((c) => c.module));
    ({ optimizer: this.optimizer, lr: this.lrAt } = createOptimizer(
      this.#namedParameters(),
      config,
    ));
    this.loader = new DataLoader(dataset, {
      batchSize: config.batchSize,
      seed: streamSeed(s, 'data'),
      flip: config.flip,
    });
    const ddpm = createScheduler('DDPMScheduler', config.scheduler);
    this.schedule = makeSchedule(Float64Array.from(ddpm.betas));
    this.predictionType = predictionTypeOf(config.scheduler);
    this.classes = config.classCond
      ? {
          numClasses: dataset.numClasses!,
          nullClassId: dataset.numClasses!,
          ...(dataset.classNames ? { names: [...dataset.classNames] } : {}),
        }
      : null;
    this.#microBatches = config.microBatches ?? 1;
  }

  /**
   * Replicas for a step of `parts` micro-batches: started on the first call where they can
   * compute what this thread would (CPU backend, float32, no active dropout, no LoRA adapters, no
   * ControlNet), none otherwise. A condition source's trained modules (the text encoder) stay on
   * this thread. While replicas run, this thread's products stay on it
   * (the other cores are the replicas').
   */
  async #replicasFor(parts: number): Promise<Replica[]> {
    if (this.#replicas === null) {
      this.#replicas = [];
      const eligible =
        defaultBackend().name === 'cpu' &&
        this.lora === null &&
        this.controlnet === null &&
        !this.config.dreambooth &&
        this.#dropouts.layers.every((d) => d.p === 0) &&
        this.model.namedParameters().every(([, t]) => t.dtype === 'float32');
      const count = eligible ? replicaCount(parts) : 0;
      if (count > 0) {
        const named = this.model.namedParameters();
        this.#replicaParams = named.map(([, t]) => t);
        const spec = {
          model: this.config.model,
          scheduler: this.config.scheduler,
          predictionType: this.predictionType,
          varianceType: this.varianceType,
          snrGamma: this.config.snrGamma,
          params: named.map(([name, t]) => ({ name, shape: [...t.shape] })),
        };
        try {
          for (let i = 0; i < count; i++) this.#replicas.push(await Replica.start(spec));
          setCpuHelperThreads(false);
        } catch {
          // No worker threads here: the micro-batches run on this thread.
          for (const r of this.#replicas) await r.close();
          this.#replicas = [];
        }
      }
    }
    if (this.#replicas.length > 0) Replica.writeParams(this.#replicas, this.#replicaParams);
    return this.#replicas.slice(0, parts - 1);
  }

  /** Replicas computing micro-batches beside this thread (0 before the first step). */
  get replicaCount(): number {
    return this.#replicas?.length ?? 0;
  }

  /** Stops the replicas (training can go on without them). */
  async close(): Promise<void> {
    const rs = this.#replicas ?? [];
    this.#replicas = null;
    for (const r of rs) await r.close();
    if (rs.length > 0) setCpuHelperThreads(true);
  }

  /** Every trained parameter: the denoiser's under its own names, the others' prefixed. */
  #namedParameters(): [string, Tensor][] {
    return this.#components.flatMap((c) =>
      c.module.namedParameters().map(([n, t]): [string, Tensor] => [c.prefix + n, t]),
    );
  }

  /** How many numbers training updates: the denoiser's and the condition source's parameters. */
  numParameters(): number {
    return this.#namedParameters().reduce((n, [, t]) => n + t.size, 0);
  }

  #setTraining(mode: boolean): void {
    for (const c of this.#components) c.module.train(mode);
  }

  /** Runs optimizer step `this.step` and advances. Throws NonFiniteError before a bad update. */
  async trainStep(): Promise<StepStats> {
    const s = this.step;
    const cfg = this.config;
    const seed = cfg.seed;
    const T = this.schedule.numTrainTimesteps;
    this.#dropouts.seek(s);
    const lr = this.lrAt(s);
    this.optimizer.lr = lr;
    const batch = this.#batchAt(s);
    const B = batch.x.shape[0]!;
    const timesteps = trainingTimesteps(seed, s, B, T);
    const values = cfg.dreambooth
      ? this.#dreamboothValues(B)
      : await this.#conditionValues(batch, s);
    const x0 = batch.x;
    const parts = this.#parts(B);
    const replicas = await this.#replicasFor(parts.length);
    const lossOpts = {
      predictionType: this.predictionType,
      varianceType: this.varianceType,
      snrGamma: cfg.snrGamma,
    };
    const control =
      cfg.controlnet && this.controlnet ? await controlImages(cfg.controlnet.control, x0) : null;
    let out: { losses: Tensor[]; gradNorm: Tensor | null };
    try {
      const noise = randn(x0.shape, {
        seed: streamSeed(seed, 'noise', s),
        dtype: x0.dtype,
        backend: x0.backend,
      });
      const joined = this.#lowResolution(x0, s) ?? (await this.#maskedImages(x0, s));
      // Micro-batch i (rows [lo, hi), loss weighted by its share of the batch) runs on replica
      // i − 1 when there is one, here otherwise; gradients accumulate in part order either way.
      const part = (i: number) => {
        const [lo, hi, weight] = parts[i]!;
        const rows = (t: Tensor): Tensor => (parts.length === 1 ? t : slice(t, [lo], [hi]));
        const ts = timesteps.slice(lo, hi);
        const vs = values?.slice(lo, hi) ?? null;
        return { rows, ts, vs, weight };
      };
      const remote = replicas.map((r, k) =>
        r.run(
          tidy(() => {
            const p = part(k + 1);
            // τ_θ(y) as a value; its backward runs here once the replica returns ∂L/∂τ_θ(y).
            const cond =
              p.vs === null ? {} : noGrad(() => this.condition.encode(p.vs!, x0.backend));
            const x = p.rows(x0);
            const states = cond.encoderHiddenStates;
            return {
              shape: [...x.shape],
              x0: x.dataSync() as Float32Array,
              noise: p.rows(noise).dataSync() as Float32Array,
              timesteps: p.ts,
              classLabels: (cond.classLabels?.dataSync() as Int32Array | undefined) ?? null,
              concatImage: joined === null ? null : hostImage(p.rows(joined)),
              encoder: states
                ? {
                    hiddenStates: states.dataSync() as Float32Array,
                    shape: [...states.shape],
                    attentionMask:
                      (cond.encoderAttentionMask?.dataSync() as Int32Array | undefined) ?? null,
                    wantGrad: this.condition.components.length > 0,
                  }
                : null,
              weight: p.weight,
            };
          }),
        ),
      );
      const losses: Tensor[] = [];
      try {
        for (let i = 0; i < parts.length; i++) {
          const r = replicas[i - 1];
          if (r !== undefined) {
            await remote[i - 1];
            const grads = r.grads(this.#replicaParams.map((t) => t.shape));
            this.#replicaParams.forEach((t, j) => {
              const g = grads[j];
              if (g !== null && g !== undefined) t.accumulateGrad(g);
            });
            const dStates = r.encoderGrad;
            if (dStates !== null) {
              const vs = part(i).vs!;
              tidy(() => {
                // The same forward as the dispatch (no dropout), now recorded for its backward.
                const states = this.condition.encode(vs, x0.backend).encoderHiddenStates!;
                states.backward(tensor(dStates, states.shape, { backend: x0.backend }));
              });
            }
            continue;
          }
          const p = part(i);
          losses.push(
            tidy(() => {
              const encoded = p.vs === null ? {} : this.condition.encode(p.vs, x0.backend);
              const cond = joined === null ? encoded : { ...encoded, concatImage: p.rows(joined) };
              const loss = microBatchLoss(this.#denoiser, this.schedule, lossOpts, {
                x0: p.rows(x0),
                noise: p.rows(noise),
                timesteps: p.ts,
                cond: control === null ? cond : { ...cond, controlnetCond: p.rows(control) },
                weight: p.weight,
              });
              loss.backward();
              return loss.detach();
            }),
          );
        }
        // The remote parts' losses, in part order after the local ones (only their sum counts).
        for (const l of await Promise.all(remote)) {
          losses.push(full([], l, { dtype: x0.dtype, backend: x0.backend }));
        }
      } finally {
        noise.dispose();
        joined?.dispose();
      }
      const gradNorm = tidy(() => clipGradients(this.#namedParameters(), cfg.maxGradNorm));
      out = { losses, gradNorm };
    } finally {
      x0.dispose();
      batch.labels?.dispose();
      control?.dispose();
    }
    // One readback for all scalars (each read waits for the device); tidy frees the views.
    const scalars = tidy(() =>
      concat([
        ...out.losses.map((l) => reshape(l, [1])),
        ...(out.gradNorm === null ? [] : [reshape(out.gradNorm, [1])]),
      ]),
    );
    const read = await scalars.data();
    scalars.dispose();
    let loss = 0;
    for (let i = 0; i < out.losses.length; i++) loss += read[i]!;
    const gradNorm = out.gradNorm === null ? null : read[out.losses.length]!;
    for (const l of out.losses) l.dispose();
    out.gradNorm?.dispose();
    updateIfFinite(this.optimizer, s, { 'the loss': loss, 'the gradient norm': gradNorm }, () =>
      this.optimizer.zeroGrad(),
    );
    for (const c of this.#components) c.ema?.step(c.module);
    this.step = s + 1;
    return {
      step: this.step,
      loss,
      gradNorm,
      lr,
      emaDecay: this.ema?.curDecay ?? null,
      epoch: batch.epoch,
    };
  }

  /**
   * The images of step s: the loader's batch (as latents in a latent run); in a DreamBooth run with
   * class images, the instance batch followed by the class images' batch of step s.
   */
  #batchAt(s: number): Batch {
    if (this.latent !== null) return this.latent.cache.batchAt(this.loader, this.config.seed, s);
    const inst = this.loader.batchAt(s);
    if (this.priorLoader === null) return inst;
    const prior = this.priorLoader.batchAt(s);
    const x = concat([inst.x, prior.x], 0);
    inst.x.dispose();
    prior.x.dispose();
    inst.labels?.dispose();
    return { ...inst, x, labels: undefined, flipped: [...inst.flipped, ...prior.flipped] };
  }

  /**
   * The parts of a batch of B as [lo, hi, weight]: micro-batches weighted by their share of the
   * batch, so that their losses add up to the batch mean; in a DreamBooth run with class images the
   * instance half (weight 1) and the class half (weight λ), so that they add up to
   * L_instance + λ L_prior.
   */
  #parts(B: number): [number, number, number][] {
    const db = this.config.dreambooth;
    if (db && this.priorLoader !== null) {
      const bi = this.loader.batchSize;
      return [
        [0, bi, 1],
        [bi, B, db.priorLossWeight],
      ];
    }
    return microBatchRanges(B, this.#microBatches).map(([lo, hi]) => [lo, hi, (hi - lo) / B]);
  }

  /** A DreamBooth batch's prompts: the instance prompt, then the class prompt for the class half. */
  #dreamboothValues(B: number): ConditionValue[] {
    const d = this.config.dreambooth!;
    const bi = this.loader.batchSize;
    return Array.from({ length: B }, (_, i) =>
      i < bi || d.classPrompt === null ? d.instancePrompt : d.classPrompt,
    );
  }

  /**
   * The condition of each image of step s's batch (null for an unconditional model): its label
   * or one of its captions (stream 'captions'), replaced by ∅ with probability p (stream 'labels').
   */
  async #conditionValues(batch: Batch, s: number): Promise<ConditionValue[] | null> {
    if (this.condition.kind === 'none') return null;
    const seed = this.config.seed;
    const B = batch.indices.length;
    const host = { dtype: 'float64' as const, backend: cpuBackend() };
    let labels: number[] | null = null;
    if (batch.labels !== undefined) labels = Array.from(await batch.labels.data());
    if (this.condition.kind === 'class' && labels === null) {
      throw new Error(`${this.dataset.name}: batch without labels`);
    }
    const draw = (purpose: 'labels' | 'captions'): Float64Array => {
      const r = rand([B], { seed: streamSeed(seed, purpose, s), ...host });
      const u = r.dataSync() as Float64Array;
      r.dispose();
      return u;
    };
    const drop = draw('labels');
    const pick = this.condition.kind === 'text' ? draw('captions') : null;
    return batch.indices.map((index, i) =>
      drop[i]! < this.config.labelDropout
        ? null
        : this.condition.trainingValue({ index, label: labels?.[i] }, pick?.[i] ?? 0),
    );
  }

  /**
   * SR3's condition for step s's batch (null unless config.upscale): the block means of x_0,
   * bicubic-upsampled back and noised at σ_a with ε_c from stream (seed, 'augment', s).
   */
  #lowResolution(x0: Tensor, s: number): Tensor | null {
    const up = this.config.upscale;
    if (!up) return null;
    const { dtype, backend } = x0;
    return noGrad(() =>
      tidy(() => {
        const eps =
          up.noiseAugmentation > 0
            ? randn(x0.shape, { seed: streamSeed(this.config.seed, 'augment', s), dtype, backend })
            : null;
        return upscaleCondition(downsampleBox(x0, up.factor), up, eps);
      }),
    );
  }

  /**
   * The inpainting condition of step s's batch (null unless config.inpaint): [x_0 ⊙ (1 − m); m]
   * with a random mask per image from the uniforms of stream (seed, 'masks', s), MASK_DRAWS each.
   */
  async #maskedImages(x0: Tensor, s: number): Promise<Tensor | null> {
    const kinds = this.config.inpaint?.masks;
    if (kinds === undefined) return null;
    const [b, , h, w] = x0.shape as [number, number, number, number];
    const u = rand([b * MASK_DRAWS], {
      seed: streamSeed(this.config.seed, 'masks', s),
      dtype: 'float64',
      backend: cpuBackend(),
    });
    const draws = (await u.data()) as Float64Array;
    u.dispose();
    const m = new Float32Array(b * h * w);
    for (let i = 0; i < b; i++) {
      m.set(
        randomMask(draws.subarray(i * MASK_DRAWS, (i + 1) * MASK_DRAWS), h, w, kinds),
        i * h * w,
      );
    }
    return noGrad(() =>
      tidy(() =>
        inpaintingCondition(x0, tensor(m, [b, 1, h, w], { dtype: x0.dtype, backend: x0.backend })),
      ),
    );
  }

  /** Inpainting previews: n images spread over the dataset with their lower half repainted. */
  #previewInpainted(n: number, steps: number, scheduler: Scheduler, cond: Conditioning): Tensor {
    const { channels: c, imageSize: size } = this.config;
    const opts = this.#previewTensorOptions();
    const mask = tensor(
      Float32Array.from({ length: size * size }, (_, i) => (i >= (size * size) / 2 ? 1 : 0)),
      [1, 1, size, size],
      opts,
    );
    const noise = new ImageNoise(
      streamSeed(this.config.seed, 'preview'),
      0,
      n,
      [c, size, size],
      opts,
    );
    return tidy(() =>
      inpaintWithModel(this.model, scheduler, this.#previewDatasetImages(n, opts), {
        mask,
        numInferenceSteps: steps,
        noise: () => noise.next(),
        guidance: { cond },
      }),
    );
  }

  /** The dtype and backend of preview tensors: the model's (float32 unless it is float64). */
  #previewTensorOptions(): { backend: Backend; dtype: 'float32' | 'float64' } {
    const w = this.model.parameters()[0]!;
    return { backend: w.backend, dtype: w.dtype === 'float64' ? 'float64' : 'float32' };
  }

  /** n dataset images spread over the dataset, in [−1, 1]: [n, C, S, S]. */
  #previewDatasetImages(
    n: number,
    opts: { backend: Backend; dtype: 'float32' | 'float64' },
  ): Tensor {
    const { channels: c, imageSize: size } = this.config;
    const x = new Float32Array(n * c * size * size);
    for (let i = 0; i < n; i++) {
      const img = this.dataset.get(Math.floor((i * this.dataset.length) / n)).image;
      for (let j = 0; j < img.length; j++) x[i * img.length + j] = img[j]! * 2 - 1;
    }
    return tensor(x, [n, c, size, size], opts);
  }

  /** ControlNet previews: the base steered by the condition images of n dataset images. */
  #previewControlled(n: number, steps: number, scheduler: Scheduler, cond: Conditioning): Tensor {
    const { channels: c, imageSize: size } = this.config;
    const kind = this.config.controlnet!.control;
    const maps = new Float32Array(n * size * size);
    for (let i = 0; i < n; i++) {
      const img = this.dataset.get(Math.floor((i * this.dataset.length) / n)).image;
      maps.set(controlOfPlanes(kind, img, c, size, size), i * size * size);
    }
    const w = this.model.parameters()[0]!;
    const f64 = w.dtype === 'float64';
    const controlnetCond = tensor(f64 ? Float64Array.from(maps) : maps, [n, 1, size, size], {
      backend: w.backend,
      dtype: f64 ? 'float64' : 'float32',
    });
    try {
      return generate(this.#denoiser, scheduler, {
        n,
        seed: streamSeed(this.config.seed, 'preview'),
        numInferenceSteps: steps,
        cond: { ...cond, controlnetCond },
      });
    } finally {
      controlnetCond.dispose();
    }
  }

  /** SR3 previews: n images spread over the dataset, brought to the low resolution, upscaled. */
  #previewUpscaled(n: number, steps: number, scheduler: Scheduler, cond: Conditioning): Tensor {
    const up = this.config.upscale!;
    const { channels: c, imageSize: size } = this.config;
    const opts = this.#previewTensorOptions();
    const noise = new ImageNoise(
      streamSeed(this.config.seed, 'preview'),
      0,
      n,
      [c, size, size],
      opts,
    );
    return tidy(() =>
      upscale(
        this.model,
        scheduler,
        downsampleBox(this.#previewDatasetImages(n, opts), up.factor),
        {
          ...up,
          numInferenceSteps: steps,
          noise: () => noise.next(),
          cond,
        },
      ),
    );
  }

  /** What `sumi.json` says about the model (with the command and arguments that trained it). */
  modelInfo(meta: Pick<CheckpointMeta, 'command' | 'trainArgs'> = {}): ModelInfo {
    return {
      format: 'sumi-model',
      version: 1,
      imageSize: this.config.imageSize,
      channels: this.config.channels,
      conditioning: this.condition.kind,
      conditionDropout:
        this.condition.kind === 'none'
          ? 0
          : (this.#baseConditionDropout ?? this.config.labelDropout),
      numClasses: this.classes?.numClasses ?? null,
      nullClassId: this.classes?.nullClassId ?? null,
      ...(this.classes?.names ? { classNames: this.classes.names } : {}),
      ...(this.config.upscale ? { upscale: this.config.upscale } : {}),
      ...(this.config.inpaint ? { inpaint: this.config.inpaint } : {}),
      ...(this.config.latent ? { latent: this.config.latent } : {}),
      data: this.config.data,
      step: this.step,
      ...runInfo({ command: meta.command, trainArgs: meta.trainArgs }),
    };
  }

  /**
   * The files of a checkpoint at the current step (see checkpoint.ts for the layout);
   * trainer_state.json comes last. Throws NonFiniteError when any weight is NaN or infinite.
   */
  async checkpointFiles(meta: CheckpointMeta = {}): Promise<CheckpointFile[]> {
    const files: CheckpointFile[] = [];
    for (const c of this.#components) {
      const weights = await finiteWeights(c.module.namedParameters(), this.step, c.prefix);
      const config = c.module.configJson();
      files.push(...modelFolderFiles(c.name, config, c.weightsName, weights));
      if (c.ema !== null) {
        const sd = c.ema.stateDict();
        const entries = await tensorsToWrite(sd, 'F32');
        disposeAll(sd);
        files.push(...modelFolderFiles(`${c.name}_ema`, config, c.weightsName, entries));
      }
    }
    if (this.config.dreambooth && this.lora === null) {
      // The pipeline folder of a fully fine-tuned DreamBooth model carries the base's text encoder.
      for (const c of this.condition.components) {
        const weights = await finiteWeights(c.module.namedParameters(), this.step, `${c.name}.`);
        files.push(...modelFolderFiles(c.name, c.module.configJson(), c.weightsName, weights));
      }
    }
    files.push(
      ...this.condition.files(),
      { path: OPTIMIZER_FILE, bytes: await optimizerStateBytes(this.optimizer) },
      { path: SCHEDULER_CONFIG, bytes: jsonBytes(this.config.scheduler) },
    );
    if (this.latent !== null) {
      files.push(
        { path: join(LATENT_VAE_DIR, CONFIG_NAME), bytes: this.latent.vae.files.config },
        { path: join(LATENT_VAE_DIR, WEIGHTS_NAME), bytes: this.latent.vae.files.weights },
      );
    }
    if (this.lora === null && this.controlnet === null) {
      const vaeClass = this.config.latent?.vaeClass;
      files.push(
        {
          path: MODEL_INDEX,
          bytes: jsonBytes(pipelineIndex(this.model, this.condition, vaeClass)),
        },
        { path: SUMI_INFO, bytes: jsonBytes(this.modelInfo(meta)) },
      );
    } else if (this.lora !== null) {
      files.push({ path: LORA_WEIGHTS_NAME, bytes: await this.loraFileBytes() });
    }
    files.push({ path: TRAINER_STATE, bytes: jsonBytes(this.state(meta)) });
    return files;
  }

  /**
   * The adapters of a LoRA run as a diffusers `pytorch_lora_weights.safetensors` (the EMA weights
   * when there are, as sampling uses).
   */
  async loraFileBytes(): Promise<Uint8Array> {
    const lora = this.lora;
    if (lora === null) throw new TrainConfigError('not a LoRA run');
    const ema = this.ema;
    if (ema !== null) {
      ema.store(lora);
      ema.copyTo(lora);
    }
    try {
      return await serializeLora(lora);
    } finally {
      if (ema !== null) ema.restore(lora);
    }
  }

  state(meta: CheckpointMeta = {}): TrainerState {
    return {
      format: 'sumi-trainer-state',
      version: 1,
      step: this.step,
      config: this.config,
      ema:
        this.ema === null
          ? null
          : { optimizationStep: this.ema.optimizationStep, decay: this.ema.curDecay },
      rng: rngState(this.config.seed, this.step),
      data: {
        name: this.dataset.name,
        length: this.dataset.length,
        batchSize: this.config.batchSize,
        ...dataPosition(this.step, this.loader.stepsPerEpoch, this.config.batchSize),
      },
      classes: this.classes,
      elapsedSeconds: meta.elapsedSeconds ?? this.elapsedBefore,
      backend: this.model.parameters()[0]!.backend.name,
      ...runState({ run: meta.run, trainArgs: meta.trainArgs }),
      ...(this.baseWeights !== null ? { baseWeights: this.baseWeights } : {}),
      ...(this.priorLoader !== null
        ? {
            classImages: {
              count: this.priorLoader.dataset.length,
              sha256: this.#classImagesSha256!,
            },
          }
        : {}),
    };
  }

  /** Loads weights, EMA, optimizer state and step from a checkpoint directory of this config. */
  async loadCheckpoint(dir: string, state: TrainerState): Promise<void> {
    const backend = this.model.parameters()[0]!.backend;
    for (const c of this.#components) {
      await loadModule(c.module, join(dir, c.name, c.weightsName));
      if (c.ema === null) continue;
      if (state.ema === null) throw new TrainConfigError(`${dir}: the checkpoint has no EMA state`);
      const path = join(dir, `${c.name}_ema`, c.weightsName);
      const sd = await loadTensors(path, { backend });
      try {
        await c.ema.loadStateDict(sd, {
          optimizationStep: state.ema.optimizationStep,
          source: path,
        });
      } finally {
        disposeAll(sd);
      }
      c.ema.curDecay = state.ema.decay;
    }
    await loadOptimizerState(this.optimizer, dir);
    this.step = state.step;
    this.elapsedBefore = state.elapsedSeconds;
  }

  /**
   * Sets every trained weight, and its EMA, to a loaded pipeline's (config.init: the denoiser's,
   * the text encoder's), cast to the run's dtype; the optimizer state stays fresh. Each weights
   * file of config.init.weights names its part in the errors (a missing, unexpected or
   * mis-shaped tensor); a part is not changed when anything in it is wrong.
   */
  async loadInitWeights(p: { model: Module; condition: ConditionSource }): Promise<void> {
    const files = this.config.init?.weights ?? [];
    if (this.step !== 0 || files.length !== this.#components.length) {
      throw new TrainConfigError('initial weights go into a fresh run of an --init config');
    }
    const from = [p.model, ...p.condition.components.map((c) => c.module)];
    if (from.length !== this.#components.length) {
      throw new TrainConfigError(
        `${this.config.init!.dir} has ${from.length} weighted parts; the run trains ${this.#components.length}`,
      );
    }
    for (const [i, c] of this.#components.entries()) {
      const source = files[i]!.path;
      await c.module.loadStateDict(from[i]!.stateDict(), { source });
      await c.ema?.loadStateDict(c.module.stateDict(), { optimizationStep: 0, source });
    }
  }

  /**
   * A grid's worth of samples from the current weights (the EMA weights when there are), with a
   * fixed noise stream so that grids of different steps are comparable. Leaves the training
   * state exactly as it was.
   */
  previewImages(n: number, steps: number, sampler: string): Tensor {
    const scheduler = createSampler(sampler, this.config.scheduler);
    const withEma = this.#components.filter((c) => c.ema !== null);
    for (const c of withEma) {
      c.ema!.store(c.module);
      c.ema!.copyTo(c.module);
    }
    this.#setTraining(false);
    const backend = this.model.parameters()[0]!.backend;
    const { cond } = encodeConditions(this.condition, { values: this.previewValues(n) }, backend);
    try {
      if (this.config.upscale) return this.#previewUpscaled(n, steps, scheduler, cond);
      if (this.controlnet !== null) return this.#previewControlled(n, steps, scheduler, cond);
      if (this.config.inpaint) return this.#previewInpainted(n, steps, scheduler, cond);
      const x0 = generate(this.model, scheduler, {
        n,
        seed: streamSeed(this.config.seed, 'preview'),
        numInferenceSteps: steps,
        cond,
      });
      if (this.latent === null) return x0;
      try {
        return decodeLatents(this.latent.vae.vae, this.latent.vae.spec, x0);
      } finally {
        x0.dispose();
      }
    } finally {
      disposeConditioning(cond);
      this.#setTraining(true);
      for (const c of withEma) c.ema!.restore(c.module);
    }
  }

  /**
   * The conditions of a preview grid: classes in turn, or the first caption of images spread
   * over the dataset; nothing for an unconditional model.
   */
  previewValues(n: number): ConditionValue[] {
    const kind = this.condition.kind;
    const k = this.classes?.numClasses;
    const db = this.config.dreambooth;
    return Array.from({ length: n }, (_, i) => {
      // DreamBooth: the instance prompt and the class prompt in turn.
      if (db) return i % 2 === 1 && db.classPrompt !== null ? db.classPrompt : db.instancePrompt;
      if (kind === 'class') return i % k!;
      if (kind === 'text') {
        const index = Math.floor((i * this.dataset.length) / n);
        return this.condition.trainingValue({ index, label: this.dataset.get(index).label }, 0);
      }
      return null;
    });
  }

  /** Frees parameters, optimizer and EMA state. */
  dispose(): void {
    this.optimizer.dispose();
    for (const c of this.#components) {
      c.ema?.dispose();
      disposeAll(c.module.stateDict());
    }
    if (this.lora !== null) {
      this.lora.detach();
      disposeAll(this.model.stateDict());
    }
    if (this.controlnet !== null) disposeAll(this.model.stateDict());
    if (this.config.dreambooth) {
      for (const c of this.condition.components) disposeAll(c.module.stateDict());
    }
    if (this.latent !== null) disposeAll(this.latent.vae.vae.stateDict());
  }
}

/**
 * The latent source of a run, checked against its config: present exactly when config.latent is,
 * with the vae whose weights the config records and latents of the config's shape.
 */
function checkLatentSource(
  config: TrainConfig,
  dataset: Dataset,
  latent: LatentSource | undefined,
): LatentSource | null {
  const want = config.latent ?? null;
  if (want === null) {
    if (latent !== undefined)
      throw new TrainConfigError('a latent source goes with a latent config');
    return null;
  }
  if (latent === undefined) {
    throw new TrainConfigError('a latent run needs its vae and latent cache');
  }
  if (latent.vae.sha256 !== want.vaeSha256) {
    throw new TrainConfigError(
      `the run's vae weights have sha256 ${want.vaeSha256}; ${latent.vae.dir} has ${latent.vae.sha256}`,
    );
  }
  const shape = latent.cache.latentShape;
  if (JSON.stringify(shape) !== JSON.stringify(want.shape)) {
    throw new TrainConfigError(
      `the latent cache holds ${shape.join('x')} latents; the run wants ${want.shape.join('x')}`,
    );
  }
  if (config.flip && !latent.cache.data.header.flip) {
    throw new TrainConfigError('the run flips images; its latent cache holds no mirrored images');
  }
  if (latent.cache.data.header.dataset.length !== dataset.length) {
    throw new TrainConfigError(
      `the latent cache holds ${latent.cache.data.header.dataset.length} images; ${dataset.name} has ${dataset.length}`,
    );
  }
  return latent;
}

/** Reads and checks `trainer_state.json` of a checkpoint directory. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const st = await readStateFile(dir, {
    format: 'sumi-trainer-state',
    what: 'Sumi trainer state',
    check: (s) => typeof s.step === 'number',
  });
  return st as unknown as TrainerState;
}
