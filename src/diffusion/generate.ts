/**
 * Sampling from a denoiser: build any sampler over the training schedule; run the reverse process
 * under a conditioning, with classifier-free guidance through the null condition; the metadata a
 * model folder carries (sumi.json, model_index.json). Loading and saving model folders:
 * pipeline.ts.
 */
import {
  type Backend,
  type Disposable,
  keep,
  noGrad,
  ownScope,
  type Tensor,
  tidy,
} from '../engine/index.js';
import { DIFFUSERS_VERSION } from '../nn/models/config.js';
import type { Conditioning, Denoiser } from '../nn/models/index.js';
import { guidedDenoiser } from './classifier-free.js';
import {
  type ConditionSource,
  ConditionError,
  type ConditionValue,
  disposeConditioning,
} from './conditioning.js';
import type { InpaintSettings } from './editing/inpaint-model.js';
import type { UpscaleSettings } from './editing/upscale.js';
import type { LatentSettings } from './latent/vae.js';
import { defaultSamplingThreads, SamplingReplicas } from './sampling-replicas.js';
import { predictedOriginalSample, type PredictionType } from './forward.js';
import {
  type DenoiseModel,
  ImageNoise,
  pipelineStepOptions,
  type Scheduler,
  createScheduler,
  SamplingLoop,
  samplersTaking,
  schedulerSpec,
  type StepInfo,
  takesStepParameter,
} from './samplers/index.js';

/** `sumi.json`: what sampling needs beyond the diffusers files. */
export interface ModelInfo {
  format: 'sumi-model';
  version: 1;
  imageSize: number;
  channels: number;
  /** What the denoiser is conditioned on (absent in older files: class when numClasses is set). */
  conditioning?: 'none' | 'class' | 'text';
  /** Whether training dropped the condition (so classifier-free guidance can be used). */
  conditionDropout?: number;
  /**
   * An SR3 upscaler's settings (`sumi train --task upscale`): the model takes x_t joined with
   * the upsampled low-resolution image, and samples with `sumi edit upscale` only.
   */
  upscale?: UpscaleSettings;
  /**
   * An inpainting model's training masks (`sumi train --task inpaint`): the model takes x_t joined
   * with the masked image and the mask, and samples with `sumi edit inpaint` only.
   */
  inpaint?: InpaintSettings;
  /**
   * A latent model's autoencoder settings and latent shape (`sumi train --vae`): the denoiser
   * samples latents, which the pipeline's vae/ decodes to imageSize × imageSize × channels.
   */
  latent?: LatentSettings;
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

export class ModelDirError extends Error {
  override name = 'ModelDirError';
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
  /** Index of the first image within the seed's images (default 0; see `ImageNoise`). */
  firstImage?: number;
  numInferenceSteps: number;
  /** DDIM's η (0 deterministic). */
  eta?: number;
  /**
   * DDIM: ε̂ from the clipped x̂_0 (default: under guidance where the scheduler clips; see
   * `pipelineStepOptions`).
   */
  useClippedModelOutput?: boolean;
  /** The conditioning of the n images (nothing for an unconditional model). */
  cond?: Conditioning;
  /** The null (or negative) conditioning, for classifier-free guidance. */
  uncond?: Conditioning | null;
  /** Classifier-free guidance scale w (1: none). */
  guidanceScale?: number;
  /** Guidance rescale φ in [0, 1] (Lin et al. 2023; 0: off). */
  guidanceRescale?: number;
  /** Wraps the sampler callback (classifier guidance, say) after classifier-free guidance. */
  wrap?: (denoise: DenoiseModel) => DenoiseModel;
  /** Called after every sampler step (see `sample`). */
  onStep?: (info: StepInfo) => void;
  /**
   * A replica of `denoiser` (`SamplingReplicas.start`) that computes half of every model call on
   * another thread; the images are the same bit for bit. The caller closes it.
   */
  replicas?: SamplingReplicas | null;
}

/**
 * Runs the reverse process for images [firstImage, firstImage + n) of `seed` at the denoiser's
 * size: x_T ~ N(0, I) and every noise draw of the sampler come from each image's own noise
 * (`ImageNoise`), so image k is the same picture whatever batch it is generated in. Returns x_0
 * [n, C, H, W] in about [-1, 1]. The conditioning tensors stay the caller's.
 */
export function generate(denoiser: Denoiser, scheduler: Scheduler, opts: GenerateOptions): Tensor {
  return runToEnd(new GenerationRun(denoiser, scheduler, opts));
}

/** Where an asynchronous generation is, after each sampler step. */
export interface GenerateProgress {
  /** Steps taken (1 to total). */
  step: number;
  total: number;
  /** The timestep of the step just taken. */
  t: number;
  /**
   * x̂_0 [n, C, H, W] of the step just taken (see `stepX0`; decoded by `decode` when given) when
   * `preview` was asked for, else null. Freed once onProgress returns (or the promise it returns
   * settles).
   */
  preview: Tensor | null;
}

export interface GenerateAsyncOptions extends GenerateOptions {
  /** Cancels the run between two steps: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Called after every step; a returned promise is awaited before the next step. */
  onProgress?: (progress: GenerateProgress) => void | Promise<void>;
  /** Hand onProgress the step's x̂_0 (one more tensor per step). */
  preview?: boolean;
  /**
   * A latent pipeline's decoder (`LoadedPipeline.vae`): maps the result, and each preview, from
   * the denoiser's samples to images. The sampling itself is unchanged.
   */
  decode?: (x0: Tensor) => Tensor;
}

/**
 * `generate` one step at a time, yielding to the event loop between steps so that a page stays
 * responsive: the same images for the same options (the same loop runs), decoded by `decode`
 * when given. After every step it reports progress (and x̂_0 when `preview` is set). When `signal` aborts, the run stops before
 * its next step, frees every tensor it made (x_t, the noise, the guidance's conditioning, the
 * scheduler's history) and rejects with `signal.reason` (a DOMException named 'AbortError'
 * unless the caller gave another reason); the conditioning tensors stay the caller's.
 */
export async function generateAsync(
  denoiser: Denoiser,
  scheduler: Scheduler,
  opts: GenerateAsyncOptions,
): Promise<Tensor> {
  opts.signal?.throwIfAborted();
  let preview: Tensor | null = null;
  const predictionType = scheduler.config.predictionType as PredictionType;
  const decode = opts.decode;
  const run = new GenerationRun(denoiser, scheduler, {
    ...opts,
    onStep: (info) => {
      opts.onStep?.(info);
      if (opts.preview !== true) return;
      const x0 = stepX0(scheduler, predictionType, info);
      preview = keep(decode !== undefined ? decode(x0) : x0.alias());
    },
  });
  const x0 = await runToEndAsync(run, opts.signal, async () => {
    const t = scheduler.timesteps[run.index]!;
    run.step();
    try {
      await opts.onProgress?.({ step: run.index, total: run.total, t, preview });
    } finally {
      preview?.dispose();
      preview = null;
    }
  });
  if (decode === undefined) return x0;
  try {
    return decode(x0);
  } finally {
    x0.dispose();
  }
}

/** A sampling loop taken one step at a time (GenerationRun, InpaintRun). */
export interface SteppedRun {
  readonly done: boolean;
  step(): unknown;
  /** Hands over the result; the run keeps nothing. */
  finish(): Tensor;
  /** Frees every tensor the run made, when it stops before the end. */
  dispose(): void;
}

/** Steps `run` to its end and returns its result; on an error the run's tensors are freed first. */
export function runToEnd(run: SteppedRun): Tensor {
  try {
    while (!run.done) run.step();
  } catch (e) {
    run.dispose();
    throw e;
  }
  return run.finish();
}

/**
 * `runToEnd` that yields to the event loop before each step and stops there once `signal` has
 * aborted; `step` takes one step of `run` and reports it.
 */
export async function runToEndAsync(
  run: SteppedRun,
  signal: AbortSignal | undefined,
  step: () => Promise<void>,
): Promise<Tensor> {
  try {
    while (!run.done) {
      await yieldToEventLoop();
      signal?.throwIfAborted();
      await step();
    }
  } catch (e) {
    run.dispose();
    throw e;
  }
  return run.finish();
}

/**
 * Lets the event loop run a task (rendering, input, a worker's incoming message, timers) before
 * the caller goes on: setImmediate in Node, a MessageChannel message in browsers (no 4 ms
 * clamp, unlike nested timeouts). Not `scheduler.yield()`, whose continuation runs ahead of the
 * queued tasks, so a worker would never see the message that cancels it.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') {
      setImmediate(resolve);
    } else if (typeof MessageChannel === 'function') {
      // The DOM's MessageChannel (Node's types describe its worker_threads twin).
      const channel = new MessageChannel() as unknown as {
        port1: { onmessage: (() => void) | null; close(): void };
        port2: { postMessage(message: null): void };
      };
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    } else {
      setTimeout(resolve, 0);
    }
  });
}

/**
 * One generation, stepped by its caller: the noise of the images, the guided sampler callback
 * and the sampling loop, with every tensor they hold owned here (none is left to a scope, so the
 * run lives across awaits). `generate` and `generateAsync` drive it.
 */
class GenerationRun {
  readonly #loop: SamplingLoop;
  /** What setting up made and still holds: x_T, the guidance's joined conditioning. */
  readonly #made: Disposable[];

  constructor(denoiser: Denoiser, scheduler: Scheduler, opts: GenerateOptions) {
    const p = denoiser.parameters()[0]!;
    const noise = new ImageNoise(opts.seed, opts.firstImage ?? 0, opts.n, denoiser.sampleShape, {
      backend: p.backend,
      dtype: p.dtype === 'float64' ? 'float64' : 'float32',
    });
    const setup = ownScope(() =>
      noGrad(() => {
        const guided = guidedDenoiser(opts.replicas ?? denoiser, {
          cond: opts.cond ?? {},
          uncond: opts.uncond ?? null,
          scale: opts.guidanceScale ?? 1,
          rescale: opts.guidanceRescale ?? 0,
        });
        const xT = noise.next();
        return new SamplingLoop(scheduler, opts.wrap ? opts.wrap(guided) : guided, xT, {
          numInferenceSteps: opts.numInferenceSteps,
          stepOptions: pipelineStepOptions(scheduler, opts.guidanceScale ?? 1, {
            ...(opts.eta !== undefined ? { eta: opts.eta } : {}),
            ...(opts.useClippedModelOutput !== undefined
              ? { useClippedModelOutput: opts.useClippedModelOutput }
              : {}),
            noise: () => noise.next(),
          }),
          onStep: opts.onStep,
        });
      }),
    );
    this.#loop = setup.result;
    this.#made = setup.made.filter((t) => t !== this.#loop.sample);
  }

  get index(): number {
    return this.#loop.index;
  }
  get total(): number {
    return this.#loop.total;
  }
  get done(): boolean {
    return this.#loop.done;
  }

  step(): void {
    noGrad(() => this.#loop.step());
  }

  /** x_0, which the caller now owns; frees the rest. */
  finish(): Tensor {
    for (const t of this.#made) t.dispose();
    return this.#loop.sample;
  }

  /** Frees everything (a cancelled or failed run). */
  dispose(): void {
    for (const t of this.#made) t.dispose();
    this.#loop.dispose();
  }
}

/** Images per batch when the caller does not say. */
export const DEFAULT_BATCH_SIZE = 64;

/** Where a batch lies in a batched run. */
export interface BatchInfo {
  /** 0-based batch number, and the number of batches. */
  index: number;
  batches: number;
  /** Index of the batch's first image, and its number of images. */
  start: number;
  size: number;
}

export interface GenerateBatchesOptions {
  seed: number;
  numInferenceSteps: number;
  /** Images per batch (memory grows with it, not with the number of images). */
  batchSize: number;
  /** DDIM's η. */
  eta?: number;
  /** Encodes the conditions of each batch. */
  condition: ConditionSource;
  /** The condition of every image (its length is the number of images) and the guidance. */
  request: ConditionRequest;
  /** Guidance rescale φ in [0, 1]. */
  guidanceRescale?: number;
  /** Wraps each batch's sampler callback (classifier guidance, say). */
  wrap?: (denoise: DenoiseModel, batch: BatchInfo) => DenoiseModel;
  onStep?: (info: StepInfo, batch: BatchInfo) => void;
  /** After every step of every batch (`generateAsync`'s progress, and the batch). */
  onProgress?: (progress: GenerateProgress, batch: BatchInfo) => void | Promise<void>;
  /** Cancels between two steps (see `generateAsync`). */
  signal?: AbortSignal;
  /**
   * Maps each batch's x_0 before onBatch: a latent pipeline's decoder (`LoadedPipeline.vae`),
   * which turns latents into images (`generateAsync`'s `decode`).
   */
  decode?: (x0: Tensor) => Tensor;
  /** Receives each batch's x_0 [size, C, H, W]; it is freed once the returned promise settles. */
  onBatch: (images: Tensor, batch: BatchInfo) => void | Promise<void>;
  /**
   * Threads computing each model call: 1, or 2 (half of each batch on a replica of the denoiser
   * in a worker thread, started once and stopped at the end, on error or abort; see
   * sampling-replicas.ts). The images are the same bit for bit. Default: 2 on the CPU backend
   * for batches of at least MIN_REPLICA_BATCH images, else 1. Models a replica cannot compute
   * (ControlNet, LoRA, WebGPU) sample on one thread whatever is asked.
   */
  replicas?: number;
}

/**
 * Generates `request.values.length` images batch by batch: each batch encodes its own
 * conditions, runs `generateAsync` for its images of the seed (reporting each step to
 * `onProgress`), hands x_0 to `onBatch` and frees it,
 * so memory stays flat in the number of images. Image k is the same as in any other batching,
 * and with or without a replica (`replicas`).
 */
export async function generateBatches(
  denoiser: Denoiser,
  scheduler: Scheduler,
  opts: GenerateBatchesOptions,
): Promise<void> {
  const n = opts.request.values.length;
  const size = opts.batchSize;
  if (!Number.isInteger(size) || size < 1) {
    throw new SamplingOptionError('batchSize', `must be at least 1, got ${size}`);
  }
  const negative = opts.request.negative ?? null;
  if (negative !== null && negative.length !== n) {
    throw new ConditionError(`${negative.length} negative conditions for ${n} images`);
  }
  const replicas = await startSamplingReplicas(denoiser, opts.replicas, Math.min(size, n));
  try {
    await generateEachBatch(denoiser, scheduler, opts, replicas);
  } finally {
    await replicas?.close();
  }
}

/**
 * How long `startSamplingReplicas` waits for its replica to load before the run starts without
 * it (the replica then joins at a later call).
 */
const REPLICA_READY_WAIT_MS = 10_000;

/**
 * The replica for a run asking for `replicas` threads (1 or 2; default `defaultSamplingThreads`
 * of its batch size), started and loaded, or null for one thread (or a model no replica can
 * compute). A count other than 1 or 2 is a SamplingOptionError. The caller closes it.
 *
 * It resolves once the replica is ready (at most REPLICA_READY_WAIT_MS), so that the first model
 * call is split too: a process's first call costs about three warm ones (its arrays are faulted
 * in, its code is compiled), and the replica loads in about one warm call (mnist-small: 0.5 s
 * against 1.5 s for a first call of 32 images), so waiting for it costs less than making this
 * thread pay a lone first call of the whole batch and the replica its own first call after.
 */
export async function startSamplingReplicas(
  denoiser: Denoiser,
  replicas: number | undefined,
  imagesPerBatch: number,
): Promise<SamplingReplicas | null> {
  const threads = replicas ?? defaultSamplingThreads(imagesPerBatch);
  if (threads !== 1 && threads !== 2) {
    throw new SamplingOptionError('replicas', `must be 1 or 2, got ${threads}`);
  }
  const started = threads === 2 ? SamplingReplicas.start(denoiser) : null;
  await started?.ready(REPLICA_READY_WAIT_MS);
  return started;
}

async function generateEachBatch(
  denoiser: Denoiser,
  scheduler: Scheduler,
  opts: GenerateBatchesOptions,
  replicas: SamplingReplicas | null,
): Promise<void> {
  const n = opts.request.values.length;
  const size = opts.batchSize;
  const backend = denoiser.parameters()[0]!.backend;
  const negative = opts.request.negative ?? null;
  const batches = Math.ceil(n / size);
  for (let index = 0; index < batches; index++) {
    const start = index * size;
    const batch: BatchInfo = { index, batches, start, size: Math.min(size, n - start) };
    const end = start + batch.size;
    const conds = encodeConditions(
      opts.condition,
      {
        values: opts.request.values.slice(start, end),
        negative: negative?.slice(start, end) ?? null,
        guidanceScale: opts.request.guidanceScale,
      },
      backend,
    );
    let images: Tensor;
    try {
      images = await generateAsync(denoiser, scheduler, {
        n: batch.size,
        seed: opts.seed,
        firstImage: start,
        numInferenceSteps: opts.numInferenceSteps,
        eta: opts.eta,
        cond: conds.cond,
        uncond: conds.uncond,
        guidanceScale: opts.request.guidanceScale ?? 1,
        guidanceRescale: opts.guidanceRescale ?? 0,
        ...(opts.wrap !== undefined
          ? { wrap: (denoise: DenoiseModel) => opts.wrap!(denoise, batch) }
          : {}),
        ...(opts.onStep !== undefined
          ? { onStep: (info: StepInfo) => opts.onStep!(info, batch) }
          : {}),
        ...(opts.onProgress !== undefined
          ? { onProgress: (pr: GenerateProgress) => opts.onProgress!(pr, batch) }
          : {}),
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        ...(opts.decode !== undefined ? { decode: opts.decode } : {}),
        replicas,
      });
    } finally {
      disposeConditioning(conds.cond);
      if (conds.uncond !== null) disposeConditioning(conds.uncond);
    }
    try {
      await opts.onBatch(images, batch);
    } finally {
      images.dispose();
    }
  }
}

/** A sampling setting outside its range, or one the sampler does not have. */
export class SamplingOptionError extends Error {
  override name = 'SamplingOptionError';
  constructor(
    /** Which setting (the name in `SamplingSettings`). */
    readonly option: keyof SamplingSettings,
    /** What is wrong, said of the setting: "must be from 0 to 1, got 2". */
    readonly problem: string,
  ) {
    super(`${SETTING_NAMES[option]} ${problem}`);
  }
}

const SETTING_NAMES: Record<keyof SamplingSettings, string> = {
  eta: 'η',
  guidanceScale: 'the guidance scale',
  guidanceRescale: 'the guidance rescale',
  batchSize: 'the batch size',
  replicas: 'the number of sampling threads',
};

/** The largest classifier-free guidance scale accepted; far beyond it every pixel saturates. */
export const MAX_GUIDANCE_SCALE = 100;

export interface SamplingSettings {
  eta?: number;
  guidanceScale?: number;
  guidanceRescale?: number;
  batchSize?: number;
  /** Threads computing each model call (1 or 2; see `GenerateBatchesOptions.replicas`). */
  replicas?: number;
}

/**
 * Checks sampling settings against their ranges and the sampler (`name`: CLI or class name):
 * η in [0, 1] and only for the samplers that take it (past η = 1, DDIM's
 * σ_t² = η² (1−ᾱ_{t−1})/(1−ᾱ_t) (1−ᾱ_t/ᾱ_{t−1}) can exceed 1−ᾱ_{t−1}, and the direction term
 * √(1−ᾱ_{t−1}−σ_t²) is undefined), w in [0, MAX_GUIDANCE_SCALE], φ in [0, 1], a batch of at
 * least one image. Throws a SamplingOptionError naming the first problem.
 */
export function checkSamplingSettings(name: string, s: SamplingSettings): void {
  if (s.eta !== undefined) {
    if (!takesStepParameter(name, 'eta')) {
      const takers = samplersTaking('eta');
      throw new SamplingOptionError(
        'eta',
        `is for ${takers.join(', ')}; sampler '${name}' has no η`,
      );
    }
    if (!(s.eta >= 0 && s.eta <= 1)) {
      throw new SamplingOptionError(
        'eta',
        `must be from 0 (deterministic) to 1 (DDPM-like), got ${s.eta}`,
      );
    }
  }
  const w = s.guidanceScale;
  if (w !== undefined && !(w >= 0 && w <= MAX_GUIDANCE_SCALE)) {
    throw new SamplingOptionError(
      'guidanceScale',
      `must be from 0 to ${MAX_GUIDANCE_SCALE} (1: no guidance), got ${w}`,
    );
  }
  const phi = s.guidanceRescale;
  if (phi !== undefined && !(phi >= 0 && phi <= 1)) {
    throw new SamplingOptionError('guidanceRescale', `must be from 0 to 1, got ${phi}`);
  }
  const b = s.batchSize;
  if (b !== undefined && !(Number.isInteger(b) && b >= 1)) {
    throw new SamplingOptionError('batchSize', `must be at least 1, got ${b}`);
  }
  const r = s.replicas;
  if (r !== undefined && r !== 1 && r !== 2) {
    throw new SamplingOptionError('replicas', `must be 1 or 2, got ${r}`);
  }
}

export interface ConditionRequest {
  /** What each image is conditioned on (a class id or a prompt; null: ∅). */
  values: readonly ConditionValue[];
  /** What the guidance steers away from, per image (negative prompts); default ∅. */
  negative?: readonly ConditionValue[] | null;
  /** The guidance scale w (1: no unconditional branch is encoded). */
  guidanceScale?: number;
}

/**
 * c and ∅ (or the negative condition) of a request, encoded by the model's condition source.
 * Throws a ConditionError for a request the model cannot take.
 */
export function encodeConditions(
  source: ConditionSource,
  req: ConditionRequest,
  backend: Backend,
): { cond: Conditioning; uncond: Conditioning | null } {
  const w = req.guidanceScale ?? 1;
  const n = req.values.length;
  const negative = req.negative ?? null;
  if (negative !== null && negative.length !== n) {
    throw new ConditionError(`${negative.length} negative conditions for ${n} images`);
  }
  if (w !== 1 && !source.hasNull) {
    throw new ConditionError(
      source.kind === 'none'
        ? 'guidance needs a conditional model; this one is unconditional'
        : 'guidance needs a model trained with condition dropout (a null condition); this one was not',
    );
  }
  if (negative !== null && source.kind !== 'text') {
    throw new ConditionError('a negative prompt needs a text-conditioned model');
  }
  // The encoder's intermediates (a text encoder's layers) are freed here: only the result stays.
  return noGrad(() =>
    tidy(() => {
      const cond = source.encode(req.values, backend);
      const uncond =
        w === 1 ? null : source.encode(negative ?? req.values.map(() => null), backend);
      return { cond, uncond };
    }),
  );
}

/**
 * model_index.json of a pipeline folder: DDPMPipeline, or Sumi's text-to-image pipeline; with a
 * vae (its class: AutoencoderKL or VQModel) a latent pipeline listing `vae`.
 */
export function pipelineIndex(
  denoiser: Denoiser,
  condition: ConditionSource,
  vaeClass?: string,
): Record<string, unknown> {
  const text = condition.kind === 'text';
  const name = text ? 'SumiTextToImagePipeline' : 'DDPMPipeline';
  return {
    _class_name:
      vaeClass === undefined ? name : text ? 'SumiLatentTextToImagePipeline' : 'SumiLatentPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    scheduler: ['diffusers', 'DDPMScheduler'],
    ...Object.fromEntries(condition.components.map((c) => [c.name, [...c.libraryClass]])),
    ...(text ? { tokenizer: ['transformers', 'PreTrainedTokenizerFast'] } : {}),
    unet: ['diffusers', denoiser.className],
    ...(vaeClass !== undefined ? { vae: ['diffusers', vaeClass] } : {}),
  };
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
